// The flame graph SVG: what is drawn, where, in which color, and that no name can break it.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "swprof/analyze.h"
#include "swprof/export.h"

using namespace swprof;
using analyze::NodeKind;

namespace {

// A tree written by hand: add() hangs a node under a parent; times are in ms.
struct TreeBuilder {
  analyze::Tree tree;
  TreeBuilder() {
    analyze::Node root;
    root.kind = NodeKind::kRoot;
    root.function = "all";
    tree.nodes.push_back(root);
  }
  uint32_t add(uint32_t parent, const std::string& function, const std::string& file, int line, double ms,
               NodeKind kind = NodeKind::kFrame) {
    analyze::Node n;
    n.function = tree.labels.emplace_back(function);
    n.file = tree.labels.emplace_back(file);
    n.line = line;
    n.kind = kind;
    n.total = n.self = n.wall = ms * 1000;
    n.cpu = ms * 250;
    n.gil = ms * 100;
    n.samples = static_cast<uint64_t>(ms / 10);
    n.parent = parent;
    auto id = static_cast<uint32_t>(tree.nodes.size());
    tree.nodes.push_back(n);
    tree.nodes[parent].children.push_back(id);
    tree.nodes[parent].self -= n.total;
    if (parent == 0) tree.nodes[0].total += n.total, tree.nodes[0].self = 0;
    return id;
  }
};

// The DESIGN.md blog example: main -> methodA -> methodB -> methodD (60 ms), methodC (40 ms).
TreeBuilder blog() {
  TreeBuilder b;
  uint32_t m = b.add(0, "main", "/src/app.py", 1, 100);
  uint32_t a = b.add(m, "methodA", "/src/app.py", 20, 100);
  uint32_t mb = b.add(a, "methodB", "/src/app.py", 16, 100);
  b.add(mb, "methodD", "/src/app.py", 13, 60);
  b.add(mb, "methodC", "/src/app.py", 10, 40);
  return b;
}

// One drawn frame as the SVG has it.
struct Frame {
  std::string markup, title, fill, text;
  double x = 0, y = 0, width = 0;
};

std::string attr(const std::string& markup, const std::string& name) {
  std::string key = " " + name + "=\"";
  size_t at = markup.find(key);
  if (at == std::string::npos) return {};
  at += key.size();
  return markup.substr(at, markup.find('"', at) - at);
}

std::string between(const std::string& s, const std::string& open, const std::string& close) {
  size_t at = s.find(open);
  if (at == std::string::npos) return {};
  at += open.size();
  return s.substr(at, s.find(close, at) - at);
}

std::vector<Frame> frames_of(const std::string& svg) {
  std::vector<Frame> out;
  for (size_t at = 0; (at = svg.find("<g data-x=", at)) != std::string::npos;) {
    size_t end = svg.find("</g>", at);
    Frame f;
    f.markup = svg.substr(at, end - at);
    f.title = between(f.markup, "<title>", "</title>");
    std::string rect = "<rect" + between(f.markup, "<rect", "/>");
    f.x = std::stod(attr(rect, "x"));
    f.y = std::stod(attr(rect, "y"));
    f.width = std::stod(attr(rect, "width"));
    f.fill = attr(rect, "fill");
    std::string text = between(f.markup, "<text", "</text>");
    f.text = text.empty() ? "" : text.substr(text.find('>') + 1);
    out.push_back(f);
    at = end;
  }
  return out;
}

const Frame& frame(const std::vector<Frame>& frames, const std::string& title_prefix) {
  for (const auto& f : frames)
    if (f.title.rfind(title_prefix, 0) == 0) return f;
  FAIL("no frame titled " << title_prefix);
  throw;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = 0; (at = s.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

bool valid_utf8_without_controls(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    if (len == 1 && ((c < 0x20 && c != '\n') || c == 0x7F)) return false;
    i += len;
  }
  return true;
}

// Runs xmllint --noout on the SVG. Returns nullopt (after a WARN) when xmllint is not installed.
std::optional<bool> xmllint_accepts(const std::string& svg) {
  if (std::system("command -v xmllint >/dev/null 2>&1") != 0) {
    WARN("xmllint not installed (apt-get install libxml2-utils): well-formedness not checked");
    return std::nullopt;
  }
  char path[] = "/tmp/swprof-flamegraph-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path, std::ios::binary) << svg;
  bool ok = std::system(("xmllint --noout " + std::string(path)).c_str()) == 0;
  std::remove(path);
  return ok;
}

// Hue in degrees and saturation of "#rrggbb".
std::pair<double, double> hue_saturation(const std::string& hex) {
  double r = std::stoi(hex.substr(1, 2), nullptr, 16) / 255.0, g = std::stoi(hex.substr(3, 2), nullptr, 16) / 255.0,
         b = std::stoi(hex.substr(5, 2), nullptr, 16) / 255.0;
  double mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
  double l = (mx + mn) / 2, s = d == 0 ? 0 : d / (1 - std::abs(2 * l - 1));
  double h = d == 0 ? 0 : mx == r ? 60 * std::fmod((g - b) / d + 6, 6.0) : mx == g ? 60 * ((b - r) / d + 2) : 60 * ((r - g) / d + 4);
  return {h, s};
}

const std::string kEvil = "evil<script>alert(\"x\")</script> & 'q' ]]> \x01\x1b[31m\x7f \xff\xfe\xC3 \xEF\xBF\xBE";

}  // namespace

TEST_CASE("a name with <, & and invalid UTF-8 is escaped in the SVG", "[flamegraph]") {
  TreeBuilder b;
  uint32_t evil = b.add(0, kEvil, "/tmp/<dir>/&\"quoted\".py", 7, 100);
  b.add(evil, "<lambda>", "", 0, 50, NodeKind::kThread);
  exporter::FlamegraphOptions o;
  o.title = "title </title><script>x</script>";
  o.subtitle = "sub ]]> \x02 & co";
  std::string svg = exporter::flamegraph_svg(b.tree, o);

  CHECK(svg.find("<script>alert") == std::string::npos);
  CHECK(svg.find("</title><script>x") == std::string::npos);
  CHECK(svg.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;q&apos; ]]&gt;") != std::string::npos);
  CHECK(svg.find("/tmp/&lt;dir&gt;/&amp;&quot;quoted&quot;.py:7") != std::string::npos);
  // "]]>" only closes the style and script sections: no name reaches inside them.
  CHECK(count(svg, "]]>") == 2);
  CHECK(count(svg, "<script") == 1);
  // Control characters, invalid bytes and U+FFFE (not allowed in XML) become U+FFFD.
  CHECK(valid_utf8_without_controls(svg));
  CHECK(svg.find("\xEF\xBF\xBE") == std::string::npos);
  CHECK(svg.find("\xEF\xBF\xBD[31m") != std::string::npos);
  if (auto ok = xmllint_accepts(svg)) CHECK(*ok);
}

TEST_CASE("the SVG is one well-formed standalone document with its script in CDATA", "[flamegraph]") {
  TreeBuilder b = blog();
  uint32_t t = b.add(0, "thread 42 (worker)", "", 0, 30, NodeKind::kThread);
  uint32_t g = b.add(t, "greenlet 1 (thread 42)", "", 0, 30, NodeKind::kGreenlet);
  b.add(g, "<switched out>", "", 0, 20, NodeKind::kSwitchedOut);
  std::string svg = exporter::flamegraph_svg(b.tree, {});
  CHECK(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"", 0) == 0);
  CHECK(svg.find("<script type=\"text/ecmascript\"><![CDATA[") != std::string::npos);
  // No external resources: the only URL is the SVG namespace.
  CHECK(count(svg, "http") == 2);  // xmlns and the script's createElementNS namespace
  CHECK(svg.find("href") == std::string::npos);
  CHECK(svg.find("@import") == std::string::npos);
  if (auto ok = xmllint_accepts(svg)) CHECK(*ok);
}

TEST_CASE("an empty tree is still a valid SVG with just the root", "[flamegraph]") {
  TreeBuilder b;
  std::string svg = exporter::flamegraph_svg(b.tree, {});
  auto frames = frames_of(svg);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].title == "all (0 ms, 0.00%)");
  CHECK(svg.find("No samples") != std::string::npos);
  if (auto ok = xmllint_accepts(svg)) CHECK(*ok);
  CHECK(frames_of(exporter::flamegraph_svg(analyze::Tree{}, {})).size() == 1);  // not even a root
}

TEST_CASE("each frame's title reads \"function (file:line) (N ms, P%)\"", "[flamegraph]") {
  TreeBuilder b = blog();
  auto frames = frames_of(exporter::flamegraph_svg(b.tree, {}));
  CHECK(frame(frames, "methodC").title == "methodC (/src/app.py:10) (40 ms, 40.00%)");
  CHECK(frame(frames, "methodD").title == "methodD (/src/app.py:13) (60 ms, 60.00%)");
  CHECK(frame(frames, "all").title == "all (100 ms, 100.00%)");
  std::regex shape(R"(^.+ \(.+:\d+\) \(\d+(\.\d+)? ms, \d+\.\d\d%\)$)");
  for (const auto& f : frames)
    if (f.title.rfind("all ", 0) != 0) CHECK(std::regex_match(f.title, shape));
}

TEST_CASE("hover details carry the absolute path, self, samples, CPU and GIL", "[flamegraph]") {
  TreeBuilder b = blog();
  auto frames = frames_of(exporter::flamegraph_svg(b.tree, {}));
  const Frame& c = frame(frames, "methodC");
  CHECK(attr(c.markup, "data-f") == "/src/app.py:10");
  CHECK(attr(c.markup, "data-w") == "40000");  // µs
  CHECK(attr(c.markup, "data-s") == "40000");
  CHECK(attr(c.markup, "data-n") == "4");
  CHECK(attr(c.markup, "data-c") == "10000");
  CHECK(attr(c.markup, "data-g") == "4000");
  CHECK(attr(frame(frames, "methodB").markup, "data-s") == "0");
}

TEST_CASE("a frame without a file (an imported SkyWalking signature) is labelled by its name alone", "[flamegraph]") {
  TreeBuilder b = blog();
  b.add(0, "com.example.Service.handle(Request)", "", 0, 25);
  auto frames = frames_of(exporter::flamegraph_svg(b.tree, {}));
  const Frame& f = frame(frames, "com.example");
  CHECK(f.title == "com.example.Service.handle(Request) (25 ms, 20.00%)");
  CHECK(f.markup.find("data-f") == std::string::npos);
}

TEST_CASE("a frame's width is proportional to its total; children sit inside their parent", "[flamegraph]") {
  TreeBuilder b = blog();
  b.add(0, "other", "/src/app.py", 99, 300);  // the root is now 400 ms
  auto frames = frames_of(exporter::flamegraph_svg(b.tree, {}));
  const Frame &all = frame(frames, "all"), &mb = frame(frames, "methodB"), &c = frame(frames, "methodC"),
              &d = frame(frames, "methodD");
  CHECK(c.width / d.width == Approx(40.0 / 60.0).epsilon(0.01));
  CHECK(mb.width / all.width == Approx(100.0 / 400.0).epsilon(0.01));
  CHECK(c.width + d.width == Approx(mb.width).margin(0.02));
  CHECK(d.x == Approx(mb.x));              // largest child first, as the tree sorts them
  CHECK(c.x == Approx(d.x + d.width).margin(0.02));
  CHECK(all.width == Approx(1180));        // the full graph width
  CHECK(frame(frames, "other").title == "other (/src/app.py:99) (300 ms, 75.00%)");
}

TEST_CASE("long labels are cut with \"..\" to fit; too narrow frames get no text", "[flamegraph]") {
  TreeBuilder b;
  b.add(0, std::string(300, 'w'), "/src/app.py", 1, 500);
  b.add(0, "tiny_function_name", "/src/app.py", 2, 5);  // 1% of 500 ms: ~6 px
  auto frames = frames_of(exporter::flamegraph_svg(b.tree, {}));
  const Frame& wide = frame(frames, "www");
  REQUIRE(wide.markup.find("<text") != std::string::npos);
  REQUIRE(wide.text.size() > 10);
  CHECK(wide.text.size() < 300);
  CHECK(wide.text.substr(wide.text.size() - 2) == "..");
  CHECK(wide.text.find_first_not_of('w') == wide.text.size() - 2);
  CHECK(frame(frames, "tiny").markup.find("<text") == std::string::npos);
}

TEST_CASE("frames narrower than min_width_pct are omitted, with their subtrees, and counted", "[flamegraph]") {
  TreeBuilder b;
  uint32_t big = b.add(0, "big", "/src/app.py", 1, 999);
  uint32_t small = b.add(0, "small", "/src/app.py", 2, 1);  // 0.1 %
  b.add(small, "under_small", "/src/app.py", 3, 1);
  b.add(big, "big_child", "/src/app.py", 4, 3);  // 0.3 %
  exporter::FlamegraphOptions o;
  o.min_width_pct = 0.2;
  std::string svg = exporter::flamegraph_svg(b.tree, o);
  auto frames = frames_of(svg);
  CHECK(frames.size() == 3);  // all, big, big_child
  CHECK(svg.find(">small") == std::string::npos);
  CHECK(svg.find("under_small") == std::string::npos);
  CHECK(svg.find("2 frames narrower than 0.2% not shown") != std::string::npos);

  o.min_width_pct = 0;
  svg = exporter::flamegraph_svg(b.tree, o);
  CHECK(frames_of(svg).size() == 5);
  CHECK(svg.find("not shown") == std::string::npos);
}

TEST_CASE("the root is the bottom bar; inverted puts it at the top (icicle)", "[flamegraph]") {
  TreeBuilder b = blog();
  exporter::FlamegraphOptions o;
  auto flame = frames_of(exporter::flamegraph_svg(b.tree, o));
  CHECK(frame(flame, "all").y > frame(flame, "main").y);
  CHECK(frame(flame, "main").y > frame(flame, "methodC").y);
  CHECK(frame(flame, "all").y - frame(flame, "methodC").y == Approx(4 * 16));
  o.inverted = true;
  auto icicle = frames_of(exporter::flamegraph_svg(b.tree, o));
  CHECK(frame(icicle, "all").y < frame(icicle, "main").y);
  CHECK(frame(icicle, "methodC").y - frame(icicle, "all").y == Approx(4 * 16));
  CHECK(frame(icicle, "all").y == frame(flame, "methodC").y);  // same rows, mirrored
  CHECK(frame(icicle, "methodC").width == frame(flame, "methodC").width);
}

TEST_CASE("colors are stable per function name and tell user code, stdlib and packages apart", "[flamegraph]") {
  TreeBuilder b;
  uint32_t m = b.add(0, "main", "/home/me/app.py", 1, 100);
  b.add(m, "loads", "/usr/lib/python3.11/json/__init__.py", 299, 30);
  b.add(m, "get", "/venv/lib/python3.11/site-packages/requests/api.py", 62, 30);
  b.add(m, "_find_and_load", "<frozen importlib._bootstrap>", 1165, 10);
  b.add(m, "main", "/home/me/other.py", 5, 20);  // same name elsewhere: same color
  b.add(0, "thread 7", "", 0, 50, NodeKind::kThread);
  auto frames = frames_of(exporter::flamegraph_svg(b.tree, {}));
  std::string user = frame(frames, "main (/home/me/app.py").fill;
  CHECK(frame(frames, "main (/home/me/other.py").fill == user);
  // Pinned: the hash is defined in the source (not std::hash): the same on every run and build.
  CHECK(user == "#ee8964");

  auto [user_h, user_s] = hue_saturation(user);
  auto [std_h, std_s] = hue_saturation(frame(frames, "loads").fill);
  auto [pkg_h, pkg_s] = hue_saturation(frame(frames, "get").fill);
  auto [frozen_h, frozen_s] = hue_saturation(frame(frames, "_find_and_load").fill);
  auto [thread_h, thread_s] = hue_saturation(frame(frames, "thread 7").fill);
  CHECK(user_h <= 40);                          // warm reds and oranges
  CHECK((std_h >= 190 && std_h <= 230));        // blues
  CHECK((frozen_h >= 190 && frozen_h <= 230));  // <frozen ...> is the standard library
  CHECK((pkg_h >= 85 && pkg_h <= 135));         // greens
  CHECK(thread_s < 0.15);                       // synthetic: a neutral grey
  CHECK(frame(frames, "all").fill != user);

  // Twelve similar names get twelve different colors.
  std::set<std::string> fills;
  TreeBuilder many;
  for (char c = 'A'; c < 'A' + 12; ++c) many.add(0, std::string("method") + c, "/src/app.py", 1, 10);
  for (const auto& f : frames_of(exporter::flamegraph_svg(many.tree, {}))) fills.insert(f.fill);
  CHECK(fills.size() == 13);
}

TEST_CASE("synthetic nodes are drawn: threads, greenlets and <switched out>", "[flamegraph]") {
  TreeBuilder b;
  uint32_t t = b.add(0, "thread 42 (worker)", "", 0, 80, NodeKind::kThread);
  uint32_t g = b.add(t, "greenlet 3 (thread 42)", "", 0, 80, NodeKind::kGreenlet);
  b.add(g, "<switched out>", "", 0, 50, NodeKind::kSwitchedOut);
  auto frames = frames_of(exporter::flamegraph_svg(b.tree, {}));
  REQUIRE(frames.size() == 4);
  CHECK(frame(frames, "thread 42 (worker) (80 ms, 100.00%)").width == Approx(1180));
  CHECK(frame(frames, "greenlet 3 (thread 42) (80 ms").markup.find("data-f") == std::string::npos);
  CHECK(frame(frames, "&lt;switched out&gt; (50 ms, 62.50%)").width == Approx(1180 * 50 / 80.0).margin(0.02));
}

TEST_CASE("title and subtitle are shown at the top, escaped", "[flamegraph]") {
  TreeBuilder b = blog();
  exporter::FlamegraphOptions o;
  o.title = "My <app>";
  o.subtitle = "python3 app.py — wall time";
  std::string svg = exporter::flamegraph_svg(b.tree, o);
  CHECK(svg.find("<title>My &lt;app&gt;</title>") != std::string::npos);
  CHECK(svg.find(">My &lt;app&gt;</text>") != std::string::npos);
  CHECK(svg.find(">python3 app.py — wall time</text>") != std::string::npos);
}

TEST_CASE("a 20,000-node tree renders with small per-frame markup; a 5,000-deep one does not recurse", "[flamegraph]") {
  TreeBuilder b;
  // 20 files (a regex per file classifies them), 200 functions, a bushy tree of 20,000 nodes.
  std::vector<std::string> files;
  for (int i = 0; i < 20; ++i)
    files.push_back(i % 3 ? "/srv/app/module" + std::to_string(i) + ".py"
                          : "/usr/lib/python3.11/pkg" + std::to_string(i) + "/mod.py");
  // Six children per node, each a seventh of its parent: the parent keeps some self time.
  std::vector<uint32_t> level{0};
  uint32_t n = 0;
  while (b.tree.nodes.size() < 20000) {
    std::vector<uint32_t> next;
    for (uint32_t parent : level)
      for (int k = 0; k < 6 && b.tree.nodes.size() < 20000; ++k, ++n) {
        double ms = parent ? b.tree.nodes[parent].total / 1000 / 7 : 1000;
        next.push_back(b.add(parent, "function_" + std::to_string(n % 200), files[n % 20], int(n % 500), ms));
      }
    level = next;
  }
  exporter::FlamegraphOptions o;
  o.min_width_pct = 0;
  auto start = std::chrono::steady_clock::now();
  std::string svg = exporter::flamegraph_svg(b.tree, o);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Printed, not asserted: a wall-clock limit fails on a busy machine or a sanitizer build.
  std::printf("flame graph of 20,000 nodes: %.0f ms, %zu bytes\n", seconds * 1000, svg.size());
  CHECK(count(svg, "<g data-x=") == 20000);
  CHECK(svg.size() / 20000 < 400);  // small per-frame markup

  TreeBuilder deep;
  uint32_t at = 0;
  for (int i = 0; i < 5000; ++i) at = deep.add(at, "recurse", "/src/app.py", 3, 100);
  deep.tree.nodes[0].total = 100000;
  svg = exporter::flamegraph_svg(deep.tree, {});
  CHECK(count(svg, "<g data-x=") == 5001);
}

// The reports on trees that are deep (recursion) or whose names are hostile (a file someone sent).
#include <catch2/catch.hpp>

#include <algorithm>

#include "recording_builder.h"
#include "swprof/analyze.h"
#include "swprof/common.h"
#include "swprof/export.h"

using namespace swprof;

namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Deepest bracket nesting of a JSON text, and whether the brackets balance (strings skipped).
std::pair<int, bool> nesting(const std::string& json) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      if (--depth < 0) return {deepest, false};
    }
  }
  return {deepest, depth == 0 && !in_string};
}

test::RecordingBuilder deep_recording(size_t depth) {
  test::RecordingBuilder b;
  std::vector<std::string> stack(depth, "recurse");
  b.sample(10000, stack);
  b.sample(20000, stack);
  return b;
}

}  // namespace

TEST_CASE("a 10,000-frame tree goes through every report without recursion", "[reports]") {
  auto b = deep_recording(10000);
  auto tree = analyze::build_tree(b.rec, b.all(), {}, {});
  REQUIRE(analyze::tree_depth(tree) == 10000);

  std::string collapsed = analyze::collapsed_report(tree);
  CHECK(count(collapsed, "\n") == 1);
  CHECK(count(collapsed, "recurse") == 10000);

  auto [nested_depth, nested_ok] = nesting(analyze::json_report(b.rec, tree));
  CHECK(nested_ok);
  CHECK(nested_depth == 2 + 2 * 10000);  // {"roots": [ then { "children": [ per frame

  std::string flat = analyze::json_report(b.rec, tree, /*flat=*/true);
  auto [flat_depth, flat_ok] = nesting(flat);
  CHECK(flat_ok);
  CHECK(flat_depth == 3);  // {"recording": {...}, "nodes": [{...}]}: the same at any depth
  CHECK(count(flat, "\"id\": ") == 10000);
  CHECK(count(flat, "\"parent\": null") == 1);
  CHECK(flat.find("{\"id\": 9999, \"parent\": 9998, \"depth\": 9999, ") != std::string::npos);

  // Text rows stop moving right at depth 100 and say their depth instead.
  std::string text = analyze::text_report(b.rec, tree, {}, 0.5, false);
  size_t longest = 0;
  for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
    longest = std::max(longest, nl - at);
  CHECK(longest < 600);
  CHECK(text.find("[depth 10000] recurse (/src/app.py:1)") != std::string::npos);

  exporter::FlamegraphOptions o;
  o.min_width_pct = 0;
  CHECK(count(exporter::flamegraph_svg(tree, o), "<g data-x=") == 10001);
}

TEST_CASE("hostile names reach the text report as visible escapes, one row each", "[reports]") {
  test::RecordingBuilder b;
  b.rec.threads[0].name = "evil\x1b[2J\x1b]0;pwned\x07";
  b.rec.header.add_command("python3");
  b.rec.header.add_command("\x1b[31mred\nforged row\r");
  b.rec.header.set_hostname("host\xc2\x9b" "1m");
  b.sample(10000, {"f\x1b[2Jclear", "g\nfake 100.0ms row", "h\xe2\x80\xaertl\xff"});
  analyze::TreeOptions o;
  o.by_thread = true;
  auto tree = analyze::build_tree(b.rec, b.all(), {}, o);
  std::string text = analyze::text_report(b.rec, tree, {}, 0, false);
  for (char c : text) CHECK((static_cast<unsigned char>(c) >= 0x20 || c == '\n'));
  CHECK(text.find("\xc2\x9b") == std::string::npos);  // C1 CSI
  CHECK(text.find("\xe2\x80\xae") == std::string::npos);  // right-to-left override
  CHECK(text.find("f\\x1b[2Jclear") != std::string::npos);
  CHECK(text.find("g\\x0afake 100.0ms row") != std::string::npos);
  CHECK(text.find("h\\u202ertl\\xff") != std::string::npos);
  CHECK(text.find("evil\\x1b[2J\\x1b]0;pwned\\x07") != std::string::npos);
  CHECK(text.find("\\x1b[31mred\\x0aforged row\\x0d") != std::string::npos);
  // Header (4 lines), a blank line, the column titles and the thread + 3 frames.
  CHECK(count(text, "\n") == 4 + 1 + 1 + 4);

  std::vector<analyze::SegmentRow> rows(1);
  rows[0].thread_name = "t\x1b[1A";
  CHECK(analyze::segments_text(rows).find("t\\x1b[1A") != std::string::npos);

  // JSON: valid, and the exact bytes kept beside the text when they are not UTF-8.
  std::string json = analyze::json_report(b.rec, tree, true);
  CHECK(json.find("\"function\": \"f\\u001b[2Jclear\"") != std::string::npos);
  CHECK(json.find("\"function_base64\": \"") != std::string::npos);
  for (char c : json) CHECK((static_cast<unsigned char>(c) >= 0x20 || c == '\n'));
}

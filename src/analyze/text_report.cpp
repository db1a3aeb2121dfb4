// The text report: a header, then the call tree with total/self time, share, wall and CPU side by
// side, GIL time and sample counts. Colors and the top-10 self-time highlight only on a TTY.
#include <algorithm>
#include <ctime>

#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

namespace {

constexpr const char* kReset = "\x1b[0m";
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kDim = "\x1b[2m";
constexpr const char* kHot = "\x1b[1;31m";
constexpr const char* kOrigin[] = {"", "\x1b[34m", "\x1b[36m", "\x1b[33m"};

std::string ms(double us) {
  if (us >= 100e6) return fmt::format("{:.1f}s", us / 1e6);
  return fmt::format("{:.1f}ms", us / 1e3);
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kWall: return "wall time";
    case Mode::kCpu: return "on-CPU time";
    case Mode::kOffCpu: return "off-CPU time";
  }
  return "";
}

class Printer {
 public:
  Printer(const Tree& tree, double min_percent, bool color) : tree_(tree), color_(color) {
    grand_ = tree.root().total;
    threshold_ = grand_ * min_percent / 100.0;
    // The ten largest non-zero self times.
    std::vector<uint32_t> order;
    for (uint32_t i = 1; i < tree.nodes.size(); ++i)
      if (tree.nodes[i].self > 0) order.push_back(i);
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return tree.nodes[a].self > tree.nodes[b].self; });
    if (order.size() > 10) order.resize(10);
    hot_.assign(tree.nodes.size(), false);
    for (uint32_t i : order) hot_[i] = true;
  }

  std::string run() {
    bool sw = tree_.options.estimator == Estimator::kSkyWalking;
    out_ += fmt::format("{:>10} {:>10} {:>6} {:>10} {:>10} {:>10} {:>7}  {}\n", "Total", "Self", "%", "Wall", "CPU",
                        "GIL", sw ? "Dumps" : "Samples", "Call tree");
    // Depth-first with an explicit stack: recursive Python code makes trees thousands of frames
    // deep. One prefix string is shared; each row remembers how much of it is its parent's.
    push_children(0, 0, 0);
    while (!todo_.empty()) {
      Row r = todo_.back();
      todo_.pop_back();
      prefix_.resize(r.prefix);
      if (r.folded) emit_folded(r);
      else emit(r);
    }
    return std::move(out_);
  }

 private:
  // Rows still to print: a node, or the "… N more" line that ends a list of children.
  struct Row {
    uint32_t node;       // the node, or (folded) the parent
    size_t prefix;       // length of the tree-drawing prefix in prefix_
    uint32_t depth;      // 0 for the root's children
    bool last = false;   // the last row of its parent
    bool folded = false;
    size_t folded_count = 0;
    double folded_total = 0;
  };

  // Deeper than this, rows stop moving right (a 10 000-frame recursion would otherwise print
  // lines of 30 000 columns and 150 MB in all); they say their depth instead.
  static constexpr uint32_t kMaxIndent = 100;

  void push_children(uint32_t parent, size_t prefix, uint32_t depth) {
    const auto& kids = tree_.nodes[parent].children;
    std::vector<uint32_t> shown;
    Row folded{parent, prefix, depth};
    folded.folded = true;
    for (uint32_t c : kids) {
      if (tree_.nodes[c].total < threshold_ && threshold_ > 0) {
        folded.folded_total += tree_.nodes[c].total;
        ++folded.folded_count;
      } else {
        shown.push_back(c);
      }
    }
    if (folded.folded_count) todo_.push_back(folded);
    for (size_t k = shown.size(); k-- > 0;) {
      Row r{shown[k], prefix, depth};
      r.last = k + 1 == shown.size() && folded.folded_count == 0;
      todo_.push_back(r);
    }
  }

  void emit_folded(const Row& r) {
    std::string glyph = r.node == 0 ? "" : "└─ ";
    out_ += fmt::format("{:>10} {:>10} {:>6} {:>10} {:>10} {:>10} {:>7}  {}{}{}… {} more under {:.1f}%{}\n",
                        ms(r.folded_total), "", "", "", "", "", "", color_ ? kDim : "", prefix_, glyph,
                        r.folded_count, grand_ > 0 ? 100.0 * threshold_ / grand_ : 0.0, color_ ? kReset : "");
  }

  void emit(const Row& r) {
    uint32_t i = r.node;
    const Node& n = tree_.nodes[i];
    bool top = r.depth == 0;
    double pct = grand_ > 0 ? 100.0 * n.total / grand_ : 0;
    std::string self = ms(n.self);
    // Names come from the profiled program or a file someone sent: no control character in them
    // reaches the terminal.
    std::string label = terminal_text(frame_label(n, true));
    if (r.depth > kMaxIndent) label = fmt::format("[depth {}] {}", r.depth + 1, label);
    if (color_) {
      int origin = n.kind == NodeKind::kFrame ? code_origin(n.file) : 3;
      label = fmt::format("{}{}{}{}", hot_[i] ? kBold : "", kOrigin[origin], label, kReset);
      if (hot_[i]) self = fmt::format("{}{:>10}{}", kHot, self, kReset);
    }
    std::string glyph = top ? "" : (r.last ? "└─ " : "├─ ");
    out_ += fmt::format("{:>10} {:>10} {:>5.1f}% {:>10} {:>10} {:>10} {:>7}  {}{}{}\n", ms(n.total), self, pct,
                        ms(n.wall), ms(n.cpu), ms(n.gil), n.samples, prefix_, glyph, label);
    if (!top && r.depth <= kMaxIndent) prefix_ += r.last ? "   " : "│  ";
    push_children(i, prefix_.size(), r.depth + 1);
  }

  const Tree& tree_;
  bool color_;
  double grand_ = 0, threshold_ = 0;
  std::vector<bool> hot_;
  std::string out_, prefix_;
  std::vector<Row> todo_;
};

}  // namespace

std::string text_report(const snapshot::Recording& rec, const Tree& tree, const std::vector<uint32_t>& segments,
                        double min_percent, bool color) {
  const auto& h = rec.header;
  std::string out;
  std::string command;
  for (const auto& a : h.command()) command += (command.empty() ? "" : " ") + a;
  char when[64] = "?";
  time_t t = static_cast<time_t>(h.start_unix_us() / 1000000);
  if (tm lt; localtime_r(&t, &lt)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &lt);
  auto title = [&](const char* name) { return color ? fmt::format("{}{:<9}{}", kBold, name, kReset) : fmt::format("{:<9}", name); };
  if (h.source().rfind("import:", 0) == 0) {
    std::string input = h.command_size() ? h.command(h.command_size() - 1) : std::string();
    out += fmt::format("{} {} ({}), first dump at {}\n", title("Imported"), terminal_text(input),
                       terminal_text(h.source().substr(7)), when);
  } else {
    out += fmt::format("{} {}\n", title("Command"), terminal_text(command));
    out += fmt::format("{} {} ({}), pid {}{}, recorded {} on {}\n", title("Python"), terminal_text(h.python_version()),
                       terminal_text(h.python_build()), h.pid(), h.attached() ? " (attached)" : "", when,
                       terminal_text(h.hostname()));
  }
  uint64_t errors = rec.footer ? rec.footer->errors() : 0;
  uint64_t samples = rec.sample_count;
  double error_pct = samples + errors ? 100.0 * static_cast<double>(errors) / static_cast<double>(samples + errors) : 0;
  int64_t duration = recording_duration_us(rec);
  // Why the recording stopped, and what the samples lost were lost to (as record's summary says).
  std::string stopped, kinds;
  if (rec.footer && !rec.footer->stop_reason().empty()) stopped = " (" + terminal_text(rec.footer->stop_reason()) + ")";
  if (rec.footer)
    for (const auto& e : rec.footer->error_kinds()) kinds += fmt::format(", {} {}", e.count(), terminal_text(e.kind()));
  out += fmt::format("{} {}{}, {} samples, {} thread{}, interval {}, errors {} ({:.2f}%{})\n", title("Duration"),
                     format_duration_us(duration), stopped, samples, rec.threads.size(), rec.threads.size() == 1 ? "" : "s",
                     format_duration_us(h.interval_us()), errors, error_pct, kinds);
  bool sw = tree.options.estimator == Estimator::kSkyWalking;
  out += fmt::format("{} {}, {} estimator, {}{}{}\n", title("View"), mode_name(tree.options.mode),
                     sw ? "SkyWalking" : "default", tree.options.lines ? "one node per line" : "one node per function",
                     min_percent > 0 ? fmt::format(", nodes under {}% folded", min_percent) : "",
                     tree.imports_collapsed ? ", import machinery collapsed" : "");
  if (!rec.segments.empty()) {
    std::string ids;
    for (size_t i = 0; i < segments.size() && i < 20; ++i) ids += fmt::format("{}{}", i ? ", " : "", segments[i]);
    if (segments.size() > 20) ids += ", …";
    out += fmt::format("{} {} of {} ({}){}\n", title("Segments"), segments.size(), rec.segments.size(), ids,
                       segments.size() > 1 ? ", merged" : "");
  }
  if (rec.truncated)
    out += fmt::format("{} the file ends early (the recorder was killed or its disk was full?): analysing what it holds\n",
                       title("Warning"));
  out += "\n";
  if (tree.root().children.empty()) {
    out += "no samples selected\n";
    return out;
  }
  out += Printer(tree, min_percent, color).run();
  return out;
}

}  // namespace swprof::analyze

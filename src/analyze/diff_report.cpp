// swprof diff's reports: a text table of the nodes that changed most, and JSON with every node.
#include <cmath>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/diff.h"

namespace swprof::diff {

namespace {

const char* mode_name(analyze::Mode m) {
  return m == analyze::Mode::kWall ? "wall" : m == analyze::Mode::kCpu ? "cpu" : "offcpu";
}

std::string unit_of(const Result& r) { return r.per_segment ? "ms/segment" : "ms/s"; }

// Functions from the root down to node i.
std::vector<uint32_t> path_of(const Result& r, uint32_t i) {
  std::vector<uint32_t> path;
  for (; i != 0; i = r.nodes[i].parent) path.insert(path.begin(), i);
  return path;
}

std::string leaf_label(const Node& n) {
  std::string name = terminal_text(n.function);
  if (n.kind != analyze::NodeKind::kFrame || n.file.empty()) return name;
  return fmt::format("{} ({}:{})", name, terminal_text(analyze::short_path(n.file)), n.line);
}

// "main › handle › render (app.py:12)": the callers by name, the last four at most.
std::string path_label(const Result& r, uint32_t i) {
  auto path = path_of(r, i);
  std::string out = path.size() > 5 ? "… › " : "";
  for (size_t k = path.size() > 5 ? path.size() - 5 : 0; k + 1 < path.size(); ++k)
    out += terminal_text(r.nodes[path[k]].function) + " › ";
  return out + leaf_label(r.nodes[i]);
}

// "+12.5", "-3.0"; a change that rounds to nothing is "+0.0", never "-0.0".
std::string signed_ms(double us) { return std::fabs(us) < 50 ? "+0.0" : fmt::format("{:+.1f}", us / 1e3); }

std::string percent(double base, double now) {
  if (base <= 0) return now > 0 ? "new" : "";
  if (now <= 0 && base > 0) return "gone";
  return fmt::format("{:+.1f}%", 100.0 * (now - base) / base);
}

std::string side_line(const Side& s) {
  std::string python = s.python.empty() ? "" : fmt::format(" (Python {})", s.python);
  std::string segments = s.segments ? fmt::format(", {} segment{}", s.segments, s.segments == 1 ? "" : "s") : "";
  if (s.cut_segments)
    segments += fmt::format(" ({} more cut by the recording's start or end, left out)", s.cut_segments);
  return fmt::format("{}{}: {}, {} samples{} [{}]", terminal_text(s.command), python,
                     format_duration_us(static_cast<int64_t>(s.duration_ms * 1e3)), s.samples, segments,
                     terminal_text(s.path));
}

std::string number_or_null(double base, double now) {
  return base > 0 ? fmt::format("{:.3f}", 100.0 * (now - base) / base) : "null";
}

}  // namespace

std::string text_report(const Result& r, size_t limit) {
  const Node& root = r.nodes[0];
  std::string out;
  out += fmt::format("Base      {}\n", side_line(r.base));
  out += fmt::format("New       {}\n", side_line(r.now));
  out += fmt::format("Compared  {} time per {} ({}), call paths matched by function and file name\n", mode_name(r.mode),
                     r.per_segment ? "segment" : "second of recording", unit_of(r));
  out += fmt::format("Matched   {:.1f}% of base's time, {:.1f}% of new's time\n", r.base.matched_pct, r.now.matched_pct);
  out += fmt::format("Total     base {:.1f}, new {:.1f}, change {} {}\n\n", root.base.total / 1e3, root.now.total / 1e3,
                     signed_ms(root.now.total - root.base.total), percent(root.base.total, root.now.total));
  auto order = by_change(r);
  if (order.empty()) return out + "no samples in either recording\n";
  out += fmt::format("{:>9} {:>9} {:>9} {:>7} {:>10} {:>9} {:>9}  {}\n", "Base", "New", "Change", "%", "Base self",
                     "New self", "Change", "Call path");
  size_t shown = 0;
  for (uint32_t i : order) {
    if (limit && shown == limit) break;
    const Node& n = r.nodes[i];
    out += fmt::format("{:>9.1f} {:>9.1f} {:>9} {:>7} {:>10.1f} {:>9.1f} {:>9}  {}\n", n.base.total / 1e3,
                       n.now.total / 1e3, signed_ms(n.now.total - n.base.total), percent(n.base.total, n.now.total),
                       n.base.self / 1e3, n.now.self / 1e3, signed_ms(n.now.self - n.base.self), path_label(r, i));
    ++shown;
  }
  if (shown < order.size()) out += fmt::format("… {} more nodes (--limit 0 shows all)\n", order.size() - shown);
  return out;
}

std::string json_report(const Result& r) {
  // Each side with its root total: all time of the selection, per unit.
  auto side = [&](const Side& s, double total_us) {
    return fmt::format(
        "{{\"path\": {}, \"command\": {}, \"python\": {}, \"duration_ms\": {:.3f}, \"samples\": {}, \"segments\": {}, "
        "\"cut_segments\": {}, \"matched_pct\": {:.3f}, \"total_ms\": {:.3f}}}",
        json_quoted(s.path), json_quoted(s.command), json_quoted(s.python), s.duration_ms, s.samples, s.segments,
        s.cut_segments, s.matched_pct, total_us / 1e3);
  };
  std::string out = fmt::format(
      "{{\"base\": {},\n \"new\": {},\n \"mode\": \"{}\", \"normalised\": \"{}\", \"unit\": \"{}\",\n \"nodes\": [",
      side(r.base, r.nodes[0].base.total), side(r.now, r.nodes[0].now.total), mode_name(r.mode), r.per_segment ? "per_segment" : "per_second", unit_of(r));
  bool first = true;
  for (uint32_t i : by_change(r)) {
    const Node& n = r.nodes[i];
    std::string path;
    for (uint32_t p : path_of(r, i)) path += (path.empty() ? "" : ", ") + json_quoted(r.nodes[p].function);
    out += fmt::format(
        "{}\n  {{\"function\": {}, \"file\": {}, \"line\": {}, \"path\": [{}], \"in_base\": {}, \"in_new\": {}, "
        "\"base_total_ms\": {:.3f}, \"new_total_ms\": {:.3f}, \"total_change_ms\": {:.3f}, \"total_change_pct\": {}, "
        "\"base_self_ms\": {:.3f}, \"new_self_ms\": {:.3f}, \"self_change_ms\": {:.3f}, \"self_change_pct\": {}}}",
        first ? "" : ",", json_quoted(n.function), json_quoted(n.file), n.line, path, n.base.present, n.now.present,
        n.base.total / 1e3, n.now.total / 1e3, (n.now.total - n.base.total) / 1e3, number_or_null(n.base.total, n.now.total),
        n.base.self / 1e3, n.now.self / 1e3, (n.now.self - n.base.self) / 1e3, number_or_null(n.base.self, n.now.self));
    first = false;
  }
  out += "]}\n";
  return out;
}

}  // namespace swprof::diff

// analyze --format json: the DESIGN.md contract. Keys may be added, never renamed.
#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

namespace {

std::string quoted(std::string_view s) { return "\"" + json_escape(s) + "\""; }
std::string number(double v) { return fmt::format("{:.3f}", v); }

const char* kind_name(NodeKind k) {
  switch (k) {
    case NodeKind::kFrame: return "frame";
    case NodeKind::kThread: return "thread";
    case NodeKind::kGreenlet: return "greenlet";
    case NodeKind::kSwitchedOut: return "switched_out";
    case NodeKind::kGap: return "not_sampled";
    case NodeKind::kRoot: return "root";
  }
  return "frame";
}

void node_json(const Tree& tree, uint32_t i, std::string& out) {
  const Node& n = tree.nodes[i];
  out += fmt::format(
      "{{\"function\": {}, \"file\": {}, \"line\": {}, \"total_ms\": {}, \"self_ms\": {}, \"samples\": {}, "
      "\"wall_ms\": {}, \"cpu_ms\": {}, \"gil_ms\": {}, \"kind\": \"{}\", \"children\": [",
      quoted(n.function), quoted(n.file), n.line, number(n.total / 1e3), number(n.self / 1e3), n.samples,
      number(n.wall / 1e3), number(n.cpu / 1e3), number(n.gil / 1e3), kind_name(n.kind));
  for (size_t k = 0; k < n.children.size(); ++k) {
    if (k) out += ", ";
    node_json(tree, n.children[k], out);
  }
  out += "]}";
}

}  // namespace

// How far the samples can be trusted: torn reads, late samples, cut stacks, and when the recorder
// itself was held up (stalls_ms: calls that began and ended within one were not seen), on the
// clock the program's time.monotonic() reads when start_monotonic_ms is added.
std::string recording_quality_json(const snapshot::Recording& rec) {
  if (!rec.footer) return "";
  const auto& f = *rec.footer;
  std::string stalls;
  for (const auto& st : f.stalls())
    stalls += fmt::format("{}[{}, {}]", stalls.empty() ? "" : ", ", number(st.start_us() / 1e3), number(st.end_us() / 1e3));
  return fmt::format(
      ", \"start_monotonic_ms\": {}, \"torn_retried\": {}, \"unsteady\": {}, \"late_samples\": {}, "
      "\"not_sampled_ms\": {}, \"cut_stacks\": {}, \"stalls_ms\": [{}]",
      number(rec.header.start_monotonic_us() / 1e3), f.torn_retried(), f.unsteady(), f.late_samples(),
      number(f.gap_us() / 1e3), f.cut_stacks(), stalls);
}

std::string json_report(const snapshot::Recording& rec, const Tree& tree) {
  const auto& h = rec.header;
  std::string command;
  for (const auto& a : h.command()) command += (command.empty() ? "" : " ") + a;
  uint64_t errors = rec.footer ? rec.footer->errors() : 0;
  int64_t duration = rec.footer ? rec.footer->duration_us() : (rec.samples.empty() ? 0 : rec.samples.back().time_us);
  const char* mode = tree.options.mode == Mode::kWall ? "wall" : tree.options.mode == Mode::kCpu ? "cpu" : "offcpu";
  std::string out = fmt::format(
      "{{\"recording\": {{\"command\": {}, \"pid\": {}, \"python\": {}, \"interval_ms\": {}, \"duration_ms\": {}, "
      "\"samples\": {}, \"errors\": {}, \"threads\": {}, \"truncated\": {}, \"mode\": \"{}\", \"estimator\": \"{}\", "
      "\"lines\": {}, \"file_bytes\": {}, \"cost_mean_us\": {}, \"cost_max_us\": {}, \"late_ticks\": {}, "
      "\"remote_reads\": {}{}}},\n \"roots\": [",
      quoted(command), h.pid(), quoted(h.python_version()), number(h.interval_us() / 1e3), number(duration / 1e3),
      rec.samples.size(), errors, rec.threads.size(), rec.truncated ? "true" : "false", mode,
      tree.options.estimator == Estimator::kSkyWalking ? "skywalking" : "default",
      tree.options.lines ? "true" : "false", rec.file_size, number(rec.footer ? rec.footer->cost_mean_us() : 0),
      number(rec.footer ? rec.footer->cost_max_us() : 0), rec.footer ? rec.footer->late_ticks() : 0,
      rec.footer ? rec.footer->remote_reads() : 0, recording_quality_json(rec));
  const auto& roots = tree.root().children;
  for (size_t k = 0; k < roots.size(); ++k) {
    out += k ? ",\n  " : "\n  ";
    node_json(tree, roots[k], out);
  }
  out += "]}\n";
  return out;
}

std::string segments_json(const std::vector<SegmentRow>& rows) {
  std::string out = "{\"segments\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out += fmt::format(
        "{}\n  {{\"id\": {}, \"thread\": {}, \"thread_name\": {}, \"start_ms\": {}, \"duration_ms\": {}, "
        "\"duration_min_ms\": {}, \"duration_max_ms\": {}, \"samples\": {}, \"complete\": {}}}",
        i ? "," : "", r.id, r.tid, quoted(r.thread_name), number(r.start_ms), number(r.duration_ms),
        number(r.duration_min_ms), number(r.duration_max_ms), r.samples, r.complete ? "true" : "false");
  }
  out += "]}\n";
  return out;
}

}  // namespace swprof::analyze

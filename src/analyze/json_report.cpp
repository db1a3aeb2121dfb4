// analyze --format json: the DESIGN.md contract. Keys may be added, never renamed.
//
// Two shapes of the same tree: nested ("roots", each node with its "children"; two levels of JSON
// nesting per frame, which JSON readers with a nesting limit refuse for deep stacks) and flat
// (--flat: "nodes", one list in depth-first order, each node naming its parent's id), which any
// reader loads at any depth. Both are written without recursion.
#include <algorithm>

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
    case NodeKind::kProcess: return "process";
    case NodeKind::kGreenlet: return "greenlet";
    case NodeKind::kSwitchedOut: return "switched_out";
    case NodeKind::kGap: return "not_sampled";
    case NodeKind::kOffCpuReason: return "offcpu_reason";
    case NodeKind::kWaitingForCpu: return "waiting_for_cpu";
    case NodeKind::kRoot: return "root";
  }
  return "frame";
}

// A node's own keys, without the braces.
std::string node_fields(const Node& n) {
  return fmt::format(
      "{}, {}, \"line\": {}, \"total_ms\": {}, \"self_ms\": {}, \"samples\": {}, \"wall_ms\": {}, \"cpu_ms\": {}, "
      "\"gil_ms\": {}, \"kind\": \"{}\"",
      json_text("function", n.function), json_text("file", n.file), n.line, number(n.total / 1e3),
      number(n.self / 1e3), n.samples, number(n.wall / 1e3), number(n.cpu / 1e3), number(n.gil / 1e3),
      kind_name(n.kind));
}

void nested_nodes(const Tree& tree, std::string& out) {
  struct Open {
    uint32_t node;
    size_t next_child;
  };
  out += "\"roots\": [";
  std::vector<Open> open{{0, 0}};
  while (!open.empty()) {
    Open& o = open.back();
    const auto& kids = tree.nodes[o.node].children;
    if (o.next_child == kids.size()) {
      out += "]";
      open.pop_back();
      if (!open.empty()) out += "}";
      continue;
    }
    uint32_t c = kids[o.next_child];
    if (open.size() == 1) out += o.next_child ? ",\n  " : "\n  ";  // one root per line
    else if (o.next_child) out += ", ";
    ++o.next_child;
    out += "{" + node_fields(tree.nodes[c]) + ", \"children\": [";
    open.push_back({c, 0});
  }
}

void flat_nodes(const Tree& tree, std::string& out) {
  struct Todo {
    uint32_t node;
    int64_t parent_id;
    uint32_t depth;
  };
  out += "\"nodes\": [";
  std::vector<Todo> todo;
  const auto& roots = tree.root().children;
  for (size_t k = roots.size(); k-- > 0;) todo.push_back({roots[k], -1, 0});
  int64_t id = 0;
  while (!todo.empty()) {
    Todo t = todo.back();
    todo.pop_back();
    const Node& n = tree.nodes[t.node];
    out += fmt::format("{}\n  {{\"id\": {}, \"parent\": {}, \"depth\": {}, {}}}", id ? "," : "", id,
                       t.parent_id < 0 ? std::string("null") : std::to_string(t.parent_id), t.depth, node_fields(n));
    for (size_t k = n.children.size(); k-- > 0;) todo.push_back({n.children[k], id, t.depth + 1});
    ++id;
  }
  out += "]";
}

}  // namespace

// How far the samples can be trusted: torn reads, late samples, cut stacks, the errors by kind
// (samples lost: "torn (frames changed while read)", "thread ended", ...), and when the recorder
// itself was held up (stalls_ms: calls that began and ended within one were not seen), on the
// clock the program's time.monotonic() reads when start_monotonic_ms is added.
std::string recording_quality_json(const snapshot::Recording& rec) {
  if (!rec.footer) return "";
  const auto& f = *rec.footer;
  std::string stalls, error_kinds;
  for (const auto& e : f.error_kinds())
    error_kinds += fmt::format("{}{}: {}", error_kinds.empty() ? "" : ", ", quoted(e.kind()), e.count());
  for (const auto& st : f.stalls())
    stalls += fmt::format("{}[{}, {}]", stalls.empty() ? "" : ", ", number(st.start_us() / 1e3), number(st.end_us() / 1e3));
  // Why the recording ended, and a launched program's exit status (null when attached, or when
  // the program had not exited when the recording stopped).
  const bool exited = !rec.header.attached() && f.stop_reason() == "program exited";
  return fmt::format(
      ", \"start_monotonic_ms\": {}, \"torn_retried\": {}, \"unsteady\": {}, \"late_samples\": {}, "
      "\"not_sampled_ms\": {}, \"cut_stacks\": {}, \"quiet_samples\": {}, \"gil_quiet_samples\": {}, "
      "\"stalls_ms\": [{}], \"error_kinds\": {{{}}}, {}, \"exit_status\": {}",
      number(rec.header.start_monotonic_us() / 1e3), f.torn_retried(), f.unsteady(), f.late_samples(),
      number(f.gap_us() / 1e3), f.cut_stacks(), f.quiet_samples(), f.gil_quiet_samples(), stalls, error_kinds,
      json_text("stop_reason", f.stop_reason()), exited ? std::to_string(f.exit_status()) : std::string("null"));
}

// record --subprocesses: the descendants looked at, followed ("python" set) or not ("note": why).
std::string processes_json(const snapshot::Recording& rec) {
  if (rec.processes.empty()) return "";
  std::string out = ", \"processes\": [";
  for (size_t i = 0; i < rec.processes.size(); ++i) {
    const auto& p = rec.processes[i];
    out += fmt::format("{}{{\"pid\": {}, \"parent\": {}, {}, \"python\": {}, \"note\": {}, \"found_ms\": {}}}",
                       i ? ", " : "", p.pid, p.parent, json_text("command", join_arguments(p.command)), quoted(p.python_version),
                       quoted(p.note), number(p.found_us / 1e3));
  }
  return out + "]";
}

size_t tree_depth(const Tree& tree) {
  std::vector<uint32_t> depth(tree.nodes.size(), 0);
  size_t deepest = 0;
  for (size_t i = 1; i < tree.nodes.size(); ++i) {
    depth[i] = depth[tree.nodes[i].parent] + 1;  // a parent comes before its children
    deepest = std::max<size_t>(deepest, depth[i]);
  }
  return deepest;
}

std::string json_report(const snapshot::Recording& rec, const Tree& tree, bool flat) {
  const auto& h = rec.header;
  const std::string command = join_arguments(h.command());
  uint64_t errors = rec.footer ? rec.footer->errors() : 0;
  int64_t duration = recording_duration_us(rec);
  const char* mode = tree.options.mode == Mode::kWall ? "wall" : tree.options.mode == Mode::kCpu ? "cpu" : "offcpu";
  // How regular the sampling was: a sample weighs the time since its thread's previous one, so
  // late ticks (a busy machine) show as heavier samples.
  double weight_sum = 0;
  for (const auto& s : rec.samples) weight_sum += static_cast<double>(s.wall_us);
  std::string out = fmt::format(
      "{{\"recording\": {{{}, \"pid\": {}, \"python\": {}, \"interval_ms\": {}, \"duration_ms\": {}, "
      "\"samples\": {}, \"errors\": {}, \"threads\": {}, \"truncated\": {}, \"mode\": \"{}\", \"estimator\": \"{}\", "
      "\"lines\": {}, \"file_bytes\": {}, \"cost_mean_us\": {}, \"cost_max_us\": {}, \"late_ticks\": {}, "
      "\"remote_reads\": {}, \"weight_mean_ms\": {}, \"weight_max_ms\": {}{}}},\n ",
      json_text("command", command), h.pid(), quoted(h.python_version()), number(h.interval_us() / 1e3),
      number(duration / 1e3), rec.sample_count, errors, rec.threads.size(), rec.truncated ? "true" : "false", mode,
      tree.options.estimator == Estimator::kSkyWalking ? "skywalking" : "default",
      tree.options.lines ? "true" : "false", rec.file_size, number(rec.footer ? rec.footer->cost_mean_us() : 0),
      number(rec.footer ? rec.footer->cost_max_us() : 0), rec.footer ? rec.footer->late_ticks() : 0,
      rec.footer ? rec.footer->remote_reads() : 0, number(weight_sum / 1e3 / static_cast<double>(std::max<uint64_t>(1, rec.sample_count))),
      number(static_cast<double>(rec.weight_max_us) / 1e3), recording_quality_json(rec) + processes_json(rec));
  if (flat) flat_nodes(tree, out);
  else nested_nodes(tree, out);
  out += "}\n";
  return out;
}

std::string segments_json(const std::vector<SegmentRow>& rows) {
  std::string out = "{\"segments\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out += fmt::format(
        "{}\n  {{\"id\": {}, \"thread\": {}, {}, \"start_ms\": {}, \"duration_ms\": {}, "
        "\"duration_min_ms\": {}, \"duration_max_ms\": {}, \"samples\": {}, \"complete\": {}, "
        "\"began_before_recording\": {}}}",
        i ? "," : "", r.id, r.tid, json_text("thread_name", r.thread_name), number(r.start_ms), number(r.duration_ms),
        number(r.duration_min_ms),
        // (a call already running at the first read began at any time before: no upper bound)
        r.began_before_recording ? std::string("null") : number(r.duration_max_ms), r.samples,
        r.complete ? "true" : "false", r.began_before_recording ? "true" : "false");
  }
  out += "]}\n";
  return out;
}

}  // namespace swprof::analyze

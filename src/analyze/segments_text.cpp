// analyze --segments as a table.
#include <algorithm>

#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

std::string segments_text(const std::vector<SegmentRow>& rows) {
  if (rows.empty()) return "no segments\n";
  std::vector<std::string> threads;
  size_t width = 6;
  for (const auto& r : rows) {
    threads.push_back(r.thread_name.empty() ? fmt::format("{}", r.tid)
                                            : fmt::format("{} ({})", r.tid, terminal_text(r.thread_name)));
    width = std::max(width, threads.back().size());
  }
  // "±" is how far sampling lets the real duration be from the one shown: the call began
  // between two samples of its thread and ended between two others. A call already running at
  // the first read began at any time before: no bound.
  std::string out = fmt::format("{:>5}  {:<{}} {:>12} {:>12} {:>8} {:>8}\n", "ID", "Thread", width, "Start", "Duration",
                                "±", "Samples");
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    double spread = std::max(r.duration_ms - r.duration_min_ms, r.duration_max_ms - r.duration_ms);
    std::string note = r.began_before_recording ? "  (began before the recording: longer than shown)" : "";
    if (!r.complete) note += "  (still running when recording stopped)";
    out += fmt::format("{:>5}  {:<{}} {:>10.1f}ms {:>10.1f}ms {:>8} {:>8}{}\n", r.id, threads[i], width, r.start_ms,
                       r.duration_ms, r.began_before_recording ? "?" : fmt::format("{:.1f}ms", spread), r.samples, note);
  }
  return out;
}

}  // namespace swprof::analyze

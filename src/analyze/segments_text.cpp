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
  std::string out = fmt::format("{:>5}  {:<{}} {:>12} {:>12} {:>8}\n", "ID", "Thread", width, "Start", "Duration", "Samples");
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out += fmt::format("{:>5}  {:<{}} {:>10.1f}ms {:>10.1f}ms {:>8}{}\n", r.id, threads[i], width, r.start_ms,
                       r.duration_ms, r.samples, r.complete ? "" : "  (still running when recording stopped)");
  }
  return out;
}

}  // namespace swprof::analyze

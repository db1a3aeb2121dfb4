// analyze --segments as a table.
#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

std::string segments_text(const std::vector<SegmentRow>& rows) {
  if (rows.empty()) return "no segments\n";
  std::string out = fmt::format("{:>5}  {:<24} {:>12} {:>12} {:>8}\n", "ID", "Thread", "Start", "Duration", "Samples");
  for (const auto& r : rows) {
    std::string thread = r.thread_name.empty() ? fmt::format("{}", r.tid)
                                               : fmt::format("{} ({})", r.tid, sanitize_text(r.thread_name));
    out += fmt::format("{:>5}  {:<24} {:>11.1f}ms {:>10.1f}ms {:>8}{}\n", r.id, thread, r.start_ms, r.duration_ms,
                       r.samples, r.complete ? "" : "  (still running when recording stopped)");
  }
  return out;
}

}  // namespace swprof::analyze

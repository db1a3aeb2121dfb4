#include "record/realtime.h"

#include <sched.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace swprof::record {

bool RealtimeSampling::start() {
  sched_param param{};
  param.sched_priority = sched_get_priority_min(SCHED_FIFO);
  if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) != 0) {
    summary_ = fmt::format("not used: SCHED_FIFO refused ({}): run as root or with CAP_SYS_NICE; sampled at normal "
                           "priority",
                           std::strerror(errno));
    return false;
  }
  active_ = true;
  summary_ = fmt::format("the sampling thread ran under SCHED_FIFO priority {}", param.sched_priority);
  return true;
}

void RealtimeSampling::tick_worked(int64_t work_us, int64_t now_us) {
  if (!active_) return;
  if (window_start_us_ < 0) window_start_us_ = now_us - work_us;
  window_work_us_ += work_us;
  const int64_t window = now_us - window_start_us_;
  if (too_busy(window_work_us_, window)) {
    stop();
    summary_ = fmt::format("dropped after {:.2f} s: the ticks' own work took {:.0f} % of the time (a longer "
                           "interval keeps it)",
                           static_cast<double>(now_us) / 1e6,
                           100.0 * static_cast<double>(window_work_us_) / static_cast<double>(window));
    return;
  }
  if (window >= kWindowUs) {
    window_start_us_ = now_us;
    window_work_us_ = 0;
  }
}

void RealtimeSampling::stop() {
  if (!active_) return;
  sched_param param{};
  sched_setscheduler(0, SCHED_OTHER, &param);
  active_ = false;
}

}  // namespace swprof::record

#include "record/clock.h"

#include <time.h>

#include <cerrno>

#include "swprof/common.h"

namespace swprof::record {

Clock::Clock(int64_t interval_us) : interval_ns_(interval_us * 1000), next_ns_(monotonic_ns()) {}

int64_t Clock::now_us() const { return monotonic_us(); }

bool Clock::wait(const volatile bool& interrupted) {
  next_ns_ += interval_ns_;
  int64_t now = monotonic_ns();
  if (now > next_ns_ + interval_ns_) {
    // More than a whole interval behind: count it and re-anchor instead of bursting to catch up.
    ++late_;
    next_ns_ = now;
    return !interrupted;
  }
  timespec ts{static_cast<time_t>(next_ns_ / 1000000000), static_cast<long>(next_ns_ % 1000000000)};
  for (;;) {
    if (interrupted) return false;
    int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    if (rc == 0) return !interrupted;
    if (rc != EINTR) return !interrupted;
  }
}

}  // namespace swprof::record

// The sampling clock: ticks on an absolute schedule (no drift), sleeps with clock_nanosleep, and
// counts ticks that start more than one interval late. Missed ticks are not replayed: a sample's
// weight is the real time since the thread's previous sample, so no time is lost.
#pragma once

#include <cstdint>

namespace swprof::record {

class Clock {
 public:
  explicit Clock(int64_t interval_us);
  // Sleeps until the next tick or until `interrupted` becomes true (checked after EINTR).
  // Returns false when interrupted.
  bool wait(const volatile bool& interrupted);
  int64_t now_us() const;
  uint64_t late_ticks() const { return late_; }

 private:
  int64_t interval_ns_;
  int64_t next_ns_;
  uint64_t late_ = 0;
};

}  // namespace swprof::record

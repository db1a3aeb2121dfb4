// record --realtime: the sampling thread under SCHED_FIFO, so that ticks start on time on a machine
// whose cores the program's own threads keep busy (measured: 8 spinning threads on 2 cores made
// 2 % of 1 kHz ticks late at normal priority, nice -5 included; none under SCHED_FIFO).
//
// A real-time thread that never sleeps would take a core from everything else, so the policy is
// dropped (back to SCHED_OTHER, for good) as soon as the ticks' own work takes over half of the
// time, measured over a quarter of a second; the kernel's real-time throttling (sched_rt_runtime_us) stays a second guard. It
// is only the recorder's own thread: SCHED_RESET_ON_FORK keeps anything it starts at normal
// priority, and the target's scheduling is never touched.
#pragma once

#include <cstdint>
#include <string>

namespace swprof::record {

class RealtimeSampling {
 public:
  // Asks for SCHED_FIFO at the lowest real-time priority (false, with why(), when refused).
  bool start();
  // The work of one tick (µs) ending at `now_us`; drops the policy when the work of the last
  // quarter second took over half of it.
  void tick_worked(int64_t work_us, int64_t now_us);
  // Back to SCHED_OTHER (also when the recording ends).
  void stop();
  bool active() const { return active_; }
  // One line for the summary: how it ran, or why it did not.
  std::string summary() const { return summary_; }

  // The guard's rule: over a window of at least a quarter second, work above half.
  static constexpr int64_t kWindowUs = 250000;
  static bool too_busy(int64_t work_us, int64_t window_us) { return window_us >= kWindowUs && 2 * work_us > window_us; }

 private:
  bool active_ = false;
  int64_t window_start_us_ = -1, window_work_us_ = 0;
  std::string summary_;
};

}  // namespace swprof::record

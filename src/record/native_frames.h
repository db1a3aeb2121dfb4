// record --native: C/C++ frames interleaved with the Python frames, the way py-spy --native shows
// them. Each sampled thread is stopped (ptrace, src/target/native_stop.cpp) while its Python
// frames are read, so both stacks are one moment; its copied C stack is unwound and named after
// it runs again (libdw), and every call of CPython's evaluation loop is replaced by the Python
// frames it ran (src/python/native_merge.cpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swprof/native.h"
#include "swprof/native_merge.h"
#include "swprof/python.h"
#include "swprof/snapshot.h"

namespace swprof::record {

class NativeFrames {
 public:
  explicit NativeFrames(pid_t pid) : unwinder(pid) {}

  // Stopping a thread blocked in one of these system calls makes the call fail with EINTR (the
  // kernel does not restart it): such a thread keeps its Python frames only. `syscall`: the call
  // it is blocked in, -1 when none.
  bool may_stop(int syscall);

  // Before the recording starts: stops the process's main thread once and unwinds it, which
  // loads what unwinds need (the modules' symbol tables, CFI and debug information). Done by the
  // first sample instead, it held the recorder up (50-90 ms for CPython and libc with their debug
  // files; 1.5 s under ASan on a busy machine) while the program ran on unsampled. Not counted
  // among the samples' stops; skipped when that thread is in a call a stop would interrupt.
  void prime();
  // Made and primed: what a recording with --native starts from.
  static std::unique_ptr<NativeFrames> primed(pid_t pid);

  // After a stop: unwinds the copy and, when it fits the Python frames read during the stop
  // (`raw`, innermost first; `resolved[i]` the interned frame of raw[i], negative when it is not
  // shown), replaces `stack` (outermost first) by the merged stack. False: `stack` is left as it
  // is (the Python frames), and an unwind error is counted.
  bool merge(std::span<const python::RawFrame> raw, std::span<const int64_t> resolved, bool batches_ok,
             snapshot::Writer& writer, std::vector<uint32_t>& stack);

  // One line for the summary: stops, the pause they cost, unwinds that failed, threads left running.
  std::string summary() const;

  native::Unwinder unwinder;
  native::Capture capture;
  native::EvalBatches batches;
  uint64_t stop_errors[8] = {};  // by native::Error
  uint64_t left_running = 0;     // blocked in a call a stop would interrupt

 private:
  uint32_t frame_id(const native::Frame& f, snapshot::Writer& writer);

  std::vector<native::Frame> frames_;
  std::vector<native::MergedFrame> merged_;
  std::vector<int64_t> pauses_ns_;  // a bounded sample of them (the first 100,000)
  uint64_t stops_ = 0, merged_count_ = 0, mismatches_ = 0, unwind_errors_ = 0;
  int64_t primed_ns_ = -1;  // how long prime() took; -1: it did not unwind
};

}  // namespace swprof::record

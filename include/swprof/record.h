// swprof record: launch or attach, sample every Python thread on a clock, stream to a .swp file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swprof::pb {
class Header;
class Footer;
}  // namespace swprof::pb
namespace swprof::snapshot {
class Writer;
struct Sample;
}  // namespace swprof::snapshot

namespace swprof::record {

struct TickSummary {
  int64_t now_us = 0;  // since recording began
  uint64_t samples = 0, errors = 0;
  size_t threads = 0;  // Python threads known now
};

// Someone watching a recording as it is made (swprof top). The recorder calls it from its own
// sampling loop, so each call must be short. Samples routed to --entry segments are not shown to it.
class Observer {
 public:
  virtual ~Observer() = default;
  // Recording begins: the target is found and the file's header written. `file` names the
  // frame and string ids of the samples to come (Writer::frame, Writer::string).
  virtual void begin(int pid, const pb::Header& header, const snapshot::Writer& file) = 0;
  // Each sample as it is written: its stack (frame ids, root first) and its thread.
  virtual void sample(const snapshot::Sample& sample, std::span<const uint32_t> stack, int64_t tid,
                      std::string_view thread_name) = 0;
  // After each tick; false stops the recording (stop reason "stopped by the viewer").
  virtual bool tick(const TickSummary& tick) = 0;
  // The file is complete (`footer` says why it stopped); called before the summary is printed.
  virtual void end(const pb::Footer& footer) = 0;
};

struct Options {
  std::string output = "out.swp";
  pid_t pid = 0;                      // attach mode when non-zero
  std::vector<std::string> command;   // launch mode otherwise
  int64_t interval_us = 10000;
  int64_t duration_us = 0;            // 0: until the program exits or Ctrl-C
  std::vector<std::string> entries;   // --entry specs
  int64_t min_duration_us = 0;
  uint32_t max_segments = 0;          // 0: no limit
  uint32_t max_parallel = 5;
  bool idle = true;                   // keep samples of threads asleep for the whole interval
  bool gil_only = false;              // keep only the GIL holder's samples
  bool tasks = false;                 // also sample suspended asyncio tasks (always with --entry)
  bool status = true;                 // one-line status on a TTY
  uint32_t max_depth = 2048;          // deeper stacks keep their outer and inner halves
  bool summary = true;                // print the summary at the end
  bool native = false;                // interleave C/C++ frames (each sampled thread stopped briefly)
  bool subprocesses = false;          // also every descendant Python process (one file)
  bool realtime = false;              // the sampling thread under SCHED_FIFO (record/realtime.h)
  Observer* observer = nullptr;       // told of every sample and tick (swprof top)
};

// Runs a recording; returns the process exit code for swprof (launch mode: the program's status).
// Throws UserError for problems the user can fix.
int run(const Options& options);

}  // namespace swprof::record

// swprof record: launch or attach, sample every Python thread on a clock, stream to a .swp file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace swprof::record {

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
};

// Runs a recording; returns the process exit code for swprof (launch mode: the program's status).
// Throws UserError for problems the user can fix.
int run(const Options& options);

}  // namespace swprof::record

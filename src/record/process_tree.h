// record --subprocesses: the descendants of the recorded process, found from outside. Each scan
// reads /proc/PID/task/TID/children of every process known so far (a Python worker's children, a
// shell's, a process that is not followed: their children may be Python), so a process is found
// at the first scan after it was forked. A process is known by its pid and start time (a pid
// reused by a new process is a new one), and by where its image was mapped at the last look (a
// process that calls exec is a new program: the scan tells so).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <vector>

namespace swprof::record {

class ProcessTree {
 public:
  explicit ProcessTree(pid_t root);

  struct Found {
    pid_t pid = 0, parent = 0;
  };
  struct Scan {
    std::vector<Found> forked;  // processes forked since the last scan, parents before children
    std::vector<pid_t> execed;  // known processes that run another program since (they called exec)
  };
  Scan scan();

 private:
  struct Known {
    uint64_t start_time = 0;        // clock ticks after boot (/proc/PID/stat field 22)
    uint64_t start_code = 0, start_stack = 0;  // fields 26 and 28: move when exec maps a new image
  };
  static bool read_stat(pid_t pid, Known& out);
  std::map<pid_t, Known> known_;
};

}  // namespace swprof::record

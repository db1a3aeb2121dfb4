// What reading a Python program's stacks costs that program, apart from everything else a recorder
// does: a loop that, at each tick of the recorder's own clock (record::Clock: missed ticks are not
// made up in a burst, and the bench stops this process half the time), makes only swprof's remote
// reads of the target and nothing more (no /proc, no resolving, no file). tests/bench/vs_austin.py
// runs it beside swprof in its slowdown table:
//
//   list   the thread list and every thread state: what any sampler must read to find the stacks
//   walk   that, and every thread's stack, walked and confirmed as the recorder does (the walk, the
//          top read again and what identifies each frame read twice more: see Walker::settle)
//
// The program pays for memory it writes that another CPU read meanwhile (its cache lines are
// taken back), so the cost grows with how many of its busy lines a tick reads, and how often.
//
//   swp_read_floor list|walk PID INTERVAL_US COUNT_FILE   runs until SIGINT or SIGTERM, then writes
//                                                         the ticks it made to COUNT_FILE
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "swprof/python.h"
#include "swprof/target.h"
#include "record/clock.h"

namespace {
volatile bool stop = false;  // (set by SIGINT or SIGTERM; clock_nanosleep is never restarted)
}

int main(int argc, char** argv) {
  if (argc != 5 || (std::strcmp(argv[1], "list") != 0 && std::strcmp(argv[1], "walk") != 0) ||
      std::atol(argv[2]) <= 0 || std::atol(argv[3]) <= 0) {
    std::fprintf(stderr, "usage: swp_read_floor list|walk PID INTERVAL_US COUNT_FILE\n");
    return 2;
  }
  const bool walk = std::strcmp(argv[1], "walk") == 0;
  const pid_t pid = static_cast<pid_t>(std::atol(argv[2]));
  std::signal(SIGINT, [](int) { stop = true; });
  std::signal(SIGTERM, [](int) { stop = true; });
  try {
    swprof::target::Memory memory(pid);
    swprof::python::Interpreter interp = swprof::python::discover(pid, memory);
    swprof::python::Walker walker(memory, interp);
    std::vector<swprof::python::PyThread> threads;
    std::vector<swprof::python::RawFrame> frames;
    long ticks = 0;
    swprof::record::Clock clock(std::atol(argv[3]));
    while (clock.wait(stop)) {
      ++ticks;
      if (!walker.read_threads(threads)) continue;
      if (walk)
        for (const auto& t : threads)
          if (!t.unbound) walker.walk(t, frames);
    }
    if (FILE* f = std::fopen(argv[4], "w")) {
      std::fprintf(f, "%ld\n", ticks);
      std::fclose(f);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swp_read_floor: %s\n", e.what());
    return 1;
  }
  return 0;
}

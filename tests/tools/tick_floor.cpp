// The floor under any sampler's cost per tick: a loop that only sleeps to each interval's deadline
// (as record::Clock does, clock_nanosleep to an absolute time) and prints its own CPU time per
// wake-up, user + system. On a VM the timer interrupt and the two context switches are most of a
// 1-thread sample's cost; tests/bench/vs_austin.py prints this beside the profilers' figures.
//
//   swp_tick_floor [INTERVAL_US [TICKS]]     (default 1000 µs, 3000 ticks)
#include <sys/resource.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const long interval_us = argc > 1 ? std::atol(argv[1]) : 1000;
  const long ticks = argc > 2 ? std::atol(argv[2]) : 3000;
  if (interval_us <= 0 || ticks <= 0) {
    std::fprintf(stderr, "usage: swp_tick_floor [INTERVAL_US [TICKS]]\n");
    return 2;
  }
  timespec next{};
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long i = 0; i < ticks; ++i) {
    next.tv_nsec += interval_us * 1000;
    next.tv_sec += next.tv_nsec / 1000000000;
    next.tv_nsec %= 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) != 0) {
    }
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
  std::printf("%.2f\n", cpu_us / static_cast<double>(ticks));
  return 0;
}

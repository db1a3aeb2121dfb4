// offcpu_reasons: the off-CPU reasons component alone (src/target/offcpu.cpp, and the run-queue
// fields of ThreadStats), for the end-to-end tests and the figures. For every thread of a process,
// `--rounds` times (every `--interval-ms`): its scheduler state and counters, and for a thread that
// is not running, why. One JSON object per line:
//
//   {"type":"thread","round":N,"tid":N,"state":"S","reason":"recvfrom socket 127.0.0.1:5432",
//    "syscall":45,"time_ns":N,"cpu_ns":N,"runqueue_ns":N,"timeslices":N}   (time_ns: monotonic, when read)
//   {"type":"summary","reads":N,"same_call":N,"warm_p50_us":..,"warm_p99_us":..,"cold_p50_us":..,...}
//
// warm: reads by one OffCpuReasons kept across rounds (what a recorder does: a thread still in the
// same call costs one read of its syscall file); cold: each round's reads also by a new
// OffCpuReasons (files opened, socket tables loaded: a thread's first off-CPU sample).
// Exit 0; 2 for bad usage; 1 when the process is not there.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "swprof/common.h"
#include "swprof/offcpu.h"
#include "swprof/target.h"

using namespace swprof;

namespace {

double percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: offcpu_reasons --pid PID [--rounds N] [--interval-ms MS] [--quiet]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  pid_t pid = 0;
  int rounds = 1;
  double interval_ms = 10;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (k == "--pid") pid = std::atoi(value().c_str());
    else if (k == "--rounds") rounds = std::atoi(value().c_str());
    else if (k == "--interval-ms") interval_ms = std::atof(value().c_str());
    else if (k == "--quiet") quiet = true;
    else usage();
  }
  if (pid <= 0 || rounds <= 0) usage();
  if (!target::process_exists(pid)) {
    std::fprintf(stderr, "offcpu_reasons: no process %d\n", pid);
    return 1;
  }
  target::ThreadStats stats(pid);
  target::OffCpuReasons reasons(pid);
  std::vector<int64_t> warm, cold;
  for (int round = 0; round < rounds; ++round) {
    target::OffCpuReasons fresh(pid);
    for (pid_t tid : target::list_threads(pid)) {
      const int64_t read_at = monotonic_ns();
      target::ThreadStats::Reading r = stats.read(tid);
      if (!r.ok) continue;
      std::string reason;
      int syscall = -1;
      if (r.state != 'R') {
        int64_t t0 = monotonic_ns();
        target::OffCpuReason why = reasons.read(tid, r.state);
        int64_t t1 = monotonic_ns();
        fresh.read(tid, r.state);
        int64_t t2 = monotonic_ns();
        if (!why.running) {
          warm.push_back(t1 - t0);
          cold.push_back(t2 - t1);
        }
        reason = reasons.text(why.id);
        syscall = why.syscall;
      }
      if (!quiet)
        std::printf("{\"type\":\"thread\",\"round\":%d,\"tid\":%d,\"state\":\"%c\",\"reason\":%s,\"syscall\":%d,"
                    "\"time_ns\":%lld,\"cpu_ns\":%llu,\"runqueue_ns\":%llu,\"timeslices\":%llu}\n",
                    round, tid, r.state, json_quoted(reason).c_str(), syscall, (long long)read_at, (unsigned long long)r.cpu_ns,
                    (unsigned long long)r.runqueue_ns, (unsigned long long)r.timeslices);
    }
    std::fflush(stdout);
    if (round + 1 < rounds) usleep(static_cast<useconds_t>(interval_ms * 1000));
  }
  const auto& s = reasons.stats();
  std::printf("{\"type\":\"summary\",\"reads\":%llu,\"same_call\":%llu,\"fd_lookups\":%llu,\"table_loads\":%llu,"
              "\"warm_p50_us\":%.1f,\"warm_p99_us\":%.1f,\"warm_mean_us\":%.1f,\"cold_p50_us\":%.1f,\"cold_p99_us\":%.1f}\n",
              (unsigned long long)s.reads, (unsigned long long)s.same_call, (unsigned long long)s.fd_lookups,
              (unsigned long long)s.table_loads, percentile(warm, 0.5), percentile(warm, 0.99),
              s.reads ? static_cast<double>(s.ns) / static_cast<double>(s.reads) / 1000.0 : 0.0, percentile(cold, 0.5),
              percentile(cold, 0.99));
  return 0;
}

// native_stacks: the native-frame components alone (src/target/native_*.cpp, symbols.cpp,
// src/python/native_merge.cpp), for the end-to-end tests and the figures. Attaches to a Python
// process and, every interval, for each Python thread: stops it, copies its stack, walks its
// Python frames while it is stopped, resumes it, unwinds the copy and merges both. Prints one
// JSON object per line:
//
//   {"type":"python","version":"3.11.7","binary":"..."}
//   {"type":"stack","tid":N,"result":"merged|native-only|python-only|mismatch|error:<kind>",
//    "capture":[start_ns,end_ns],"frames":[...]}          (capture: CLOCK_MONOTONIC around the stop)
//   {"type":"summary","samples":N,"merged":N,...,"pause_p50_us":..,"pause_p99_us":..,...}
//
// pause: from the thread's stop to the request to resume it (walk included); wait: from the
// request to stop to the stop; unwind: unwinding and naming, the thread running meanwhile;
// steady_cpu_us_per_sample: this tool's CPU time per sample after its first round (files loaded).
//
// frames innermost first: {"kind":"py","name","file","line"} or
// {"kind":"c","name","module","source","line","inlined","named"}. A thread that could not be
// stopped keeps its Python frames ("error:<kind>"). --raw also prints each unwind before merging
// ({"type":"native",...}); --hold-ms keeps each thread stopped that much longer (so that a signal
// lands while one is). On SIGINT/SIGTERM it stops after the sample in progress (the recorder's
// way); with --exit-in-handler the handler resumes any stopped thread (release_stopped_threads)
// and exits at once. Exit 0; 2 for bad usage; 1 for other errors.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/native.h"
#include "swprof/native_merge.h"
#include "swprof/python.h"
#include "swprof/target.h"

using namespace swprof;

namespace {

volatile sig_atomic_t g_stop = 0;
bool g_exit_in_handler = false;

void on_signal(int sig) {
  if (g_exit_in_handler) {
    native::release_stopped_threads();
    _exit(128 + sig);
  }
  g_stop = sig;
}

struct Args {
  pid_t pid = 0;
  double duration = 5.0;
  double interval_ms = 10.0;
  bool quiet = false, raw = false;
  int samples = 0;  // stop after this many samples (0: duration)
  double hold_ms = 0;  // stay stopped this long per sample (the signal tests: a kill lands mid-stop)
  std::vector<std::string> debug_dirs;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: native_stacks --pid PID [--duration S] [--interval-ms MS] [--samples N] [--debug-dir DIR]\n"
               "                     [--hold-ms MS] [--quiet] [--raw] [--exit-in-handler]\n");
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (k == "--pid") a.pid = std::atoi(value().c_str());
    else if (k == "--duration") a.duration = std::atof(value().c_str());
    else if (k == "--interval-ms") a.interval_ms = std::atof(value().c_str());
    else if (k == "--samples") a.samples = std::atoi(value().c_str());
    else if (k == "--hold-ms") a.hold_ms = std::atof(value().c_str());
    else if (k == "--debug-dir") a.debug_dirs.push_back(value());
    else if (k == "--quiet") a.quiet = true;
    else if (k == "--raw") a.raw = true;
    else if (k == "--exit-in-handler") g_exit_in_handler = true;
    else usage();
  }
  if (a.pid <= 0 || a.interval_ms <= 0) usage();
  return a;
}

double percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
}

int64_t cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string native_json(const native::Unwinder& unwinder, const native::Frame& f) {
  const native::Symbol& s = unwinder.symbol(f.symbol);
  return fmt::format(R"({{"kind":"c","name":{},"module":{},"source":{},"line":{},"inlined":{},"named":{}}})",
                     json_quoted(s.function), json_quoted(s.module), json_quoted(s.source), s.line, f.inlined,
                     s.named);
}

std::string python_json(python::CodeCache& codes, const python::RawFrame& f, uint64_t tick) {
  python::CodeInfo* info = codes.get(f.code, tick);
  if (!info) return R"({"kind":"py","name":"?","file":"?","line":0})";
  int line = python::line_for_offset(info->lines, f.offset, info->first_line);
  return fmt::format(R"({{"kind":"py","name":{},"file":{},"line":{}}})", json_quoted(info->qualname),
                     json_quoted(info->filename), line);
}

int run(const Args& args) {
  target::Memory memory(args.pid);
  python::Interpreter interp = python::discover(args.pid, memory);
  python::refine_version(interp, memory);
  python::Walker walker(memory, interp);
  // Each stack is read while its thread is stopped, not with the thread list before the stop.
  walker.read_stacks_with_listing(false);
  python::CodeCache codes(memory, interp.layout);
  native::Options options;
  options.debug_dirs = args.debug_dirs;
  native::Unwinder unwinder(args.pid, options);
  std::printf("{\"type\":\"python\",\"version\":\"%s\",\"binary\":%s}\n", interp.version.text().c_str(),
              json_quoted(interp.binary).c_str());
  std::fflush(stdout);

  std::vector<python::PyThread> threads;
  std::vector<python::RawFrame> frames;
  std::vector<native::Frame> native_frames;
  std::vector<native::MergedFrame> merged;
  native::EvalBatches batches;
  native::Capture capture;
  std::vector<int64_t> pauses, walks, waits, unwinds, stack_bytes;
  uint64_t samples = 0, results[4] = {}, walk_errors = 0, batch_errors = 0, incomplete = 0, tick = 0;
  uint64_t errors[8] = {};
  const int64_t start = monotonic_ns(), cpu_start = cpu_ns();
  int64_t steady_cpu_start = cpu_start, steady_wall_start = start;
  uint64_t steady_samples_start = 0;
  const int64_t deadline = start + static_cast<int64_t>(args.duration * 1e9);
  const int64_t interval = static_cast<int64_t>(args.interval_ms * 1e6);
  int64_t next = start;

  while (!g_stop && monotonic_ns() < deadline && target::process_exists(args.pid)) {
    if (args.samples && samples >= static_cast<uint64_t>(args.samples)) break;
    ++tick;
    if (tick == 2) {  // from here on: the cost per sample once the files are loaded
      steady_cpu_start = cpu_ns();
      steady_wall_start = monotonic_ns();
      steady_samples_start = samples;
    }
    if (!walker.read_threads(threads)) break;
    for (const auto& t : threads) {
      pid_t tid = walker.thread_ids().to_host(t.native_id);
      if (tid <= 0) continue;
      python::WalkError walk_error = python::WalkError::kNone;
      bool batches_ok = false;
      int64_t walk_ns = 0;
      const int64_t capture_start = monotonic_ns();
      native::Error e = unwinder.capture(tid, capture, [&]() {
        const int64_t w0 = monotonic_ns();
        walk_error = walker.walk(t, frames);
        batches_ok = walk_error == python::WalkError::kNone &&
                     read_eval_batches(memory, interp.layout, frames, capture.stack_start, capture.stack_limit, batches);
        walk_ns = monotonic_ns() - w0;
        if (args.hold_ms > 0) {
          const int64_t hold = static_cast<int64_t>(args.hold_ms * 1e6);
          timespec ts{static_cast<time_t>(hold / 1000000000), static_cast<long>(hold % 1000000000)};
          nanosleep(&ts, nullptr);
        }
      });
      ++samples;
      const int64_t capture_end = monotonic_ns();
      if (walk_error != python::WalkError::kNone) ++walk_errors;
      else if (!batches_ok) ++batch_errors;
      std::string result, text;
      if (e != native::Error::kNone) {
        ++errors[static_cast<int>(e)];
        result = std::string("error:") + native::error_name(e);
        for (size_t i = 0; i < frames.size() && !args.quiet; ++i) text += (i ? "," : "") + python_json(codes, frames[i], tick);
      } else {
        pauses.push_back(capture.held_ns);
        walks.push_back(walk_ns);
        waits.push_back(capture.wait_ns);
        stack_bytes.push_back(static_cast<int64_t>(capture.stack.size()));
        int64_t t0 = monotonic_ns();
        native::UnwindResult u = unwinder.unwind(capture, native_frames);
        unwinds.push_back(monotonic_ns() - t0);
        if (!u.complete) ++incomplete;
        if (u.error != native::Error::kNone) ++errors[static_cast<int>(u.error)];
        if (args.raw && !args.quiet) {
          std::string raw;
          for (size_t i = 0; i < native_frames.size(); ++i) raw += (i ? "," : "") + native_json(unwinder, native_frames[i]);
          std::printf("{\"type\":\"native\",\"tid\":%d,\"complete\":%s,\"frames\":[%s]}\n", tid,
                      u.complete ? "true" : "false", raw.c_str());
        }
        if (!batches_ok) frames.clear(), batches = {};
        native::MergeResult r = native::merge_stacks(native_frames, frames, batches, merged);
        ++results[static_cast<int>(r)];
        result = native::merge_result_name(r);
        for (size_t i = 0; i < merged.size() && !args.quiet; ++i) {
          const auto& m = merged[i];
          text += i ? "," : "";
          text += m.kind == native::MergedFrame::Kind::kPython ? python_json(codes, frames[m.index], tick)
                                                               : native_json(unwinder, native_frames[m.index]);
        }
      }
      if (!args.quiet)
        std::printf("{\"type\":\"stack\",\"tid\":%d,\"result\":\"%s\",\"capture\":[%lld,%lld],\"frames\":[%s]}\n",
                    tid, result.c_str(), (long long)capture_start, (long long)capture_end, text.c_str());
    }
    unwinder.release_pending();
    std::fflush(stdout);
    next += interval;
    int64_t now = monotonic_ns();
    if (next > now) {
      timespec ts{static_cast<time_t>((next - now) / 1000000000), static_cast<long>((next - now) % 1000000000)};
      nanosleep(&ts, nullptr);
    } else {
      next = now;
    }
  }
  const int64_t wall = monotonic_ns() - start, cpu = cpu_ns() - cpu_start;
  const int64_t steady_cpu = cpu_ns() - steady_cpu_start, steady_wall = monotonic_ns() - steady_wall_start;
  const uint64_t steady_samples = samples - steady_samples_start;
  const native::Stats& st = unwinder.stats();
  std::string error_text;
  for (int i = 1; i < 8; ++i)
    if (errors[i])
      error_text += fmt::format("{}\"{}\":{}", error_text.empty() ? "" : ",",
                                native::error_name(static_cast<native::Error>(i)), errors[i]);
  std::printf(
      "{\"type\":\"summary\",\"samples\":%llu,\"merged\":%llu,\"native_only\":%llu,\"python_only\":%llu,"
      "\"mismatch\":%llu,\"walk_errors\":%llu,\"batch_errors\":%llu,\"incomplete\":%llu,\"errors\":{%s},"
      "\"pause_p50_us\":%.1f,\"pause_p99_us\":%.1f,\"pause_max_us\":%.1f,\"walk_p50_us\":%.1f,\"walk_p99_us\":%.1f,"
      "\"wait_p50_us\":%.1f,\"wait_p99_us\":%.1f,\"unwind_p50_us\":%.1f,\"unwind_p99_us\":%.1f,"
      "\"stack_p50_bytes\":%.0f,\"stack_max_bytes\":%.0f,\"live_reads\":%llu,\"symbol_lookups\":%llu,"
      "\"symbol_cache_hits\":%llu,\"symbol_ms\":%.1f,\"modules\":%llu,\"cpu_ms\":%.1f,\"wall_ms\":%.1f,\"steady_cpu_us_per_sample\":%.1f,"
      "\"steady_samples_per_s\":%.1f,\"signal\":%d}\n",
      (unsigned long long)samples, (unsigned long long)results[0], (unsigned long long)results[1],
      (unsigned long long)results[2], (unsigned long long)results[3], (unsigned long long)walk_errors,
      (unsigned long long)batch_errors, (unsigned long long)incomplete, error_text.c_str(), percentile(pauses, 0.5),
      percentile(pauses, 0.99), percentile(pauses, 1.0), percentile(walks, 0.5), percentile(walks, 0.99),
      percentile(waits, 0.5), percentile(waits, 0.99), percentile(unwinds, 0.5), percentile(unwinds, 0.99),
      percentile(stack_bytes, 0.5) * 1000, percentile(stack_bytes, 1.0) * 1000, (unsigned long long)st.live_reads,
      (unsigned long long)st.symbol_lookups, (unsigned long long)st.symbol_cache_hits, st.symbol_ns / 1e6, (unsigned long long)st.modules,
      cpu / 1e6, wall / 1e6, steady_samples ? steady_cpu / 1e3 / static_cast<double>(steady_samples) : 0.0,
      steady_wall > 0 ? static_cast<double>(steady_samples) * 1e9 / static_cast<double>(steady_wall) : 0.0,
      static_cast<int>(g_stop));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  try {
    return run(args);
  } catch (const UserError& e) {
    std::fprintf(stderr, "native_stacks: %s\n", e.what());
    return 1;
  }
}

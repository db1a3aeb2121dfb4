// asyncio_tasks PID [--repeat N] [--refresh] [--no-awaiters] [--wait SECONDS] [--max-depth N]: the asyncio tasks of
// a running Python process as JSON, read from outside with AsyncioReader (src/python/asyncio.cpp),
// for the end-to-end tests and the bench. --repeat scans N times and reports each scan's wall and
// CPU time (the tasks of the last scan); with --refresh the scans after the first re-read the
// tasks the first one found (AsyncioReader::read) instead of walking the registry again. --wait
// keeps scanning (every 50 ms, with the same reader) until a scan finds tasks, for up to SECONDS.
//
//   {"python": "3.12.1", "registry": "...", "offsets": "...",
//    "stats": {"entries", "tasks", "torn", "invalid", "truncated", "reads"},
//    "scan_us": [...], "cpu_us": [...], "reads_per_scan": [...],
//    "all_scans": {"tasks", "torn", "invalid", "unnamed", "unresolved_frames", "functions": [...]},
//    "tasks": [{"address": "0x..", "name": "Task-3", "state": "pending", "running": false,
//               "thread_id": 1403.., "native_id": 123, "loop": "0x..", "fut_waiter": "0x.." | null,
//               "awaiting": {"type": "Future", "task": "0x.." | null} | null,
//               "awaited_by": ["0x.."], "frames": [{"function", "file", "line"}, ...]}]}
//
// frames: the await chain, innermost first, each resolved by the CodeCache. all_scans sums over
// every scan what a reader of changing tasks must never produce (a task without a name, a frame
// whose code does not resolve) and lists every function seen in a chain.
#include <cstdio>
#include <set>
#include <cstdlib>
#include <ctime>

#include <unistd.h>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "swprof/asyncio.h"
#include "swprof/common.h"

using namespace swprof;

namespace {

std::string quoted(std::string_view text) { return "\"" + json_escape(text) + "\""; }
std::string hex_or_null(uint64_t address) { return address ? fmt::format("\"{:#x}\"", address) : "null"; }

std::vector<std::string> quoted_all(const std::set<std::string>& texts) {
  std::vector<std::string> out;
  for (const auto& t : texts) out.push_back(quoted(t));
  return out;
}

int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: asyncio_tasks PID [--repeat N] [--refresh] [--no-awaiters] [--wait SECONDS] "
                         "[--max-depth N]\n");
    return 2;
  }
  pid_t pid = std::atoi(argv[1]);
  int repeat = 1;
  bool refresh = false;
  double wait_seconds = 0;
  python::AsyncioScanOptions options;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--no-awaiters") options.awaiters = false;
    else if (arg == "--refresh") refresh = true;
    else if (arg == "--max-depth" && i + 1 < argc) options.max_depth = std::strtoul(argv[++i], nullptr, 10);
    else if (arg == "--wait" && i + 1 < argc) wait_seconds = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "asyncio_tasks: unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  try {
    target::Memory memory(pid);
    python::Interpreter interp = python::discover(pid, memory);
    python::refine_version(interp, memory);
    python::Walker walker(memory, interp);
    python::AsyncioReader reader(memory, interp);
    python::CodeCache codes(memory, interp.layout);
    std::vector<python::PyThread> threads;
    std::vector<python::AsyncTask> tasks;
    struct {
      size_t tasks = 0, torn = 0, invalid = 0, unnamed = 0, unresolved = 0;
      std::set<std::string> functions;
    } all;
    std::vector<int64_t> times, cpu;
    std::vector<uint64_t> reads, known;
    bool ok = false;
    int64_t give_up = monotonic_us() + static_cast<int64_t>(wait_seconds * 1e6);
    size_t waited = 0;
    while (walker.read_threads(threads) && (!reader.scan(threads, tasks, options) || tasks.empty()) &&
           monotonic_us() < give_up) {
      ++waited;
      usleep(50000);
    }
    for (int i = 0; i < repeat; ++i) {
      int64_t start = monotonic_ns(), cpu_start = thread_cpu_ns();
      if (!walker.read_threads(threads)) throw UserError("cannot read the thread states");
      if (refresh && i > 0) {
        reader.read(known, threads, tasks, options);
      } else {
        ok = reader.scan(threads, tasks, options);
        known.clear();
        for (const auto& t : tasks) known.push_back(t.address);
      }
      times.push_back((monotonic_ns() - start) / 1000);
      cpu.push_back((thread_cpu_ns() - cpu_start) / 1000);
      reads.push_back(reader.stats().reads);
      all.tasks += tasks.size();
      all.torn += reader.stats().torn;
      all.invalid += reader.stats().invalid;
      for (const auto& t : tasks) {
        if (t.name.empty()) ++all.unnamed;
        for (const auto& f : t.frames) {
          const python::CodeInfo* code = codes.get(f.code, 0);
          if (code) all.functions.insert(code->qualname);
          else ++all.unresolved;
        }
      }
    }
    if (!ok) throw UserError("no asyncio tasks to read: " + reader.problem());
    const auto& s = reader.stats();
    std::string out = fmt::format(
        "{{\"python\": \"{}\", \"registry\": {}, \"offsets\": {},\n \"stats\": {{\"entries\": {}, \"tasks\": {}, "
        "\"torn\": {}, \"invalid\": {}, \"truncated\": {}, \"reads\": {}}},\n \"scan_us\": [{}], "
        "\"cpu_us\": [{}], \"reads_per_scan\": [{}], \"scans_before_found\": {},\n \"all_scans\": {{\"tasks\": {}, \"torn\": {}, "
        "\"invalid\": {}, \"unnamed\": {}, \"unresolved_frames\": {}, \"functions\": [{}]}},\n \"tasks\": [",
        interp.version.text(), quoted(s.registry), quoted(s.offsets), s.registry_entries, s.tasks, s.torn, s.invalid,
        s.truncated, s.reads, fmt::join(times, ", "), fmt::join(cpu, ", "), fmt::join(reads, ", "), waited, all.tasks, all.torn,
        all.invalid, all.unnamed, all.unresolved, fmt::join(quoted_all(all.functions), ", "));
    for (size_t i = 0; i < tasks.size(); ++i) {
      const auto& t = tasks[i];
      std::vector<std::string> frames, by;
      for (const auto& f : t.frames) {
        python::CodeInfo* code = codes.get(f.code, 0);
        if (!code) {
          frames.push_back(fmt::format("{{\"function\": null, \"code\": \"{:#x}\"}}", f.code));
          continue;
        }
        frames.push_back(fmt::format("{{\"function\": {}, \"file\": {}, \"line\": {}}}", quoted(code->qualname),
                                     quoted(code->filename),
                                     python::line_for_offset(code->lines, f.offset, code->first_line)));
      }
      for (uint64_t a : t.awaited_by) by.push_back(hex_or_null(a));
      std::string awaiting = t.awaiting.address || !t.awaiting.type_name.empty()
                                 ? fmt::format("{{\"type\": {}, \"task\": {}}}", quoted(t.awaiting.type_name),
                                               hex_or_null(t.awaiting.task))
                                 : "null";
      out += fmt::format(
          "{}\n  {{\"address\": \"{:#x}\", \"name\": {}, \"state\": \"{}\", \"running\": {}, \"thread_id\": {}, "
          "\"native_id\": {}, \"loop\": \"{:#x}\", \"fut_waiter\": {}, \"awaiting\": {}, \"awaited_by\": [{}], "
          "\"frames\": [{}]}}",
          i ? "," : "", t.address, quoted(t.name), python::task_state_name(t.state), t.running ? "true" : "false",
          t.thread_id, t.native_id, t.loop, hex_or_null(t.fut_waiter), awaiting, fmt::join(by, ", "),
          fmt::join(frames, ", "));
    }
    out += "]}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  } catch (const UserError& e) {
    std::fprintf(stderr, "asyncio_tasks: %s\n", e.what());
    return e.exit_code();
  }
}

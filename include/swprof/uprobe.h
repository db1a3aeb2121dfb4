// Uprobes on the target's code: each time a thread of the target executes a probed instruction,
// the kernel records the time, the thread and the first integer argument registers into a ring
// buffer that swprof reads. This is how swprof sees every greenlet switch without sampling it.
//
// Why this shape:
// - perf_event_open with the uprobe PMU (type in /sys/bus/event_source/devices/uprobe/type;
//   config1 = path, config2 = file offset) needs no tracefs and is undone by closing the fd: the
//   kernel removes the breakpoint when the last event on it goes, also when swprof is killed.
//   swprof writes nothing into the target; the kernel plants the breakpoint in the target's private
//   copy of the code page for as long as the events exist.
// - One event per (thread, probe site), all of a thread's events writing into one ring buffer
//   (PERF_EVENT_IOC_SET_OUTPUT). Per-thread rather than per-CPU: a per-task event installs the
//   breakpoint only in the target's address space, while a system-wide one (pid -1) would trap in
//   every process mapping the same library (every other gevent program on the machine), and needs
//   more privilege. `inherit` cannot be used: the kernel refuses to mmap an inherited per-task
//   event (cpu -1), and inherit would not cover threads that already exist anyway. So new threads
//   are picked up by follow_threads(), which the caller runs each tick (the recorder: opened
//   beside it, follow_threads_beside()); a switch in a thread younger than one tick (and the
//   opening) can be missed (gevent switches on the threads that run its hubs).
// - Each thread has a single writer (itself), so its records come out in the order they happened;
//   a full buffer drops records and the kernel says how many (PERF_RECORD_LOST), counted in lost().
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "swprof/common.h"
#include "swprof/target.h"

namespace swprof::target {

// An instruction in a file the target maps, as the kernel needs it for a uprobe.
struct ProbeSite {
  std::string name;          // for messages, e.g. "greenlet::Greenlet::g_switchstack()"
  uint64_t address = 0;      // where the target runs it
  std::string path;          // a path that reaches the mapped file from swprof's mount namespace
  uint64_t file_offset = 0;  // of the instruction in that file
};

// The file and offset of the executable code at `address` in the target. The path is one of
// host_paths() whose inode is the mapping's (the kernel resolves it in swprof's mount namespace,
// so the target's own path may name another file, or none). nullopt with `error` set otherwise.
// With `function_entry`, a leading endbr64 is stepped over: the kernel emulates a push or a nop
// at a probe but single-steps endbr64, which costs ~9x more per hit (measured: 2.5 vs 22 µs in
// a VM), and at the next instruction the registers are still the function's arguments.
std::optional<ProbeSite> locate_probe_site(pid_t pid, const std::vector<Mapping>& maps, uint64_t address,
                                           std::string name, std::string& error, bool function_entry = false);

// Uprobes cannot be had here: no uprobe PMU, not enough privilege, a site the kernel refuses. The
// message is one line saying what and what to do; the caller falls back to sampling alone.
class UprobeUnavailable : public UserError {
 public:
  enum class Reason { kNoPmu, kPrivilege, kBadSite, kResources };
  UprobeUnavailable(Reason reason, const std::string& message) : UserError(message), reason_(reason) {}
  Reason reason() const { return reason_; }

 private:
  Reason reason_;
};

// How many integer argument registers each hit carries (x86-64: rdi rsi rdx; aarch64: x0 x1 x2).
constexpr size_t kUprobeArgs = 3;

struct UprobeHit {
  int64_t time_ns = 0;  // CLOCK_MONOTONIC, comparable with monotonic_ns() and Python's time.monotonic()
  pid_t tid = 0;
  uint32_t site = 0;    // index into the sites the session was made with
  bool args_valid = false;
  uint64_t args[kUprobeArgs] = {};
};

class UprobeSession {
 public:
  struct Options {
    // Ring buffer per thread, rounded up to a power of two pages. A hit takes 64 bytes: 1 MiB
    // holds 16 384 hits, 0.33 s of a thread switching 50 000 times a second.
    size_t buffer_bytes = size_t(1) << 20;
  };

  // Checks that the kernel has the uprobe PMU; opens nothing yet. Throws UprobeUnavailable.
  UprobeSession(pid_t pid, std::vector<ProbeSite> sites, Options options);
  UprobeSession(pid_t pid, std::vector<ProbeSite> sites) : UprobeSession(pid, std::move(sites), Options{}) {}
  ~UprobeSession();  // closes every event: the kernel removes the breakpoints
  UprobeSession(const UprobeSession&) = delete;
  UprobeSession& operator=(const UprobeSession&) = delete;

  // Probes the threads of the process that are not probed yet and notes those that ended (their
  // remaining hits are drained, then their events closed). Returns how many threads were added.
  // Throws UprobeUnavailable when the kernel refuses a probe for a reason that holds for every
  // thread (privilege, the site, resources); a thread that ends meanwhile is skipped.
  size_t follow_threads();
  // The same with the thread ids the caller just listed (the recorder lists them every tick).
  size_t follow_threads(std::vector<pid_t> tids);
  // The same, the new threads' events opened beside the caller: the kernel takes 6–100 ms to
  // open a thread's uprobe events (it plants the breakpoints), which held up a sampler's tick as a
  // program started threads. Returns how many threads the previous call's opening added (their
  // hits from the moment they were opened).
  size_t follow_threads_beside();

  // Appends every hit recorded since the last call, ordered by time (each thread's hits in the
  // order they happened). Returns how many were appended.
  size_t drain(std::vector<UprobeHit>& out);

  uint64_t lost() const { return lost_; }          // hits the kernel dropped: a ring buffer was full
  uint64_t hits() const { return hits_; }          // hits read so far
  size_t threads() const { return threads_.size(); }
  const std::vector<ProbeSite>& sites() const { return sites_; }

 private:
  struct Thread;
  void add_thread(pid_t tid);
  std::unique_ptr<Thread> open_thread(pid_t tid);
  std::vector<pid_t> new_threads(std::vector<pid_t> tids);
  bool opening_tid(pid_t tid) const;
  void drain_thread(Thread& t, std::vector<UprobeHit>& out);

  pid_t pid_;
  std::vector<ProbeSite> sites_;
  Options options_;
  uint32_t pmu_type_ = 0;
  size_t page_size_ = 4096, data_pages_ = 0;
  uint64_t register_mask_ = 0;
  std::atomic<bool> count_lost_ = true;  // the kernel counts each event's lost hits (PERF_FORMAT_LOST, Linux 6.0+)
  std::vector<std::unique_ptr<Thread>> threads_;
  uint64_t lost_ = 0, hits_ = 0;
  std::vector<uint8_t> scratch_;
  // follow_threads_beside(): the threads being opened (last: destroyed first, waiting for them).
  std::vector<pid_t> opening_tids_;
  std::future<std::vector<std::unique_ptr<Thread>>> opening_;
};

}  // namespace swprof::target

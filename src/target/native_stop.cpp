// Stopping one thread of a target for as short a time as possible: PTRACE_SEIZE (no signal is
// sent, unlike PTRACE_ATTACH's SIGSTOP), PTRACE_INTERRUPT, wait for the stop, copy the registers
// and the used part of the stack, PTRACE_DETACH (which resumes it). Seizing per stop instead of
// staying attached keeps the target's signals its own between samples: a tracee stays stopped on
// every signal until its tracer looks, and a profiler looks only at its sampling instants.
#include <elf.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "swprof/common.h"
#include "target/native_internal.h"

namespace swprof::native {

namespace {

// Threads stopped (or interrupted and not yet stopped) by this process, for
// release_stopped_threads(), which a signal handler may call: a fixed array of atomics, no locks.
constexpr int kSlots = 64;
std::atomic<pid_t> g_stopped[kSlots];

bool remember(pid_t tid) {
  for (auto& slot : g_stopped) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, tid)) return true;
  }
  return false;
}

void forget(pid_t tid) {
  for (auto& slot : g_stopped) {
    pid_t expected = tid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void sleep_ns(int64_t ns) {
  timespec ts{0, static_cast<long>(ns)};
  nanosleep(&ts, nullptr);
}

}  // namespace

int release_stopped_threads() {
  int released = 0;
  for (auto& slot : g_stopped) {
    pid_t tid = slot.exchange(0);
    if (tid > 0 && ptrace(PTRACE_DETACH, tid, nullptr, nullptr) == 0) ++released;
  }
  return released;
}

bool stopping_interrupts(std::string_view name) {
  // Measured here for epoll_wait (returns EINTR on PTRACE_INTERRUPT) against read, poll, select,
  // nanosleep and futex (restarted); the others as signal(7) lists them.
  return name == "epoll_wait" || name == "epoll_pwait" || name == "epoll_pwait2" || name == "semop" ||
         name == "semtimedop" || name == "rt_sigtimedwait" || name == "msgrcv" || name == "msgsnd";
}

const char* error_name(Error e) {
  switch (e) {
    case Error::kNone: return "none";
    case Error::kGone: return "gone";
    case Error::kPermission: return "permission";
    case Error::kTimeout: return "timeout";
    case Error::kRegisters: return "registers";
    case Error::kStack: return "stack";
    case Error::kUnsupported: return "unsupported";
    case Error::kUnwind: return "unwind";
  }
  return "?";
}

namespace detail {

ThreadStopper::ThreadStopper(pid_t pid, const Options& options, Stats& stats)
    : pid_(pid), options_(options), stats_(stats) {}

ThreadStopper::~ThreadStopper() {
  // Interrupted threads that never stopped (an uninterruptible sleep) are still ours: wait a
  // little for them to stop and let them go. Past that the kernel releases them when we exit.
  settle_pending(200 * 1000 * 1000);
}

void ThreadStopper::settle_pending(int64_t wait_ns) {
  const int64_t deadline = monotonic_ns() + wait_ns;
  while (!pending_.empty()) {
    for (size_t i = 0; i < pending_.size();) {
      pid_t tid = pending_[i];
      int status = 0;
      pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
      if (r == 0) {
        ++i;
        continue;
      }
      if (r == tid && WIFSTOPPED(status)) {
        // A signal that stopped it first is handed on; the interrupt's own stop carries none.
        int sig = (status >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(status);
        ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<uintptr_t>(sig)));
      } else if (r == tid && tid == pid_) {
        reaped_ = true;
        reaped_status_ = status;
      }
      forget(tid);
      pending_.erase(pending_.begin() + static_cast<long>(i));
    }
    if (pending_.empty() || monotonic_ns() >= deadline) break;
    sleep_ns(100 * 1000);
  }
}

Error ThreadStopper::wait_for_stop(pid_t tid, Capture& out) {
  const int64_t start = monotonic_ns();
  const int64_t deadline = start + options_.stop_timeout_ns;
  int status = 0;
  for (int round = 0;; ++round) {
    pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
    if (r == tid) break;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      forget(tid);  // not ours to wait for any more: it is gone
      return Error::kGone;
    }
    int64_t now = monotonic_ns();
    if (now >= deadline) {
      pending_.push_back(tid);  // still interrupted: detached once it stops (settle_pending)
      return Error::kTimeout;
    }
    // The stop takes a few microseconds when the thread is on another CPU; yielding lets it run
    // here when it waits for ours. Past that, short sleeps.
    if (round < 50) sched_yield();
    else sleep_ns(std::min<int64_t>(50 * 1000, deadline - now));
  }
  out.wait_ns = monotonic_ns() - start;
  if (!WIFSTOPPED(status)) {
    // It exited while we asked it to stop: nothing to resume.
    if (tid == pid_) {
      reaped_ = true;
      reaped_status_ = status;
    }
    forget(tid);
    return Error::kGone;
  }
  // PTRACE_EVENT_STOP: our interrupt (or a group stop, which detaching leaves in place). Any other
  // stop is a signal on its way to the thread: it is delivered when we let go.
  out.pending_signal = (status >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(status);
  return Error::kNone;
}

bool ThreadStopper::find_stack(uint64_t sp, uint64_t& start, uint64_t& end) {
  auto lookup = [&]() {
    auto it = std::upper_bound(maps_.begin(), maps_.end(), sp,
                               [](uint64_t a, const target::Mapping& m) { return a < m.start; });
    if (it == maps_.begin()) return false;
    --it;
    if (sp >= it->end || !it->readable) return false;
    start = it->start;
    end = it->end;
    return true;
  };
  if (lookup()) return true;
  maps_ = target::read_maps(pid_);  // a thread started since: its stack is a new mapping
  std::sort(maps_.begin(), maps_.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  ++stats_.map_reloads;
  return lookup();
}

void ThreadStopper::copy_stack(Capture& out) {
  uint64_t map_start = 0, map_end = 0;
  out.stack.clear();
  if (!find_stack(out.sp, map_start, map_end)) return;
  out.stack_start = out.sp;
  out.stack_limit = map_end;
  size_t want = static_cast<size_t>(std::min<uint64_t>(map_end - out.sp, options_.max_stack_bytes));
  out.stack.resize(want);
  iovec local{out.stack.data(), want};
  iovec remote{reinterpret_cast<void*>(out.sp), want};
  ssize_t got = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
  out.stack.resize(got > 0 ? static_cast<size_t>(got) : 0);
  out.stack_cut = out.stack_start + out.stack.size() < map_end;
  stats_.stack_bytes += out.stack.size();
}

Error ThreadStopper::capture(pid_t tid, Capture& out, const std::function<void()>& while_stopped) {
  // `while_stopped` runs exactly once: while the thread is stopped when it could be stopped, else
  // right after the failed attempt (the caller's walk happens either way).
  bool ran = false;
  auto run = [&]() {
    if (ran) return;
    ran = true;
    if (while_stopped) while_stopped();
  };
  Error e = stop_and_copy(tid, out, run);
  run();
  release_pending();
  return e;
}

Error ThreadStopper::stop_and_copy(pid_t tid, Capture& out, const std::function<void()>& while_stopped) {
  out.tid = tid;
  out.stack.clear();
  out.stack_cut = false;
  out.pending_signal = 0;
  out.wait_ns = out.held_ns = 0;
  ++stats_.captures;
  auto fail = [&](Error e) {
    ++stats_.capture_errors[static_cast<int>(e)];
    return e;
  };
#if !defined(__x86_64__)
  (void)while_stopped;
  return fail(Error::kUnsupported);
#else
  release_pending();
  if (std::find(pending_.begin(), pending_.end(), tid) != pending_.end()) return fail(Error::kTimeout);
  // Remember it before it can stop, so that a signal handler never misses a stopped thread.
  if (!remember(tid)) return fail(Error::kPermission);
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    int e = errno;
    forget(tid);
    return fail(e == ESRCH ? Error::kGone : Error::kPermission);
  }
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    // Seized but not interruptible: it is exiting. Detach needs a stop, so wait for it.
    pending_.push_back(tid);
    return fail(Error::kGone);
  }
  Error e = wait_for_stop(tid, out);
  if (e != Error::kNone) return fail(e);
  const int64_t stopped_at = monotonic_ns();

  // Whatever happens from here on, the thread is let go before we return.
  struct Resume {
    pid_t tid;
    Capture& out;
    int64_t stopped_at;
    ~Resume() {
      // Taken before the detach: the thread runs again inside that call, which may then keep us
      // off the CPU (the woken thread preempting us) for a time that is no pause of its.
      out.held_ns = monotonic_ns() - stopped_at;
      ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<uintptr_t>(out.pending_signal)));
      forget(tid);
    }
  } resume{tid, out, stopped_at};

  user_regs_struct regs{};
  iovec iov{&regs, sizeof regs};
  if (ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_PRSTATUS), &iov) != 0) return fail(Error::kRegisters);
  const uint64_t dwarf_order[17] = {regs.rax, regs.rdx, regs.rcx, regs.rbx, regs.rsi, regs.rdi, regs.rbp, regs.rsp, regs.r8,
                                    regs.r9,  regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15, regs.rip};
  std::copy(std::begin(dwarf_order), std::end(dwarf_order), out.regs);
  out.pc = regs.rip;
  out.sp = regs.rsp;
  copy_stack(out);
  while_stopped();
  if (out.stack.empty()) return fail(Error::kStack);
  return Error::kNone;
#endif
}

}  // namespace detail
}  // namespace swprof::native

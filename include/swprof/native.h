// Native (C/C++) stacks of a target's threads. One thread is stopped for as short a time as
// possible (ptrace: seize, interrupt, copy its registers and the used part of its stack, detach);
// the copy is then unwound with elfutils' libdw (CFI from .eh_frame/.debug_frame, frame pointers
// where there is none) and each frame is named from the mapped file's symbol tables, its
// .gnu_debugdata, a separate debug file found by build-id or debuglink, and DWARF's inlined calls,
// else `libfoo.so+0x1234` (the start of the function that holds the address, from its CFI).
//
// Nothing is written to the target. A stopped thread is always resumed: on every return path,
// when an exception passes, from a signal handler (release_stopped_threads), and by the kernel
// when swprof dies.
//
// ptrace's rule: every Unwinder::capture of a process must come from the same thread of swprof.
// An Unwinder is not thread-safe; use one per target process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace swprof::native {

// Detaches every thread of any target that this process stopped and has not resumed yet.
// Async-signal-safe: a signal handler may call it (from the thread that stopped them). Returns
// how many threads it resumed.
int release_stopped_threads();

enum class Error : uint8_t {
  kNone,
  kGone,          // the thread (or process) ended
  kPermission,    // not allowed to trace it (CAP_SYS_PTRACE, ptrace_scope), or another tracer has it
  kTimeout,       // it did not stop within Options::stop_timeout_ns (no CPU for it, uninterruptible sleep)
  kRegisters,     // its registers could not be read
  kStack,         // its stack pointer is in no mapping, or the stack could not be copied
  kUnsupported,   // not an architecture swprof unwinds (x86-64 only)
  kUnwind,        // not even the first frame could be unwound
};
const char* error_name(Error e);

// Whether stopping a thread blocked in this system call makes the call fail with EINTR instead
// of carrying on: the kernel does not restart these after a stop (epoll_wait and its variants,
// semop, sigtimedwait, msgrcv, msgsnd: signal(7)); read, poll, select, futex and nanosleep carry
// on. Python retries such calls (PEP 475); C code may not. With the system call from the thread's
// off-CPU reason, a recorder can leave such threads unstopped.
bool stopping_interrupts(std::string_view syscall_name);

struct Options {
  size_t max_stack_bytes = 512 * 1024;         // stack copied per stop, at most
  // Give up on a thread that has not stopped by then (it waits for a CPU on a busy machine, or
  // sleeps uninterruptibly). It stays interrupted: it stops when it next runs and is let go at
  // the next capture() or release_pending() call.
  int64_t stop_timeout_ns = 50 * 1000 * 1000;
  size_t max_frames = 512;                     // physical frames per unwind
  bool inline_frames = true;                   // expand inlined calls where DWARF says so
  // More directories to look for separate debug files in (each as /usr/lib/debug is used:
  // .build-id/xx/yyyy.debug, and debuglink names). The target's own /usr/lib/debug (through
  // /proc/PID/root) is always searched after ours. Nothing is downloaded: with DEBUGINFOD_URLS
  // set, only build-id lookups are made (libdw's debuglink search would end in debuginfod).
  std::vector<std::string> debug_dirs;
};

// What one stop copied: enough to unwind after the thread runs again.
struct Capture {
  pid_t tid = 0;
  uint64_t regs[17] = {};        // x86-64, DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip
  uint64_t pc = 0, sp = 0;
  uint64_t stack_start = 0;      // target address of stack[0] (= sp)
  uint64_t stack_limit = 0;      // end of the mapping that holds the stack
  std::vector<uint8_t> stack;    // [stack_start, stack_start + stack.size())
  bool stack_cut = false;        // the copy ends before stack_limit (max_stack_bytes)
  int pending_signal = 0;        // a signal that arrived during the stop; redelivered on resume
  int64_t wait_ns = 0;           // from the request to stop until the thread had stopped
  int64_t held_ns = 0;           // from then until the request to resume it: the pause
};

// One named location. Symbols are interned per Unwinder: the same function at the same line of
// the same file is one id, so callers can keep their own data per id (`user`).
struct Symbol {
  std::string function;    // "dgemm_", "ns::f(int)", or "libblas.so.3+0x309b0" when unnamed
  std::string module;      // the mapped file as the target names it; "" for anonymous memory
  std::string source;      // source file from DWARF; "" when unknown
  int line = 0;            // 0 when unknown
  bool named = false;      // false: `function` is module+offset (or "[unknown]")
  bool eval = false;       // CPython's evaluation loop (_PyEval_EvalFrameDefault and its parts)
  uint32_t user = 0;       // free for the caller (the recorder's interned frame id)
};

struct Frame {
  uint64_t pc = 0;         // the instruction: for callers the return address less one
  uint64_t sp = 0;         // the frame's stack pointer; its locals lie in [sp, the caller's sp)
  uint32_t symbol = 0;     // Unwinder::symbol(id)
  bool inlined = false;    // a call inlined into the next frame (same pc and sp)
  bool named = false;      // copies of the symbol's `named` and `eval`
  bool eval = false;
};

struct UnwindResult {
  Error error = Error::kNone;
  bool complete = false;   // reached a frame without a caller (_start, clone3): nothing is missing
};

struct Stats {
  uint64_t captures = 0, capture_errors[8] = {};  // indexed by Error
  uint64_t unwinds = 0, unwind_errors = 0, incomplete = 0, frames = 0;
  uint64_t stack_bytes = 0;        // copied, in total
  uint64_t live_reads = 0;         // words the unwinder read from the running target (not the stack copy)
  uint64_t symbol_lookups = 0, symbol_cache_hits = 0;
  int64_t symbol_ns = 0;           // naming addresses not seen before (part of unwind_ns)
  uint64_t map_reloads = 0, modules = 0;
  int64_t unwind_ns = 0;           // time spent unwinding and naming (the thread runs meanwhile)
};

class Unwinder {
 public:
  explicit Unwinder(pid_t pid, Options options = {});
  ~Unwinder();
  Unwinder(const Unwinder&) = delete;
  Unwinder& operator=(const Unwinder&) = delete;

  pid_t pid() const;

  // Stops thread `tid` of the process, copies its registers and stack, calls `while_stopped` (if
  // given: e.g. the Python walk, so that both stacks are one moment), and resumes it. The thread
  // is resumed on every path, also when `while_stopped` throws. `while_stopped` runs exactly once:
  // when the thread could not be stopped (kGone, kPermission, kTimeout, kUnsupported) it runs
  // right after, with the thread running, so the caller's walk happens either way.
  Error capture(pid_t tid, Capture& out, const std::function<void()>& while_stopped = {});

  // Unwinds a capture into `out`, innermost first, inlined calls expanded. Runs after the thread
  // was resumed; reads nothing of the stack but the copy.
  UnwindResult unwind(const Capture& capture, std::vector<Frame>& out);

  // Lets go of threads whose stop timed out and that have stopped since (without waiting).
  // capture() does it too; call it when no capture follows soon (between sampling rounds).
  void release_pending();

  const Symbol& symbol(uint32_t id) const;
  Symbol& symbol(uint32_t id);
  const Stats& stats() const;

  // A waitpid status of the process's main thread that a stop collected because the process
  // exited meanwhile (the recorder's own waitpid on a launched program then finds nothing).
  bool reaped_exit(int& status) const;

  struct Impl;  // native_unwind.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace swprof::native

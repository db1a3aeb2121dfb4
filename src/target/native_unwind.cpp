// Unwinding a captured stack with libdw. Why libdw rather than libunwind's ptrace API: one
// library, in Debian, does both halves — CFI unwinding (with a frame-pointer fallback) and naming
// (symbol tables, .gnu_debugdata, separate debug files by build-id, DWARF inlined calls), where
// libunwind names from symbol tables only. And libdw lets us supply the thread's state: the
// registers and stack copied while the thread was stopped, so the unwind runs after it was
// resumed (libunwind's ptrace API reads the stack word by word with PTRACE_PEEKDATA, the thread
// stopped all along).
#include <elfutils/libdwfl.h>
#include <sys/uio.h>

#include <cstring>

#include "swprof/common.h"
#include "target/native_internal.h"

namespace swprof::native {

struct Unwinder::Impl {
  Impl(pid_t pid, Options opts) : pid(pid), options(std::move(opts)), stopper(pid, options, stats), symbols(pid, options, stats) {}

  pid_t pid;
  Options options;
  Stats stats;
  detail::ThreadStopper stopper;
  detail::Symbolizer symbols;
  bool attached = false;
  const Capture* current = nullptr;
  struct Raw {
    uint64_t pc, sp;
    bool activation;  // pc is where the thread is (innermost, signal frame), not a return address
  };
  std::vector<Raw> raw;
  std::vector<uint32_t> chain;
};

namespace {

using Impl = Unwinder::Impl;

pid_t no_next_thread(Dwfl*, void*, void**) { return 0; }

bool get_thread(Dwfl*, pid_t tid, void* arg, void** thread_arg) {
  auto* self = static_cast<Impl*>(arg);
  if (!self->current || self->current->tid != tid) return false;
  *thread_arg = self;
  return true;
}

// Words of the stack come from the copy. Anything else (rare: a CFI expression reading memory)
// is read from the running target; the part of the stack the copy did not reach is refused,
// since the thread has moved on since.
bool memory_read(Dwfl*, Dwarf_Addr address, Dwarf_Word* result, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  const Capture& c = *self->current;
  if (address >= c.stack_start && address + sizeof(Dwarf_Word) <= c.stack_start + c.stack.size()) {
    std::memcpy(result, c.stack.data() + (address - c.stack_start), sizeof(Dwarf_Word));
    return true;
  }
  if (address >= c.stack_start && address < c.stack_limit) return false;
  ++self->stats.live_reads;
  iovec local{result, sizeof(Dwarf_Word)};
  iovec remote{reinterpret_cast<void*>(address), sizeof(Dwarf_Word)};
  return process_vm_readv(self->pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(sizeof(Dwarf_Word));
}

bool set_initial_registers(Dwfl_Thread* thread, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  return dwfl_thread_state_registers(thread, 0, 17, self->current->regs);
}

const Dwfl_Thread_Callbacks kThreadCallbacks = {
    no_next_thread, get_thread, memory_read, set_initial_registers, nullptr, nullptr,
};

int on_frame(Dwfl_Frame* state, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  Dwarf_Addr pc = 0;
  bool activation = false;
  if (!dwfl_frame_pc(state, &pc, &activation)) return DWARF_CB_ABORT;
  Dwarf_Word sp = 0;
  if (dwfl_frame_reg(state, 7, &sp) != 0) sp = 0;  // DWARF register 7: rsp
  if (!self->raw.empty() && self->raw.back().pc == pc && self->raw.back().sp == sp) return DWARF_CB_ABORT;  // no progress
  self->raw.push_back({pc, sp, activation});
  return self->raw.size() >= self->options.max_frames ? DWARF_CB_ABORT : DWARF_CB_OK;
}

}  // namespace

Unwinder::Unwinder(pid_t pid, Options options) : impl_(std::make_unique<Impl>(pid, std::move(options))) {}
Unwinder::~Unwinder() = default;

pid_t Unwinder::pid() const { return impl_->pid; }

Error Unwinder::capture(pid_t tid, Capture& out, const std::function<void()>& while_stopped) {
  return impl_->stopper.capture(tid, out, while_stopped);
}

void Unwinder::release_pending() { impl_->stopper.release_pending(); }

UnwindResult Unwinder::unwind(const Capture& capture, std::vector<Frame>& out) {
  Impl& s = *impl_;
  const int64_t start = monotonic_ns();
  UnwindResult result;
  out.clear();
  ++s.stats.unwinds;
  if (capture.stack.empty()) {
    ++s.stats.unwind_errors;
    result.error = Error::kStack;
    return result;
  }
  if (!s.attached) {
    // The architecture comes from the first module libdw can open.
    s.attached = dwfl_attach_state(s.symbols.dwfl(), nullptr, s.pid, &kThreadCallbacks, &s);
    if (!s.attached) {
      ++s.stats.unwind_errors;
      result.error = Error::kUnwind;
      return result;
    }
  }
  s.current = &capture;
  s.raw.clear();
  // 0: the unwind reached a frame whose CFI says there is no caller (_start, clone3); -1: it
  // could go no further; 1: we stopped it (max_frames, no progress).
  int rc = dwfl_getthread_frames(s.symbols.dwfl(), capture.tid, on_frame, &s);
  // Stopped short in code no module known covers (a library loaded since the maps were read,
  // e.g. an extension imported after we attached): read the maps again (throttled) and retry.
  if (rc != 0 && !s.raw.empty() && !s.symbols.module_at(s.raw.back().pc) && s.symbols.refresh()) {
    s.raw.clear();
    rc = dwfl_getthread_frames(s.symbols.dwfl(), capture.tid, on_frame, &s);
  }
  s.current = nullptr;
  if (s.raw.empty()) {
    ++s.stats.unwind_errors;
    result.error = Error::kUnwind;
    s.stats.unwind_ns += monotonic_ns() - start;
    return result;
  }
  for (const auto& r : s.raw) {
    s.chain.clear();
    const uint64_t pc = r.activation ? r.pc : r.pc - 1;
    s.symbols.name(pc, s.chain);
    for (size_t i = 0; i < s.chain.size(); ++i) {
      Frame f;
      f.pc = pc;
      f.sp = r.sp;
      f.symbol = s.chain[i];
      f.inlined = i + 1 < s.chain.size();
      const Symbol& symbol = s.symbols.symbol(f.symbol);
      f.named = symbol.named;
      f.eval = symbol.eval;
      out.push_back(f);
    }
  }
  result.complete = rc == 0;
  if (!result.complete) ++s.stats.incomplete;
  s.stats.frames += out.size();
  s.stats.unwind_ns += monotonic_ns() - start;
  return result;
}

const Symbol& Unwinder::symbol(uint32_t id) const { return impl_->symbols.symbol(id); }
Symbol& Unwinder::symbol(uint32_t id) { return impl_->symbols.symbol(id); }
const Stats& Unwinder::stats() const { return impl_->stats; }
bool Unwinder::reaped_exit(int& status) const { return impl_->stopper.reaped_exit(status); }

}  // namespace swprof::native

// The parts of native.h's Unwinder: stopping a thread (native_stop.cpp) and naming code addresses
// (symbols.cpp); native_unwind.cpp joins them with libdw's unwinder.
#pragma once

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "swprof/native.h"
#include "swprof/target.h"


namespace swprof::native::detail {

// Stops threads of one process with ptrace, one at a time, and copies what an unwind needs.
class ThreadStopper {
 public:
  ThreadStopper(pid_t pid, const Options& options, Stats& stats);
  ~ThreadStopper();  // resumes threads that had not stopped yet when their stop timed out

  Error capture(pid_t tid, Capture& out, const std::function<void()>& while_stopped);
  void release_pending() {
    if (!pending_.empty()) settle_pending(0);
  }
  bool reaped_exit(int& status) const {
    status = reaped_status_;
    return reaped_;
  }

 private:
  bool find_stack(uint64_t sp, uint64_t& start, uint64_t& end);
  void copy_stack(Capture& out);
  void settle_pending(int64_t wait_ns);
  Error wait_for_stop(pid_t tid, Capture& out);
  Error stop_and_copy(pid_t tid, Capture& out, const std::function<void()>& while_stopped);

  pid_t pid_;
  const Options& options_;
  Stats& stats_;
  std::vector<target::Mapping> maps_;  // sorted by start; read again when a stack is not in it
  std::vector<pid_t> pending_;         // interrupted, not stopped yet: detached once they stop
  bool reaped_ = false;
  int reaped_status_ = 0;
};

// Names code addresses of one process: its mapped files reported to a libdw session (found
// through /proc/PID/root or /proc/PID/map_files, so other mount namespaces work), and a cache
// from address to the chain of symbols there (inlined calls first).
class Symbolizer {
 public:
  Symbolizer(pid_t pid, const Options& options, Stats& stats);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  Dwfl* dwfl() { return dwfl_; }
  // Reads /proc/PID/maps again and reports the files that hold code. Throttled: at most once per
  // `min_interval_ns` unless forced.
  bool refresh(bool force = false);  // true when the maps were read again
  // The module whose reported range holds `pc`, or null. Not dwfl_addrmodule alone: elfutils
  // 0.188 keeps no end for a module reported right at the end of the one before it, and answers
  // that module for any address in the gap after it. A library loaded there since the maps were
  // read was then named and unwound as the one below it, and the maps never read again (every
  // frame of an extension imported after the start lost, liblzma's name on them).
  Dwfl_Module* module_at(uint64_t pc);
  // Symbols for the instruction at `pc` (for callers: return address less one), innermost first:
  // the calls inlined there, then the function that holds it. Appends to `out`.
  void name(uint64_t pc, std::vector<uint32_t>& out);

  const Symbol& symbol(uint32_t id) const { return symbols_[id]; }
  Symbol& symbol(uint32_t id) { return symbols_[id]; }

  // What find_elf needs to open a module's file from our mount namespace.
  struct ModuleFile {
    pid_t pid = 0;
    std::string path;     // as the target names it
    uint64_t inode = 0;
    uint64_t start = 0, end = 0;  // one of its mappings (for /proc/PID/map_files)
    bool vdso = false;
  };

 private:
  struct Located {
    std::string function, source;
    int line = 0;
  };
  uint32_t intern(Symbol symbol);
  void resolve(uint64_t pc, std::vector<uint32_t>& out);
  std::optional<std::string> symbol_name(Dwfl_Module* module, uint64_t pc, uint64_t function_start);
  void inline_chain(Dwfl_Module* module, uint64_t pc, std::vector<Located>& chain);
  struct FunctionRange {
    uint64_t low, high;  // DWARF addresses
    Dwarf_Off die;
  };
  struct InlinedCall {
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    int32_t parent = -1;  // the inlined call it is in; -1: the function itself
    std::string name, call_file;
    int call_line = 0;
  };
  struct InlinedCalls {
    std::string name;  // the function's
    std::vector<InlinedCall> calls;
  };
  const std::vector<FunctionRange>& functions_of(Dwarf_Die* cu);
  const InlinedCalls& inlined_calls(Dwarf_Die* cu, Dwarf_Die* function);
  uint64_t cfi_function_start(Dwfl_Module* module, uint64_t pc);
  const std::vector<uint64_t>& fde_starts(Dwfl_Module* module);

  pid_t pid_;
  const Options& options_;
  Stats& stats_;
  std::string debuginfo_path_;
  char* debuginfo_path_ptr_ = nullptr;
  std::unique_ptr<Dwfl_Callbacks> callbacks_;
  Dwfl* dwfl_ = nullptr;
  std::deque<ModuleFile> files_;  // stable addresses: libdw keeps pointers to them
  int64_t last_refresh_ns_ = 0;

  std::vector<Symbol> symbols_;
  std::unordered_map<std::string, uint32_t> symbol_ids_;
  // pc -> [offset, offset + count) in chains_
  std::unordered_map<uint64_t, std::pair<uint32_t, uint32_t>> by_pc_;
  std::vector<uint32_t> chains_;
  std::unordered_map<Dwfl_Module*, std::vector<uint64_t>> fde_starts_;  // per module, sorted
  struct NamedRange {
    uint64_t start, end;
    std::string name;
  };
  std::unordered_map<Dwfl_Module*, std::vector<NamedRange>> named_ranges_;  // per module, by start
  struct DieKey {
    size_t operator()(const std::pair<Dwarf*, Dwarf_Off>& k) const {
      return std::hash<const void*>()(k.first) ^ std::hash<Dwarf_Off>()(k.second);
    }
  };
  std::unordered_map<std::pair<Dwarf*, Dwarf_Off>, std::vector<FunctionRange>, DieKey> functions_;  // per CU
  std::unordered_map<std::pair<Dwarf*, Dwarf_Off>, InlinedCalls, DieKey> inlined_;  // per function
};

// True for the names CPython's evaluation loop has in symbol tables and DWARF (GCC may split it
// into parts: _PyEval_EvalFrameDefault.cold).
bool is_eval_function(std::string_view name);

}  // namespace swprof::native::detail

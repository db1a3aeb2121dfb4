// asyncio seen from outside: every task of the process, found in asyncio's own registry (not by
// catching it running), with its name, state, loop and thread, and what it awaits: the chain of
// suspended coroutines down to the innermost awaitable, as RawFrames the CodeCache resolves.
// One reader for 3.8–3.15, driven by Layout::Asyncio. Reads only; a task that changes or vanishes
// under the read is retried once, then skipped and counted.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "swprof/python.h"

namespace swprof::python {

enum class TaskState : uint8_t { kPending, kCancelled, kFinished };
const char* task_state_name(TaskState state);  // "pending", "cancelled", "finished"

// Where an await chain ends when it does not end in a coroutine frame.
struct Awaitable {
  uint64_t address = 0;   // 0: the chain ends in a frame (not started yet, or at a bare `yield`)
  std::string type_name;  // type(x).__name__: "Future", "_GatheringFuture", "Task", ...
  uint64_t task = 0;      // the object is an asyncio Task: its address (one of the scan's tasks)
};

struct AsyncTask {
  uint64_t address = 0;
  std::string name;              // Task.get_name(): "Task-N" unless named
  TaskState state = TaskState::kPending;
  uint64_t coro = 0;             // its coroutine (0 once a finished task let go of it)
  uint64_t coro_frame = 0;       // the coroutine's frame: while the task runs, this frame is on the
                                 // stack of the thread running it (Walker::walk reports it there)
  uint64_t loop = 0;
  uint64_t thread_id = 0;        // threading.get_ident() of the thread running the loop; 0: not running
  int64_t native_id = 0;         // that thread's OS id, when it is among the threads scanned
  bool running = false;          // its coroutine is executing right now (frames: that coroutine only)
  bool started = true;           // false: scheduled, its coroutine has not run its first step (its
                                 // function not entered yet; frames: that coroutine, at its start)
  std::vector<RawFrame> frames;  // the await chain, innermost first (as Walker::walk): the task's
                                 // coroutine last, the coroutine that awaits the leaf first
  Awaitable awaiting;            // what the innermost coroutine awaits
  uint64_t fut_waiter = 0;       // the future the task is blocked on (Task._fut_waiter), 0 if none
  std::vector<uint64_t> awaited_by;  // tasks that wait for this one (see AsyncioReader::scan)
};

struct AsyncioScanOptions {
  bool awaiters = true;      // fill AsyncTask::awaited_by
  size_t max_tasks = 100000;
  size_t max_depth = 256;    // coroutines per await chain; a longer chain keeps its outermost part
};

struct AsyncioStats {
  std::string registry;         // where the tasks were found
  std::string offsets;          // where the task offsets came from
  size_t registry_entries = 0;  // entries read from the registry (dead weak references included)
  size_t tasks = 0;             // tasks returned
  size_t torn = 0;              // tasks that changed or vanished under the read twice: skipped
  size_t invalid = 0;           // registry entries that are not live tasks: skipped
  size_t truncated = 0;         // chains cut at max_depth
  uint64_t reads = 0;           // process_vm_readv calls of the scan
};

class AsyncioReader {
 public:
  AsyncioReader(const target::Memory& memory, const Interpreter& interp);

  // Every asyncio task of the process, in registry order. `threads` (Walker::read_threads) tell
  // which thread runs each loop and, 3.14+, hold the task lists. Returns false when there is
  // nothing to read yet (asyncio not imported) or the registry is unreadable: problem() says which.
  //
  // awaited_by, from what the runtime keeps: a task whose _fut_waiter is the task (await task), the
  // children of a gather() its awaiter waits on, a TaskGroup's tasks (their done callback is bound
  // to the group, which names its parent task), wait_for()'s inner task up to 3.11 (its callback
  // holds the waiter future the outer task awaits), and 3.14+ the task's own fut_awaited_by.
  bool scan(std::span<const PyThread> threads, std::vector<AsyncTask>& out, const AsyncioScanOptions& options = {});

  // The same for tasks already known (from an earlier scan): their chains, without walking the
  // registry. An address that no longer holds a task is left out and counted in stats().invalid.
  void read(std::span<const uint64_t> tasks, std::span<const PyThread> threads, std::vector<AsyncTask>& out,
            const AsyncioScanOptions& options = {});

  const AsyncioStats& stats() const { return stats_; }
  const std::string& problem() const { return problem_; }
  const Layout::Asyncio& layout() const { return layout_.asyncio; }

 private:
  enum class Kind : uint8_t {
    kOther, kCoroutine, kGenerator, kFutureIter, kTask, kFuture, kSet, kList, kTuple, kBoundMethod, kBuiltinMethod,
    kPartial, kWakeup, kInt, kStr, kNone,
  };
  struct TypeInfo {
    Kind kind = Kind::kOther;
    bool subclass = false;  // a Python subclass of Task or Future (it has a __dict__)
    std::string name;       // type(x).__name__
  };
  struct Candidate;
  struct Chain;
  // What a coroutine's frame says about it: from a generator's head (3.11+, the frame is
  // embedded) or from its frame object (≤3.10).
  struct Coroutine {
    bool finished = false, executing = false, created = false, suspended = false;
    bool yield_from = false;    // suspended in an await (3.13+ and ≤3.10: known here)
    uint64_t code = 0, instr = 0, stack = 0;  // stack: depth, stack top pointer, or f_stacktop
  };

  void begin(std::vector<AsyncTask>& out);
  void finish(const std::vector<AsyncTask>& out);
  void read(std::vector<Candidate>& tasks, std::span<const PyThread> threads, std::vector<AsyncTask>& out,
            const AsyncioScanOptions& options);
  const TypeInfo& type_info(uint64_t type);
  bool find_debug_section();
  bool registry_tasks(std::span<const PyThread> threads, std::vector<Candidate>& out, size_t max_tasks);
  bool weak_set_or_set(uint64_t object, bool weak, std::vector<Candidate>& out, size_t max_tasks);
  bool set_keys(uint64_t set, std::vector<uint64_t>& keys);
  void thread_lists(std::span<const PyThread> threads, std::vector<Candidate>& out, size_t max_tasks);
  void read_tasks(std::vector<Candidate>& candidates);
  bool task_fields(Candidate& c, const uint8_t* bytes);
  void read_names(std::vector<Candidate>& candidates, std::span<const size_t> which);
  void attribute_threads(std::span<const PyThread> threads, std::vector<AsyncTask>& tasks);
  Coroutine coroutine(const uint8_t* bytes) const;
  void build_chains(std::vector<Chain>& chains, std::span<const size_t> which, size_t max_depth);
  std::vector<size_t> moved(const std::vector<Chain>& chains, const std::vector<Candidate>& tasks,
                            std::span<const size_t> which);
  void link_awaiters(const std::vector<Candidate>& candidates, std::vector<AsyncTask>& tasks);
  bool list_items(uint64_t list, std::vector<uint64_t>& items, size_t max_items);
  const std::string* bytecode(uint64_t code, uint64_t co_code);
  void batch(std::vector<target::Memory::Request>& requests);

  const target::Memory& memory_;
  const Interpreter& interp_;
  Layout layout_;  // the interpreter's, with what the AsyncioDebug section says (3.14+)
  ObjectReader objects_;
  AsyncioStats stats_;
  std::string problem_;
  std::unordered_map<uint64_t, TypeInfo> types_;
  std::unordered_map<uint64_t, std::pair<uint64_t, std::string>> bytecodes_;  // ≤3.10: code -> co_code, bytes
  bool section_found_ = false;
  int64_t next_section_search_us_ = 0;
  std::string offsets_;
  uint64_t registry_sets_[2] = {0, 0};  // ≤3.13: the registry's set objects, found once
  uint64_t set_type_ = 0;
  std::vector<uint8_t> window_buffer_;
  uint64_t syscalls_at_start_ = 0;
  std::unordered_map<uint64_t, std::pair<uint64_t, int64_t>> loop_threads_;  // loop -> (thread, read at µs)
};

}  // namespace swprof::python

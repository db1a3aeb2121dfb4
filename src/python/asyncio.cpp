// The asyncio tasks of a process, read from outside.
//
// Where the tasks are: asyncio registers every task it creates. 3.8–3.11 keep them in
// asyncio.tasks._all_tasks, a WeakSet (the _asyncio module's, which Task.__init__ adds to);
// 3.12–3.13 in _scheduled_tasks (a WeakSet) plus _eager_tasks (a set of the tasks running their
// first step eagerly); 3.14+ in a linked list per thread state (the thread that created the task)
// and one per interpreter for the tasks of threads that ended, threaded through TaskObj.task_node.
//
// What a task awaits: its coroutine, suspended, sits in an `await` (a yield from) whose target is
// on the top of the coroutine frame's value stack (CPython's _PyGen_yf): another coroutine, whose
// own frame continues the chain, or an iterator over a Future (FutureIter), which ends it. Frames
// are embedded in the coroutine object from 3.11 on, frame objects before.
//
// All tasks are read together, breadth first: one batched read per level of the await chains, so
// a scan costs a few system calls per level, not per task. Afterwards every object a chain went
// through is read again; a task whose coroutines moved in between is read once more, then dropped.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include <fmt/format.h>

#include "python/raw.h"
#include "swprof/asyncio.h"
#include "swprof/common.h"
#include "swprof/elf.h"

namespace swprof::python {

namespace {

constexpr uint32_t kObType = 8;
constexpr size_t kMaxSetSlots = 1u << 22;
constexpr size_t kMaxCallbacks = 64;
constexpr size_t kNameBytes = 128;      // enough for the header and a name of ~80 ASCII characters
constexpr size_t kMaxTypeBases = 32;
constexpr const char* kNotImported = "asyncio is not imported (no asyncio.tasks module)";
// A coroutine's value stack follows its frame's fields: read this much more with them, and the
// awaited object on the stack's top usually comes in the same read.
constexpr uint32_t kStackWindow = 192;

uint64_t untag(uint64_t ref, bool tagged) { return tagged ? ref & ~uint64_t(3) : ref; }

bool live_object(const uint8_t* bytes, int minor) {
  // 3.12+ keeps flags in the upper half of the reference count word.
  uint64_t refcnt = load<uint64_t>(bytes);
  return minor >= 12 ? static_cast<uint32_t>(refcnt) != 0 : static_cast<int64_t>(refcnt) > 0;
}

std::string short_name(std::string_view tp_name) {
  size_t dot = tp_name.rfind('.');
  return std::string(dot == std::string_view::npos ? tp_name : tp_name.substr(dot + 1));
}

}  // namespace

const char* task_state_name(TaskState state) {
  switch (state) {
    case TaskState::kPending: return "pending";
    case TaskState::kCancelled: return "cancelled";
    case TaskState::kFinished: return "finished";
  }
  return "unknown";
}

// A registry entry about to be read as a task, and then the task's fields.
struct AsyncioReader::Candidate {
  uint64_t address = 0;
  std::vector<uint8_t> bytes;  // the TaskObj, task_size bytes; empty until read
  uint64_t loop = 0, coro = 0, name = 0, fut_waiter = 0;
  TaskState state = TaskState::kPending;
  std::string name_text;  // empty: unreadable (the task is read again)
};

// One task's await chain while it is read, level by level.
struct AsyncioReader::Chain {
  uint64_t cursor = 0;    // the next object to look at; 0 when the chain is complete
  std::vector<RawFrame> frames;  // outermost first while building
  Awaitable awaiting;
  bool running = false, truncated = false;
  bool started = true;  // false: the task's own coroutine has not run its first step
  bool torn = false;  // an object on the way could not be read, or was not one
  // Each coroutine it went through, to read again: the bytes that were decoded (a generator's
  // head, or a frame object), what they said, and the stack slot holding the awaited object.
  struct Seen {
    uint64_t object = 0;
    uint32_t size = 0;
    bool executing = false;
    uint64_t code = 0, instr = 0, stack = 0, stack_at = 0, awaited = 0;
  };
  std::vector<Seen> seen;
  // Work between the batched reads of one level.
  uint64_t frame = 0, stack_at = 0, check_at = 0;
  int32_t lasti = -1;
  bool generator = false;  // a generator (`yield` or `yield from`), not an `async def` coroutine
  const uint8_t* window = nullptr;  // the bytes this level read of the coroutine's frame
};

AsyncioReader::AsyncioReader(const target::Memory& memory, const Interpreter& interp)
    : memory_(memory), interp_(interp), layout_(interp.layout), objects_(memory, layout_) {
  offsets_ = "built-in table";
}

// Objects of a kind are allocated together (CPython's small-object allocator fills 16 KiB pools
// with objects of one size), so many tasks, coroutines and futures share a pool. The kernel's cost
// of process_vm_readv is per range and per page, not per byte: where several requests fall in one
// aligned 16 KiB window, read the window once and copy them out of it.
void AsyncioReader::batch(std::vector<target::Memory::Request>& requests) {
  if (requests.empty()) return;
  constexpr uint64_t kWindow = 16384;
  constexpr size_t kWorthAWindow = 4;  // requests in one window before it is read whole
  if (requests.size() < 2 * kWorthAWindow) {
    memory_.read_batch(requests);
    return;
  }
  std::vector<size_t> order(requests.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return requests[x].address < requests[y].address; });
  auto window_of = [&](const target::Memory::Request& r) { return r.address & ~(kWindow - 1); };
  auto fits = [&](const target::Memory::Request& r) { return r.address + r.size <= window_of(r) + kWindow; };
  std::vector<target::Memory::Request> reads;    // windows, then the requests read alone
  std::vector<std::pair<size_t, size_t>> groups;  // [begin, end) in `order` served by window reads[k]
  std::vector<size_t> alone;
  window_buffer_.clear();
  size_t windows = 0;
  for (size_t b = 0; b < order.size();) {
    size_t e = b;
    uint64_t w = window_of(requests[order[b]]);
    while (e < order.size() && window_of(requests[order[e]]) == w && fits(requests[order[e]])) ++e;
    if (e - b >= kWorthAWindow) {
      groups.emplace_back(b, e);
      ++windows;
    } else {
      for (size_t k = b; k < std::max(e, b + 1); ++k) alone.push_back(order[k]);
    }
    b = std::max(e, b + 1);
  }
  window_buffer_.resize(windows * kWindow);
  for (size_t k = 0; k < groups.size(); ++k)
    reads.push_back({window_of(requests[order[groups[k].first]]), window_buffer_.data() + k * kWindow, kWindow, false});
  memory_.read_batch(reads);
  for (size_t k = 0; k < groups.size(); ++k) {
    for (size_t j = groups[k].first; j < groups[k].second; ++j) {
      auto& r = requests[order[j]];
      if (!reads[k].ok) {
        alone.push_back(order[j]);  // the window runs off a mapping: read these alone
        continue;
      }
      std::memcpy(r.out, window_buffer_.data() + k * kWindow + (r.address - reads[k].address), r.size);
      r.ok = true;
    }
  }
  if (alone.empty()) return;
  reads.clear();
  for (size_t i : alone) reads.push_back(requests[i]);
  memory_.read_batch(reads);
  for (size_t k = 0; k < alone.size(); ++k) requests[alone[k]].ok = reads[k].ok;
}

// ---------------------------------------------------------------------------------------------
// Types, classified once by name (and base classes, for subclasses of Task and Future).

const AsyncioReader::TypeInfo& AsyncioReader::type_info(uint64_t type) {
  static const TypeInfo unknown;
  if (!plausible_pointer(type)) return unknown;
  auto it = types_.find(type);
  if (it != types_.end()) return it->second;
  TypeInfo info;
  std::string tp_name = objects_.type_name(type);
  info.name = short_name(tp_name);
  static const std::pair<std::string_view, Kind> kNames[] = {
      {"coroutine", Kind::kCoroutine}, {"generator", Kind::kGenerator}, {"_asyncio.FutureIter", Kind::kFutureIter},
      {"_asyncio.Task", Kind::kTask}, {"_asyncio.Future", Kind::kFuture}, {"set", Kind::kSet},
      {"list", Kind::kList}, {"tuple", Kind::kTuple}, {"method", Kind::kBoundMethod},
      {"builtin_function_or_method", Kind::kBuiltinMethod}, {"functools.partial", Kind::kPartial},
      {"TaskWakeupMethWrapper", Kind::kWakeup}, {"int", Kind::kInt}, {"str", Kind::kStr},
      {"NoneType", Kind::kNone},
  };
  for (auto [name, kind] : kNames)
    if (tp_name == name) info.kind = kind;
  // A subclass of Task or Future (gather's _GatheringFuture, a user's Task) has their layout.
  uint64_t base = type;
  for (size_t depth = 0; info.kind == Kind::kOther && depth < kMaxTypeBases; ++depth) {
    if (!memory_.read_value(base + layout_.asyncio.type_base, base) || !plausible_pointer(base)) break;
    std::string base_name = objects_.type_name(base);
    if (base_name == "_asyncio.Task") info.kind = Kind::kTask;
    else if (base_name == "_asyncio.Future") info.kind = Kind::kFuture;
    info.subclass = info.kind != Kind::kOther;
  }
  if (tp_name.empty()) return unknown;  // unreadable: do not remember it
  return types_.emplace(type, std::move(info)).first->second;
}

// ---------------------------------------------------------------------------------------------
// 3.14+: the task offsets the target publishes in its "AsyncioDebug" section (_asyncio's shared
// object, or the executable when _asyncio is built in), read from the file it maps.

bool AsyncioReader::find_debug_section() {
  auto& a = layout_.asyncio;
  for (const auto& m : target::read_maps(memory_.pid())) {
    if (m.path.empty() || m.file_offset != 0) continue;
    std::string base = m.path.substr(m.path.rfind('/') + 1);
    if (base.rfind("_asyncio", 0) != 0 && m.path != interp_.binary) continue;
    for (const auto& path : target::host_paths(memory_.pid(), m)) {
      auto elf = target::ElfFile::open(path);
      if (!elf) continue;
      auto section = elf->section(".AsyncioDebug");
      if (!section) break;
      // struct _Py_AsyncioModuleDebugOffsets: task {size, task_name, task_awaited_by, task_is_task,
      // task_awaited_by_is_set, task_coro, task_node}, interpreter {size, asyncio_tasks_head},
      // thread {size, asyncio_running_loop, asyncio_running_task, asyncio_tasks_head}.
      std::string_view bytes = elf->section_bytes(*section);
      constexpr size_t kFields = 13;
      if (bytes.size() < kFields * 8) break;
      uint64_t v[kFields];
      std::memcpy(v, bytes.data(), sizeof v);
      bool plausible = v[0] > 0 && v[0] < 4096 && v[1] < v[0] && v[2] < v[0] && v[4] < v[0] && v[5] < v[0] &&
                       v[6] + 16 <= v[0] && v[7] > 0 && v[7] < (64u << 20) && v[8] + 16 <= v[7] && v[9] > 0 &&
                       v[9] < (1u << 20) && v[10] < v[9] && v[11] < v[9] && v[12] + 16 <= v[9];
      if (!plausible) {
        offsets_ = fmt::format("built-in table (the AsyncioDebug section of {} is implausible)", m.path);
        return true;
      }
      a.task_size = static_cast<uint32_t>(v[0]);
      a.task_name = static_cast<uint32_t>(v[1]);
      a.task_awaited_by = static_cast<uint32_t>(v[2]);
      a.task_awaited_by_is_set = static_cast<uint32_t>(v[4]);
      a.task_coro = static_cast<uint32_t>(v[5]);
      a.task_node = static_cast<uint32_t>(v[6]);
      a.interp_tasks_head = static_cast<uint32_t>(v[8]);
      a.tstate_running_loop = static_cast<uint32_t>(v[10]);
      a.tstate_running_task = static_cast<uint32_t>(v[11]);
      a.tstate_tasks_head = static_cast<uint32_t>(v[12]);
      a.from_debug_section = true;
      offsets_ = "AsyncioDebug section of " + m.path;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The registry.

bool AsyncioReader::set_keys(uint64_t set, std::vector<uint64_t>& keys) {
  keys.clear();
  const auto& a = layout_.asyncio;
  uint8_t head[64];
  uint32_t need = std::max(a.set_mask, a.set_table) + 8;
  if (need > sizeof head || !memory_.read(set, head, need) || !live_object(head, layout_.version.minor)) return false;
  uint64_t type = load<uint64_t>(head + kObType);
  if (set_type_ ? type != set_type_ : type_info(type).kind != Kind::kSet) return false;
  set_type_ = type;
  uint64_t mask = load<uint64_t>(head + a.set_mask), table = load<uint64_t>(head + a.set_table);
  if (mask + 1 > kMaxSetSlots || ((mask + 1) & mask) != 0 || !plausible_pointer(table)) return false;
  std::vector<uint64_t> slots((mask + 1) * 2);  // setentry {key, hash}
  if (!memory_.read(table, slots.data(), slots.size() * 8)) return false;
  for (size_t i = 0; i < slots.size(); i += 2)
    if (plausible_pointer(slots[i])) keys.push_back(slots[i]);  // NULL: empty; the dummy fails later
  return true;
}

bool AsyncioReader::weak_set_or_set(uint64_t object, bool weak, std::vector<Candidate>& out, size_t max_tasks) {
  std::vector<uint64_t> keys;
  if (!set_keys(object, keys)) return false;
  stats_.registry_entries += keys.size();
  if (weak) {
    // WeakSet.data holds weakref.ref objects: the task is their wr_object (None once dead).
    std::vector<uint64_t> referents(keys.size(), 0);
    std::vector<target::Memory::Request> requests(keys.size());
    for (size_t i = 0; i < keys.size(); ++i)
      requests[i] = {keys[i] + layout_.asyncio.weakref_object, &referents[i], 8, false};
    batch(requests);
    keys.clear();
    for (size_t i = 0; i < referents.size(); ++i)
      if (requests[i].ok && plausible_pointer(referents[i])) keys.push_back(referents[i]);
  }
  for (uint64_t k : keys) {
    if (out.size() >= max_tasks) break;
    out.push_back(Candidate{k});
  }
  return true;
}

void AsyncioReader::thread_lists(std::span<const PyThread> threads, std::vector<Candidate>& out, size_t max_tasks) {
  const auto& a = layout_.asyncio;
  std::vector<uint64_t> heads;
  for (const auto& t : threads) {
    heads.push_back(t.tstate + a.tstate_tasks_head);
    uint64_t interp_head = t.interp + a.interp_tasks_head;
    if (std::find(heads.begin(), heads.end(), interp_head) == heads.end()) heads.push_back(interp_head);
  }
  // Following the list costs a read per task; tasks created one after another share allocator
  // pools, so read the 16 KiB window around a task and find the next ones in it.
  constexpr uint64_t kWindow = 16384;
  constexpr size_t kMaxWindows = 256;
  struct Window {
    uint64_t base;
    std::vector<uint8_t> bytes;
  };
  std::vector<Window> windows;
  std::vector<uint8_t> task(a.task_size);
  auto read_task = [&](uint64_t address) -> bool {
    uint64_t base = address & ~(kWindow - 1);
    bool fits = address + task.size() <= base + kWindow;
    for (const auto& w : windows)
      if (fits && w.base == base) {
        std::memcpy(task.data(), w.bytes.data() + (address - base), task.size());
        return true;
      }
    if (fits && windows.size() < kMaxWindows) {
      Window w{base, std::vector<uint8_t>(kWindow)};
      if (memory_.read(base, w.bytes.data(), kWindow)) {
        std::memcpy(task.data(), w.bytes.data() + (address - base), task.size());
        windows.push_back(std::move(w));
        return true;
      }
    }
    return memory_.read(address, task.data(), task.size());
  };
  for (uint64_t head : heads) {
    // A circular list: head -> task_node of each task -> back to head. Each node is read with its
    // whole task, which tells whether it is one before its `next` is trusted.
    uint64_t node = 0;
    if (!memory_.read_value(head, node) || node == 0) continue;  // 0: a thread state being set up
    size_t steps = 0;
    while (node != head && out.size() < max_tasks) {
      ++stats_.registry_entries;
      if (++steps > max_tasks || !plausible_pointer(node) || node < a.task_node) {
        ++stats_.torn;
        break;
      }
      uint64_t address = node - a.task_node;
      if (!read_task(address) || !live_object(task.data(), layout_.version.minor) ||
          type_info(load<uint64_t>(task.data() + kObType)).kind != Kind::kTask) {
        ++stats_.torn;  // the list changed under us: keep what came before
        break;
      }
      out.push_back(Candidate{address, task});
      node = load<uint64_t>(task.data() + a.task_node);
    }
  }
}

bool AsyncioReader::registry_tasks(std::span<const PyThread> threads, std::vector<Candidate>& out, size_t max_tasks) {
  using Registry = Layout::Asyncio::Registry;
  const auto& a = layout_.asyncio;
  if (a.registry == Registry::kThreadLists) {
    // _asyncio publishes its offsets once it is loaded; until then there are no tasks to read
    // (the tables serve a build that does not publish them). Look again at most once a second.
    int64_t now = monotonic_us();
    if (!section_found_ && now >= next_section_search_us_) {
      section_found_ = find_debug_section();
      next_section_search_us_ = now + 1000000;
    }
    stats_.registry = "per-thread task lists (_PyThreadStateImpl.asyncio_tasks_head) and the interpreter's";
    thread_lists(threads, out, max_tasks);
    if (out.empty() && !objects_.module_global(interp_.runtime, "asyncio.tasks", "Task")) {
      problem_ = kNotImported;
      return false;
    }
    return true;
  }
  bool eager = a.registry == Registry::kScheduledEager;
  const char* names[2] = {eager ? "_scheduled_tasks" : "_all_tasks", eager ? "_eager_tasks" : nullptr};
  stats_.registry = eager ? "asyncio.tasks._scheduled_tasks (WeakSet) + asyncio.tasks._eager_tasks (set)"
                          : "asyncio.tasks._all_tasks (WeakSet)";
  for (int i = 0; i < 2 && names[i]; ++i) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      uint64_t& set = registry_sets_[i];
      if (!set) {
        uint64_t holder = objects_.module_global(interp_.runtime, "asyncio.tasks", names[i]);
        if (!holder) {
          problem_ = kNotImported;
          return false;
        }
        set = i == 0 ? objects_.instance_attr(holder, "data") : holder;  // WeakSet keeps a set in .data
        if (!set) {
          problem_ = fmt::format("asyncio.tasks.{} is not readable", names[i]);
          return false;
        }
      }
      if (weak_set_or_set(set, i == 0, out, max_tasks)) break;
      set = 0;  // rebound or freed: look it up again
      if (attempt == 1) {
        problem_ = fmt::format("asyncio.tasks.{} is not readable", names[i]);
        return false;
      }
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The tasks' own fields.

bool AsyncioReader::task_fields(Candidate& c, const uint8_t* b) {
  const auto& a = layout_.asyncio;
  if (!live_object(b, layout_.version.minor) || type_info(load<uint64_t>(b + kObType)).kind != Kind::kTask) return false;
  int32_t state = load<int32_t>(b + a.task_state);
  if (state < 0 || state > 2) return false;
  c.state = static_cast<TaskState>(state);
  c.loop = load<uint64_t>(b + a.task_loop);
  c.coro = load<uint64_t>(b + a.task_coro);
  c.name = load<uint64_t>(b + a.task_name);
  c.fut_waiter = load<uint64_t>(b + a.task_fut_waiter);
  auto pointer_or_null = [](uint64_t p) { return p == 0 || plausible_pointer(p); };
  return plausible_pointer(c.loop) && pointer_or_null(c.coro) && pointer_or_null(c.name) &&
         pointer_or_null(c.fut_waiter);
}

void AsyncioReader::read_tasks(std::vector<Candidate>& candidates) {
  const size_t size = layout_.asyncio.task_size;
  std::vector<target::Memory::Request> requests;
  std::vector<size_t> which;
  for (size_t i = 0; i < candidates.size(); ++i)
    if (candidates[i].bytes.empty()) {
      candidates[i].bytes.resize(size);
      requests.push_back({candidates[i].address, candidates[i].bytes.data(), size, false});
      which.push_back(i);
    }
  batch(requests);
  for (size_t k = 0; k < requests.size(); ++k)
    if (!requests[k].ok) candidates[which[k]].bytes.clear();
  std::unordered_set<uint64_t> seen;
  std::vector<Candidate> kept;
  for (auto& c : candidates) {
    if (!seen.insert(c.address).second) continue;  // 3.12–3.13: in both sets while it changes over
    if (c.bytes.empty() || !task_fields(c, c.bytes.data())) {
      // A dead weak reference points at None: not a task any more, and nothing wrong.
      if (c.bytes.empty() || type_info(load<uint64_t>(c.bytes.data() + kObType)).kind != Kind::kNone) ++stats_.invalid;
      continue;
    }
    kept.push_back(std::move(c));
  }
  candidates = std::move(kept);
}

void AsyncioReader::read_names(std::vector<Candidate>& candidates, std::span<const size_t> which) {
  // Named tasks hold a str; from 3.12 a task named by default holds its number, formatted on
  // demand as "Task-N". One batched read covers both for all tasks; longer names are read apart.
  std::vector<uint8_t> bytes(which.size() * kNameBytes);
  std::vector<target::Memory::Request> requests(which.size());
  for (size_t k = 0; k < which.size(); ++k)
    requests[k] = {candidates[which[k]].name, bytes.data() + k * kNameBytes, kNameBytes, false};
  batch(requests);
  for (size_t k = 0; k < which.size(); ++k) {
    Candidate& c = candidates[which[k]];
    c.name_text.clear();
    std::span<const uint8_t> head(bytes.data() + k * kNameBytes, requests[k].ok ? kNameBytes : 0);
    int64_t number = 0;
    if (!c.name) continue;
    if (!objects_.decode_str(c.name, head, c.name_text, 1024) && !objects_.read_str(c.name, c.name_text, 1024) &&
        (objects_.decode_int(c.name, head, number) || objects_.read_int(c.name, number)))
      c.name_text = fmt::format("Task-{}", number);
  }
}

void AsyncioReader::attribute_threads(std::span<const PyThread> threads, std::vector<AsyncTask>& tasks) {
  // The thread running a loop: 3.14+ each thread state holds its running loop; before, the loop
  // remembers its thread (BaseEventLoop._thread_id, set by run_forever, None when stopped).
  std::unordered_map<uint64_t, uint64_t> thread_of_loop;
  const auto& a = layout_.asyncio;
  if (a.tstate_running_loop != kAbsent) {
    std::vector<uint64_t> loops(threads.size(), 0);
    std::vector<target::Memory::Request> requests(threads.size());
    for (size_t i = 0; i < threads.size(); ++i)
      requests[i] = {threads[i].tstate + a.tstate_running_loop, &loops[i], 8, false};
    batch(requests);
    for (size_t i = 0; i < threads.size(); ++i)
      if (requests[i].ok && plausible_pointer(loops[i])) thread_of_loop[loops[i]] = threads[i].thread_id;
  }
  // A loop's _thread_id takes a dozen reads to find and changes only when the loop starts or
  // stops: it is remembered for a while, as long as that thread is still there. Not while it is
  // None: asyncio.run makes the main task before run_forever sets it, and a None kept 200 ms
  // left every task of the loop on no thread, unsampled (a busy machine's tick fell between the
  // two: ten handlers' first 90 ms of waiting were lost).
  constexpr int64_t kLoopThreadTtlUs = 200000;
  int64_t now = monotonic_us();
  auto known = [&](uint64_t id) {
    return std::any_of(threads.begin(), threads.end(), [&](const PyThread& t) { return t.thread_id == id; });
  };
  for (auto& t : tasks) {
    auto it = thread_of_loop.find(t.loop);
    if (it == thread_of_loop.end()) {
      auto cached = loop_threads_.find(t.loop);
      if (cached == loop_threads_.end() || !cached->second.first || now - cached->second.second > kLoopThreadTtlUs ||
          !known(cached->second.first)) {
        if (loop_threads_.size() > 1024) loop_threads_.clear();
        int64_t ident = 0;
        uint64_t value = objects_.instance_attr(t.loop, "_thread_id");
        uint64_t thread = value && objects_.read_int(value, ident) ? uint64_t(ident) : 0;
        cached = loop_threads_.insert_or_assign(t.loop, std::make_pair(thread, now)).first;
      }
      it = thread_of_loop.emplace(t.loop, cached->second.first).first;
    }
    t.thread_id = it->second;
    for (const auto& th : threads)
      if (t.thread_id && th.thread_id == t.thread_id) t.native_id = th.native_id;
  }
}

// ---------------------------------------------------------------------------------------------
// Await chains.

// ≤3.10: the code's bytecode (to see whether a frame sits in a YIELD_FROM), cached per code object
// and its co_code, both read afresh each time so that a reused address is noticed.
const std::string* AsyncioReader::bytecode(uint64_t code, uint64_t co_code) {
  auto it = bytecodes_.find(code);
  if (it != bytecodes_.end() && it->second.first == co_code) return &it->second.second;
  if (bytecodes_.size() > 4096) bytecodes_.clear();
  std::string bytes;
  if (!objects_.read_bytes(co_code, bytes, 1 << 20)) return nullptr;
  return &(bytecodes_[code] = {co_code, std::move(bytes)}).second;
}

AsyncioReader::Coroutine AsyncioReader::coroutine(const uint8_t* b) const {
  const Layout& l = layout_;
  const auto& a = l.asyncio;
  Coroutine c;
  if (l.frame_model == FrameModel::kInterpreterFrame) {
    int8_t state = load<int8_t>(b + a.gen_frame_state);
    const uint8_t* f = b + a.gen_iframe;
    c.finished = state == a.state_cleared || state == a.state_completed;
    c.executing = state == a.state_executing;
    c.created = state == a.state_created;
    c.yield_from = state == a.state_suspended_yield_from ||
                   (a.state_suspended_yield_from_locked != Layout::Asyncio::kNoState &&
                    state == a.state_suspended_yield_from_locked);
    c.suspended = state == a.state_suspended || c.yield_from;
    c.code = untag(load<uint64_t>(f + l.frame.code), l.tagged_code_ref);
    c.instr = load<uint64_t>(f + l.frame.instr);
    c.stack = a.iframe_stackpointer != kAbsent ? load<uint64_t>(f + a.iframe_stackpointer)
                                               : load<uint32_t>(f + a.iframe_stacktop);
  } else {
    int32_t lasti = load<int32_t>(b + l.frame.instr);
    c.code = load<uint64_t>(b + l.frame.code);
    c.instr = static_cast<uint32_t>(lasti);
    if (a.frame_executing != kAbsent) {  // 3.8–3.9: f_stacktop is set while suspended
      c.executing = load<uint8_t>(b + a.frame_executing) != 0;
      c.stack = load<uint64_t>(b + a.frame_stacktop);
      c.created = lasti < 0;
      c.suspended = !c.executing && c.stack != 0 && lasti >= 0;
      c.finished = !c.executing && !c.suspended && !c.created;
    } else {  // 3.10
      int8_t state = load<int8_t>(b + a.frame_state);
      c.executing = state == a.state_executing;
      c.created = state == a.state_created;
      c.suspended = state == a.state_suspended && lasti >= 0;
      c.finished = state >= a.state_completed;
      c.stack = static_cast<uint32_t>(load<int32_t>(b + a.frame_stackdepth));
    }
  }
  return c;
}

void AsyncioReader::build_chains(std::vector<Chain>& chains, std::span<const size_t> which, size_t max_depth) {
  const Layout& l = layout_;
  const auto& a = l.asyncio;
  const bool embedded = l.frame_model == FrameModel::kInterpreterFrame;
  const bool state_says_await = a.state_suspended_yield_from != Layout::Asyncio::kNoState;  // 3.13+
  // Level 1 reads the object a chain has reached: 3.11+ a coroutine's head, its embedded frame's
  // fields and the start of its value stack; ≤3.10 the coroutine's head only, and level 2 its
  // frame object with the start of the value stack. The awaited object, on the stack's top, comes
  // with them unless the frame has many locals; then a last read fetches it.
  const uint32_t frame_fields = end_of_fields({a.frame_stacktop, a.frame_stackdepth, a.frame_executing, a.frame_state,
                                               a.frame_valuestack, l.frame.instr, l.frame.code});
  const uint32_t head_size = embedded ? a.gen_iframe + l.frame.size + kStackWindow : 32;
  const uint32_t frame_size = embedded ? 0 : std::max(frame_fields, l.frame.localsplus) + kStackWindow;
  std::vector<size_t> active;
  for (size_t i : which)
    if (chains[i].cursor) active.push_back(i);
  std::vector<uint8_t> heads, frames;
  std::vector<uint64_t> words;
  std::vector<target::Memory::Request> requests;

  // A suspended coroutine's frame, decoded from `bytes` read at `base`: the RawFrame, what to
  // check again later, and where the awaited object is. False when the chain ends here.
  auto suspended_at = [&](Chain& c, uint64_t object, uint64_t frame, const uint8_t* bytes, uint32_t size,
                          const Coroutine& co, size_t depth) -> bool {
    RawFrame r;
    r.address = frame;
    r.code = co.code;
    if (embedded) {
      r.owner = l.owner_generator;
      uint64_t first = r.code + l.code.code_adaptive;
      r.offset = (co.instr >= first && co.instr - first < (1u << 26)) ? static_cast<int32_t>(co.instr - first) : -1;
    } else {
      c.lasti = static_cast<int32_t>(co.instr);
      r.offset = c.lasti < 0 ? -1 : (l.lasti_in_code_units ? c.lasti * 2 : c.lasti);
    }
    if (!plausible_pointer(r.code)) {
      c.torn = true;
      return false;
    }
    c.frames.push_back(r);
    c.seen.push_back({object, size, co.executing, co.code, co.instr, co.stack});
    c.window = bytes;
    if (co.executing) c.running = depth == 0;
    if (co.created && depth == 0) c.started = false;
    if (!co.suspended) return false;
    // The value stack's top holds the awaited object (_PyGen_yf): yield_from_depth slots down.
    uint64_t slot;
    if (embedded) {
      uint64_t stack_base = frame + l.frame.localsplus, below = 8 * uint64_t(a.yield_from_depth);
      if (a.iframe_stackpointer != kAbsent) {
        if (co.stack < stack_base + below || co.stack - stack_base > 8 * 65536) return false;
        slot = co.stack - below;
      } else {
        if (co.stack < a.yield_from_depth || co.stack > 65536) return false;
        slot = stack_base + 8 * co.stack - below;
      }
      if (state_says_await && !co.yield_from) return false;
      // 3.11–3.12: a generator may sit at a bare `yield`; RESUME's oparg after it tells (>= 2:
      // after a yield from / await). A coroutine only suspends in an await.
      c.check_at = !state_says_await && c.generator ? co.instr + 2 : 0;
    } else {
      if (a.frame_stacktop != kAbsent) {
        slot = co.stack - 8;
      } else {
        if (co.stack < 1 || co.stack > 65536) return false;
        slot = load<uint64_t>(bytes + a.frame_valuestack) + 8 * (co.stack - 1);
      }
      c.check_at = c.generator ? co.code + l.code.code : 0;  // its co_code: is the next op YIELD_FROM?
    }
    if (!plausible_pointer(slot)) return false;
    c.stack_at = slot;
    c.seen.back().stack_at = slot;
    return true;
  };

  for (size_t depth = 0; !active.empty(); ++depth) {
    heads.assign(active.size() * head_size, 0);
    requests.resize(active.size());
    for (size_t i = 0; i < active.size(); ++i)
      requests[i] = {chains[active[i]].cursor, heads.data() + i * head_size, head_size, false};
    batch(requests);
    std::vector<size_t> next;       // chains that go on to the next level
    std::vector<size_t> suspended;  // chains at a suspended coroutine, awaiting what is on its stack
    std::vector<size_t> objects;    // ≤3.10: chains at a coroutine whose frame object comes next
    for (size_t i = 0; i < active.size(); ++i) {
      Chain& c = chains[active[i]];
      uint8_t* h = heads.data() + i * head_size;
      uint64_t object = c.cursor;
      c.cursor = 0;
      c.stack_at = c.check_at = 0;
      // A small object near the end of its mapping: read just its header and first field.
      if (!requests[i].ok && !memory_.read(object, h, 24)) {
        c.torn = true;
        continue;
      }
      const TypeInfo& type = type_info(live_object(h, l.version.minor) ? load<uint64_t>(h + kObType) : 0);
      if (type.kind == Kind::kFutureIter) {  // `await future`: the future it iterates ends the chain
        uint64_t future = load<uint64_t>(h + a.future_iter_future);
        if (plausible_pointer(future)) {
          c.cursor = future;
          next.push_back(active[i]);
        } else {
          c.torn = true;
        }
        continue;
      }
      bool is_coroutine = type.kind == Kind::kCoroutine || type.kind == Kind::kGenerator;
      if (type.name.empty() || (is_coroutine && !requests[i].ok)) {
        c.torn = true;  // freed, not an object, or cut short: read the task again
        continue;
      }
      if (!is_coroutine) {
        c.awaiting = {object, type.name, type.kind == Kind::kTask ? object : 0};
        continue;
      }
      if (depth >= max_depth) {
        c.truncated = true;
        continue;
      }
      c.generator = type.kind == Kind::kGenerator;
      if (!embedded) {
        c.frame = load<uint64_t>(h + a.gen_frame);
        if (plausible_pointer(c.frame)) objects.push_back(active[i]);  // NULL: finished
        continue;
      }
      Coroutine co = coroutine(h);
      if (!co.finished && suspended_at(c, object, object + a.gen_iframe, h, head_size, co, depth))
        suspended.push_back(active[i]);
    }
    if (!objects.empty()) {
      // ≤3.10: the frame objects.
      frames.assign(objects.size() * frame_size, 0);
      requests.resize(objects.size());
      for (size_t i = 0; i < objects.size(); ++i)
        requests[i] = {chains[objects[i]].frame, frames.data() + i * frame_size, frame_size, false};
      batch(requests);
      for (size_t i = 0; i < objects.size(); ++i) {
        Chain& c = chains[objects[i]];
        const uint8_t* f = frames.data() + i * frame_size;
        if (!requests[i].ok && !memory_.read(c.frame, frames.data() + i * frame_size, frame_fields)) {
          c.torn = true;
          continue;
        }
        uint32_t size = requests[i].ok ? frame_size : frame_fields;
        Coroutine co = coroutine(f);
        if (!live_object(f, l.version.minor) || co.finished) continue;
        if (suspended_at(c, c.frame, c.frame, f, size, co, depth)) suspended.push_back(objects[i]);
      }
    }
    if (!suspended.empty()) {
      // The stack tops the first reads did not cover, and what tells a generator's yield from
      // from a bare yield: the next instruction (3.11–3.12, live code) or co_code (≤3.10).
      words.assign(suspended.size() * 2, 0);
      requests.clear();
      std::vector<int> stack_request(suspended.size(), -1), check_request(suspended.size(), -1);
      for (size_t i = 0; i < suspended.size(); ++i) {
        Chain& c = chains[suspended[i]];
        const Chain::Seen& seen = c.seen.back();
        if (c.stack_at >= seen.object && c.stack_at + 8 <= seen.object + seen.size) {
          words[2 * i] = load<uint64_t>(c.window + (c.stack_at - seen.object));
        } else {
          stack_request[i] = static_cast<int>(requests.size());
          requests.push_back({c.stack_at, &words[2 * i], 8, false});
        }
        if (c.check_at) {
          check_request[i] = static_cast<int>(requests.size());
          requests.push_back({c.check_at, &words[2 * i + 1], size_t(embedded ? 2 : 8), false});
        }
      }
      batch(requests);
      for (size_t i = 0; i < suspended.size(); ++i) {
        Chain& c = chains[suspended[i]];
        if ((stack_request[i] >= 0 && !requests[stack_request[i]].ok) ||
            (check_request[i] >= 0 && !requests[check_request[i]].ok)) {
          c.torn = true;
          continue;
        }
        bool yield_from = true;
        if (c.check_at && embedded) {
          uint8_t op = static_cast<uint8_t>(words[2 * i + 1]), arg = static_cast<uint8_t>(words[2 * i + 1] >> 8);
          yield_from = (op == a.op_resume || op == a.op_resume_quick || op == a.op_instrumented_resume) && arg >= 2;
        } else if (c.check_at) {
          const std::string* code = bytecode(c.seen.back().code, words[2 * i + 1]);
          size_t next_op = l.lasti_in_code_units ? (size_t(c.lasti) + 1) * 2 : size_t(c.lasti) + 2;
          yield_from = code && next_op < code->size() && uint8_t((*code)[next_op]) == a.op_yield_from;
        }
        c.seen.back().awaited = words[2 * i];
        uint64_t awaited = untag(words[2 * i], l.tagged_code_ref);
        if (yield_from && plausible_pointer(awaited)) {
          c.cursor = awaited;
          next.push_back(suspended[i]);
        }
      }
    }
    active = std::move(next);
  }
}

// Reads again, in one batch, each task's fields and every coroutine its chain went through, and
// returns the tasks that moved meanwhile: another state, future or coroutine; a coroutine at
// another instruction or stack depth, or awaiting something else. (A suspended coroutine cannot
// change without running, and a running one only has to stay running.)
std::vector<size_t> AsyncioReader::moved(const std::vector<Chain>& chains, const std::vector<Candidate>& tasks,
                                         std::span<const size_t> which) {
  const auto& a = layout_.asyncio;
  const uint32_t task_lo = std::min({a.task_state, a.task_coro, a.task_fut_waiter, a.task_name});
  const uint32_t task_hi = std::max({a.task_state, a.task_coro, a.task_fut_waiter, a.task_name}) + 8;
  // One read per task and per coroutine: the coroutine's bytes reach its stack slot, as a rule.
  auto extent = [](const Chain::Seen& seen) -> uint64_t {
    uint64_t end = seen.object + seen.size;
    if (seen.stack_at && seen.stack_at >= seen.object && seen.stack_at + 8 - seen.object <= 4096)
      end = std::max(end, seen.stack_at + 8);
    return end - seen.object;
  };
  size_t total = 0;
  for (size_t i : which) {
    total += task_hi - task_lo;
    for (const auto& seen : chains[i].seen) total += extent(seen) + 8;
  }
  std::vector<uint8_t> bytes(total);
  std::vector<target::Memory::Request> requests;
  size_t at = 0;
  auto request = [&](uint64_t address, size_t size) {
    requests.push_back({address, bytes.data() + at, size, false});
    at += size;
  };
  for (size_t i : which) {
    request(tasks[i].address + task_lo, task_hi - task_lo);
    for (const auto& seen : chains[i].seen) {
      request(seen.object, extent(seen));
      if (seen.stack_at && seen.stack_at + 8 > seen.object + extent(seen)) request(seen.stack_at, 8);
    }
  }
  batch(requests);
  std::vector<size_t> out;
  size_t r = 0;
  for (size_t i : which) {
    const Candidate& t = tasks[i];
    const uint8_t* b = static_cast<const uint8_t*>(requests[r].out) - task_lo;
    bool same = requests[r++].ok && load<int32_t>(b + a.task_state) == static_cast<int32_t>(t.state) &&
                load<uint64_t>(b + a.task_coro) == t.coro && load<uint64_t>(b + a.task_fut_waiter) == t.fut_waiter &&
                load<uint64_t>(b + a.task_name) == t.name && !t.name_text.empty() && !chains[i].torn;
    for (const auto& seen : chains[i].seen) {
      const auto& object = requests[r++];
      const uint8_t* o = static_cast<const uint8_t*>(object.out);
      uint64_t awaited = 0;
      bool slot_ok = true;
      if (seen.stack_at && seen.stack_at + 8 <= seen.object + object.size) {
        awaited = load<uint64_t>(o + (seen.stack_at - seen.object));
      } else if (seen.stack_at) {
        const auto& slot = requests[r++];
        slot_ok = slot.ok;
        awaited = load<uint64_t>(static_cast<const uint8_t*>(slot.out));
      }
      if (!same) continue;
      Coroutine now = coroutine(o);
      same = object.ok && slot_ok && now.executing == seen.executing && now.code == seen.code &&
             (seen.executing || (now.instr == seen.instr && now.stack == seen.stack)) &&
             (!seen.stack_at || awaited == seen.awaited);
    }
    if (!same) out.push_back(i);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Who awaits whom.

bool AsyncioReader::list_items(uint64_t list, std::vector<uint64_t>& items, size_t max_items) {
  items.clear();
  const auto& a = layout_.asyncio;
  uint8_t head[40];
  if (!memory_.read(list, head, std::max(a.list_items, a.list_size) + 8)) return false;
  if (type_info(load<uint64_t>(head + kObType)).kind != Kind::kList) return false;
  int64_t size = load<int64_t>(head + a.list_size);
  uint64_t array = load<uint64_t>(head + a.list_items);
  if (size < 0 || static_cast<size_t>(size) > max_items || (size && !plausible_pointer(array))) return false;
  items.resize(static_cast<size_t>(size));
  return size == 0 || memory_.read(array, items.data(), items.size() * 8);
}

void AsyncioReader::link_awaiters(const std::vector<Candidate>& candidates, std::vector<AsyncTask>& tasks) {
  const auto& a = layout_.asyncio;
  std::unordered_map<uint64_t, size_t> index;        // task address -> index
  std::unordered_map<uint64_t, uint64_t> waiter_of;  // a future -> the task blocked on it
  for (size_t i = 0; i < tasks.size(); ++i) {
    index[tasks[i].address] = i;
    if (tasks[i].fut_waiter) waiter_of[tasks[i].fut_waiter] = tasks[i].address;
  }
  auto add = [&](size_t awaited, uint64_t awaiter) {
    auto& by = tasks[awaited].awaited_by;
    if (awaiter != tasks[awaited].address && index.count(awaiter) && std::find(by.begin(), by.end(), awaiter) == by.end())
      by.push_back(awaiter);
  };
  std::unordered_map<uint64_t, uint64_t> parent_of_group;  // TaskGroup -> its _parent_task
  // An object that leads to an awaiter: a task, a future a task waits on, or a TaskGroup.
  auto via = [&](size_t awaited, uint64_t object) {
    if (!plausible_pointer(object)) return;
    if (index.count(object)) return add(awaited, object);
    if (auto w = waiter_of.find(object); w != waiter_of.end()) return add(awaited, w->second);
    auto [group, fresh] = parent_of_group.emplace(object, 0);
    if (fresh && type_info(objects_.type_of(object)).kind == Kind::kOther)
      group->second = objects_.instance_attr(object, "_parent_task");
    if (group->second) add(awaited, group->second);
  };

  // Done callbacks lead to awaiters: a task's wakeup (await task), a bound method of a TaskGroup,
  // a functools.partial holding wait_for()'s waiter future (≤3.11). The first callback is in the
  // task; the others, rarer, in a list of (callback, context) pairs.
  std::vector<std::pair<size_t, uint64_t>> callbacks;  // (task, callback)
  std::vector<uint64_t> items;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const uint8_t* b = candidates[i].bytes.data();
    uint64_t first = load<uint64_t>(b + a.task_callback0), rest = load<uint64_t>(b + a.task_callbacks);
    if (plausible_pointer(first)) callbacks.emplace_back(i, first);
    if (plausible_pointer(rest) && list_items(rest, items, kMaxCallbacks))
      for (uint64_t pair : items) {
        uint64_t cb = 0;
        if (memory_.read_value(pair + layout_.tuple.items, cb) && plausible_pointer(cb)) callbacks.emplace_back(i, cb);
      }
  }
  std::vector<std::array<uint64_t, 4>> heads(callbacks.size());  // refcount, type, two fields
  std::vector<target::Memory::Request> requests(callbacks.size());
  for (size_t k = 0; k < callbacks.size(); ++k) requests[k] = {callbacks[k].second, heads[k].data(), 32, false};
  batch(requests);
  for (size_t k = 0; k < callbacks.size(); ++k) {
    if (!requests[k].ok) continue;
    const uint8_t* h = reinterpret_cast<const uint8_t*>(heads[k].data());
    size_t i = callbacks[k].first;
    switch (type_info(load<uint64_t>(h + kObType)).kind) {
      case Kind::kWakeup: via(i, load<uint64_t>(h + a.wakeup_task)); break;
      case Kind::kBoundMethod: via(i, load<uint64_t>(h + a.method_self)); break;
      case Kind::kBuiltinMethod: via(i, load<uint64_t>(h + a.cfunction_self)); break;
      case Kind::kPartial: {
        uint64_t args = load<uint64_t>(h + a.partial_args), n = 0, arg = 0;
        if (memory_.read_value(args + layout_.tuple.size, n) && n > 0 && n < 64 &&
            memory_.read_value(args + layout_.tuple.items, arg))
          via(i, arg);
        break;
      }
      default: break;
    }
  }

  // The types of the futures the tasks wait on, in one read.
  std::vector<uint64_t> waiter_types(tasks.size(), 0);
  requests.clear();
  for (size_t i = 0; i < tasks.size(); ++i)
    if (tasks[i].fut_waiter) requests.push_back({tasks[i].fut_waiter + kObType, &waiter_types[i], 8, false});
  batch(requests);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const AsyncTask& t = tasks[i];
    // await task: the awaiter's _fut_waiter is the task.
    if (auto w = waiter_of.find(t.address); w != waiter_of.end()) add(i, w->second);
    // gather(): the awaiter waits on a _GatheringFuture, whose _children are the tasks.
    const TypeInfo& waiter_type = type_info(waiter_types[i]);
    if (waiter_type.kind == Kind::kFuture && waiter_type.subclass) {
      uint64_t children = objects_.instance_attr(t.fut_waiter, "_children");
      if (children && list_items(children, items, 1 << 16))
        for (uint64_t child : items)
          if (auto c = index.find(child); c != index.end()) add(c->second, t.address);
    }
    // 3.14+: the task's own record of its awaiters, one object or a set of them.
    if (a.task_awaited_by != kAbsent) {
      const uint8_t* b = candidates[i].bytes.data();
      uint64_t by = load<uint64_t>(b + a.task_awaited_by);
      if (!plausible_pointer(by)) continue;
      if (!load<uint8_t>(b + a.task_awaited_by_is_set)) via(i, by);
      else if (set_keys(by, items))
        for (uint64_t k : items) via(i, k);
    }
  }
}

// ---------------------------------------------------------------------------------------------

bool AsyncioReader::scan(std::span<const PyThread> threads, std::vector<AsyncTask>& out,
                         const AsyncioScanOptions& options) {
  begin(out);
  std::vector<Candidate> tasks;
  bool ok = registry_tasks(threads, tasks, options.max_tasks);
  if (ok) read(tasks, threads, out, options);
  finish(out);
  return ok;
}

void AsyncioReader::read(std::span<const uint64_t> addresses, std::span<const PyThread> threads,
                         std::vector<AsyncTask>& out, const AsyncioScanOptions& options) {
  begin(out);
  std::vector<Candidate> tasks;
  for (uint64_t address : addresses.first(std::min(addresses.size(), options.max_tasks)))
    if (plausible_pointer(address)) tasks.push_back(Candidate{address});
  stats_.registry = "the tasks asked for";
  stats_.registry_entries = tasks.size();
  read(tasks, threads, out, options);
  finish(out);
}

void AsyncioReader::begin(std::vector<AsyncTask>& out) {
  out.clear();
  problem_.clear();
  stats_ = AsyncioStats{};
  syscalls_at_start_ = memory_.syscalls();
}

void AsyncioReader::finish(const std::vector<AsyncTask>& out) {
  stats_.offsets = offsets_;
  if (layout_.from_debug_offsets && layout_.asyncio.gen_iframe != kAbsent && layout_.version.minor >= 14)
    stats_.offsets += "; coroutines: _Py_DebugOffsets";
  stats_.tasks = out.size();
  stats_.reads = memory_.syscalls() - syscalls_at_start_;
}

void AsyncioReader::read(std::vector<Candidate>& tasks, std::span<const PyThread> threads,
                         std::vector<AsyncTask>& out, const AsyncioScanOptions& options) {
  read_tasks(tasks);
  std::vector<Chain> chains(tasks.size());
  std::vector<size_t> all(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    chains[i].cursor = tasks[i].coro;
    all[i] = i;
  }
  read_names(tasks, all);
  build_chains(chains, all, options.max_depth);
  // A task that moved while we read (or whose name did not read) is read once more, then left out.
  std::vector<bool> keep(tasks.size(), true);
  std::vector<size_t> retry = moved(chains, tasks, all);
  if (!retry.empty()) {
    std::vector<size_t> again;
    for (size_t i : retry) {
      Candidate& t = tasks[i];
      chains[i] = Chain{};
      if (!memory_.read(t.address, t.bytes.data(), t.bytes.size()) || !task_fields(t, t.bytes.data())) {
        keep[i] = false;
        continue;
      }
      chains[i].cursor = t.coro;
      again.push_back(i);
    }
    read_names(tasks, again);
    build_chains(chains, again, options.max_depth);
    for (size_t i : moved(chains, tasks, again)) keep[i] = false;
  }
  out.resize(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Candidate& c = tasks[i];
    AsyncTask& t = out[i];
    t.address = c.address;
    t.name = c.name_text;
    t.state = c.state;
    t.coro = c.coro;
    t.loop = c.loop;
    t.fut_waiter = c.fut_waiter;
    Chain& chain = chains[i];
    t.running = chain.running;
    t.started = chain.started;
    t.awaiting = std::move(chain.awaiting);
    if (chain.truncated) ++stats_.truncated;
    t.coro_frame = chain.frames.empty() ? 0 : chain.frames.front().address;
    t.frames.assign(chain.frames.rbegin(), chain.frames.rend());
  }
  size_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (keep[i]) {
      if (kept != i) {
        tasks[kept] = std::move(tasks[i]);
        out[kept] = std::move(out[i]);
      }
      ++kept;
    }
  stats_.torn += out.size() - kept;
  tasks.resize(kept);
  out.resize(kept);
  attribute_threads(threads, out);
  if (options.awaiters) link_awaiters(tasks, out);
}

}  // namespace swprof::python

// CPython seen from outside: where its runtime is, which version it is, the Layout (every offset
// and structural fact the walker needs), the one frame walker, the code-object cache and the line
// tables. Nothing here writes to the target.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "swprof/common.h"
#include "swprof/target.h"

namespace swprof::python {

struct Version {
  int major = 0, minor = 0, micro = 0;
  std::string text() const;
  bool operator==(const Version&) const = default;
};

// The oldest and newest minor versions swprof reads.
constexpr int kMinMinor = 8;
constexpr int kMaxMinor = 15;

constexpr uint32_t kAbsent = 0xFFFFFFFFu;  // an offset the version does not have

enum class FrameModel : uint8_t {
  kFrameObject,       // 3.8–3.10: tstate->frame, a chain of PyFrameObject via f_back
  kInterpreterFrame,  // 3.11+: _PyInterpreterFrame, mostly in the thread's data-stack chunk
};

enum class LineTableFormat : uint8_t {
  kLnotab,        // 3.8–3.9 co_lnotab, byte offsets
  kLinetable310,  // 3.10 co_linetable (PEP 626 ranges), byte offsets
  kLocations,     // 3.11+ location table (Objects/locations.md), code units
};

enum class GilModel : uint8_t {
  kRuntime,              // 3.8–3.11: _PyRuntime.ceval.gil
  kInterpreterPointer,   // 3.12+: interp->ceval.gil points to the struct
};

// Everything version-specific. Built-in tables for 3.8–3.15 (from each version's headers); on
// 3.13+ the fields the target publishes in _Py_DebugOffsets are overwritten at run time.
struct Layout {
  Version version;
  FrameModel frame_model = FrameModel::kInterpreterFrame;
  LineTableFormat line_table = LineTableFormat::kLocations;
  GilModel gil_model = GilModel::kRuntime;
  bool has_cframe = false;        // 3.11–3.12: tstate->cframe->current_frame
  bool tagged_code_ref = false;   // 3.14+: f_executable is a _PyStackRef (low bits are tags)
  bool lasti_in_code_units = false;  // 3.10: f_lasti counts 2-byte code units
  int8_t owner_generator = 1;
  int8_t owner_cstack = -1;       // frames of C calls / the interpreter: never user code
  int8_t owner_interpreter = -1;
  bool from_debug_offsets = false;

  struct {
    uint32_t interpreters_head = kAbsent;
    uint32_t gil_locked = kAbsent, gil_last_holder = kAbsent;  // kRuntime
    uint32_t gil_switch_number = kAbsent;                      // kRuntime: see gil.switch_number
  } runtime;
  struct {
    uint32_t next = kAbsent, threads_head = kAbsent, modules = kAbsent;
    uint32_t runtime = kAbsent;                 // 3.9+: back-pointer to _PyRuntime
    uint32_t ceval_gil = kAbsent;               // kInterpreterPointer: interp->ceval.gil
    uint32_t code_object_generation = kAbsent;  // 3.14+
  } interp;
  struct {
    uint32_t locked = kAbsent, last_holder = kAbsent;  // in struct _gil_runtime_state (3.12+)
    // How many times the GIL changed hands: take_gil() counts one when a thread state other than
    // the last holder takes it. It follows `locked` in every version (an int, then padding).
    uint32_t switch_number = kAbsent;
  } gil;
  struct {
    uint32_t next = kAbsent, interp = kAbsent;
    uint32_t frame = kAbsent;  // frame (≤3.10), cframe (3.11–3.12), current_frame (3.13+)
    uint32_t thread_id = kAbsent, native_thread_id = kAbsent;
    uint32_t datastack_chunk = kAbsent, datastack_top = kAbsent;
  } tstate;
  uint32_t cframe_current_frame = kAbsent;
  struct {
    uint32_t data = kAbsent;  // _PyStackChunk.data
  } chunk;
  struct {
    // For kFrameObject: previous = f_back, code = f_code, instr = f_lasti (int),
    // localsplus = f_localsplus. For kInterpreterFrame: instr = prev_instr / instr_ptr.
    uint32_t previous = kAbsent, code = kAbsent, instr = kAbsent, owner = kAbsent;
    uint32_t localsplus = kAbsent, frame_obj = kAbsent;
    uint32_t is_entry = kAbsent;  // 3.11: the first frame its evaluation-loop call runs (native merging)
    uint32_t size = 0;  // bytes up to localsplus
  } frame;
  uint32_t frame_specials = 0;  // 3.11: _PyInterpreterFrame words before localsplus
  uint32_t frame_object_f_frame = kAbsent;  // 3.11+: PyFrameObject.f_frame
  struct {
    uint32_t argcount = kAbsent, kwonlyargcount = kAbsent, flags = kAbsent, firstlineno = kAbsent;
    uint32_t filename = kAbsent, name = kAbsent, qualname = kAbsent, linetable = kAbsent;
    uint32_t nlocalsplus = kAbsent, nlocals = kAbsent, framesize = kAbsent, stacksize = kAbsent;
    uint32_t code_adaptive = kAbsent, firsttraceable = kAbsent, code = kAbsent;
    uint32_t cellvars = kAbsent, freevars = kAbsent;
  } code;
  struct {
    uint32_t state = kAbsent, length = kAbsent, ascii_size = 0, compact_size = 0;
  } unicode;
  struct {
    uint32_t size = 16, data = kAbsent;
  } bytes;
  struct {
    uint32_t size = 16, items = kAbsent;
  } tuple;
  struct {
    uint32_t name = kAbsent, flags = kAbsent, basicsize = kAbsent, dictoffset = kAbsent;
    uint32_t heap_cached_keys = kAbsent;
  } type;
  struct {
    uint32_t used = kAbsent, keys = kAbsent, values = kAbsent;
  } dict;
  uint32_t module_dict = 16;  // PyModuleObject.md_dict

  // asyncio (src/python/asyncio.cpp): where the tasks are, and what a suspended coroutine awaits.
  // The generic object and frame facts come from each version's headers (checked by
  // tests/layout/offsets_probe.c); the Task / Future / FutureIter / functools.partial fields are
  // defined only in Modules/*.c, so tests/layout/asyncio_probe.py checks them against each
  // running interpreter. 3.14+ publishes the task fields in its "AsyncioDebug" section and the
  // coroutine fields in _Py_DebugOffsets; both override these tables at run time.
  struct Asyncio {
    enum class Registry : uint8_t {
      kAllTasks,        // 3.8–3.11: asyncio.tasks._all_tasks, a WeakSet (of the _asyncio module)
      kScheduledEager,  // 3.12–3.13: _scheduled_tasks (WeakSet) + _eager_tasks (set)
      kThreadLists,     // 3.14+: a linked list per thread state, one per interpreter (dead threads)
    };
    static constexpr int8_t kNoState = -128;  // a frame state the version does not have

    Registry registry = Registry::kAllTasks;
    // TaskObj (FutureObj_HEAD then the task fields).
    uint32_t task_loop = 16, task_callback0 = 24, task_callbacks = 40;
    uint32_t task_state = kAbsent, task_fut_waiter = kAbsent, task_coro = kAbsent, task_name = kAbsent;
    uint32_t task_size = 0;
    uint32_t task_awaited_by = kAbsent, task_awaited_by_is_set = kAbsent, task_node = kAbsent;  // 3.14+
    uint32_t future_iter_future = 16;  // futureiterobject.future
    uint32_t wakeup_task = kAbsent;    // 3.8–3.9 TaskWakeupMethWrapper.ww_task (then a builtin method)
    uint32_t partial_args = 24;        // functools.partial.args
    // Generic objects.
    uint32_t type_base = kAbsent;      // PyTypeObject.tp_base
    uint32_t set_mask = kAbsent, set_table = kAbsent;  // PySetObject; entries are {key, hash}
    uint32_t list_size = 16, list_items = kAbsent;     // PyListObject
    uint32_t weakref_object = kAbsent;                 // PyWeakReference.wr_object (None when dead)
    uint32_t method_self = kAbsent;                    // PyMethodObject.im_self (a bound method)
    uint32_t cfunction_self = kAbsent;                 // PyCFunctionObject.m_self
    // Coroutines and generators (same head). ≤3.10 point at a frame object; 3.11+ embed the frame.
    uint32_t gen_frame = kAbsent;                      // ≤3.10 gi_frame
    uint32_t gen_iframe = kAbsent, gen_frame_state = kAbsent;  // 3.11+
    uint32_t frame_valuestack = kAbsent;               // ≤3.10 PyFrameObject.f_valuestack
    uint32_t frame_stacktop = kAbsent;                 // 3.8–3.9 f_stacktop (non-NULL while suspended)
    uint32_t frame_stackdepth = kAbsent;               // 3.10 f_stackdepth
    uint32_t frame_executing = kAbsent;                // 3.8–3.9 f_executing
    uint32_t frame_state = kAbsent;                    // 3.10 f_state
    uint32_t iframe_stacktop = kAbsent;                // 3.11–3.13 _PyInterpreterFrame.stacktop (words)
    uint32_t iframe_stackpointer = kAbsent;            // 3.14+ _PyInterpreterFrame.stackpointer
    uint8_t yield_from_depth = 1;  // 3.11+: the awaited object's slot, counted from the stack's top
                                   // (3.15's SEND keeps one more item above it)
    int8_t state_created = kNoState, state_suspended = kNoState, state_executing = kNoState;
    int8_t state_suspended_yield_from = kNoState;      // 3.13+
    int8_t state_suspended_yield_from_locked = kNoState;  // 3.15+
    int8_t state_completed = kNoState, state_cleared = kNoState;
    // Whether a suspended frame sits in an `await` (yield from), when its state does not say.
    int16_t op_yield_from = -1;                        // ≤3.10: the next instruction is YIELD_FROM
    int16_t op_resume = -1, op_resume_quick = -1, op_instrumented_resume = -1;  // 3.11–3.12: RESUME, oparg >= 2
    // 3.14+: _PyThreadStateImpl and PyInterpreterState.
    uint32_t tstate_tasks_head = kAbsent, tstate_running_loop = kAbsent, tstate_running_task = kAbsent;
    uint32_t interp_tasks_head = kAbsent;
    bool from_debug_section = false;  // the task fields came from the target's AsyncioDebug section
  } asyncio;

  // swprof dump and top (src/live/): local variables' names and simple values, and the GC's lists
  // of container objects, where a dump finds greenlets (nothing else keeps a list of them).
  // From each version's headers (tests/layout/offsets_probe.c); 3.13+ overrides what
  // _Py_DebugOffsets publishes.
  struct Live {
    uint32_t code_varnames = kAbsent;         // ≤3.10 co_varnames (then co_cellvars, co_freevars)
    uint32_t code_localsplusnames = kAbsent;  // 3.11+ co_localsplusnames: a tuple of str
    uint32_t code_localspluskinds = kAbsent;  // 3.11+ co_localspluskinds: bytes, one CO_FAST_* per name
    uint8_t kind_hidden = 0, kind_local = 0, kind_cell = 0, kind_free = 0;  // CO_FAST_* bits (3.11+)
    uint32_t float_value = 16;  // PyFloatObject.ob_fval
    uint32_t long_digits = 24;  // PyLongObject's digits (the size, or 3.12+ lv_tag, is at 16)
    uint32_t cell_ref = 16;     // PyCellObject.ob_ref
    uint32_t set_used = 24;     // PySetObject.used
    // struct _gc_runtime_state: in _PyRuntime (3.8) or the interpreter (3.9+); its generations are
    // gc_generation {PyGC_Head head; int threshold, count}, each head of a circular list of the
    // PyGC_Heads {_gc_next, _gc_prev} that precede every tracked object.
    bool gc_in_runtime = false;
    uint32_t gc_state = kAbsent;
    uint32_t gc_generations = kAbsent, gc_permanent = kAbsent;  // inside the state
    uint32_t gc_generation_size = 24;
    static constexpr uint32_t kGcGenerations = 3;
  } live;
};

// The built-in table for 3.minor, or nullptr when swprof does not know that version.
const Layout* builtin_layout(int minor);

// Fills `layout` from a _Py_DebugOffsets blob read from the start of _PyRuntime (3.13+).
// Returns an error text when the blob is not trustworthy (cookie, version, free-threaded, sizes).
std::optional<std::string> apply_debug_offsets(Layout& layout, std::span<const uint8_t> blob);
// How many bytes of _Py_DebugOffsets the given version has (0: it has none).
size_t debug_offsets_size(int minor);

// ---------------------------------------------------------------------------------------------
// The interpreter found in a process.
struct Interpreter {
  Version version;
  bool version_exact = false;  // micro version known (Py_Version, debug offsets, sys.version)
  bool shared = false;         // libpython shared object (true) or linked into the executable
  std::string binary;          // path of the file holding _PyRuntime, as the target sees it
  uint64_t runtime = 0;        // address of _PyRuntime in the target
  std::string runtime_source;  // ".dynsym", ".symtab", ".PyRuntime section", "scan"
  Layout layout;
};

// Finds CPython in the process: the runtime, the version, the layout. Throws UserError with one
// line for: no such process, permission denied, not a Python process, unsupported version.
// `wait_for_init` is false when attaching: the runtime must already be initialised.
Interpreter discover(pid_t pid, const target::Memory& memory);

// True once _PyRuntime has an interpreter with a thread (launch mode polls this, one look at a
// time). Attaching gives it a few looks, 2 ms apart: a thread ending at that moment fails one.
constexpr int kAttachLooks = 25;
bool runtime_ready(const Interpreter& interp, const target::Memory& memory, int attempts = 1);
// Reads the micro version from sys.version once the runtime is up (3.8–3.10 binaries lack it).
void refine_version(Interpreter& interp, const target::Memory& memory);

// ---------------------------------------------------------------------------------------------
// Line tables. Offsets are byte offsets into the bytecode (code units * 2).
struct LineRange {
  int32_t start, end;  // [start, end) in bytes
  int32_t line;        // -1: no line
};
std::vector<LineRange> decode_line_table(LineTableFormat format, std::string_view table, int first_line);
// The line executing at `offset` (bytes); `first_line` when the table says nothing.
int line_for_offset(const std::vector<LineRange>& ranges, int32_t offset, int first_line);

// Whether bytecode (co_code up to 3.10, the adaptive code units from 3.11) has a backward jump,
// i.e. a loop; nullopt when it cannot tell (unknown version, instrumented code).
std::optional<bool> has_backward_jump(int minor, std::string_view bytecode);
// The opcode facts for 3.<minor>, as tests/layout/opcode_tables.py prints them.
std::string_view opcode_table_text(int minor);

// ---------------------------------------------------------------------------------------------
// Remote objects: strings and bytes, bounded and validated.
class ObjectReader {
 public:
  ObjectReader(const target::Memory& memory, const Layout& layout) : memory_(memory), layout_(layout) {}
  // A str object as bytes: UTF-8, except that U+DC80..U+DCFF (Python's surrogateescape of an
  // undecodable byte) become that byte. Fails on non-str or unreadable; longer than max_chars
  // fails too, unless `clip`: then the first max_chars are kept, marked "…[+N chars]".
  bool read_str(uint64_t address, std::string& out, size_t max_chars = 4096, bool clip = false) const;
  bool read_bytes(uint64_t address, std::string& out, size_t max_size = 1 << 20) const;
  bool read_int(uint64_t address, int64_t& out) const;  // small PyLong (≤ 3 digits)
  // The same from bytes already read at `address` (for batched reads); false when they are not
  // such an object or do not hold all of it (read_str / read_int then read it whole).
  bool decode_str(uint64_t address, std::span<const uint8_t> bytes, std::string& out, size_t max_chars) const;
  bool decode_int(uint64_t address, std::span<const uint8_t> bytes, int64_t& out) const;
  // An int's (or bool's) digit count and sign, from the first 24 bytes of the object.
  void int_size(const uint8_t* object, int64_t& ndigits, bool& negative) const;
  // The type's tp_name (bounded); empty on failure.
  std::string type_name(uint64_t type_address) const;
  uint64_t type_of(uint64_t object) const;
  // dict[key] for str keys; 0 when absent or unreadable.
  uint64_t dict_get(uint64_t dict, std::string_view key) const;
  // All (key, value) pairs of a dict (bounded).
  bool dict_items(uint64_t dict, std::vector<std::pair<uint64_t, uint64_t>>& out, size_t max_items = 4096) const;
  // obj.__dict__[name] for a plain instance (handles managed / inline dicts); 0 when absent.
  uint64_t instance_attr(uint64_t object, std::string_view name) const;
  // sys.modules[module].__dict__[name] in the main interpreter of the runtime at `runtime`; 0 when
  // the module is not imported (yet) or has no such global.
  uint64_t module_global(uint64_t runtime, std::string_view module, std::string_view name) const;

  const target::Memory& memory() const { return memory_; }

 private:
  bool is_type(uint64_t object, std::string_view name, uint64_t& cache) const;
  const target::Memory& memory_;
  const Layout& layout_;
  mutable uint64_t str_type_ = 0, bytes_type_ = 0, int_type_ = 0, dict_type_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Code objects, resolved once and cached by address.
struct CodeInfo {
  uint64_t address = 0;
  std::string qualname;   // co_qualname (3.11+) or co_name
  std::string filename;
  int first_line = 0;
  uint16_t arg_count = 0;      // positional + keyword-only + *args + **kwargs
  uint16_t local_count = 0;    // localsplus slots holding locals (args included), bounded
  uint32_t frame_words = 0;    // 3.11+: words the frame occupies on the data stack
  int32_t first_traceable = 0; // bytes; frames before it are incomplete (3.11+)
  std::vector<LineRange> lines;
  std::string fingerprint;     // stable fields: changes when the address is reused
  // Frame ids per line, filled by the recorder's intern callback.
  std::vector<std::pair<int32_t, uint32_t>> frame_ids;
  int8_t entry_match = -1;     // record's trigger: -1 unknown, 0 no, else 1 + spec index
  int8_t loop_free = -1;       // -1 not looked at; 1 no backward jump; 0 loops, or cannot tell
  uint64_t last_validated_tick = 0;
};

class CodeCache {
 public:
  CodeCache(const target::Memory& memory, const Layout& layout);
  // The resolved code object at `address`, or nullptr if it is not a readable code object.
  CodeInfo* get(uint64_t address, uint64_t tick);
  // The bytecode of a code object (co_code ≤3.10; the adaptive code units 3.11+), bounded.
  bool read_bytecode(uint64_t address, std::string& out);
  // Re-validates the given entries for this tick in one batched read; stale ones are dropped.
  void validate(std::span<const uint64_t> addresses, uint64_t tick);
  // The fingerprint reads this tick's validate() will most likely want (those of the code objects
  // the last validating tick validated: a loop's innermost frames), for the caller to make with
  // its own reads (Walker::read_threads) after the frames. validate() in the same tick uses those
  // made instead of reading them itself.
  std::span<target::Memory::Request> fingerprint_reads(uint64_t tick);
  void clear() { entries_.clear(); }

 private:
  bool resolve(uint64_t address, CodeInfo& info);

  std::pair<uint32_t, uint32_t> fingerprint_span() const;
  const target::Memory& memory_;
  const Layout& layout_;
  ObjectReader objects_;
  std::unordered_map<uint64_t, CodeInfo> entries_;
  uint64_t code_type_ = 0;
  std::vector<target::Memory::Request> requests_;
  std::vector<std::string> buffers_;
  std::vector<uint64_t> validated_;  // by the last tick that validated any
  uint64_t validated_tick_ = 0;
  std::vector<target::Memory::Request> ahead_;  // fingerprint_reads() of ahead_tick_
  std::vector<std::string> ahead_buffers_;
  uint64_t ahead_tick_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Threads and frames.
struct PyThread {
  uint64_t tstate = 0;
  uint64_t interp = 0;
  uint64_t thread_id = 0;      // pthread_t
  int64_t native_id = 0;       // OS tid; 0 when unknown
  // Bound to no running thread: no thread id, made for a thread not started yet or left by one
  // that ended (3.11+: its native id is 0), or (≤3.10) its thread exited, as daemon threads do at shutdown
  // while their thread states, frames and all, stay listed (the pthread's tid is cleared).
  bool unbound = false;
  uint64_t top_frame = 0;
  uint64_t cframe = 0;         // 3.11–3.12: the CFrame the top frame was read from
  uint64_t datastack_chunk = 0, datastack_top = 0;
  uint64_t next = 0;           // the next thread state in the interpreter's list
  bool holds_gil = false;      // its interpreter's GIL was locked by this thread state
  // A stack kept outside any thread state (a parked greenlet's): tstate is 0, top_frame and the
  // data stack are as given, and top_source is where the top frame's address is read again to
  // confirm a walk.
  uint64_t top_source = 0;
};

struct RawFrame {
  uint64_t address = 0;  // the frame (PyFrameObject or _PyInterpreterFrame)
  uint64_t code = 0;
  int32_t offset = -1;   // byte offset of the executing instruction; -1 not started
  int8_t owner = 0;
};

enum class WalkError : uint8_t {
  kNone,
  kThreadState,   // the thread state could not be read
  kFrame,         // a frame pointer was unreadable
  kCycle,         // the chain loops
  kCode,          // a frame's code is not a code object
  kTooDeep,       // more than kMaxVisit frames: the root was not reached
  kTorn,          // the frames changed while they were read: the copy mixes two moments
  kThreadGone,    // the listed thread ended: its thread state is freed or holds another thread
};
const char* walk_error_name(WalkError e);

class Walker {
 public:
  // A walk follows at most this many frames; deeper stacks keep their innermost frames and
  // report kTooDeep (the root is not reached). Recorded stacks are cut much earlier, keeping
  // their root (see record's --max-depth).
  static constexpr size_t kMaxVisit = 1u << 16;
  Walker(const target::Memory& memory, const Interpreter& interp);

  // All thread states of all interpreters, bounded, with who holds each interpreter's GIL.
  // False if the runtime is unreadable. A list cut short by a thread state freed as it was
  // followed is kept, and threads_complete() says so.
  // `extra` reads are made in the same system call, after the threads' snapshots, when the list
  // is read again whole (see read_listing_again); otherwise they are left not done (ok false).
  bool read_threads(std::vector<PyThread>& out, std::span<target::Memory::Request> extra = {});
  bool threads_complete() const { return threads_complete_; }
  // The target's thread ids (namespace-local in a container) and ours.
  target::ThreadIds& thread_ids() { return thread_ids_; }
  // One thread state, afresh (to retry a walk that met a torn read).
  bool read_thread(uint64_t tstate, uint64_t interp, PyThread& out);
  // Frames from the innermost (index 0) outwards, read afresh from the listed thread state.
  // Incomplete and C-stack frames are skipped.
  // A walk that returns kNone was confirmed: after the copy, the top of the stack and what
  // identifies every frame (code, previous, instruction of every caller) were read again and
  // matched, so the frames are one moment's stack, never a mix of two (kTorn otherwise).
  WalkError walk(const PyThread& thread, std::vector<RawFrame>& out);
  // How many localsplus slots of a frame object read_locals() will want (≤3.10 reads frames one
  // by one: reading locals nobody asks for costs).
  void set_locals_wanted(size_t count) { locals_wanted_ = count; }
  // The first `count` localsplus slots of a frame walked by the last walk() call, for identity,
  // from the bytes that walk read: a later read could see the call already returned.
  bool read_locals(uint64_t frame, size_t count, uint64_t* out);
  // 3.14+: the interpreter's code-object generation (changes when code objects are freed), as
  // read with the last read_threads().
  std::optional<uint64_t> code_generation() const;
  // The GIL as the last read_threads() saw it (a process with one interpreter, listed whole), read
  // before any stack it read: its last holder, locked or not, and how many times it changed hands.
  // No thread but the one holding the GIL changes its Python frames, and a thread state other than
  // the last holder that takes it counts a switch; so between two equal readings no thread state
  // but that holder took the GIL, and every other one kept its frames (those whose OS thread runs
  // another thread state too aside: one that swaps thread states without a switch).
  struct GilSeen {
    bool valid = false;  // switches known: same() can tell
    uint64_t last_holder = 0, switches = 0;
    uint64_t holder = 0;  // last_holder while the GIL is locked, else 0
    bool same(const GilSeen& o) const { return valid && o.valid && last_holder == o.last_holder && switches == o.switches; }
  };
  const GilSeen& gil_seen() const { return gil_seen_; }
  // The outermost frame the last walk() reached, skipped frames included. Under gevent each
  // greenlet's stack ends in its own frame, so this tells which greenlet was running.
  uint64_t bottom_frame() const { return bottom_; }
  // After a torn walk: how many of its output's outermost frames read the same before and after
  // (the last entries of the output), i.e. were on the stack while the inner ones changed.
  size_t stable_frames() const { return stable_; }
  // How many frames the last walk read from the top it began with, before its confirmation kept
  // fewer (the inner ones returned meanwhile: the output is the stack as it was a moment later).
  size_t read_depth() const { return read_depth_; }
  uint64_t bottom_code() const { return bottom_code_; }
  // When the last walk's stack was as it returned (monotonic µs): `confirmed` is when the system
  // call its confirmation rests on began — its snapshot's (the walk's first read, or the tick's
  // read of the thread list, which a recorder held up in between made long before the walk), or
  // the walk's read again to confirm — and `done` when that call returned; `first` is when the
  // first read the walk used began (what the frames' locals were read from). All 0 after a walk
  // that failed before its confirmation.
  struct ReadTimes {
    int64_t first = 0, confirmed = 0, done = 0;
  };
  ReadTimes stack_read_at() const { return stack_read_at_; }
  // Whether read_threads() also reads every known thread's stack, in the same system call (on by
  // default: a dump then reads all threads at one moment, and a tick costs one call). Each
  // thread's snapshot carries its own confirming reads, so its walk is confirmed by that call.
  // The recorder turns it off when it follows asyncio tasks or greenlets (a running task or
  // greenlet is told by its frames, which must be read after the tasks and greenlets) and for
  // --native (each thread is read while it is stopped).
  void read_stacks_with_listing(bool on) { stacks_with_listing_ = on; }
  // Thread states whose stacks the next read_threads() leaves out (the recorder knows them
  // unchanged: asleep since their last read); a walk of one reads it afresh. Sorted.
  void skip_stacks(std::span<const uint64_t> tstates) { skipped_stacks_.assign(tstates.begin(), tstates.end()); }
  // Reads now, in one system call, the stacks of the threads of the last read_threads() list
  // (`listed`) whose thread states are in `tstates` (sorted) and were left out of its call: their
  // walks this tick then need no call each (the recorder found them changed after all).
  void read_stacks(std::span<const PyThread> listed, std::span<const uint64_t> tstates);

  // A switched-out greenlet keeps its frames in its own data-stack chunk (3.11+). Starting from
  // the entry frame of a call (`code` with argument objects `args`), finds the frames of that
  // call up to the one that yielded, outermost first. False when the frame is gone (its chunk was
  // freed) or now holds another call; always false before 3.11.
  bool parked_frames(uint64_t entry, uint64_t code, std::span<const uint64_t> args, CodeCache& codes, uint64_t tick,
                     std::vector<RawFrame>& out);


 private:
  bool parse_thread(const uint8_t* bytes, uint64_t tstate, uint64_t interp, PyThread& out) const;
  // Where read_threads() finds the runtime's, an interpreter's and a GIL's fields.
  struct ListingSpans {
    uint32_t lo = 0, hi = 0;    // runtime bytes [lo, hi)
    uint32_t ilo = 0, ihi = 0;  // interpreter bytes
    uint32_t gil_need = 0;      // GIL bytes (3.12+)
    bool runtime_gil = false, own_gil = false;
  };
  static ListingSpans listing_spans(const Layout& layout);
  GilSeen runtime_gil_seen(const uint8_t* runtime_bytes) const;
  GilSeen own_gil_seen(const uint8_t* gil_bytes) const;
  bool read_listing_again(std::vector<PyThread>& out, std::span<target::Memory::Request> extra);
  bool drop_prefetched();  // false
  // The last complete listing of a process with one interpreter.
  struct ListingGuess {
    bool valid = false;
    uint64_t interp = 0, gil = 0;
    std::vector<PyThread> threads;
  } listing_guess_;
  std::vector<uint8_t> listing_buf_;
  std::vector<target::Memory::Request> listing_reads_;
  std::vector<size_t> tstate_reads_;  // where each thread state's read is in listing_reads_
  bool snapshot(const PyThread& listed, PyThread& fresh);
  void remember(uint64_t tstate, const PyThread& walked);
  bool find_pthread_tid_offset(uint64_t pthread_id);
  void native_ids_from_pthreads(std::span<PyThread> threads);
  WalkError walk_frame_objects(const PyThread& thread, std::vector<RawFrame>& out);
  WalkError walk_interpreter_frames(const PyThread& thread, std::vector<RawFrame>& out);
  WalkError confirm(const PyThread& thread, std::vector<RawFrame>& out);
  WalkError confirm_from_snapshot(const PyThread& thread, std::vector<RawFrame>& out);
  using BytesAt = FunctionRef<const uint8_t*(uint64_t frame)>;
  // `verified`, per block (see Visited::block): the frames of that block wholly below this address
  // read again byte for byte as the walk read them, and need no comparing one by one.
  WalkError settle(uint64_t top_now, const BytesAt& copy, const BytesAt& again, const BytesAt* again2,
                   std::vector<RawFrame>& out, const std::vector<uint64_t>* verified = nullptr);
  std::vector<uint64_t> verified_;

  // What identified each frame the walk followed (skipped ones too), innermost first, as read.
  struct Visited {
    uint64_t address, code, previous, instr;
    int32_t out_index;  // index in the walk's output, -1 for a skipped frame
    int32_t block;      // where its bytes came from (see cached()), -1 when read alone
  };
  // Whether `v`'s identifying bytes (up to identity_end) lie where `verified` (see settle()) says
  // its block read again as the walk read it.
  static bool verified_frame(const Visited& v, const std::vector<uint64_t>* verified, uint32_t identity_end) {
    return verified && v.block >= 0 && static_cast<size_t>(v.block) < verified->size() &&
           v.address + identity_end <= (*verified)[v.block];
  }
  std::vector<Visited> visited_;
  struct Range {
    uint64_t start, end;
    size_t buffer_offset;
  };
  std::vector<Range> confirm_ranges_, confirm_slices_, block_span_;
  // The snapshot's second reads: the top, then the stack again (see snapshot()).
  struct Recheck {
    bool valid = false;
    uint64_t top_ref = 0, top = 0;
    std::vector<Range> slices;
    std::vector<uint8_t> ok;     // per pass and slice (bytes, not bits: read for every frame)
    std::vector<uint8_t> bytes;  // both reads
    size_t second = 0;           // where the second read starts in `bytes`
  } recheck_;
  size_t late_reads_ = 0;  // reads the walk made after the snapshot
  ReadTimes stack_read_at_;
  std::pair<int64_t, int64_t> snapshot_read_at_{0, 0}, confirm_read_at_{0, 0}, batch_read_at_{0, 0};
  bool snapshot_gone_ = false;  // the snapshot found the listed thread ended
  size_t guessed_windows_ = 0;                       // windows_[0..n) are guessed frames
  std::unordered_map<uint64_t, uint32_t> window_at_;  // aligned window base -> index
  mutable int32_t hit_block_ = -1;
  size_t locals_wanted_ = 0;
  size_t stable_ = 0;
  size_t read_depth_ = 0;
  // A thread's data-stack chunks, each read whole: the current one up front, older ones (a deep
  // stack spills into them) when the walk reaches them.
  struct CachedChunk {
    uint64_t base = 0, end = 0;
    std::vector<uint8_t> bytes;
  };
  // Where each thread's stack was at its last walk (by thread state), read again with it.
  struct Guess {
    static constexpr size_t kCFrames = 3;
    uint64_t cframes[kCFrames] = {};  // 3.11–3.12: recent CFrames, most recent first
    uint64_t chunk = 0, chunk_end = 0;
    uint64_t top = 0;  // 3.11+: the data stack's top at the last walk
    std::vector<uint64_t> frames;  // ≤3.10: frame objects
    // 3.11+: a deep stack's older data-stack chunks as the last walk read them, in order. The
    // outer frames of a deep stack rarely move: the next walk uses them as they were, and its
    // confirmation (which reads them again anyway) tells whether they still are.
    std::vector<CachedChunk> older;
    size_t older_count = 0;  // how many of `older` hold the last walk's chunks
    uint64_t last_walk = 0;
  };
  std::unordered_map<uint64_t, Guess> guesses_;
  std::vector<uint64_t> guess_scratch_;
  uint64_t walks_ = 0;
  bool threads_complete_ = true;
  std::optional<uint64_t> generation_;
  GilSeen gil_seen_;
  mutable size_t last_hit_ = 0, last_window_ = 0;
  std::vector<uint8_t> confirm_buf_;
  std::vector<target::Memory::Request> confirm_reads_;
  const uint8_t* frame_bytes(uint64_t address, size_t size);
  // Reads one data-stack chunk's used part into the cache; returns its `previous` chunk.
  uint64_t load_chunk(uint64_t chunk, uint64_t used_end);
  const uint8_t* cached(uint64_t address, size_t size) const;

  const target::Memory& memory_;
  const Interpreter& interp_;
  const Layout& layout_;
  target::ThreadIds thread_ids_;
  std::vector<uint8_t> tstate_buf_, frame_buf_, interp_buf_;
  std::unordered_set<uint64_t> listed_tstates_;  // read_threads: the thread states followed so far
  const ListingSpans spans_;
  std::vector<CachedChunk> chunks_;
  size_t chunks_used_ = 0;
  uint64_t next_chunk_ = 0;  // the older chunk to load next, 0 when the chain is exhausted
  uint64_t bottom_ = 0, bottom_code_ = 0;
  std::vector<uint8_t> parked_buf_;
  // ≤3.10: frame objects are found one by one by following f_back, so a deep stack read frame
  // by frame takes long enough to change under the walk. Frame objects of one call chain come
  // from the same allocator pools, so reading the 16 KiB window around a frame brings in its
  // neighbours: few reads, close to a snapshot.
  const uint8_t* windowed_frame_bytes(uint64_t address, size_t size);
  struct Window {
    uint64_t base = 0;
    std::vector<uint8_t> bytes;
  };
  std::vector<Window> windows_;
  size_t windows_used_ = 0;
  // One thread's snapshot reads (see snapshot()), into buffers of its own: planned, read (alone,
  // or in the listing's system call), then used by the thread's walk.
  struct SnapshotRead {
    PyThread listed;       // the thread it was planned for
    bool planned = false;  // planned and not used yet
    std::vector<target::Memory::Request> reads;
    std::vector<uint8_t> tstate, chunk;
    uint64_t chunk_base = 0, chunk_end = 0;
    int32_t pthread_tid = 0;
    uint64_t cframes[Guess::kCFrames] = {}, top[Guess::kCFrames] = {}, top2[Guess::kCFrames] = {};
    size_t n_cframes = 0, n_windows = 0;
    std::vector<Window> windows;
    Recheck rc;
    size_t pthread_read = 0, cframe_reads = 0, stack_reads = 0, window_reads = 0, top_again = 0;
    bool pthread_checked = false, guessed = false;
    std::pair<int64_t, int64_t> read_at{0, 0};  // monotonic µs around the system call that made its reads
  };
  void plan_snapshot(const PyThread& listed, const Guess& guess, SnapshotRead& sr);
  void prefetch_snapshot(size_t i, const PyThread& listed, const Guess& guess);
  void take_prefetched(size_t i);
  void timed_batch(std::span<target::Memory::Request> reads, std::pair<int64_t, int64_t>& at);
  bool use_snapshot(const PyThread& listed, Guess& guess, SnapshotRead& sr, PyThread& fresh);
  SnapshotRead own_snapshot_;
  std::vector<SnapshotRead> prefetched_;  // by position in the listing
  bool stacks_with_listing_ = true;
  std::vector<uint64_t> skipped_stacks_;
  int64_t pthread_tid_offset_ = -1;  // ≤3.10: where glibc keeps the tid in struct pthread
  int pthread_tid_probes_ = 0;
  std::vector<uint64_t> seen_;
};

// Thread names from the threading module (threading._active[ident]._name), read rarely: when a
// thread is first seen and while its name is still unknown.
class ThreadNames {
 public:
  ThreadNames(const target::Memory& memory, const Interpreter& interp)
      : objects_(memory, interp.layout), interp_(interp) {}
  // `now_us` throttles the search for threading._active while the module is not imported yet.
  // `native_id` (the thread state's OS tid; 0: unknown) must be the Thread's too: glibc gives a
  // new thread the struct pthread, hence the ident, of one that just ended, and the new one may
  // have taken its place in threading._active since the thread list was read.
  std::optional<std::string> lookup(uint64_t ident, int64_t native_id, int64_t now_us);
  // Every thread's name at once (a dump): ident -> its Thread's name and native id (0: unread);
  // empty when threading is not imported. Take a name with same_thread() (see lookup).
  struct Named {
    std::string name;
    int64_t native_id = 0;
    bool same_thread(int64_t listed_native_id) const {
      return !native_id || !listed_native_id || native_id == listed_native_id;
    }
  };
  void all(std::unordered_map<uint64_t, Named>& out);

 private:
  bool find_active_dict();
  std::optional<std::string> name_of(uint64_t thread) const;
  int64_t native_id_of(uint64_t thread) const;  // Thread._native_id; 0 where it cannot be read
  ObjectReader objects_;
  const Interpreter& interp_;
  uint64_t active_ = 0;
  int64_t last_search_us_ = -1000000000;
};

}  // namespace swprof::python

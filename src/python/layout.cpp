// The built-in Layout tables. Every number comes from compiling tests/layout/offsets_probe.c
// against that version's own headers (Include/internal included); the layout test recompiles the
// probe wherever the headers are installed and compares. On 3.13+ the target's _Py_DebugOffsets
// overrides what it publishes, so a patch release that moves a field still works.
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "swprof/python.h"

namespace swprof::python {

std::string Version::text() const { return fmt::format("{}.{}.{}", major, minor, micro); }

namespace {

// Fields shared by every version (PyObject header, bytes, type objects, dicts).
void set_common(Layout& l) {
  l.bytes = {16, 32};
  l.tuple = {16, 24};
  l.type.name = 24;
  l.type.flags = 168;
  l.type.basicsize = 32;
  l.type.dictoffset = 288;
  l.dict = {16, 32, 40};
  l.unicode.state = 32;
  l.unicode.length = 16;
}

Layout frame_object_layout(int minor) {
  Layout l;
  l.version = {3, minor, 0};
  set_common(l);
  l.frame_model = FrameModel::kFrameObject;
  l.line_table = minor == 10 ? LineTableFormat::kLinetable310 : LineTableFormat::kLnotab;
  l.gil_model = GilModel::kRuntime;
  l.lasti_in_code_units = minor == 10;
  l.runtime.interpreters_head = 32;
  l.runtime.gil_locked = minor == 8 ? 1168 : 368;
  l.runtime.gil_last_holder = minor == 8 ? 1160 : 360;
  l.runtime.gil_switch_number = minor == 8 ? 1176 : 376;
  l.interp.next = 0;
  l.interp.threads_head = 8;
  l.interp.modules = minor == 8 ? 56 : 856;
  if (minor >= 9) l.interp.runtime = 16;
  l.tstate.next = 8;
  l.tstate.interp = 16;
  l.tstate.frame = 24;
  l.tstate.thread_id = 176;
  l.frame.previous = 24;
  l.frame.code = 32;
  l.frame.instr = minor == 10 ? 96 : 104;
  l.frame.localsplus = minor == 10 ? 352 : 360;
  l.frame.size = l.frame.localsplus;
  l.code.argcount = 16;
  l.code.kwonlyargcount = 24;
  l.code.nlocals = 28;
  l.code.flags = 36;
  l.code.firstlineno = 40;
  l.code.code = 48;
  l.code.freevars = 80;
  l.code.cellvars = 88;
  l.code.filename = 104;
  l.code.name = 112;
  l.code.linetable = 120;  // co_lnotab on 3.8–3.9
  l.unicode.ascii_size = 48;
  l.unicode.compact_size = 72;
  l.type.heap_cached_keys = minor == 9 ? 864 : 872;
  return l;
}

Layout interpreter_frame_layout(int minor) {
  Layout l;
  l.version = {3, minor, 0};
  set_common(l);
  l.frame_model = FrameModel::kInterpreterFrame;
  l.line_table = LineTableFormat::kLocations;
  l.chunk.data = 24;
  l.tstate.next = 8;
  l.tstate.interp = 16;
  l.unicode.ascii_size = minor == 11 ? 48 : 40;
  l.unicode.compact_size = minor == 11 ? 72 : 56;
  // The same in every version from 3.11 on.
  l.frame.instr = 56;
  l.code.flags = 48;
  l.code.filename = 112;
  l.code.name = 120;
  l.code.qualname = 128;
  l.code.linetable = 136;
  if (minor == 11) {
    l.gil_model = GilModel::kRuntime;
    l.has_cframe = true;
    l.runtime.interpreters_head = 40;
    l.runtime.gil_locked = 376;
    l.runtime.gil_last_holder = 368;
    l.runtime.gil_switch_number = 384;
    l.interp.next = 0;
    l.interp.threads_head = 16;
    l.interp.modules = 888;
    l.interp.runtime = 40;
    l.tstate.frame = 56;
    l.cframe_current_frame = 8;
    l.tstate.thread_id = 152;
    l.tstate.native_thread_id = 160;
    l.tstate.datastack_chunk = 296;
    l.tstate.datastack_top = 304;
    l.frame.code = 32;
    l.frame.frame_obj = 40;
    l.frame.previous = 48;
    l.frame.owner = 69;
    l.frame.is_entry = 68;
    l.frame.localsplus = 72;
    l.frame_specials = 9;
    l.code.argcount = 56;
    l.code.kwonlyargcount = 64;
    l.code.stacksize = 68;
    l.code.firstlineno = 72;
    l.code.nlocalsplus = 76;
    l.code.firsttraceable = 168;
    l.code.code_adaptive = 184;
    l.type.heap_cached_keys = 872;
  } else {
    l.gil_model = GilModel::kInterpreterPointer;
    l.gil.locked = 16;
    l.gil.last_holder = 8;
    l.gil.switch_number = 24;
    l.frame.code = 0;
    l.frame.previous = 8;
    l.frame.frame_obj = 48;
    l.code.argcount = 52;
    l.code.kwonlyargcount = 60;
    l.code.firstlineno = 68;
    l.code.nlocalsplus = 72;
    l.code.framesize = 76;
    l.type.heap_cached_keys = 880;
    if (minor == 12) {
      l.has_cframe = true;
      l.runtime.interpreters_head = 40;
      l.interp.ceval_gil = 384;
      l.interp.next = 0;
      l.interp.threads_head = 72;
      l.interp.modules = 944;
      l.interp.runtime = 96;
      l.tstate.frame = 56;
      l.cframe_current_frame = 0;
      l.tstate.thread_id = 136;
      l.tstate.native_thread_id = 144;
      l.tstate.datastack_chunk = 232;
      l.tstate.datastack_top = 240;
      l.frame.owner = 70;
      l.frame.localsplus = 72;
      l.owner_cstack = 3;
      l.code.firsttraceable = 176;
      l.code.code_adaptive = 192;
    } else {
      l.interp.ceval_gil = 16;
      l.tstate.frame = 72;  // current_frame
      l.frame.owner = minor == 13 ? 70 : 74;
      l.frame.localsplus = minor == 13 ? 72 : 80;
      l.tagged_code_ref = minor >= 14;
      if (minor >= 14) l.tuple.items = 32;  // PyTupleObject gained ob_hash
      l.code.firsttraceable = minor == 13 ? 184 : 192;
      l.code.code_adaptive = minor == 13 ? 200 : 208;
      if (minor == 13) {
        l.runtime.interpreters_head = 632;
        l.interp.next = 7264;
        l.interp.threads_head = 7344;
        l.interp.modules = 7656;
        l.interp.runtime = 7376;
        l.owner_cstack = 3;
      } else if (minor == 14) {
        l.runtime.interpreters_head = 808;
        l.interp.next = 7272;
        l.interp.threads_head = 7344;
        l.interp.modules = 7688;
        l.interp.runtime = 7384;
        l.owner_interpreter = 3;
        l.owner_cstack = 4;
      } else {
        l.runtime.interpreters_head = 936;
        l.interp.next = 7264;
        l.interp.threads_head = 7336;
        l.interp.modules = 7592;
        l.interp.runtime = 7376;
        l.owner_interpreter = 3;
        l.type.heap_cached_keys = 888;
      }
      if (minor <= 14) {
        l.tstate.thread_id = 152;
        l.tstate.native_thread_id = 160;
        l.tstate.datastack_chunk = 232;
        l.tstate.datastack_top = 240;
      } else {
        l.tstate.thread_id = 176;
        l.tstate.native_thread_id = 184;
        l.tstate.datastack_chunk = 256;
        l.tstate.datastack_top = 264;
      }
    }
  }
  l.frame.size = l.frame.localsplus;
  l.frame_object_f_frame = 24;
  return l;
}

// asyncio's facts. The generic ones are from each version's headers; the TaskObj fields from
// Modules/_asynciomodule.c at each version (checked against the interpreters by
// tests/layout/asyncio_probe.py); 3.14+ reads them from the target's AsyncioDebug section too.
void set_asyncio(Layout& l, int minor) {
  auto& a = l.asyncio;
  using Registry = Layout::Asyncio::Registry;
  a.registry = minor <= 11 ? Registry::kAllTasks : minor <= 13 ? Registry::kScheduledEager : Registry::kThreadLists;
  struct TaskFields {
    uint32_t state, fut_waiter, coro, name, size;
  };
  static constexpr TaskFields kTask[] = {
      {72, 104, 112, 120, 144},   // 3.8
      {80, 144, 152, 160, 184},   // 3.9: _PyErr_StackItem task_cancelled_exc_state
      {88, 152, 160, 168, 192},   // 3.10: fut_exception_tb
      {88, 128, 136, 144, 176},   // 3.11: cancelled_exc is an object again
      {88, 128, 136, 144, 176},   // 3.12
      {96, 112, 120, 128, 144},   // 3.13: bit fields
      {104, 120, 128, 136, 168},  // 3.14: fut_awaited_by, is_task, task_node
      {104, 120, 128, 136, 168},  // 3.15
  };
  const TaskFields& t = kTask[minor - kMinMinor];
  a.task_state = t.state;
  a.task_fut_waiter = t.fut_waiter;
  a.task_coro = t.coro;
  a.task_name = t.name;
  a.task_size = t.size;
  if (minor >= 14) {
    a.task_awaited_by = 96;
    a.task_awaited_by_is_set = 109;
    a.task_node = 152;
  }
  if (minor <= 9) a.wakeup_task = 16;
  a.type_base = 256;
  a.set_mask = 32;
  a.set_table = 40;
  a.list_items = 24;
  a.weakref_object = 16;
  a.method_self = 24;
  a.cfunction_self = 24;
  if (minor <= 10) {
    a.gen_frame = 16;
    a.frame_valuestack = 64;
    a.op_yield_from = 72;
    if (minor <= 9) {
      a.frame_stacktop = 72;
      a.frame_executing = 116;
    } else {
      a.frame_stackdepth = 80;
      a.frame_state = 108;
    }
  } else {
    a.gen_iframe = minor == 11 ? 80 : 72;
    a.gen_frame_state = minor == 11 ? 75 : 67;
    if (minor <= 13) a.iframe_stacktop = 64;
    else a.iframe_stackpointer = 64;
    a.yield_from_depth = minor >= 15 ? 2 : 1;
    if (minor == 11) {
      a.op_resume = 151;
      a.op_resume_quick = 150;
    } else if (minor == 12) {
      a.op_resume = 151;
      a.op_instrumented_resume = 240;
    }
  }
  if (minor >= 10 && minor <= 12) {
    a.state_created = -2;
    a.state_suspended = -1;
    a.state_executing = 0;
    a.state_completed = 1;
    a.state_cleared = 4;
  } else if (minor == 13 || minor == 14) {
    a.state_created = -3;
    a.state_suspended = -2;
    a.state_suspended_yield_from = -1;
    a.state_executing = 0;
    a.state_completed = 1;
    a.state_cleared = 4;
  } else if (minor >= 15) {
    a.state_created = 0;
    a.state_suspended = 1;
    a.state_suspended_yield_from = 2;
    a.state_suspended_yield_from_locked = 3;
    a.state_executing = 4;
    a.state_cleared = 5;
  }
  if (minor == 14) {
    a.tstate_tasks_head = 880;
    a.tstate_running_loop = 864;
    a.tstate_running_task = 872;
    a.interp_tasks_head = 10880;
  } else if (minor == 15) {
    a.tstate_tasks_head = 1048;
    a.tstate_running_loop = 1024;
    a.tstate_running_task = 1032;
    a.interp_tasks_head = 10856;
  }
}

// dump's facts (Layout::Live), from each version's headers.
void set_live(Layout& l, int minor) {
  auto& v = l.live;
  if (minor <= 10) {
    v.code_varnames = 72;
  } else {
    v.code_localsplusnames = 96;
    v.code_localspluskinds = 104;
    v.kind_local = 0x20;
    v.kind_cell = 0x40;
    v.kind_free = 0x80;
    if (minor >= 12) v.kind_hidden = 0x10;
  }
  v.gc_in_runtime = minor == 8;
  static constexpr uint32_t kGcState[] = {344, 616, 616, 648, 112, 7400, 7408, 7400};
  v.gc_state = kGcState[minor - kMinMinor];
  v.gc_generations = minor >= 15 ? 8 : 24;
  // Up to 3.13 a `generation0` pointer sits between the generations and the permanent one.
  v.gc_permanent = minor <= 13 ? 104 : minor == 14 ? 96 : 80;
}

struct Tables {
  Layout layouts[kMaxMinor - kMinMinor + 1];
  Tables() {
    for (int minor = kMinMinor; minor <= kMaxMinor; ++minor) {
      layouts[minor - kMinMinor] = minor <= 10 ? frame_object_layout(minor) : interpreter_frame_layout(minor);
      set_asyncio(layouts[minor - kMinMinor], minor);
      set_live(layouts[minor - kMinMinor], minor);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// _Py_DebugOffsets: a struct of uint64 fields after an 8-byte cookie. Its own shape changes between
// versions, so each version lists its field names in order (Include/internal/
// pycore_debug_offsets.h; 3.13: pycore_runtime.h).
constexpr const char* kDebugFields13[] = {
    "version", "free_threaded",
    "runtime_state.size", "runtime_state.finalizing", "runtime_state.interpreters_head",
    "interpreter_state.size", "interpreter_state.id", "interpreter_state.next",
    "interpreter_state.threads_head", "interpreter_state.gc", "interpreter_state.imports_modules",
    "interpreter_state.sysdict", "interpreter_state.builtins", "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state", "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked", "interpreter_state.gil_runtime_state_holder",
    "thread_state.size", "thread_state.prev", "thread_state.next", "thread_state.interp",
    "thread_state.current_frame", "thread_state.thread_id", "thread_state.native_thread_id",
    "thread_state.datastack_chunk", "thread_state.status",
    "interpreter_frame.size", "interpreter_frame.previous", "interpreter_frame.executable",
    "interpreter_frame.instr_ptr", "interpreter_frame.localsplus", "interpreter_frame.owner",
    "code_object.size", "code_object.filename", "code_object.name", "code_object.qualname",
    "code_object.linetable", "code_object.firstlineno", "code_object.argcount",
    "code_object.localsplusnames", "code_object.localspluskinds", "code_object.co_code_adaptive",
    "pyobject.size", "pyobject.ob_type",
    "type_object.size", "type_object.tp_name", "type_object.tp_repr", "type_object.tp_flags",
    "tuple_object.size", "tuple_object.ob_item", "tuple_object.ob_size",
    "list_object.size", "list_object.ob_item", "list_object.ob_size",
    "dict_object.size", "dict_object.ma_keys", "dict_object.ma_values",
    "float_object.size", "float_object.ob_fval",
    "long_object.size", "long_object.lv_tag", "long_object.ob_digit",
    "bytes_object.size", "bytes_object.ob_size", "bytes_object.ob_sval",
    "unicode_object.size", "unicode_object.state", "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size", "gc.collecting",
};

constexpr const char* kDebugFields14[] = {
    "version", "free_threaded",
    "runtime_state.size", "runtime_state.finalizing", "runtime_state.interpreters_head",
    "interpreter_state.size", "interpreter_state.id", "interpreter_state.next",
    "interpreter_state.threads_head", "interpreter_state.threads_main", "interpreter_state.gc",
    "interpreter_state.imports_modules", "interpreter_state.sysdict", "interpreter_state.builtins",
    "interpreter_state.ceval_gil", "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled", "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder", "interpreter_state.code_object_generation",
    "interpreter_state.tlbc_generation",
    "thread_state.size", "thread_state.prev", "thread_state.next", "thread_state.interp",
    "thread_state.current_frame", "thread_state.thread_id", "thread_state.native_thread_id",
    "thread_state.datastack_chunk", "thread_state.status",
    "interpreter_frame.size", "interpreter_frame.previous", "interpreter_frame.executable",
    "interpreter_frame.instr_ptr", "interpreter_frame.localsplus", "interpreter_frame.owner",
    "interpreter_frame.stackpointer", "interpreter_frame.tlbc_index",
    "code_object.size", "code_object.filename", "code_object.name", "code_object.qualname",
    "code_object.linetable", "code_object.firstlineno", "code_object.argcount",
    "code_object.localsplusnames", "code_object.localspluskinds", "code_object.co_code_adaptive",
    "code_object.co_tlbc",
    "pyobject.size", "pyobject.ob_type",
    "type_object.size", "type_object.tp_name", "type_object.tp_repr", "type_object.tp_flags",
    "tuple_object.size", "tuple_object.ob_item", "tuple_object.ob_size",
    "list_object.size", "list_object.ob_item", "list_object.ob_size",
    "set_object.size", "set_object.used", "set_object.table", "set_object.mask",
    "dict_object.size", "dict_object.ma_keys", "dict_object.ma_values",
    "float_object.size", "float_object.ob_fval",
    "long_object.size", "long_object.lv_tag", "long_object.ob_digit",
    "bytes_object.size", "bytes_object.ob_size", "bytes_object.ob_sval",
    "unicode_object.size", "unicode_object.state", "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size", "gc.collecting",
    "gen_object.size", "gen_object.gi_name", "gen_object.gi_iframe", "gen_object.gi_frame_state",
    "llist_node.next", "llist_node.prev",
    "debugger_support.eval_breaker", "debugger_support.remote_debugger_support",
    "debugger_support.remote_debugging_enabled", "debugger_support.debugger_pending_call",
    "debugger_support.debugger_script_path", "debugger_support.debugger_script_path_size",
};

constexpr const char* kDebugFields15[] = {
    "version", "free_threaded",
    "runtime_state.size", "runtime_state.finalizing", "runtime_state.interpreters_head",
    "interpreter_state.size", "interpreter_state.id", "interpreter_state.next",
    "interpreter_state.threads_head", "interpreter_state.threads_main", "interpreter_state.gc",
    "interpreter_state.imports_modules", "interpreter_state.sysdict", "interpreter_state.builtins",
    "interpreter_state.ceval_gil", "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled", "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder", "interpreter_state.code_object_generation",
    "interpreter_state.tlbc_generation",
    "thread_state.size", "thread_state.prev", "thread_state.next", "thread_state.interp",
    "thread_state.current_frame", "thread_state.base_frame", "thread_state.last_profiled_frame",
    "thread_state.last_profiled_frame_seq", "thread_state.thread_id",
    "thread_state.native_thread_id", "thread_state.datastack_chunk", "thread_state.status",
    "thread_state.holds_gil", "thread_state.gil_requested", "thread_state.current_exception",
    "thread_state.exc_state",
    "err_stackitem.exc_value",
    "interpreter_frame.size", "interpreter_frame.previous", "interpreter_frame.executable",
    "interpreter_frame.instr_ptr", "interpreter_frame.localsplus", "interpreter_frame.owner",
    "interpreter_frame.stackpointer", "interpreter_frame.tlbc_index",
    "code_object.size", "code_object.filename", "code_object.name", "code_object.qualname",
    "code_object.linetable", "code_object.firstlineno", "code_object.argcount",
    "code_object.localsplusnames", "code_object.localspluskinds", "code_object.co_code_adaptive",
    "code_object.co_tlbc",
    "pyobject.size", "pyobject.ob_type",
    "type_object.size", "type_object.tp_name", "type_object.tp_repr", "type_object.tp_flags",
    "type_object.tp_basicsize", "type_object.tp_dictoffset",
    "heap_type_object.size", "heap_type_object.ht_cached_keys",
    "tuple_object.size", "tuple_object.ob_item", "tuple_object.ob_size",
    "list_object.size", "list_object.ob_item", "list_object.ob_size",
    "set_object.size", "set_object.used", "set_object.table", "set_object.mask",
    "dict_object.size", "dict_object.ma_keys", "dict_object.ma_values",
    "float_object.size", "float_object.ob_fval",
    "long_object.size", "long_object.lv_tag", "long_object.ob_digit",
    "bytes_object.size", "bytes_object.ob_size", "bytes_object.ob_sval",
    "unicode_object.size", "unicode_object.state", "unicode_object.length",
    "unicode_object.asciiobject_size", "unicode_object.compactunicodeobject_size",
    "gc.size", "gc.collecting", "gc.frame", "gc.generation_stats_size", "gc.generation_stats",
    "gen_object.size", "gen_object.gi_name", "gen_object.gi_iframe", "gen_object.gi_frame_state",
    "llist_node.next", "llist_node.prev",
    "debugger_support.eval_breaker", "debugger_support.remote_debugger_support",
    "debugger_support.remote_debugging_enabled", "debugger_support.debugger_pending_call",
    "debugger_support.debugger_script_path", "debugger_support.debugger_script_path_size",
};

std::span<const char* const> debug_fields(int minor) {
  switch (minor) {
    case 13: return kDebugFields13;
    case 14: return kDebugFields14;
    case 15: return kDebugFields15;
    default: return {};
  }
}

}  // namespace

const Layout* builtin_layout(int minor) {
  static const Tables tables;
  if (minor < kMinMinor || minor > kMaxMinor) return nullptr;
  return &tables.layouts[minor - kMinMinor];
}

size_t debug_offsets_size(int minor) {
  auto fields = debug_fields(minor);
  return fields.empty() ? 0 : 8 + 8 * fields.size();
}

std::optional<std::string> apply_debug_offsets(Layout& l, std::span<const uint8_t> blob) {
  int minor = l.version.minor;
  auto fields = debug_fields(minor);
  if (fields.empty()) return "this version has no _Py_DebugOffsets";
  if (blob.size() < debug_offsets_size(minor)) return "_Py_DebugOffsets is truncated";
  if (std::memcmp(blob.data(), "xdebugpy", 8) != 0) return "_Py_DebugOffsets cookie \"xdebugpy\" not found";
  std::map<std::string_view, uint64_t> v;
  for (size_t i = 0; i < fields.size(); ++i) {
    uint64_t value;
    std::memcpy(&value, blob.data() + 8 + 8 * i, 8);
    v[fields[i]] = value;
  }
  uint64_t hex = v["version"];
  int got_major = static_cast<int>((hex >> 24) & 0xFF), got_minor = static_cast<int>((hex >> 16) & 0xFF);
  if (got_major != 3 || got_minor != minor)
    return fmt::format("_Py_DebugOffsets says version {}.{}, expected 3.{}", got_major, got_minor, minor);
  if (v["free_threaded"] != 0) return "free-threaded (no-GIL) CPython builds are not supported";

  // Sizes bound the offsets inside them: a wild value means the blob is not what we think.
  auto within = [&](std::string_view size_field, std::initializer_list<std::string_view> names) {
    uint64_t size = v[size_field];
    if (size == 0 || size > (64u << 20)) return false;
    for (auto n : names)
      if (v[n] >= size) return false;
    return true;
  };
  if (!within("runtime_state.size", {"runtime_state.interpreters_head"}) ||
      !within("interpreter_state.size", {"interpreter_state.next", "interpreter_state.threads_head",
                                         "interpreter_state.imports_modules", "interpreter_state.ceval_gil",
                                         "interpreter_state.gil_runtime_state_locked",
                                         "interpreter_state.gil_runtime_state_holder"}) ||
      !within("thread_state.size", {"thread_state.next", "thread_state.interp", "thread_state.current_frame",
                                    "thread_state.thread_id", "thread_state.native_thread_id",
                                    "thread_state.datastack_chunk"}) ||
      !within("code_object.size", {"code_object.filename", "code_object.name", "code_object.qualname",
                                   "code_object.linetable", "code_object.firstlineno",
                                   "code_object.argcount"}) ||
      v["interpreter_frame.size"] > 4096 || v["interpreter_frame.localsplus"] > v["interpreter_frame.size"])
    return "_Py_DebugOffsets holds implausible offsets";

  auto u32 = [](uint64_t x) { return static_cast<uint32_t>(x); };
  l.runtime.interpreters_head = u32(v["runtime_state.interpreters_head"]);
  l.interp.next = u32(v["interpreter_state.next"]);
  l.interp.threads_head = u32(v["interpreter_state.threads_head"]);
  l.interp.modules = u32(v["interpreter_state.imports_modules"]);
  l.interp.ceval_gil = u32(v["interpreter_state.ceval_gil"]);
  uint64_t gil_base = v["interpreter_state.gil_runtime_state"];
  uint64_t locked = v["interpreter_state.gil_runtime_state_locked"];
  uint64_t holder = v["interpreter_state.gil_runtime_state_holder"];
  if (locked >= gil_base && holder >= gil_base && locked - gil_base < 256 && holder - gil_base < 256) {
    l.gil.locked = u32(locked - gil_base);
    l.gil.last_holder = u32(holder - gil_base);
    l.gil.switch_number = l.gil.locked + 8;  // (not among the debug offsets)
  }
  if (v.count("interpreter_state.code_object_generation"))
    l.interp.code_object_generation = u32(v["interpreter_state.code_object_generation"]);
  // datastack_top follows datastack_chunk in PyThreadState in every version that has both.
  uint32_t chunk = u32(v["thread_state.datastack_chunk"]);
  l.tstate.datastack_top = chunk + (l.tstate.datastack_top - l.tstate.datastack_chunk);
  l.tstate.datastack_chunk = chunk;
  l.tstate.next = u32(v["thread_state.next"]);
  l.tstate.interp = u32(v["thread_state.interp"]);
  l.tstate.frame = u32(v["thread_state.current_frame"]);
  l.tstate.thread_id = u32(v["thread_state.thread_id"]);
  l.tstate.native_thread_id = u32(v["thread_state.native_thread_id"]);
  l.frame.previous = u32(v["interpreter_frame.previous"]);
  l.frame.code = u32(v["interpreter_frame.executable"]);
  l.frame.instr = u32(v["interpreter_frame.instr_ptr"]);
  l.frame.localsplus = u32(v["interpreter_frame.localsplus"]);
  l.frame.owner = u32(v["interpreter_frame.owner"]);
  l.frame.size = l.frame.localsplus;
  l.code.filename = u32(v["code_object.filename"]);
  l.code.name = u32(v["code_object.name"]);
  l.code.qualname = u32(v["code_object.qualname"]);
  l.code.linetable = u32(v["code_object.linetable"]);
  l.code.firstlineno = u32(v["code_object.firstlineno"]);
  l.code.argcount = u32(v["code_object.argcount"]);
  l.code.code_adaptive = u32(v["code_object.co_code_adaptive"]);
  l.type.name = u32(v["type_object.tp_name"]);
  l.type.flags = u32(v["type_object.tp_flags"]);
  l.tuple.items = u32(v["tuple_object.ob_item"]);
  l.tuple.size = u32(v["tuple_object.ob_size"]);
  l.dict.keys = u32(v["dict_object.ma_keys"]);
  l.dict.values = u32(v["dict_object.ma_values"]);
  l.bytes.size = u32(v["bytes_object.ob_size"]);
  l.bytes.data = u32(v["bytes_object.ob_sval"]);
  l.unicode.state = u32(v["unicode_object.state"]);
  l.unicode.length = u32(v["unicode_object.length"]);
  l.unicode.ascii_size = u32(v["unicode_object.asciiobject_size"]);
  if (v.count("unicode_object.compactunicodeobject_size"))
    l.unicode.compact_size = u32(v["unicode_object.compactunicodeobject_size"]);
  if (v.count("type_object.tp_basicsize")) {
    l.type.basicsize = u32(v["type_object.tp_basicsize"]);
    l.type.dictoffset = u32(v["type_object.tp_dictoffset"]);
    l.type.heap_cached_keys = u32(v["heap_type_object.ht_cached_keys"]);
  }
  if (v.count("gen_object.gi_iframe")) {
    // 3.14+: coroutines and the containers asyncio keeps its tasks in.
    uint64_t gen_size = v["gen_object.size"];
    if (gen_size == 0 || gen_size > 4096 || v["gen_object.gi_iframe"] >= gen_size ||
        v["gen_object.gi_frame_state"] >= gen_size || v["interpreter_frame.stackpointer"] >= v["interpreter_frame.size"])
      return "_Py_DebugOffsets holds implausible generator offsets";
    auto& a = l.asyncio;
    a.gen_iframe = u32(v["gen_object.gi_iframe"]);
    a.gen_frame_state = u32(v["gen_object.gi_frame_state"]);
    a.iframe_stackpointer = u32(v["interpreter_frame.stackpointer"]);
    a.set_mask = u32(v["set_object.mask"]);
    a.set_table = u32(v["set_object.table"]);
    a.list_items = u32(v["list_object.ob_item"]);
    a.list_size = u32(v["list_object.ob_size"]);
  }
  // dump's fields, where the target publishes them.
  auto& live = l.live;
  if (within("interpreter_state.size", {"interpreter_state.gc"})) live.gc_state = u32(v["interpreter_state.gc"]);
  if (within("code_object.size", {"code_object.localsplusnames", "code_object.localspluskinds"})) {
    live.code_localsplusnames = u32(v["code_object.localsplusnames"]);
    live.code_localspluskinds = u32(v["code_object.localspluskinds"]);
  }
  if (within("float_object.size", {"float_object.ob_fval"})) live.float_value = u32(v["float_object.ob_fval"]);
  if (within("long_object.size", {"long_object.ob_digit"})) live.long_digits = u32(v["long_object.ob_digit"]);
  if (v.count("set_object.used") && within("set_object.size", {"set_object.used"}))
    live.set_used = u32(v["set_object.used"]);
  l.version.micro = static_cast<int>((hex >> 8) & 0xFF);
  l.from_debug_offsets = true;
  return std::nullopt;
}

}  // namespace swprof::python

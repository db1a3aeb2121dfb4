// Prints the offsets swprof's Layout needs, compiled against one CPython version's own headers
// (internal ones included): cc -I<include/python3.X> -I<include/python3.X/internal> offsets_probe.c
// The built-in tables in src/python/layout.cpp were written from its output, and
// tests/layout/check_layout.py compares the two wherever headers are installed.
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x030d0000
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_code.h"
#include "internal/pycore_pystate.h"
#elif PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_pystate.h"
#elif PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_runtime.h"
#include "internal/pycore_pystate.h"
#include "internal/pycore_interp.h"
#include "frameobject.h"
#else
#include "internal/pycore_pystate.h"
#include "frameobject.h"
#endif
#if PY_VERSION_HEX < 0x030d0000
#include "opcode.h"
#endif
#define P(name, expr) printf("%-28s %zu\n", name, (size_t)(expr))
#define S(name, expr) printf("%-28s %d\n", name, (int)(expr))
int main(void) {
  printf("version %s\n", PY_VERSION);
#if PY_VERSION_HEX >= 0x030b0000
  P("runtime.interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
#else
  P("runtime.interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
#endif
#if PY_VERSION_HEX < 0x030c0000
  P("runtime.gil_locked", offsetof(_PyRuntimeState, ceval.gil.locked));
  P("runtime.gil_last_holder", offsetof(_PyRuntimeState, ceval.gil.last_holder));
  P("runtime.gil_switch_number", offsetof(_PyRuntimeState, ceval.gil.switch_number));
#else
  P("interp.ceval_gil", offsetof(PyInterpreterState, ceval.gil));
  P("gil.locked", offsetof(struct _gil_runtime_state, locked));
  P("gil.last_holder", offsetof(struct _gil_runtime_state, last_holder));
  P("gil.switch_number", offsetof(struct _gil_runtime_state, switch_number));
#endif
  P("interp.next", offsetof(PyInterpreterState, next));
#if PY_VERSION_HEX >= 0x03090000
  P("interp.runtime", offsetof(PyInterpreterState, runtime));
#endif
#if PY_VERSION_HEX >= 0x030b0000
  P("interp.threads_head", offsetof(PyInterpreterState, threads.head));
#else
  P("interp.threads_head", offsetof(PyInterpreterState, tstate_head));
#endif
#if PY_VERSION_HEX >= 0x030c0000
  P("interp.modules", offsetof(PyInterpreterState, imports.modules));
#else
  P("interp.modules", offsetof(PyInterpreterState, modules));
#endif
  P("tstate.next", offsetof(PyThreadState, next));
  P("tstate.interp", offsetof(PyThreadState, interp));
#if PY_VERSION_HEX >= 0x030d0000
  P("tstate.current_frame", offsetof(PyThreadState, current_frame));
#elif PY_VERSION_HEX >= 0x030b0000
  P("tstate.cframe", offsetof(PyThreadState, cframe));
  P("cframe.current_frame", offsetof(_PyCFrame, current_frame));
#else
  P("tstate.frame", offsetof(PyThreadState, frame));
#endif
  P("tstate.thread_id", offsetof(PyThreadState, thread_id));
#if PY_VERSION_HEX >= 0x030b0000
  P("tstate.native_thread_id", offsetof(PyThreadState, native_thread_id));
  P("tstate.datastack_chunk", offsetof(PyThreadState, datastack_chunk));
  P("tstate.datastack_top", offsetof(PyThreadState, datastack_top));
  P("chunk.data", offsetof(_PyStackChunk, data));
#endif
#if PY_VERSION_HEX < 0x030b0000
  P("frame.f_back", offsetof(PyFrameObject, f_back));
  P("frame.f_code", offsetof(PyFrameObject, f_code));
  P("frame.f_lasti", offsetof(PyFrameObject, f_lasti));
  P("frame.f_localsplus", offsetof(PyFrameObject, f_localsplus));
#else
  P("iframe.previous", offsetof(_PyInterpreterFrame, previous));
#if PY_VERSION_HEX >= 0x030d0000
  P("iframe.code", offsetof(_PyInterpreterFrame, f_executable));
  P("iframe.instr", offsetof(_PyInterpreterFrame, instr_ptr));
#else
  P("iframe.code", offsetof(_PyInterpreterFrame, f_code));
  P("iframe.instr", offsetof(_PyInterpreterFrame, prev_instr));
#endif
  P("iframe.frame_obj", offsetof(_PyInterpreterFrame, frame_obj));
  P("frameobject.f_frame", offsetof(PyFrameObject, f_frame));
  P("iframe.owner", offsetof(_PyInterpreterFrame, owner));
#if PY_VERSION_HEX < 0x030c0000
  P("iframe.is_entry", offsetof(_PyInterpreterFrame, is_entry));
#endif
  P("iframe.localsplus", offsetof(_PyInterpreterFrame, localsplus));
  P("FRAME_OWNED_BY_GENERATOR", FRAME_OWNED_BY_GENERATOR);
#if PY_VERSION_HEX >= 0x030c0000 && PY_VERSION_HEX < 0x030f0000
  P("FRAME_OWNED_BY_CSTACK", FRAME_OWNED_BY_CSTACK);
#endif
#if PY_VERSION_HEX >= 0x030e0000
  P("FRAME_OWNED_BY_INTERPRETER", FRAME_OWNED_BY_INTERPRETER);
#endif
#endif
  P("code.co_argcount", offsetof(PyCodeObject, co_argcount));
  P("code.co_kwonlyargcount", offsetof(PyCodeObject, co_kwonlyargcount));
  P("code.co_flags", offsetof(PyCodeObject, co_flags));
  P("code.co_firstlineno", offsetof(PyCodeObject, co_firstlineno));
  P("code.co_filename", offsetof(PyCodeObject, co_filename));
  P("code.co_name", offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX >= 0x030b0000
  P("code.co_qualname", offsetof(PyCodeObject, co_qualname));
  P("code.co_linetable", offsetof(PyCodeObject, co_linetable));
  P("code.co_nlocalsplus", offsetof(PyCodeObject, co_nlocalsplus));
#if PY_VERSION_HEX >= 0x030c0000
  P("code.co_framesize", offsetof(PyCodeObject, co_framesize));
#else
  P("code.co_stacksize", offsetof(PyCodeObject, co_stacksize));
  P("FRAME_SPECIALS_SIZE", FRAME_SPECIALS_SIZE);
#endif
  P("code.co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
  P("code._co_firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
#elif PY_VERSION_HEX >= 0x030a0000
  P("code.co_linetable", offsetof(PyCodeObject, co_linetable));
  P("code.co_nlocals", offsetof(PyCodeObject, co_nlocals));
  P("code.co_code", offsetof(PyCodeObject, co_code));
  P("code.co_cellvars", offsetof(PyCodeObject, co_cellvars));
  P("code.co_freevars", offsetof(PyCodeObject, co_freevars));
#else
  P("code.co_linetable", offsetof(PyCodeObject, co_lnotab));
  P("code.co_nlocals", offsetof(PyCodeObject, co_nlocals));
  P("code.co_code", offsetof(PyCodeObject, co_code));
  P("code.co_cellvars", offsetof(PyCodeObject, co_cellvars));
  P("code.co_freevars", offsetof(PyCodeObject, co_freevars));
#endif
  P("unicode.state", offsetof(PyASCIIObject, state));
  P("unicode.length", offsetof(PyASCIIObject, length));
  P("unicode.ascii_size", sizeof(PyASCIIObject));
  P("unicode.compact_size", sizeof(PyCompactUnicodeObject));
  P("bytes.ob_size", offsetof(PyVarObject, ob_size));
  P("bytes.ob_sval", offsetof(PyBytesObject, ob_sval));
  P("tuple.ob_item", offsetof(PyTupleObject, ob_item));
  P("type.tp_name", offsetof(PyTypeObject, tp_name));
  P("type.tp_flags", offsetof(PyTypeObject, tp_flags));
  P("type.tp_basicsize", offsetof(PyTypeObject, tp_basicsize));
  P("type.tp_dictoffset", offsetof(PyTypeObject, tp_dictoffset));
  P("heaptype.ht_cached_keys", offsetof(PyHeapTypeObject, ht_cached_keys));
  P("dict.ma_used", offsetof(PyDictObject, ma_used));
  P("dict.ma_keys", offsetof(PyDictObject, ma_keys));
  P("dict.ma_values", offsetof(PyDictObject, ma_values));
  // asyncio: objects and coroutine frames (src/python/asyncio.cpp). The Task / Future fields live
  // in Modules/_asynciomodule.c, not in headers: asyncio_probe.py checks those.
  P("asyncio.type_base", offsetof(PyTypeObject, tp_base));
  P("asyncio.set_mask", offsetof(PySetObject, mask));
  P("asyncio.set_table", offsetof(PySetObject, table));
  P("asyncio.list_size", offsetof(PyVarObject, ob_size));
  P("asyncio.list_items", offsetof(PyListObject, ob_item));
  P("asyncio.weakref_object", offsetof(PyWeakReference, wr_object));
  P("asyncio.method_self", offsetof(PyMethodObject, im_self));
  P("asyncio.cfunction_self", offsetof(PyCFunctionObject, m_self));
#if PY_VERSION_HEX < 0x030b0000
  P("asyncio.gen_frame", offsetof(PyGenObject, gi_frame));
  P("asyncio.frame_valuestack", offsetof(PyFrameObject, f_valuestack));
  P("asyncio.op_yield_from", YIELD_FROM);
#if PY_VERSION_HEX < 0x030a0000
  P("asyncio.frame_stacktop", offsetof(PyFrameObject, f_stacktop));
  P("asyncio.frame_executing", offsetof(PyFrameObject, f_executing));
#else
  P("asyncio.frame_stackdepth", offsetof(PyFrameObject, f_stackdepth));
  P("asyncio.frame_state", offsetof(PyFrameObject, f_state));
#endif
#endif
#if PY_VERSION_HEX >= 0x030a0000
  S("asyncio.state_created", FRAME_CREATED);
  S("asyncio.state_suspended", FRAME_SUSPENDED);
  S("asyncio.state_executing", FRAME_EXECUTING);
  S("asyncio.state_cleared", FRAME_CLEARED);
#if PY_VERSION_HEX < 0x030b0000
  S("asyncio.state_completed", FRAME_RETURNED);
#elif PY_VERSION_HEX < 0x030f0000
  S("asyncio.state_completed", FRAME_COMPLETED);
#endif
#if PY_VERSION_HEX >= 0x030d0000
  S("asyncio.state_suspended_yield_from", FRAME_SUSPENDED_YIELD_FROM);
#endif
#if PY_VERSION_HEX >= 0x030f0000
  S("asyncio.state_suspended_yield_from_locked", FRAME_SUSPENDED_YIELD_FROM_LOCKED);
#endif
#endif
#if PY_VERSION_HEX >= 0x030b0000
  P("asyncio.gen_iframe", offsetof(PyGenObject, gi_iframe));
  P("asyncio.gen_frame_state", offsetof(PyGenObject, gi_frame_state));
#if PY_VERSION_HEX < 0x030e0000
  P("asyncio.iframe_stacktop", offsetof(_PyInterpreterFrame, stacktop));
#else
  P("asyncio.iframe_stackpointer", offsetof(_PyInterpreterFrame, stackpointer));
  P("asyncio.tstate_tasks_head", offsetof(_PyThreadStateImpl, asyncio_tasks_head));
  P("asyncio.tstate_running_loop", offsetof(_PyThreadStateImpl, asyncio_running_loop));
  P("asyncio.tstate_running_task", offsetof(_PyThreadStateImpl, asyncio_running_task));
  P("asyncio.interp_tasks_head", offsetof(PyInterpreterState, asyncio_tasks_head));
#endif
#if PY_VERSION_HEX < 0x030d0000
  P("asyncio.op_resume", RESUME);
#endif
#if PY_VERSION_HEX < 0x030c0000
  P("asyncio.op_resume_quick", RESUME_QUICK);
#elif PY_VERSION_HEX < 0x030d0000
  P("asyncio.op_instrumented_resume", INSTRUMENTED_RESUME);
#endif
#endif
  // swprof dump (src/live/): local variables' names and simple values, and the GC's lists of
  // container objects (where a dump looks for greenlets).
#if PY_VERSION_HEX >= 0x030b0000
  P("live.code_localsplusnames", offsetof(PyCodeObject, co_localsplusnames));
  P("live.code_localspluskinds", offsetof(PyCodeObject, co_localspluskinds));
  P("live.kind_local", CO_FAST_LOCAL);
  P("live.kind_cell", CO_FAST_CELL);
  P("live.kind_free", CO_FAST_FREE);
#if PY_VERSION_HEX >= 0x030c0000
  P("live.kind_hidden", CO_FAST_HIDDEN);
#endif
#else
  P("live.code_varnames", offsetof(PyCodeObject, co_varnames));
#endif
  P("live.float_value", offsetof(PyFloatObject, ob_fval));
#if PY_VERSION_HEX >= 0x030c0000
  P("live.long_digits", offsetof(PyLongObject, long_value.ob_digit));
#else
  P("live.long_digits", offsetof(PyLongObject, ob_digit));
#endif
  P("live.cell_ref", offsetof(PyCellObject, ob_ref));
  P("live.set_used", offsetof(PySetObject, used));
#if PY_VERSION_HEX >= 0x03090000
  P("live.gc_state", offsetof(PyInterpreterState, gc));
#else
  P("live.gc_state_in_runtime", offsetof(_PyRuntimeState, gc));
#endif
  P("live.gc_generations", offsetof(struct _gc_runtime_state, generations));
  P("live.gc_permanent", offsetof(struct _gc_runtime_state, permanent_generation));
  P("live.gc_generation_size", sizeof(struct gc_generation));
  return 0;
}

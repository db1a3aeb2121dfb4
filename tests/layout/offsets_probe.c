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
#define P(name, expr) printf("%-28s %zu\n", name, (size_t)(expr))
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
#else
  P("interp.ceval_gil", offsetof(PyInterpreterState, ceval.gil));
  P("gil.locked", offsetof(struct _gil_runtime_state, locked));
  P("gil.last_holder", offsetof(struct _gil_runtime_state, last_holder));
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
  return 0;
}

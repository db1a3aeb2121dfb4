// Prints swprof's built-in Layout for 3.<minor> in the probe's "name value" format, so that
// check_layout.py can compare it with offsets_probe.c compiled against that version's headers;
// with --opcodes, the opcode table for check_opcodes.py.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "swprof/python.h"

using swprof::python::kAbsent;

static void p(const char* name, uint32_t v) {
  if (v != kAbsent) std::printf("%-28s %u\n", name, v);
}

static void s(const char* name, int v, int absent) {
  if (v != absent) std::printf("%-28s %d\n", name, v);
}

static void dump_asyncio(const swprof::python::Layout::Asyncio& a) {
  constexpr int kNoState = swprof::python::Layout::Asyncio::kNoState;
  // The task fields (asyncio_probe.py finds them in each running interpreter).
  p("asyncio.task_loop", a.task_loop);
  p("asyncio.task_callback0", a.task_callback0);
  p("asyncio.task_callbacks", a.task_callbacks);
  p("asyncio.task_state", a.task_state);
  p("asyncio.task_fut_waiter", a.task_fut_waiter);
  p("asyncio.task_coro", a.task_coro);
  p("asyncio.task_name", a.task_name);
  p("asyncio.task_size", a.task_size);
  p("asyncio.task_awaited_by", a.task_awaited_by);
  p("asyncio.task_awaited_by_is_set", a.task_awaited_by_is_set);
  p("asyncio.task_node", a.task_node);
  p("asyncio.future_iter_future", a.future_iter_future);
  p("asyncio.wakeup_task", a.wakeup_task);
  p("asyncio.partial_args", a.partial_args);
  if (a.iframe_stackpointer != swprof::python::kAbsent) p("asyncio.yield_from_depth", a.yield_from_depth);
  // The rest (offsets_probe.c prints them from the headers).
  p("asyncio.type_base", a.type_base);
  p("asyncio.set_mask", a.set_mask);
  p("asyncio.set_table", a.set_table);
  p("asyncio.list_size", a.list_size);
  p("asyncio.list_items", a.list_items);
  p("asyncio.weakref_object", a.weakref_object);
  p("asyncio.method_self", a.method_self);
  p("asyncio.cfunction_self", a.cfunction_self);
  p("asyncio.gen_frame", a.gen_frame);
  p("asyncio.frame_valuestack", a.frame_valuestack);
  p("asyncio.frame_stacktop", a.frame_stacktop);
  p("asyncio.frame_executing", a.frame_executing);
  p("asyncio.frame_stackdepth", a.frame_stackdepth);
  p("asyncio.frame_state", a.frame_state);
  p("asyncio.gen_iframe", a.gen_iframe);
  p("asyncio.gen_frame_state", a.gen_frame_state);
  p("asyncio.iframe_stacktop", a.iframe_stacktop);
  p("asyncio.iframe_stackpointer", a.iframe_stackpointer);
  s("asyncio.state_created", a.state_created, kNoState);
  s("asyncio.state_suspended", a.state_suspended, kNoState);
  s("asyncio.state_executing", a.state_executing, kNoState);
  s("asyncio.state_cleared", a.state_cleared, kNoState);
  s("asyncio.state_completed", a.state_completed, kNoState);
  s("asyncio.state_suspended_yield_from", a.state_suspended_yield_from, kNoState);
  s("asyncio.state_suspended_yield_from_locked", a.state_suspended_yield_from_locked, kNoState);
  s("asyncio.op_yield_from", a.op_yield_from, -1);
  s("asyncio.op_resume", a.op_resume, -1);
  s("asyncio.op_resume_quick", a.op_resume_quick, -1);
  s("asyncio.op_instrumented_resume", a.op_instrumented_resume, -1);
  p("asyncio.tstate_tasks_head", a.tstate_tasks_head);
  p("asyncio.tstate_running_loop", a.tstate_running_loop);
  p("asyncio.tstate_running_task", a.tstate_running_task);
  p("asyncio.interp_tasks_head", a.interp_tasks_head);
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--opcodes") {
    auto text = swprof::python::opcode_table_text(std::atoi(argv[2]));
    std::fwrite(text.data(), 1, text.size(), stdout);
    return text.empty() ? 1 : 0;
  }
  if (argc != 2) return 2;
  const auto* l = swprof::python::builtin_layout(std::atoi(argv[1]));
  if (!l) return 1;
  p("runtime.interpreters_head", l->runtime.interpreters_head);
  p("runtime.gil_locked", l->runtime.gil_locked);
  p("runtime.gil_last_holder", l->runtime.gil_last_holder);
  p("runtime.gil_switch_number", l->runtime.gil_switch_number);
  p("interp.ceval_gil", l->interp.ceval_gil);
  p("gil.locked", l->gil.locked);
  p("gil.last_holder", l->gil.last_holder);
  p("gil.switch_number", l->gil.switch_number);
  p("interp.next", l->interp.next);
  p("interp.runtime", l->interp.runtime);
  p("interp.threads_head", l->interp.threads_head);
  p("interp.modules", l->interp.modules);
  p("tstate.next", l->tstate.next);
  p("tstate.interp", l->tstate.interp);
  const char* frame = l->has_cframe ? "tstate.cframe"
                      : l->frame_model == swprof::python::FrameModel::kFrameObject ? "tstate.frame"
                                                                                   : "tstate.current_frame";
  p(frame, l->tstate.frame);
  p("cframe.current_frame", l->cframe_current_frame);
  p("tstate.thread_id", l->tstate.thread_id);
  p("tstate.native_thread_id", l->tstate.native_thread_id);
  p("tstate.datastack_chunk", l->tstate.datastack_chunk);
  p("tstate.datastack_top", l->tstate.datastack_top);
  p("chunk.data", l->chunk.data);
  bool object = l->frame_model == swprof::python::FrameModel::kFrameObject;
  p(object ? "frame.f_back" : "iframe.previous", l->frame.previous);
  p(object ? "frame.f_code" : "iframe.code", l->frame.code);
  p(object ? "frame.f_lasti" : "iframe.instr", l->frame.instr);
  p(object ? "frame.f_localsplus" : "iframe.localsplus", l->frame.localsplus);
  p("iframe.frame_obj", l->frame.frame_obj);
  p("frameobject.f_frame", l->frame_object_f_frame);
  p("iframe.owner", l->frame.owner);
  p("iframe.is_entry", l->frame.is_entry);
  if (!object) p("FRAME_OWNED_BY_GENERATOR", static_cast<uint32_t>(l->owner_generator));
  if (l->owner_cstack >= 0) p("FRAME_OWNED_BY_CSTACK", static_cast<uint32_t>(l->owner_cstack));
  if (l->owner_interpreter >= 0) p("FRAME_OWNED_BY_INTERPRETER", static_cast<uint32_t>(l->owner_interpreter));
  if (l->frame_specials) p("FRAME_SPECIALS_SIZE", l->frame_specials);
  const auto& c = l->code;
  p("code.co_argcount", c.argcount);
  p("code.co_kwonlyargcount", c.kwonlyargcount);
  p("code.co_flags", c.flags);
  p("code.co_firstlineno", c.firstlineno);
  p("code.co_filename", c.filename);
  p("code.co_name", c.name);
  p("code.co_qualname", c.qualname);
  p("code.co_linetable", c.linetable);
  p("code.co_nlocalsplus", c.nlocalsplus);
  p("code.co_framesize", c.framesize);
  p("code.co_stacksize", c.stacksize);
  p("code.co_code_adaptive", c.code_adaptive);
  p("code._co_firsttraceable", c.firsttraceable);
  p("code.co_nlocals", c.nlocals);
  p("code.co_code", c.code);
  p("code.co_cellvars", c.cellvars);
  p("code.co_freevars", c.freevars);
  p("unicode.state", l->unicode.state);
  p("unicode.length", l->unicode.length);
  p("unicode.ascii_size", l->unicode.ascii_size);
  p("unicode.compact_size", l->unicode.compact_size);
  p("bytes.ob_size", l->bytes.size);
  p("bytes.ob_sval", l->bytes.data);
  p("tuple.ob_item", l->tuple.items);
  p("type.tp_name", l->type.name);
  p("type.tp_flags", l->type.flags);
  p("type.tp_basicsize", l->type.basicsize);
  p("type.tp_dictoffset", l->type.dictoffset);
  p("heaptype.ht_cached_keys", l->type.heap_cached_keys);
  p("dict.ma_used", l->dict.used);
  p("dict.ma_keys", l->dict.keys);
  p("dict.ma_values", l->dict.values);
  dump_asyncio(l->asyncio);
  const auto& v = l->live;
  p("live.code_varnames", v.code_varnames);
  p("live.code_localsplusnames", v.code_localsplusnames);
  p("live.code_localspluskinds", v.code_localspluskinds);
  if (v.kind_local) {
    p("live.kind_local", v.kind_local);
    p("live.kind_cell", v.kind_cell);
    p("live.kind_free", v.kind_free);
  }
  if (v.kind_hidden) p("live.kind_hidden", v.kind_hidden);
  p("live.float_value", v.float_value);
  p("live.long_digits", v.long_digits);
  p("live.cell_ref", v.cell_ref);
  p("live.set_used", v.set_used);
  p(v.gc_in_runtime ? "live.gc_state_in_runtime" : "live.gc_state", v.gc_state);
  p("live.gc_generations", v.gc_generations);
  p("live.gc_permanent", v.gc_permanent);
  p("live.gc_generation_size", v.gc_generation_size);
  return 0;
}

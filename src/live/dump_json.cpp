// swprof dump --format json: one object, the same facts as the text (frames outermost first).
//
//   {"pid", "command": [...], "python", "build", "time_unix_us", "read_ms",
//    "threads": [{"native_id", "target_id", "ident", "name", "gil", "state", "on_cpu",
//                 "syscall": {"name", "number", "detail"} | null, "wchan",
//                 "stack_read", "torn", "attempts", "error",
//                 "frames": [{"function", "file", "line", "locals": [{"name", "kind", "type", "value"}]}],
//                 "greenlets": [{"address", "type", "main", "frames_read", "frames"}],
//                 "tasks": [{"address", "name", "state", "running", "awaiting", "awaiting_task",
//                            "awaited_by": [...], "frames"}]}],
//    "greenlets": [...], "tasks": [...], "notes": [...]}
//
// "locals" appears only with --locals; top-level greenlets and tasks are those of no known thread.
// A name or value that is not valid UTF-8 also gets a "<key>_base64" twin with its exact bytes
// (json_text); the strings of arrays (command, awaited_by, notes) are escaped alone (U+FFFD).
#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/live.h"

namespace swprof::live {

namespace {

std::string frames_json(const std::vector<Frame>& frames, bool with_locals) {
  std::string out = "[";
  for (size_t i = 0; i < frames.size(); ++i) {
    const Frame& f = frames[i];
    out += fmt::format("{}{{{}, {}, \"line\": {}", i ? ", " : "", json_text("function", f.function),
                       json_text("file", f.file), f.line);
    if (with_locals) {
      out += ", \"locals\": [";
      for (size_t k = 0; k < f.locals.size(); ++k) {
        const Local& l = f.locals[k];
        out += fmt::format("{}{{{}, \"kind\": \"{}\", {}, {}}}", k ? ", " : "", json_text("name", l.name), l.kind,
                           json_text("type", l.type), json_text("value", l.value));
      }
      out += fmt::format("], \"locals_omitted\": {}, \"locals_readable\": {}", f.locals_omitted,
                         f.locals_unreadable ? "false" : "true");
    }
    out += "}";
  }
  return out + "]";
}

// `"key": null` for an empty text (not known), else json_text.
std::string text_or_null(std::string_view key, const std::string& text) {
  return text.empty() ? fmt::format("\"{}\": null", key) : json_text(key, text);
}

std::string strings_json(const std::vector<std::string>& texts) {
  std::string out = "[";
  for (size_t i = 0; i < texts.size(); ++i) out += (i ? ", " : "") + json_quoted(texts[i]);
  return out + "]";
}

std::string extras_json(const std::vector<Greenlet>& greenlets, const std::vector<Task>& tasks, bool with_locals) {
  std::string out = "\"greenlets\": [";
  for (size_t i = 0; i < greenlets.size(); ++i) {
    const Greenlet& g = greenlets[i];
    out += fmt::format("{}{{\"address\": \"{:#x}\", {}, \"main\": {}, \"frames_read\": {}, \"frames\": {}}}",
                       i ? ", " : "", g.address, json_text("type", g.type), g.main, g.frames_read,
                       frames_json(g.frames, with_locals));
  }
  out += "], \"tasks\": [";
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    out += fmt::format(
        "{}{{\"address\": \"{:#x}\", {}, \"state\": \"{}\", \"running\": {}, {}, {}, \"awaited_by\": {}, "
        "\"frames\": {}}}",
        i ? ", " : "", t.address, json_text("name", t.name), t.state, t.running, text_or_null("awaiting", t.awaiting),
        text_or_null("awaiting_task", t.awaiting_task), strings_json(t.awaited_by),
        frames_json(t.frames, with_locals));
  }
  return out + "]";
}

}  // namespace

std::string dump_json(const Dump& d) {
  const bool with_locals = d.locals;
  std::string out = fmt::format(
      "{{\"pid\": {}, \"command\": {}, \"python\": {}, \"build\": \"{}\", \"time_unix_us\": {}, \"read_ms\": {:.3f},\n"
      " \"threads\": [",
      d.pid, strings_json(d.command), json_quoted(d.python), d.build, d.unix_time_us, d.read_ms);
  for (size_t i = 0; i < d.threads.size(); ++i) {
    const Thread& t = d.threads[i];
    const Blocking& b = t.blocking;
    std::string syscall = b.syscall.empty() ? "null"
                                            : fmt::format("{{\"name\": {}, \"number\": {}, {}}}",
                                                          json_quoted(b.syscall), b.number, json_text("detail", b.detail));
    out += fmt::format(
        "{}\n  {{\"native_id\": {}, \"target_id\": {}, \"ident\": {}, {}, \"gil\": {}, \"state\": \"{}\", "
        "\"on_cpu\": {}, \"syscall\": {}, {}, \"stack_read\": {}, \"torn\": {}, \"attempts\": {}, "
        "\"error\": {},\n   \"frames\": {},\n   {}}}",
        i ? "," : "", t.native_id, t.target_id, t.ident, text_or_null("name", t.name), t.gil,
        json_escape(std::string(1, t.state)), t.state == 'R', syscall, json_text("wchan", b.wchan), t.stack_read, t.torn,
        t.attempts, t.error.empty() ? "null" : json_quoted(t.error), frames_json(t.frames, with_locals),
        extras_json(t.greenlets, t.tasks, with_locals));
  }
  out += fmt::format("],\n {},\n \"notes\": {}}}\n", extras_json(d.greenlets, d.tasks, with_locals),
                     strings_json(d.notes));
  return out;
}

}  // namespace swprof::live

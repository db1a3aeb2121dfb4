// swprof dump's text: per thread a header (id, name, what it does in the kernel, the GIL) and its
// stack innermost last, as a Python traceback reads; then its parked greenlets and suspended
// asyncio tasks, each with its own stack. Files are shortened as analyze shortens them (the JSON
// keeps them whole); every name read from the target is escaped for a terminal (terminal_text).
#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"
#include "swprof/live.h"

namespace swprof::live {

namespace {

void frames_text(std::string& out, const std::vector<Frame>& frames, const std::string& indent) {
  for (const auto& f : frames) {
    out += fmt::format("{}{} ({}:{})\n", indent, terminal_text(f.function), terminal_text(analyze::short_path(f.file)),
                       f.line);
    for (const auto& l : f.locals)
      out += fmt::format("{}    {} = {}\n", indent, terminal_text(l.name), terminal_text(l.value));
    if (f.locals_omitted) out += fmt::format("{}    ... {} more locals\n", indent, f.locals_omitted);
    if (f.locals_unreadable) out += fmt::format("{}    (locals not readable)\n", indent);
  }
}

// "sleeping in futex wait", "on a CPU", "stopped" ...
std::string activity(const Thread& t) {
  const Blocking& b = t.blocking;
  std::string call = b.syscall.empty() ? "" : b.detail.empty() ? b.syscall : b.syscall + " " + terminal_text(b.detail);
  switch (t.state) {
    case 'R': return b.running || call.empty() ? "running" : "running (in " + call + ")";
    case 'S': return call.empty() ? "sleeping" : "sleeping in " + call;
    case 'D': return call.empty() ? "in an uninterruptible wait" : "in an uninterruptible wait in " + call;
    case 'T': return "stopped (SIGSTOP)" + (call.empty() ? "" : ", in " + call);
    case 't': return "stopped by a debugger" + (call.empty() ? "" : ", in " + call);
    case 'Z': case 'X': return "exited";
    default: return call.empty() ? "state unknown" : "in " + call;
  }
}

std::string task_title(const Task& t) {
  std::string s = fmt::format("asyncio task \"{}\" ({})", terminal_text(t.name),
                              t.running ? "running: its frames are above" : t.state);
  if (!t.awaiting_task.empty()) s += fmt::format(", awaiting task \"{}\"", terminal_text(t.awaiting_task));
  else if (!t.awaiting.empty()) s += fmt::format(", awaiting {}", terminal_text(t.awaiting));
  if (!t.awaited_by.empty()) {
    s += ", awaited by";
    for (size_t i = 0; i < t.awaited_by.size(); ++i) s += fmt::format("{} \"{}\"", i ? "," : "", terminal_text(t.awaited_by[i]));
  }
  return s;
}

void extras_text(std::string& out, const std::vector<Greenlet>& greenlets, const std::vector<Task>& tasks,
                 const std::string& indent) {
  for (const auto& g : greenlets) {
    out += fmt::format("{}{}greenlet {:#x} ({}), parked{}\n", indent, g.main ? "main " : "", g.address, terminal_text(g.type),
                       g.frames_read ? ":" : ", its frames changed while read");
    frames_text(out, g.frames, indent + "    ");
  }
  for (const auto& t : tasks) {
    out += indent + task_title(t) + (t.frames.empty() ? "\n" : ":\n");
    frames_text(out, t.frames, indent + "    ");
  }
}

}  // namespace

std::string dump_text(const Dump& d) {
  std::string command;
  for (const auto& a : d.command) command += (command.empty() ? "" : " ") + terminal_text(a);
  std::string out = fmt::format("Process {}: {}\nPython {} ({}), {} thread{}, read in {:.1f} ms\n", d.pid, command,
                                d.python, d.build, d.threads.size(), d.threads.size() == 1 ? "" : "s", d.read_ms);
  for (const auto& t : d.threads) {
    std::string id = fmt::format("{}", t.native_id);
    if (t.target_id && t.target_id != t.native_id) id += fmt::format(" ({} in its PID namespace)", t.target_id);
    out += fmt::format("\nThread {}{}: {}{}{}\n", id, t.name.empty() ? "" : fmt::format(" \"{}\"", terminal_text(t.name)), activity(t),
                       t.blocking.wchan.empty() ? "" : fmt::format(" [{}]", terminal_text(t.blocking.wchan)),
                       t.gil ? ", holds the GIL" : "");
    if (!t.stack_read) out += fmt::format("    ({})\n", t.error);
    if (t.torn)
      out += fmt::format("    (its stack changed while read, {} times: the inner frames are not shown)\n", t.attempts);
    frames_text(out, t.frames, "    ");
    if (t.stack_read && !t.error.empty()) out += fmt::format("    ({})\n", t.error);
    if (t.stack_read && t.frames.empty()) out += "    (no Python frames: in C code or not started)\n";
    extras_text(out, t.greenlets, t.tasks, "  ");
  }
  if (!d.greenlets.empty() || !d.tasks.empty()) {
    out += "\nNot on a thread now:\n";
    extras_text(out, d.greenlets, d.tasks, "  ");
  }
  if (!d.notes.empty()) {
    out += "\n";
    for (const auto& n : d.notes) out += "Note: " + terminal_text(n) + "\n";
  }
  return out;
}

}  // namespace swprof::live

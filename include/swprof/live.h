// A live process, looked at now: `swprof dump` (every thread's Python stack at one moment, what
// each thread waits for in the kernel, its parked greenlets and suspended asyncio tasks, and on
// request each frame's local variables) and `swprof top` (the busiest functions over the last
// second and since start, refreshed while the recorder samples). Nothing here writes to the
// target or stops it. Names and values are kept as the target's bytes (not necessarily UTF-8, may
// hold control characters): each output escapes them (terminal_text, json_text).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace swprof::live {

// ---------------------------------------------------------------------------------------------
// dump

struct Local {
  std::string name;
  std::string kind;   // "arg", "local", "cell" (captured by an inner function), "free" (from an outer one)
  std::string type;   // type(x).__name__ as the type names itself; empty when unreadable
  std::string value;  // a short repr: None, True, 42, 1.5, 'text', b'..', <list, 3 items>, <TypeName>
};

struct Frame {
  std::string function, file;
  int line = 0;
  std::vector<Local> locals;  // bound locals, in the code object's order (with --locals)
  size_t locals_omitted = 0;  // more bound locals than a frame shows
  bool locals_unreadable = false;
};

// What a thread waits for in the kernel, from /proc/PID/task/TID/{stat,syscall,wchan}.
struct Blocking {
  bool running = false;   // on a CPU (the kernel says "running")
  std::string syscall;    // the system call it is in ("futex", "epoll_wait"); empty when none or unknown
  int64_t number = -1;    // its number, -1 when not in one
  std::string detail;     // what it waits on: "wait", "on fd 5 (socket 127.0.0.1:8080 -> ...)"
  std::string wchan;      // the kernel function it sleeps in ("futex_wait_queue"); may be empty
};

struct Greenlet {
  uint64_t address = 0;
  std::string type;    // "greenlet.greenlet", "Greenlet", "Hub", ...
  bool main = false;   // a thread's main greenlet
  std::vector<Frame> frames;  // where it is parked: outermost first, innermost (the switch) last
  bool frames_read = false;   // false: its frames changed under the read or are gone
};

struct Task {
  uint64_t address = 0;
  std::string name, state;  // Task.get_name(); "pending", "cancelled", "finished"
  bool running = false;     // its coroutine is on its thread's stack right now
  std::string awaiting;     // type of what the innermost coroutine awaits ("Future", "Task"), or ""
  std::string awaiting_task;            // when it awaits another task: that task's name
  std::vector<std::string> awaited_by;  // names of the tasks that wait for it
  std::vector<Frame> frames;            // the await chain: the task's coroutine first, innermost last
};

struct Thread {
  int64_t native_id = 0;  // as /proc sees it (ours, across PID namespaces)
  int64_t target_id = 0;  // as the target sees it (differs inside a PID namespace)
  uint64_t ident = 0;     // threading.get_ident()
  std::string name;       // threading's name; empty when it has none
  bool gil = false;       // holds its interpreter's GIL
  char state = '?';       // R, S, D, T (stopped), t (traced), Z ... from /proc; '?' unknown
  Blocking blocking;
  std::vector<Frame> frames;  // outermost first, innermost last
  bool stack_read = false;    // false: `error` says why no stack
  bool torn = false;          // the stack kept changing while read: only its steady outer frames
  int attempts = 0;           // reads it took
  std::string error;
  std::vector<Greenlet> greenlets;  // parked on this thread
  std::vector<Task> tasks;          // of the event loop this thread runs
};

struct Dump {
  pid_t pid = 0;
  std::vector<std::string> command;
  std::string python;  // "3.11.7"
  std::string build;   // "shared" or "static"
  int64_t unix_time_us = 0;
  double read_ms = 0;  // how long reading it took
  bool locals = false; // frames carry their locals (--locals)
  std::vector<Thread> threads;
  std::vector<Greenlet> greenlets;  // parked, their thread not known
  std::vector<Task> tasks;          // of loops no thread is running now
  std::vector<std::string> notes;   // what could not be read, and the greenlet search's reach
};

struct DumpOptions {
  bool locals = false;
  // The greenlet search walks the GC's lists of objects; it stops after this many or this long.
  size_t max_objects = 2000000;
  int64_t max_search_us = 1000000;
};

// Reads the process once. Throws UserError with one line when it is gone, not Python, not ours.
Dump take_dump(pid_t pid, const DumpOptions& options);

std::string dump_text(const Dump& dump);
std::string dump_json(const Dump& dump);

// ---------------------------------------------------------------------------------------------
// top

struct TopOptions {
  pid_t pid = 0;                     // attach, or launch `command`
  std::vector<std::string> command;
  std::string output;                // also write the recording here ("" : not kept)
  int64_t interval_us = 10000;       // sampling interval
  int64_t refresh_us = 1000000;      // the window and the screen's refresh
  int64_t duration_us = 0;           // 0: until quit, Ctrl-C or the program exits
  bool lines = false;                // start with one row per line instead of per function
  bool idle = false;                 // start showing idle samples (threads asleep a whole interval)
  size_t rows = 20;                  // rows of the plain table (the terminal view fills its screen)
  bool force_plain = false;          // plain tables even on a terminal
};

// Runs top; returns swprof's exit status. A target that exits is no error (0).
int run_top(const TopOptions& options);

}  // namespace swprof::live

// swprof dump: every thread's Python stack now. Each stack is one confirmed walk (Walker::walk
// re-reads what identifies every frame after copying them; a stack that changed meanwhile is read
// again, and after several reads keeps only its steady outer frames, said in the output). The kernel's
// view of each thread (state, system call, what it waits on) comes from /proc; asyncio tasks from
// asyncio's own registry (AsyncioReader); parked greenlets from the GC's lists (greenlets.cpp).
// The target runs on: nothing is stopped or written, so a running thread's locals are read a
// moment after its frames (a stopped or deadlocked process gives one exact picture).
#include <sys/time.h>

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "live/blocking.h"
#include "live/reading.h"
#include "swprof/asyncio.h"
#include "swprof/common.h"
#include "swprof/live.h"

namespace swprof::live {

namespace {

// Reads of a stack that keeps changing: at least kAttempts (as record retries a sample), then more
// while the thread's budget lasts. A one-shot dump can afford them: on 3.8–3.10 a deep stack that
// churns can take dozens of reads to catch whole (its frame objects are read one by one). The
// extra reads share one budget for the whole dump, so many busy threads keep it well under 100 ms.
constexpr int kAttempts = 5, kMaxAttempts = 200;
constexpr int64_t kThreadBudgetUs = 20000, kDumpBudgetUs = 40000;

int64_t unix_now_us() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return int64_t(tv.tv_sec) * 1000000 + tv.tv_usec;
}

// One thread's stack: walked until a walk is confirmed (see kAttempts).
// `extra_us`: what is left of the dump's budget for reads beyond kAttempts (spent here).
void read_stack(Reading& r, const python::PyThread& pt, Thread& t, int64_t& extra_us) {
  std::vector<python::RawFrame> raw, steady;
  python::WalkError err = python::WalkError::kNone;
  int64_t started_extra = 0;
  for (t.attempts = 1;; ++t.attempts) {
    err = r.walker->walk(pt, raw);
    if (err == python::WalkError::kThreadState) break;  // its thread state is gone: reading again reads the same
    if (err == python::WalkError::kNone || err == python::WalkError::kTooDeep) {
      if (r.name_frames(raw, true, t.frames)) {
        t.stack_read = true;
        if (err == python::WalkError::kTooDeep) t.error = "deeper than the walker follows: the outermost frames are missing";
        return;
      }
      err = python::WalkError::kCode;
    }
    if (err == python::WalkError::kTorn && r.walker->stable_frames() > steady.size())
      steady.assign(raw.end() - static_cast<std::ptrdiff_t>(std::min(r.walker->stable_frames(), raw.size())), raw.end());
    if (t.attempts >= kMaxAttempts) break;
    if (t.attempts == kAttempts) started_extra = monotonic_us();
    if (t.attempts >= kAttempts && monotonic_us() - started_extra > std::min(kThreadBudgetUs, extra_us)) break;
  }
  if (t.attempts > kAttempts) extra_us -= monotonic_us() - started_extra;
  // Still changing: keep the outer frames that read the same twice (no locals: their bytes are
  // another attempt's).
  if (err == python::WalkError::kTorn && !steady.empty() && r.name_frames(steady, false, t.frames)) {
    t.stack_read = true;
    t.torn = true;
    return;
  }
  t.frames.clear();
  pid_t host = pt.native_id ? r.walker->thread_ids().to_host(pt.native_id) : 0;
  if (host > 0 && !target::thread_exists(r.pid, host)) t.error = "it exited while it was read";
  // A chain that loops was read while frames were freed and reused: a torn read too.
  else if (err == python::WalkError::kTorn || err == python::WalkError::kFrame || err == python::WalkError::kCycle)
    t.error = fmt::format("it changed during each of {} reads (a stack this busy may need another dump)", t.attempts);
  else t.error = fmt::format("its stack could not be read ({}, {} attempts)", python::walk_error_name(err), t.attempts);
}

Task task_of(Reading& r, const python::AsyncTask& at, const std::unordered_map<uint64_t, std::string>& names) {
  Task t;
  t.address = at.address;
  t.name = at.name;
  t.state = python::task_state_name(at.state);
  t.running = at.running;
  t.awaiting = at.awaiting.type_name;
  if (at.awaiting.task) {
    auto it = names.find(at.awaiting.task);
    t.awaiting_task = it != names.end() ? it->second : fmt::format("{:#x}", at.awaiting.task);
  }
  for (uint64_t by : at.awaited_by) {
    auto it = names.find(by);
    t.awaited_by.push_back(it != names.end() ? it->second : fmt::format("{:#x}", by));
  }
  // A running task's coroutine is on its thread's stack, with the thread's frames.
  if (!at.running) r.name_frames(at.frames, false, t.frames);
  return t;
}

void read_tasks(Reading& r, std::span<const python::PyThread> threads, Dump& dump) {
  python::AsyncioReader reader(r.memory, r.interp);
  std::vector<python::AsyncTask> tasks;
  if (!reader.scan(threads, tasks)) return;  // asyncio is not imported, or has no registry yet
  std::unordered_map<uint64_t, std::string> names;
  for (const auto& t : tasks) names.emplace(t.address, t.name);
  for (const auto& at : tasks) {
    Task t = task_of(r, at, names);
    auto thread = std::find_if(dump.threads.begin(), dump.threads.end(), [&](const Thread& th) {
      return at.thread_id ? th.ident == at.thread_id : false;
    });
    if (thread != dump.threads.end()) thread->tasks.push_back(std::move(t));
    else dump.tasks.push_back(std::move(t));
  }
  const auto& s = reader.stats();
  if (s.torn) r.notes.push_back(fmt::format("asyncio: {} tasks changed while read twice and are not listed", s.torn));
  if (s.truncated) r.notes.push_back(fmt::format("asyncio: {} await chains are longer than shown", s.truncated));
}

}  // namespace

Reading::Reading(pid_t pid_, bool with_locals) : pid(pid_), memory(pid_) {
  interp = python::discover(pid, memory);
  if (!python::runtime_ready(interp, memory, python::kAttachLooks))
    throw UserError(fmt::format("process {} has not initialised its Python runtime (or is shutting down)", pid));
  python::refine_version(interp, memory);
  walker = std::make_unique<python::Walker>(memory, interp);
  codes = std::make_unique<python::CodeCache>(memory, interp.layout);
  if (with_locals) {
    locals = std::make_unique<LocalsReader>(memory, interp.layout);
    walker->set_locals_wanted(LocalsReader::kMaxLocals);  // ≤3.10 reads frame objects only as far as asked
  }
}

bool Reading::name_frames(std::span<const python::RawFrame> raw, bool walked_last, std::vector<Frame>& out) {
  out.clear();
  const python::Layout& l = interp.layout;
  for (size_t i = raw.size(); i-- > 0;) {
    const python::RawFrame& f = raw[i];
    python::CodeInfo* code = codes->get(f.code, 0);
    if (!code) return false;
    // 3.11+: a frame before its first traceable instruction is still being set up.
    if (l.frame_model == python::FrameModel::kInterpreterFrame && f.owner != l.owner_generator && f.offset >= 0 &&
        f.offset < code->first_traceable)
      continue;
    Frame frame;
    frame.function = code->qualname;
    frame.file = code->filename;
    frame.line = python::line_for_offset(code->lines, f.offset, code->first_line);
    if (locals) {
      uint64_t slots[LocalsReader::kMaxLocals];
      size_t count = locals->slots(f.code);
      bool from_walk = walked_last && count && walker->read_locals(f.address, count, slots);
      locals->read(f.address, f.code, from_walk ? slots : nullptr, from_walk ? count : 0, frame);
    }
    out.push_back(std::move(frame));
  }
  return true;
}

Dump take_dump(pid_t pid, const DumpOptions& options) {
  const int64_t started = monotonic_us();
  Reading r(pid, options.locals);
  Dump dump;
  dump.pid = pid;
  dump.locals = options.locals;
  dump.unix_time_us = unix_now_us();
  dump.command = target::read_cmdline(pid);
  dump.python = r.interp.version.text();
  dump.build = r.interp.shared ? "shared" : "static";

  std::vector<python::PyThread> threads;
  bool listed = r.walker->read_threads(threads);
  if (listed && !r.walker->threads_complete()) listed = r.walker->read_threads(threads);  // freed as it was followed
  if (!listed) {
    if (!target::process_exists(pid)) throw UserError(fmt::format("no process with pid {} (it exited)", pid));
    throw UserError(fmt::format("the Python threads of process {} cannot be read (is it shutting down?)", pid));
  }
  if (!r.walker->threads_complete()) r.notes.push_back("the list of threads changed while read: some may be missing");
  // A thread state not bound to a thread runs nothing (PyThread::unbound).
  std::erase_if(threads, [](const python::PyThread& t) { return t.unbound; });

  python::ThreadNames thread_names(r.memory, r.interp);
  std::unordered_map<uint64_t, python::ThreadNames::Named> names;
  thread_names.all(names);
  BlockingReader blocking(pid, r.memory);
  int64_t extra_us = kDumpBudgetUs;
  for (const auto& pt : threads) {
    Thread t;
    t.target_id = pt.native_id;
    t.native_id = pt.native_id ? r.walker->thread_ids().to_host(pt.native_id) : 0;
    t.ident = pt.thread_id;
    t.gil = pt.holds_gil;
    if (auto it = names.find(pt.thread_id); it != names.end() && it->second.same_thread(pt.native_id)) t.name = it->second.name;
    read_stack(r, pt, t, extra_us);
    if (t.native_id > 0) {
      t.state = blocking.state(static_cast<pid_t>(t.native_id));
      t.blocking = blocking.read(static_cast<pid_t>(t.native_id));
    }
    dump.threads.push_back(std::move(t));
  }
  // The main thread first, then by id.
  std::stable_sort(dump.threads.begin(), dump.threads.end(), [&](const Thread& a, const Thread& b) {
    bool a_main = a.native_id == pid, b_main = b.native_id == pid;
    return a_main != b_main ? a_main : a.native_id < b.native_id;
  });

  read_tasks(r, threads, dump);
  std::vector<FoundGreenlet> greenlets;
  find_parked_greenlets(r, threads, options, greenlets);
  for (auto& g : greenlets) {
    auto thread = std::find_if(dump.threads.begin(), dump.threads.end(),
                               [&](const Thread& th) { return g.thread_ident && th.ident == g.thread_ident; });
    (thread != dump.threads.end() ? thread->greenlets : dump.greenlets).push_back(std::move(g.greenlet));
  }
  size_t os_threads = target::list_threads(pid).size();
  if (os_threads > dump.threads.size())
    r.notes.push_back(fmt::format("{} more threads of the process run no Python code", os_threads - dump.threads.size()));
  dump.notes = std::move(r.notes);
  dump.read_ms = static_cast<double>(monotonic_us() - started) / 1000.0;
  return dump;
}

}  // namespace swprof::live

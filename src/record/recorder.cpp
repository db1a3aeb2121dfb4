// swprof record: find the interpreter, then on every tick read each Python thread's stack, resolve
// it to interned frames, weigh it by the time since that thread's previous sample, and hand it to
// the trigger (entry segments) or straight to the writer.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "record/clock.h"
#include "record/greenlets.h"
#include "record/native_frames.h"
#include "record/process_tree.h"
#include "record/realtime.h"
#include "record/status.h"
#include "record/trigger.h"
#include "swprof/asyncio.h"
#include "swprof/common.h"
#include "swprof/offcpu.h"
#include "swprof/python.h"
#include "swprof/record.h"
#include "swprof/snapshot.h"
#include "swprof/target.h"

namespace swprof::record {

namespace {

volatile bool g_stop = false;
volatile int g_signal = 0;
volatile bool g_signal_from_terminal = false;

void on_signal(int sig, siginfo_t* info, void*) {
  g_signal = sig;
  // A terminal's Ctrl-C already reached the whole foreground process group, the program included.
  g_signal_from_terminal = info && info->si_code == SI_KERNEL;
  g_stop = true;
}

void install_signal_handlers() {
  struct sigaction sa = {};
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO;  // no SA_RESTART: the clock's sleep must wake up
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// This process's CPU time so far (user + system; not its children's).
int64_t own_cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (int64_t(u.ru_utime.tv_sec) + u.ru_stime.tv_sec) * 1000000 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

int64_t unix_now_us() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// Stops a launched program: SIGTERM, then SIGKILL if it has not exited within two seconds.
void stop_child(target::Child& child) {
  child.signal(SIGTERM);
  for (int i = 0; i < 200 && !child.poll_exited(); ++i) usleep(10000);
  if (!child.poll_exited()) {
    child.signal(SIGKILL);
    child.wait();
  }
}

// Waits for the launched program to become a running CPython: the program itself, or, when it is
// a launcher (unshare, sudo, env, a shell script), the first Python process it starts. Returns the
// process to profile. Throws when there never is one.
struct Launched {
  pid_t pid = 0;
  python::Interpreter interp;
};
Launched wait_for_python(target::Child& child, const std::vector<std::string>& command) {
  const int64_t started = monotonic_us();
  std::string last_error;
  bool saw_python = false;  // discovery found CPython in a process at least once
  std::string runtime_unfound;  // a Python mapped whose runtime was not found yet: why
  for (;;) {
    if (g_stop) throw UserError("interrupted before Python started");
    if (child.poll_exited()) {
      int status = child.exit_status();
      // Python mapped but its interpreter never found (the scan of its memory, SWPROF_FORCE_SCAN or
      // a build without symbols, can take longer than a short program lives): not "not Python".
      if (!saw_python && !runtime_unfound.empty())
        throw UserError(fmt::format("{} exited with status {} before its interpreter was found ({})", command[0],
                                    status, runtime_unfound),
                        status ? status : 1);
      if (!saw_python)
        throw UserError(fmt::format("{} is not a Python program: it exited with status {} without starting CPython",
                                    command[0], status),
                        status ? status : 1);
      throw UserError(fmt::format("{} exited with status {} before its interpreter was ready to sample "
                                  "(nothing to profile)",
                                  command[0], status),
                      status ? status : 1);
    }
    std::vector<pid_t> candidates{child.pid()};
    for (pid_t p : target::descendants(child.pid(), 64)) candidates.push_back(p);
    for (pid_t pid : candidates) {
      try {
        target::Memory memory(pid);
        python::Interpreter interp = python::discover(pid, memory);
        saw_python = true;
        if (python::runtime_ready(interp, memory)) {
          // Discovery ran before the runtime was up: sys.version appears a moment later (≤3.10).
          for (int i = 0; i < 200 && !interp.version_exact && !child.poll_exited(); ++i) {
            python::refine_version(interp, memory);
            if (!interp.version_exact) usleep(1000);
          }
          return {pid, interp};
        }
        last_error = "the Python runtime did not initialise";
        break;  // this one is Python: wait for it rather than for its own children
      } catch (const UserError& e) {
        std::string error = e.what();
        if (error.find("cannot find the Python runtime") != std::string::npos) runtime_unfound = error;
        // Unsupported versions do not go away by waiting. Permission is refused for a moment while
        // the child is in the middle of exec; if it still is after a second, it is real.
        if (error.find("unsupported Python") != std::string::npos || error.find("free-threaded") != std::string::npos ||
            (error.find("permission denied") != std::string::npos && monotonic_us() - started > 1000000))
          throw;
        // A launcher that is not Python itself: look at what it started.
        if (pid == child.pid() || last_error.empty()) last_error = error;
      }
    }
    int64_t waited = monotonic_us() - started;
    bool python_mapped = saw_python || last_error.find("not a Python process") == std::string::npos;
    // A launcher may take a moment to start Python (a shell script, unshare, sudo): give it and
    // what it starts 10 s to map an interpreter, and an interpreter 30 s to initialise.
    if (!python_mapped && waited > 10000000)
      throw UserError(fmt::format("{} (and started no Python process in 10 s; stopped {})", last_error, command[0]));
    if (waited > 30000000) throw UserError(fmt::format("{} (stopped {})", last_error, command[0]));
    usleep(1000);
  }
}

// A thread's last stack as read (innermost first) and the interned frame id each raw frame gave
// (Recorder::kSkipped for a frame still being set up, kUnresolved where not looked at).
struct Resolved {
  std::vector<python::RawFrame> raw;
  std::vector<int64_t> ids;
};

// Where the thread list says a thread's frames are (its top frame, or 3.11–3.12's CFrame, and its
// data stack's top). A thread state made by C code in one thread and run by another keeps the
// first one's ids: that one's schedstat can stand still while its frames change.
struct ListedFrames {
  uint64_t top = 0, cframe = 0, chunk = 0, datastack_top = 0;
  ListedFrames() = default;
  explicit ListedFrames(const python::PyThread& t)
      : top(t.cframe ? 0 : t.top_frame), cframe(t.cframe), chunk(t.datastack_chunk), datastack_top(t.datastack_top) {}
  bool operator==(const ListedFrames&) const = default;
};

// How long a thread found blocked in a call may wait for its process's main thread to tell whether a
// stop reached it, before its own /proc stat is read (unless that main thread sleeps): a stop
// reaches the threads within a few scheduler wake-ups on a busy machine.
constexpr int64_t kStopLagUs = 10000;

struct ThreadContext {
  uint32_t index = 0;
  int64_t tid = 0;       // as the interpreter knows it (namespace-local in a container)
  pid_t host_tid = 0;    // as /proc knows it
  uint64_t ident = 0;
  int64_t last_sample_us = 0;
  target::ThreadStats::Reading last_read;  // schedstat as last read, and the state then
  uint64_t last_runqueue_ns = 0;  // run-queue time to the last read, waits still going on included
  bool state_read = false;  // last_read.state was read from /proc (not told by the time the thread ran)
  // Since when (µs; 0: not so) it is known as blocked from its system-call file alone, read while
  // its process's main thread was not stopped: a stop that reached this thread first is told at a
  // later tick by that main thread, or after kStopLagUs by the thread's own state (a main thread in
  // a call that does not stop, as posix_spawn's vfork wait, stops only when the call returns).
  int64_t stop_unconfirmed_since_us = 0;
  // schedstat read at the start of this tick, before any stack (see Recorder::find_quiet_threads);
  // not ok when it was not.
  target::ThreadStats::Reading early;
  int64_t early_us = 0;          // when (since the epoch) that read began
  bool last_read_early = false;  // last_read was such a reading, taken before its stack was read
  bool stack_whole = false;      // resolved holds its last sample's stack, read whole
  uint64_t stack_tick = 0;       // the tick of that sample
  bool switched_out = false;     // off every CPU when its off-CPU reason was read, and not run since
  ListedFrames listed;           // where the thread list said its frames were, at that read
  bool quiet = false;            // asleep since then: this tick reuses that stack
  bool gil_quiet = false;        // had not taken the GIL since then: this tick reuses that stack
  std::optional<uint32_t> last_offcpu_reason;  // its last sample's, unless it moved since
  bool cpu_known = false;
  bool named = false;
  uint64_t last_tick = 0;
  bool registered = false;  // in the file (it has samples)
  std::string name;
  int64_t first_seen_us = 0;
  int64_t next_name_attempt_us = 0;
  std::vector<uint32_t> last_stack;  // the previous sample's stack, for a late sample's gap
  Resolved resolved;                 // its frames as read and resolved
  int64_t last_read_from_us = 0;     // when its previous whole read began (whole_read: there was one)
  bool whole_read = false;
  int64_t first_bound_us = 0;        // before it was found: its calls began after this
};

class Recorder {
 public:
  // `native`: --native's unwinder, primed before the recording started (NativeFrames::prime);
  // made here when not given (a process followed later).
  Recorder(const Options& options, const python::Interpreter& interp, const target::Memory& memory,
           snapshot::Writer& writer, const std::vector<EntrySpec>& entries,
           std::unique_ptr<NativeFrames> native = nullptr)
      : options_(options),
        interp_(interp),
        memory_(memory),
        writer_(writer),
        entries_(entries),
        walker_(memory, interp),
        codes_(memory, interp.layout),
        names_(memory, interp),
        stats_(memory.pid()),
        offcpu_(memory.pid()),
        trigger_({options.min_duration_us, options.max_segments, options.max_parallel, options.interval_us}, writer,
                 [this](uint64_t context, const CallIdentity& id, std::vector<uint32_t>& out) {
                   return probe_parked(context, id, out);
                 }),
        asyncio_(memory, interp) {
    if (!entries.empty()) walker_.set_locals_wanted(CallIdentity::kMaxLocals);
    native_ = std::move(native);
    if (options.native && !native_) native_ = NativeFrames::primed(memory.pid());
    tasks_wanted_ = !entries.empty() || options.tasks;
    // One system call per tick, unless tasks or greenlets must be read between the listing and
    // the stacks, or threads are stopped one by one (see read_stacks_with_listing).
    walker_.read_stacks_with_listing(!tasks_wanted_ && !native_);
    // A thread asleep since its last read keeps its stack: read only in that mode (tasks and
    // greenlets switch under a sleeping thread's frames; --native stops threads to read them).
    reuse_quiet_stacks_ = !tasks_wanted_ && !native_;
    if (tasks_wanted_) greenlets_followed_ = std::make_unique<GreenletTracker>(memory, interp);
    raw_.reserve(python::Walker::kMaxVisit);
    stack_.reserve(options.max_depth + 2);
    code_addresses_.reserve(python::Walker::kMaxVisit);
    // CPU (and run-queue) time used before the first tick is not the first sample's: take a baseline now.
    for (pid_t tid : target::list_threads(memory.pid())) {
      auto r = stats_.read(tid);
      if (r.ok) baseline_[tid] = r;
    }
  }

  // One tick: every thread once. False when the process is gone. `now_us` counts from `epoch_us`,
  // the monotonic clock's reading when recording began.
  bool tick(int64_t now_us);
  void set_epoch(int64_t epoch_us) { epoch_us_ = epoch_us; }
  // A recorder started after the recording (--subprocesses): its first samples weigh the time
  // since then, not since the recording's start; for a process there when the recording began,
  // since that start, and what its first read finds began before the recording.
  void set_started(int64_t now_us, bool with_recording) {
    previous_tick_us_ = with_recording ? 0 : now_us;
    trigger_.set_first_tick_cuts(with_recording);
  }
  // --native: what the stops cost and found; the program's exit status when a stop collected it.
  const NativeFrames* native_frames() const { return native_.get(); }
  bool native_reaped_exit(int& status) const { return native_ && native_->unwinder.reaped_exit(status); }
  const std::string* greenlets_note() const {
    return greenlets_followed_ && !greenlets_followed_->note().empty() ? &greenlets_followed_->note() : nullptr;
  }
  uint64_t greenlet_probe_hits() const { return greenlets_followed_ ? greenlets_followed_->probe_hits() : 0; }
  uint64_t greenlet_probe_lost() const { return greenlets_followed_ ? greenlets_followed_->probe_lost() : 0; }
  // The longest times the recorder was held up, at most kMaxStalls.
  static constexpr size_t kMaxStalls = 1000;
  std::vector<std::pair<int64_t, int64_t>> stalls;
  void note_stall(int64_t from_us, int64_t to_us) {
    stalls.emplace_back(from_us, to_us);
    if (stalls.size() > 2 * kMaxStalls) keep_longest_stalls();
  }
  void keep_longest_stalls() {
    auto longer = [](const auto& a, const auto& b) { return a.second - a.first > b.second - b.first; };
    if (stalls.size() > kMaxStalls) {
      std::nth_element(stalls.begin(), stalls.begin() + kMaxStalls, stalls.end(), longer);
      stalls.resize(kMaxStalls);
    }
    std::sort(stalls.begin(), stalls.end());
  }
  void finish(int64_t ended_us) {
    if (!entries_.empty()) trigger_.finish(ended_us);
  }
  bool segments_done() const { return !entries_.empty() && trigger_.done(); }
  // --subprocesses: the process this recorder reads, as the file numbers it (0: the first).
  void set_process(uint32_t index) { process_ = index; }

  uint64_t ticks = 0, samples = 0, errors = 0, idle_dropped = 0, not_gil_holder = 0, threads_total = 0;
  uint64_t runtime_unreadable = 0;
  uint64_t task_samples = 0, greenlet_samples = 0;
  uint64_t torn_retried = 0, unsteady = 0, cut_stacks = 0, late_samples = 0, partial_ticks = 0, quiet_samples = 0,
           gil_quiet_samples = 0;
  int64_t gap_us = 0;
  double cost_total_us = 0, cost_max_us = 0;
  std::map<std::string, uint64_t> error_kinds;
  std::unordered_map<uint64_t, ThreadContext> threads;  // by thread state
  const Trigger& trigger() const { return trigger_; }
  // Another process's recorder's counts added to these (record --subprocesses: one summary).
  void add_counts(const Recorder& o) {
    samples += o.samples, errors += o.errors, idle_dropped += o.idle_dropped, not_gil_holder += o.not_gil_holder;
    threads_total += o.threads_total, runtime_unreadable += o.runtime_unreadable;
    task_samples += o.task_samples, greenlet_samples += o.greenlet_samples;
    torn_retried += o.torn_retried, unsteady += o.unsteady, cut_stacks += o.cut_stacks, quiet_samples += o.quiet_samples,
    gil_quiet_samples += o.gil_quiet_samples;
    late_samples += o.late_samples, partial_ticks += o.partial_ticks, gap_us += o.gap_us;
    for (const auto& [kind, n] : o.error_kinds) error_kinds[kind] += n;
    trigger_.add_counts(o.trigger_);
  }

 private:
  ThreadContext& context_for(const python::PyThread& t, uint64_t tick, int64_t now_us);
  uint32_t register_thread(ThreadContext& c);
  // What a thread's raw frames resolved to at its last sample (see resolve_stack).
  static constexpr int64_t kUnresolved = -2, kSkipped = -1;
  bool resolve_stack(uint64_t tick, bool root_reached, const CallIdentity** entry, Resolved* last = nullptr);
  uint32_t marker_frame(const std::string& text);
  void sample_thread(const python::PyThread& t, ThreadContext& ctx, int64_t now_us, uint64_t& tick_samples);
  void write_sample(const snapshot::Sample& s, std::span<const uint32_t> stack, const ThreadContext& ctx);
  void capture_identity(size_t i, python::CodeInfo& code);
  uint32_t frame_id_of(python::CodeInfo& code, int32_t offset);
  Probe probe_parked(uint64_t context, const CallIdentity& id, std::vector<uint32_t>& out);
  uint32_t greenlet_index(uint64_t key, uint64_t bottom_code);
  void count_error(const char* kind) {
    ++errors;
    ++error_kinds[kind];
  }

  const Options& options_;
  const python::Interpreter& interp_;
  const target::Memory& memory_;
  snapshot::Writer& writer_;
  const std::vector<EntrySpec>& entries_;
  python::Walker walker_;
  python::CodeCache codes_;
  python::ThreadNames names_;
  target::ThreadStats stats_;
  // Why a thread that is not running waits, read for its samples only; reason id -> string id + 1.
  target::OffCpuReasons offcpu_;
  std::unordered_map<uint32_t, uint32_t> offcpu_strings_;
  uint32_t offcpu_reason(pid_t tid, char state, bool* inactive, bool as_looked) {
    target::OffCpuReason reason = offcpu_.read(tid, state, as_looked);
    *inactive = reason.inactive;
    if (!reason.id) return 0;
    auto [it, inserted] = offcpu_strings_.try_emplace(reason.id, 0);
    if (inserted) it->second = writer_.intern_string(offcpu_.text(reason.id)) + 1;
    return it->second;
  }
  char scheduler_state(ThreadContext& ctx, int64_t now_us, bool* looked);
  char confirm_stop(ThreadContext& ctx, int64_t now_us);
  // SIGSTOP's state, or a tracer's stop.
  static bool stopped(char state) { return state == 'T' || state == 't'; }
  char process_state();
  char process_state_ = '?';  // the main thread's, read at most once a tick (process_state)
  uint64_t process_state_tick_ = 0;
  Trigger trigger_;
  std::unordered_map<pid_t, target::ThreadStats::Reading> baseline_;
  std::vector<python::PyThread> py_threads_;
  std::vector<python::RawFrame> raw_, stable_raw_;
  std::unique_ptr<NativeFrames> native_;  // --native
  uint32_t process_ = 0;
  std::vector<python::RawFrame> first_raw_;  // a torn first read, as walked (see sample_thread)
  std::vector<int64_t> resolved_ids_;
  std::vector<uint32_t> stack_;
  std::vector<uint64_t> code_addresses_;
  std::vector<python::RawFrame> parked_raw_;
  std::vector<uint32_t> listed_;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> greenlets_;
  uint32_t next_context_index_ = 1;  // greenlets and tasks share one index space
  // asyncio: every task, read each tick when calls or tasks are followed (--entry, --tasks).
  python::AsyncioReader asyncio_;
  bool tasks_wanted_ = false;
  bool reuse_quiet_stacks_ = false;
  std::vector<uint64_t> quiet_tstates_, thread_ids_;
  void find_quiet_threads();
  // The GIL as the previous tick's listing saw it, and this tick's threads that had not taken it
  // then (see find_quiet_threads and settle_gil_quiet).
  python::Walker::GilSeen gil_before_;
  std::vector<ThreadContext*> gil_candidates_;
  std::vector<uint64_t> gil_candidate_tstates_;  // theirs, sorted
  void settle_gil_quiet();
  bool tasks_read_ = false;  // this tick's scan read every task
  bool tasks_rescanned_ = false;  // read again this tick for a task made after the scan
  std::vector<python::AsyncTask> tasks_;
  struct TaskContext {
    uint32_t index = 0;
    uint64_t coro = 0;             // a task object reused for another task has another coroutine
    int64_t last_sample_us = 0;    // the task's last sample, running or suspended
    uint64_t last_tick = 0;
    std::vector<uint32_t> last_stack;  // its frames then (from its coroutine), for a late sample's gap
  };
  std::unordered_map<uint64_t, TaskContext> task_contexts_;
  std::vector<uint64_t> scanned_tasks_;  // this tick's tasks that have a context (task_key)
  // The running task of the thread being sampled: its entry in tasks_, the raw index of its
  // coroutine's frame, and how many outer frames of the stack are the event loop's.
  size_t running_task_ = SIZE_MAX, context_root_ = SIZE_MAX;
  uint32_t context_depth_ = 0;
  bool entry_in_task_ = false;
  bool entry_is_coroutine_ = false;  // the entry frame captured is a coroutine's (3.11+: owned by its generator)
  // The entry captured is a coroutine's, asyncio's tasks are read, and none of them holds it.
  bool coroutine_call_in_no_task() const { return entry_is_coroutine_ && running_task_ == SIZE_MAX && !tasks_.empty(); }  // the entry frame captured is inside the running task's frames
  TaskContext& task_context(const python::AsyncTask& task, uint32_t thread, int64_t now_us);
  // The trigger's key for a task's calls: one per task, even when its object's memory is reused.
  static uint64_t task_key(const TaskContext& c) { return (uint64_t(1) << 63) | c.index; }
  void scan_tasks();
  void locate_running_task(const python::PyThread& t);
  std::vector<size_t> ran_tasks_;  // tasks_ found running on a thread this tick
  void sample_suspended_tasks(int64_t now_us);
  // gevent: greenlets followed from their start (uprobes), each parked one sampled every tick.
  std::unique_ptr<GreenletTracker> greenlets_followed_;
  struct GreenletContext {
    uint32_t thread = 0;           // the thread it last ran on
    int64_t last_sample_us = 0;    // its last sample, running or parked
    uint64_t last_tick = 0, last_running_tick = 0;
    bool parked_seen = false;      // a greenlet the tracker follows
    std::vector<uint32_t> last_stack;  // its frames then, for a late sample's gap
  };
  uint32_t greenlet_thread_ = UINT32_MAX;  // the thread followed greenlets were last seen running on
  // What runs a stack: a followed greenlet's serial (kGreenletSerial | serial), or else the stack's
  // outermost frame. A greenlet is first seen by its frame; once the tracker reads it parked, the
  // frame is known to be that greenlet's (frame_owner_), until the greenlet dies.
  static constexpr uint64_t kGreenletSerial = uint64_t(1) << 62;
  std::unordered_map<uint64_t, GreenletContext> greenlet_contexts_;  // by greenlet_key
  std::unordered_map<uint64_t, uint64_t> frame_owner_;               // outermost frame -> serial
  std::unordered_map<uint64_t, uint64_t> owned_frame_;               // serial -> outermost frame
  uint64_t greenlet_key(uint64_t outermost);
  void learn_owner(const GreenletTracker::Known& greenlet, uint64_t outermost, uint64_t outermost_code);
  void sample_parked_greenlets(int64_t now_us);
  void add_parked_sample(const snapshot::Sample& s, const Gap& gap);
  std::unordered_map<std::string, uint32_t> markers_;
  CallIdentity identity_;
  bool unsteady_sample_ = false;
  python::Walker* locals_walker_ = nullptr;  // the walker that read the frames being resolved
  bool suspended_task_sample_ = false;
  bool read_frame_locals(uint64_t frame, size_t count, uint64_t* out) {
    const python::Layout& l = interp_.layout;
    if (!memory_.read(frame + l.frame.localsplus, out, count * 8)) return false;
    if (l.tagged_code_ref)
      for (size_t k = 0; k < count; ++k) out[k] &= ~uint64_t(3);
    return true;
  }
  int64_t previous_tick_us_ = 0;
  int64_t list_read_us_ = 0;  // when this tick's read of the thread list began (since the epoch)
  int64_t epoch_us_ = 0;
  std::optional<uint64_t> code_generation_;
};

// A thread is known by its thread state: two listed at once can carry the same ids (a thread
// state made by one thread for another starts with its maker's ids; on ≤3.10 a thread that is
// ending and the new thread glibc gave its struct pthread read the same tid). A thread state whose
// ids change holds another thread now.
ThreadContext& Recorder::context_for(const python::PyThread& t, uint64_t tick, int64_t now_us) {
  auto [it, inserted] = threads.try_emplace(t.tstate);
  ThreadContext& c = it->second;
  if (inserted || c.ident != t.thread_id || c.tid != t.native_id) {
    c = ThreadContext{};
    c.tid = t.native_id;
    c.host_tid = walker_.thread_ids().to_host(t.native_id);
    c.ident = t.thread_id;
    c.last_sample_us = c.first_bound_us = previous_tick_us_;
    c.first_seen_us = now_us;
    c.next_name_attempt_us = now_us;
    if (auto b = baseline_.find(c.host_tid); b != baseline_.end()) {
      c.last_read = b->second;
      c.last_runqueue_ns = b->second.runqueue_ns;
      c.state_read = c.last_read.state != '?';
      c.cpu_known = true;
    }
  }
  if (!c.named && now_us >= c.next_name_attempt_us) {
    // threading registers a thread's name just after it starts: look every tick for its first
    // 100 ms (short-lived threads, as a threaded server's, are named before they are gone), then
    // every 50 ms for 2 s, then every 5 s (a thread started with _thread has no name).
    int64_t age = now_us - c.first_seen_us;
    c.next_name_attempt_us = now_us + (age < 100000 ? 0 : age < 2000000 ? 50000 : 5000000);
    if (auto name = names_.lookup(t.thread_id, t.native_id, now_us)) {
      c.named = true;
      c.name = *name;
      if (c.registered) writer_.set_thread_name(c.index, *name);
    }
  }
  c.last_tick = tick;
  return c;
}

// A thread goes into the file with its first sample: thread states that never run Python (made
// for a thread not started yet, or one that is ending) leave no trace.
uint32_t Recorder::register_thread(ThreadContext& c) {
  if (!c.registered) {
    c.index = writer_.add_thread(c.host_tid ? c.host_tid : c.tid, c.name, process_);
    c.registered = true;
    ++threads_total;
  }
  return c.index;
}

// What a thread runs is identified by its greenlet (see greenlet_key) or its stack's outermost frame
// (and that frame's code, since a finished greenlet's slot is reused): a thread's first frame, or
// under gevent each greenlet's own. Indices are small and stable for --by-greenlet.
uint32_t Recorder::greenlet_index(uint64_t key, uint64_t bottom_code) {
  if (key & kGreenletSerial) bottom_code = 0;
  auto [it, inserted] = greenlets_.try_emplace(std::make_pair(key, bottom_code), next_context_index_);
  next_context_index_ += inserted;
  return it->second;
}

// The interned frame of a code object executing at `offset`: resolved once per (code, line).
uint32_t Recorder::frame_id_of(python::CodeInfo& code, int32_t offset) {
  int line = python::line_for_offset(code.lines, offset, code.first_line);
  for (auto [l, id] : code.frame_ids)
    if (l == line) return id;
  snapshot::Frame fr;
  fr.function = writer_.intern_string(code.qualname);
  fr.file = writer_.intern_string(code.filename);
  fr.line = line;
  fr.first_line = code.first_line;
  uint32_t id = writer_.intern_frame(fr);
  code.frame_ids.emplace_back(line, id);
  return id;
}

// What runs a stack whose outermost frame is `outermost`: the followed greenlet that owns that
// frame while it lives; a greenlet not read parked yet that runs now and was not placed yet (read at
// the tick's start: a switch since then may mislead this, which its first parked read corrects);
// or, not knowing, the frame itself.
uint64_t Recorder::greenlet_key(uint64_t outermost) {
  if (!greenlets_followed_) return outermost;
  auto owner = frame_owner_.find(outermost);
  if (owner != frame_owner_.end()) {
    if (greenlets_followed_->alive(owner->second)) return kGreenletSerial | owner->second;
    owned_frame_.erase(owner->second);
    frame_owner_.erase(owner);  // its greenlet died: the frame is free for the next one
  }
  const auto& running = greenlets_followed_->running();
  if (running.size() == 1 && !owned_frame_.count(running.front()->serial)) {
    learn_owner(*running.front(), outermost, raw_.back().code);
    return kGreenletSerial | running.front()->serial;
  }
  return outermost;
}

// `greenlet`'s outermost frame is `outermost`. What was known by that frame since the greenlet
// started was this greenlet: its calls and context move to its serial.
void Recorder::learn_owner(const GreenletTracker::Known& greenlet, uint64_t outermost, uint64_t outermost_code) {
  const uint64_t key = kGreenletSerial | greenlet.serial;
  if (auto old = owned_frame_.find(greenlet.serial); old != owned_frame_.end()) {
    if (old->second == outermost) return;
    frame_owner_.erase(old->second);
  }
  if (auto previous = frame_owner_.find(outermost); previous != frame_owner_.end())
    owned_frame_.erase(previous->second);
  frame_owner_[outermost] = greenlet.serial;
  owned_frame_[greenlet.serial] = outermost;
  auto by_frame = greenlet_contexts_.find(outermost);
  if (by_frame == greenlet_contexts_.end() || by_frame->second.last_sample_us < greenlet.born_us) return;
  if (!greenlet_contexts_.count(key)) greenlet_contexts_[key] = by_frame->second;
  greenlet_contexts_.erase(by_frame);
  // Its --by-greenlet index too; the frame's is free for whatever runs there next.
  if (auto index = greenlets_.find({outermost, outermost_code}); index != greenlets_.end()) {
    greenlets_.try_emplace({key, 0}, index->second);
    greenlets_.erase(index);
  }
  if (!entries_.empty()) trigger_.rename_context(outermost, key);
}

// A switched-out greenlet's call: its frames from the entry to the one that yielded.
Probe Recorder::probe_parked(uint64_t context, const CallIdentity& id, std::vector<uint32_t>& out) {
  out.clear();
  const bool followed = greenlets_followed_ && (context & kGreenletSerial);
  if (greenlets_followed_) {
    // A followed greenlet that died took its calls along; a frame now owned by a greenlet that
    // started after the call was last seen holds that greenlet's calls, not this one.
    if (followed) {
      if (!greenlets_followed_->alive(context & ~kGreenletSerial)) return Probe::kGone;
    } else if (frame_owner_.count(context)) {
      return Probe::kGone;
    }
  }
  // A followed greenlet that ran while its call was read may have changed its frames under the
  // read: only one that stayed parked throughout tells that the call is gone. (On a busy machine
  // the reads of a tick spread over milliseconds; ending such a call here would split it in two.)
  auto failed = [&] {
    return followed && !greenlets_followed_->parked_since_tick(context & ~kGreenletSerial) ? Probe::kNoNews
                                                                                            : Probe::kGone;
  };
  if (!walker_.parked_frames(id.frame, id.code, std::span<const uint64_t>(id.args, id.arg_count), codes_, ticks,
                             parked_raw_))
    return failed();
  for (const auto& f : parked_raw_) {
    python::CodeInfo* code = codes_.get(f.code, ticks);
    if (!code) return failed();
    out.push_back(frame_id_of(*code, f.offset));
  }
  return Probe::kParked;
}

// Everything that tells this call of the entry function (raw_[i]) from the next call that reuses
// its frame: see CallIdentity.
void Recorder::capture_identity(size_t i, python::CodeInfo& code) {
  const python::RawFrame& f = raw_[i];
  identity_ = CallIdentity{};
  identity_.frame = f.address;
  identity_.code = f.code;
  identity_.offset = f.offset;
  entry_is_coroutine_ = interp_.layout.frame_model == python::FrameModel::kInterpreterFrame &&
                        f.owner == interp_.layout.owner_generator;
  // A call in an asyncio task is the task's: its depth and callers count from the task's
  // coroutine, whether the task runs (under its event loop's frames) or is suspended (alone).
  const bool in_task = context_root_ != SIZE_MAX && i <= context_root_;
  entry_in_task_ = in_task;
  identity_.root_depth = static_cast<uint32_t>(stack_.size() - (in_task ? context_depth_ : 0));
  // The callers cannot move while the call runs: their frames and offsets are part of it. (In a
  // task, a coroutine awaiting the call sits at one instruction while the call runs and at
  // another while the chain is suspended: there only its frame and code count.)
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t k = i + 1; k < (in_task ? context_root_ + 1 : raw_.size()); ++k)
    for (uint64_t v : {raw_[k].address, raw_[k].code, in_task ? 0 : uint64_t(uint32_t(raw_[k].offset))})
      h = (h ^ v) * 0x100000001b3ull;
  identity_.callers = h;
  if (code.loop_free < 0) {
    std::string bytecode;
    auto loops = codes_.read_bytecode(f.code, bytecode)
                     ? python::has_backward_jump(interp_.layout.version.minor, bytecode)
                     : std::nullopt;
    code.loop_free = loops.has_value() && !*loops ? 1 : 0;
  }
  identity_.loop_free = code.loop_free == 1;
  identity_.arg_count = static_cast<uint8_t>(std::min<size_t>(code.arg_count, CallIdentity::kMaxArgs));
  size_t locals = std::min<size_t>(code.local_count, CallIdentity::kMaxLocals);
  uint64_t slots[CallIdentity::kMaxLocals];
  // (A sample kept from a torn read has no locals of its own: the walker's bytes are another
  // attempt's.)
  python::Walker& locals_from = locals_walker_ ? *locals_walker_ : walker_;
  // A suspended task's frames come from the asyncio reader: their locals, which do not move while
  // the coroutine waits, are read on their own.
  bool have_locals = locals && !unsteady_sample_ &&
                     (suspended_task_sample_ ? read_frame_locals(f.address, locals, slots)
                                             : locals_from.read_locals(f.address, locals, slots));
  if (have_locals) {
    identity_.locals_known = true;
    std::copy(slots, slots + identity_.arg_count, identity_.args);
    for (size_t k = code.arg_count; k < locals; ++k)
      if (slots[k]) identity_.bound_locals |= uint64_t(1) << (k - code.arg_count);
  }
}

// The task context of an asyncio task: a task object reused for another task is another context.
Recorder::TaskContext& Recorder::task_context(const python::AsyncTask& task, uint32_t thread, int64_t now_us) {
  auto [it, inserted] = task_contexts_.try_emplace(task.address);
  TaskContext& c = it->second;
  if (inserted || c.coro != task.coro) {
    c = TaskContext{};
    c.index = next_context_index_++;
    c.coro = task.coro;
    c.last_sample_us = previous_tick_us_;
    snapshot::Context ctx;
    ctx.index = c.index;
    ctx.kind = snapshot::ContextKind::kTask;
    ctx.name = task.name;
    ctx.thread = thread;
    ctx.address = task.address;
    writer_.add_context(ctx);
  }
  c.last_tick = ticks;
  (void)now_us;
  return c;
}

// Which task (if any) runs on the thread just walked: the one whose coroutine's frame is on its
// stack. The frames from that one inward are the task's; those above are its event loop's.
// Every asyncio task, into tasks_ (tasks_read_: all of them were read).
void Recorder::scan_tasks() {
  python::AsyncioScanOptions scan;
  scan.awaiters = false;
  tasks_read_ = asyncio_.scan(py_threads_, tasks_, scan) && asyncio_.stats().torn == 0;
  if (!asyncio_.stats().tasks && !asyncio_.problem().empty()) tasks_.clear();
}

void Recorder::locate_running_task(const python::PyThread& t) {
  running_task_ = context_root_ = SIZE_MAX;
  context_depth_ = 0;
  // Any task, not only the one that ran when the tasks were read: the loop may have switched
  // tasks since. A suspended task's coroutine frame is the frame it resumes in.
  for (size_t k = 0; k < tasks_.size(); ++k) {
    const python::AsyncTask& task = tasks_[k];
    if (task.state != python::TaskState::kPending || !task.coro_frame || (task.thread_id && task.thread_id != t.thread_id))
      continue;
    for (size_t i = 0; i < raw_.size(); ++i)
      if (raw_[i].address == task.coro_frame) {
        // The outermost task's frame: a task can drive another's coroutine only through await,
        // which keeps it on the same chain.
        if (context_root_ == SIZE_MAX || i > context_root_) {
          running_task_ = k;
          context_root_ = i;
        }
        break;
      }
  }
}

// Each suspended task once per tick: its await chain, innermost first from the reader, resolved
// like a thread's stack, under an `<awaiting ...>` frame naming what the innermost coroutine awaits.
void Recorder::sample_suspended_tasks(int64_t now_us) {
  for (size_t k = 0; k < tasks_.size(); ++k) {
    const python::AsyncTask& task = tasks_[k];
    if (task.running || task.state != python::TaskState::kPending || task.frames.empty()) continue;
    // Scheduled, not started: its function was not called yet (wait_for's inner task, a task
    // made while the loop ran others), so no call of it is in progress; its time begins when it
    // first runs. (Sampled, a loop held up by a busy machine started ten handlers' segments 30 ms
    // before their first line.)
    if (!task.started) continue;
    // Found running on its thread since the tasks were read: its await chain is stale.
    if (std::find(ran_tasks_.begin(), ran_tasks_.end(), k) != ran_tasks_.end()) continue;
    // The event loop's thread, when it is one of the threads sampled.
    ThreadContext* loop_thread = nullptr;
    for (auto& [tstate, c] : threads)
      if (c.registered && c.last_tick == ticks && (c.ident == task.thread_id || (task.native_id && c.tid == task.native_id))) {
        loop_thread = &c;
        break;
      }
    if (!loop_thread) continue;
    raw_.assign(task.frames.begin(), task.frames.end());
    running_task_ = SIZE_MAX;
    context_root_ = raw_.size() - 1;  // the task's coroutine is its outermost frame
    context_depth_ = 0;
    const CallIdentity* entry = nullptr;
    suspended_task_sample_ = true;
    bool resolved = resolve_stack(ticks, true, &entry);
    suspended_task_sample_ = false;
    if (!resolved) continue;
    stack_.push_back(marker_frame(task.awaiting.type_name.empty() ? "<awaiting>"
                                                                  : "<awaiting " + task.awaiting.type_name + ">"));
    TaskContext& tc = task_context(task, loop_thread->index, now_us);
    snapshot::Sample s;
    s.time_us = now_us;
    s.thread = loop_thread->index;
    s.greenlet = tc.index;
    s.stack = writer_.intern_stack(stack_);
    s.wall_us = std::max<int64_t>(0, now_us - tc.last_sample_us);
    s.flags = snapshot::kSwitchedOut;
    const Gap gap = late_gap(s.wall_us, options_.interval_us, tc.last_stack, stack_);
    s.wall_us -= gap.wall_us;
    tc.last_sample_us = now_us;
    tc.last_stack.assign(stack_.begin(), stack_.end());
    ++task_samples;
    if (!entries_.empty()) {
      Reading reading{now_us, now_us - s.wall_us - gap.wall_us, gap, false, task_key(tc)};
      trigger_.route(ticks, &s, loop_thread->index, 0, entry, stack_, &reading);
    } else if (options_.tasks) {
      add_parked_sample(s, gap);
    }
  }
  running_task_ = context_root_ = SIZE_MAX;
  context_depth_ = 0;
}

// Each parked greenlet once per tick: its frames where it waits, under <switched out>, in the
// context of its outermost frame (as when it runs).
void Recorder::sample_parked_greenlets(int64_t now_us) {
  // A greenlet not seen running yet is on the thread known greenlets run on (gevent's hub has one
  // thread), or, before any ran, the first thread (where gevent's hub usually is).
  uint32_t fallback_thread = greenlet_thread_;
  if (fallback_thread == UINT32_MAX)
    for (const auto& [tstate, c] : threads)
      if (c.registered && c.last_tick == ticks) fallback_thread = std::min(fallback_thread, c.index);
  greenlets_followed_->parked([&](const GreenletTracker::Parked& p) {
    learn_owner(p.greenlet, p.bottom_frame, p.bottom_code);
    const uint64_t key = kGreenletSerial | p.greenlet.serial;
    auto gc = greenlet_contexts_.find(key);
    // Sampled running on its thread this tick: read parked since (it switched out meanwhile) is
    // the same tick's news twice.
    if (gc != greenlet_contexts_.end() && gc->second.last_running_tick == ticks) return;
    uint32_t thread = gc != greenlet_contexts_.end() ? gc->second.thread : fallback_thread;
    if (thread == UINT32_MAX) return;  // no thread ran greenlets yet
    raw_.swap(p.frames);
    running_task_ = context_root_ = SIZE_MAX;
    context_depth_ = 0;
    const CallIdentity* entry = nullptr;
    locals_walker_ = &greenlets_followed_->walker();
    bool resolved = resolve_stack(ticks, true, &entry);
    locals_walker_ = nullptr;
    raw_.swap(p.frames);
    if (!resolved) return;
    GreenletContext& ctx = greenlet_contexts_[key];
    // A greenlet first seen parked waited since it started (or since the last tick, if it started
    // before the tracker knew it) — unless the recorder was held up since then: it may have run
    // meanwhile, and its frames before are not known (the gap below).
    int64_t born_us = 0;
    const bool first_seen = !ctx.last_sample_us;
    if (first_seen) {
      born_us = p.greenlet.born_us > 0 ? std::min(p.greenlet.born_us, now_us) : 0;
      // (One found on the GC's lists: there since the probes' search began, as far as is known.)
      ctx.last_sample_us = born_us                       ? born_us
                           : p.greenlet.seeded_since_us ? std::min(p.greenlet.seeded_since_us, now_us)
                                                        : previous_tick_us_;
    }
    ctx.thread = thread;
    ctx.parked_seen = true;
    snapshot::Sample s;
    s.time_us = now_us;
    s.thread = thread;
    s.greenlet = greenlet_index(key, p.bottom_code);
    s.stack = writer_.intern_stack(stack_);
    s.wall_us = std::max<int64_t>(0, now_us - ctx.last_sample_us);
    s.flags = snapshot::kSwitchedOut;
    // Parked now is all a late read knows: the time before its own interval, when the greenlet
    // may have run, is a gap under the frames it kept. (One that was there before the tracker
    // knew it — found on the GC's lists at attach — keeps it all: it was there, parked as far as
    // anything shows.)
    const Gap gap = first_seen && !born_us ? Gap{} : late_gap(s.wall_us, options_.interval_us, ctx.last_stack, stack_);
    s.wall_us -= gap.wall_us;
    ctx.last_sample_us = now_us;
    ctx.last_tick = ticks;
    ctx.last_stack.assign(stack_.begin(), stack_.end());
    ++greenlet_samples;
    if (!entries_.empty()) {
      // (First seen: its call began when it started, which the trigger takes from born_us.)
      Reading reading{now_us, now_us - s.wall_us - gap.wall_us, born_us ? Gap{} : gap, false, 0, born_us};
      trigger_.route(ticks, &s, thread, key, entry, stack_, &reading);
    } else if (options_.tasks) {
      add_parked_sample(s, gap);
    }
  });
}

// A synthetic frame (`<N frames cut>`), interned once per text.
uint32_t Recorder::marker_frame(const std::string& text) {
  auto [it, inserted] = markers_.try_emplace(text, 0);
  if (inserted) {
    snapshot::Frame fr;
    fr.function = writer_.intern_string(text);
    fr.file = writer_.intern_string("");
    it->second = writer_.intern_frame(fr);
  }
  return it->second;
}

// raw_ (innermost first) -> stack_ (outermost first) of interned frame ids; finds the outermost
// entry frame. A stack deeper than --max-depth keeps its outermost and innermost halves with a
// `<N frames cut>` frame between them, so the tree keeps its root and says where it was cut; a
// walk that never reached the root starts with a marker saying so. False when a frame's code
// cannot be resolved (the sample is dropped).
bool Recorder::resolve_stack(uint64_t tick, bool root_reached, const CallIdentity** entry, Resolved* last) {
  const python::Layout& layout = interp_.layout;
  const size_t depth = raw_.size(), limit = std::max<size_t>(options_.max_depth, 2);
  // A deep stack's outer frames rarely move: those that are as they were at the thread's last
  // sample keep what they resolved to (their code objects are alive: live frames hold them).
  size_t reuse = 0;
  if (last) {
    const size_t n = std::min(depth, last->raw.size());
    auto same = [](const python::RawFrame& a, const python::RawFrame& b) {
      return a.address == b.address && a.code == b.code && a.offset == b.offset && a.owner == b.owner;
    };
    while (reuse < n && same(raw_[depth - 1 - reuse], last->raw[last->raw.size() - 1 - reuse])) ++reuse;
  }
  // 3.14+ says when code objects are freed (the generation counter, checked once per tick); older
  // versions get one batched fingerprint read of the stack's code objects.
  if (!code_generation_) {
    code_addresses_.clear();
    for (size_t i = 0; i + reuse < depth; ++i) code_addresses_.push_back(raw_[i].code);
    codes_.validate(code_addresses_, tick);
  }
  resolved_ids_.assign(depth, kUnresolved);
  stack_.clear();
  *entry = nullptr;
  const size_t outer = depth > limit ? limit / 2 : depth;  // raw frames kept from the root side
  const size_t inner = depth > limit ? limit - outer : 0;  // and from the innermost side
  if (!root_reached)
    stack_.push_back(marker_frame(fmt::format("<root not reached: stack deeper than {} frames>", python::Walker::kMaxVisit)));
  for (size_t i = depth; i-- > 0;) {
    if (depth > limit && i == depth - outer - 1) {
      stack_.push_back(marker_frame(fmt::format("<{} frames cut>", depth - limit)));
      i = inner;
      continue;
    }
    const python::RawFrame& f = raw_[i];
    int64_t id = kUnresolved;
    if (i >= depth - reuse) id = last->ids[last->raw.size() - (depth - i)];
    python::CodeInfo* code = nullptr;
    if (id == kUnresolved) {
      code = codes_.get(f.code, tick);
      if (!code) return false;
      // 3.11+: a frame that has not reached its first traceable instruction is being set up.
      bool incomplete = layout.frame_model == python::FrameModel::kInterpreterFrame &&
                        f.owner != layout.owner_generator && f.offset >= 0 && f.offset < code->first_traceable;
      id = incomplete ? kSkipped : frame_id_of(*code, f.offset);
    }
    resolved_ids_[i] = id;
    if (i == context_root_) context_depth_ = static_cast<uint32_t>(stack_.size());
    if (id == kSkipped) continue;
    if (!entries_.empty() && !*entry) {
      if (!code && !(code = codes_.get(f.code, tick))) return false;
      if (code->entry_match < 0) code->entry_match = static_cast<int8_t>(match_entry(entries_, *code) + 1);
      if (code->entry_match > 0) {
        capture_identity(i, *code);
        *entry = &identity_;
      }
    }
    stack_.push_back(static_cast<uint32_t>(id));
  }
  if (depth > limit) ++cut_stacks;
  if (last) {
    last->raw.assign(raw_.begin(), raw_.end());
    last->ids.swap(resolved_ids_);
  }
  return true;
}

// One thread's sample this tick: walk (retrying torn reads), resolve, weigh, route.
void Recorder::sample_thread(const python::PyThread& t, ThreadContext& ctx, int64_t tick_us, uint64_t& tick_samples) {
  // A sample is timed when its thread is read, not when the tick began: on a busy machine the
  // recorder can be held up between two threads of one tick, and a weight is the time between
  // two reads of the thread.
  int64_t now_us = tick_us;
  // The program runs while we read: a walk that met a half-updated frame chain, or whose frames
  // changed under the copy (torn), is read again from a fresh thread state before it counts as
  // an error.
  constexpr int kAttempts = 5;
  const CallIdentity* entry = nullptr;
  const char* failure = nullptr;
  python::WalkError err = python::WalkError::kNone;
  bool torn = false;
  size_t best_stable = 0;  // the most outer frames a torn attempt read the same twice
  int64_t stable_from_us = 0;  // when the read that found them began (they were there then)
  size_t first_depth = 0;  // how many frames the first read found (0: unknown)
  // How many of raw_'s outermost `n` frames a torn first read had too (all when it was not torn).
  auto shared_with_first_read = [&](size_t n) {
    if (first_raw_.empty()) return n;
    size_t k = 0;
    while (k < n && k < first_raw_.size()) {
      const python::RawFrame &a = raw_[raw_.size() - 1 - k], &b = first_raw_[first_raw_.size() - 1 - k];
      if (a.address != b.address || a.code != b.code || a.offset != b.offset) break;
      ++k;
    }
    return k;
  };
  int64_t read_from_us = tick_us;
  bool gone = false;
  // The thread's CPU counters as of its stack's read, when the tick did not read them first (see
  // find_quiet_threads): a sample's CPU time must not run past its time.
  target::ThreadStats::Reading cpu_at_read;
  auto read_python = [&]() {
  int first = 0;  // the attempt the sample stands for
  int64_t first_from_us = 0;
  bool held_up = false;  // the last attempt's reads were held up: its moment is unknown
  first_raw_.clear();
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    read_from_us = std::max(tick_us, monotonic_us() - epoch_us_);
    if (attempt == 0) first_from_us = read_from_us;
    // Held up for more than an interval since the read it would stand for (the recorder was not
    // given a CPU): that moment is gone, and a retry is judged against it no longer. The sample is
    // of now, and the time between is a gap like any late sample's.
    if (attempt > first && (held_up || read_from_us - first_from_us > options_.interval_us)) {
      first = attempt;
      first_from_us = read_from_us;
      first_depth = 0;
      first_raw_.clear();
      best_stable = 0;
    }
    held_up = false;
    if (!ctx.early.ok && ctx.host_tid > 0) cpu_at_read = stats_.read_cpu(ctx.host_tid);
    err = walker_.walk(t, raw_);
    int64_t read_to_us = monotonic_us() - epoch_us_;
    // A stack is as of the system call that read or confirmed it (the walk's own, or the tick's
    // read of the thread list), when it began: a recorder stopped (SIGSTOP, a debugger) or held
    // up while it ran that call, or after it, was dating a request's last stack after the stall,
    // where it stood for the next request's start (their frames, arguments aside, alike) and
    // merged the two. (A stop lands when the call returns, after its copy.) A walk whose reads
    // took over an interval (held up inside them, or between the first and the confirming one)
    // is of no known moment: read again.
    if (const auto at = walker_.stack_read_at(); at.done > 0) {
      if (at.done - at.first > options_.interval_us && attempt + 1 < kAttempts) {
        held_up = true;
        continue;
      }
      read_from_us = read_to_us = std::max(tick_us, at.confirmed - epoch_us_);
      if (attempt == first) first_from_us = read_from_us;
    }
    now_us = std::max(read_from_us, read_to_us);
    failure = nullptr;
    if (err == python::WalkError::kThreadGone) {  // it ended after the listing: nothing to sample
      gone = true;
      return;
    }
    if (err == python::WalkError::kThreadState) {
      failure = python::walk_error_name(err);
      break;  // the thread state itself is unreadable: retrying reads the same
    }
    // The sample stands for the moment its first read began. A retry stands for it only with as
    // many frames as that read found, and a first read whose inner frames returned while it was
    // confirmed is read again: taking whatever stack confirms favoured the stacks easiest to
    // confirm (a caller between two fast calls showed 40 % of the time where it runs 12 %).
    if (attempt == first && (err == python::WalkError::kNone || err == python::WalkError::kTorn)) {
      first_depth = walker_.read_depth();
      first_raw_.clear();
      if (err == python::WalkError::kTorn) first_raw_ = raw_;
    }
    if (err == python::WalkError::kNone && first_depth > 0 && raw_.size() != first_depth) {
      // Its callers stood still (the innermost one kept its frame and moved on); a retry's outer
      // frames count as far as the first read had them.
      size_t stable = attempt == first ? raw_.size() - std::min<size_t>(raw_.size(), 1) : shared_with_first_read(raw_.size());
      // Nothing in common with a first read that was torn throughout: the thread's outermost
      // frame (its bootstrap, which lives as long as the thread) still stands, rather than a
      // lost sample.
      if (stable == 0 && best_stable == 0 && !raw_.empty()) stable = 1;
      if (stable > best_stable) {
        best_stable = stable;
        stable_raw_.assign(raw_.end() - static_cast<std::ptrdiff_t>(stable), raw_.end());
        stable_from_us = read_from_us;
      }
      err = python::WalkError::kTorn;
      failure = python::walk_error_name(err);
      torn = true;
      continue;
    }
    if (err != python::WalkError::kNone && err != python::WalkError::kTooDeep) {
      failure = python::walk_error_name(err);
    } else {
      locate_running_task(t);
      if (!raw_.empty() && !resolve_stack(ticks, err == python::WalkError::kNone, &entry, &ctx.resolved))
        failure = "unreadable code object";
      // The entry runs in no task the tick's scan knew: a task made since (create_task runs its
      // first step at once) would start a call of the thread's own. Read the tasks again, once.
      if (!failure && entry && running_task_ == SIZE_MAX && tasks_read_ && !tasks_rescanned_) {
        tasks_rescanned_ = true;
        scan_tasks();
        ran_tasks_.clear();  // indices into the previous list
        locate_running_task(t);
        if (running_task_ != SIZE_MAX && !resolve_stack(ticks, err == python::WalkError::kNone, &entry, &ctx.resolved))
          failure = "unreadable code object";
      }
      // Still in no task read: a coroutine's call runs in a task all the same (a read of the task
      // lists that changed meanwhile missed it), and a call of the thread's own would split it in
      // two (CI: 11 segments for 10 handlers). No news of it this tick.
      if (!failure && entry && coroutine_call_in_no_task()) entry = nullptr;
    }
    if (!failure) break;
    torn |= err == python::WalkError::kTorn;
    size_t stable = std::min(walker_.stable_frames(), raw_.size());
    if (attempt > first) stable = shared_with_first_read(stable);
    if (err == python::WalkError::kTorn && stable > best_stable) {
      best_stable = stable;
      stable_raw_.assign(raw_.end() - static_cast<std::ptrdiff_t>(best_stable), raw_.end());
      stable_from_us = read_from_us;
    }
  }
  };
  // --native: the thread is stopped while its Python frames are read, so that both stacks are one
  // moment (and cannot be torn); the copy of its C stack is unwound after it runs again. A thread
  // blocked in a call that a stop would interrupt is read without stopping it.
  const bool native = native_ && ctx.host_tid > 0 && native_->may_stop(offcpu_.read(ctx.host_tid).syscall);
  native::Error stop_error = native::Error::kGone;
  bool batches_ok = false;
  ctx.stack_whole = false;
  if (ctx.quiet && ListedFrames(t) != ctx.listed) ctx.quiet = false;  // run by another OS thread
  if (ctx.quiet) {
    // Asleep since its last sample (find_quiet_threads): the stack it had then, unread. That is
    // known as of the read that told it (schedstat's, or the thread list's for the GIL), not
    // later: a recorder held up since then (70 ms, a busy machine) must not date the stack after
    // the stall, when the thread may have run on into another call.
    raw_ = ctx.resolved.raw;
    read_from_us = tick_us;
    now_us = std::max(tick_us, ctx.gil_quiet ? list_read_us_ : ctx.early_us);
    if (!resolve_stack(ticks, true, &entry, &ctx.resolved)) failure = "unreadable code object";
  } else if (native) {
    stop_error = native_->unwinder.capture(ctx.host_tid, native_->capture, [&]() {
      read_python();
      batches_ok = !gone && !failure && !raw_.empty() &&
                   native::read_eval_batches(memory_, interp_.layout, raw_, native_->capture.stack_start,
                                             native_->capture.stack_limit, native_->batches);
    });
    if (stop_error != native::Error::kNone) ++native_->stop_errors[static_cast<int>(stop_error)];
  } else {
    read_python();
  }
  if (gone) return;
  bool partial = false;  // kept only the outer frames of a stack that kept changing
  if (failure && best_stable > 0) {
    // Still torn: the stack changes faster than it can be read twice alike. Keep the outer frames
    // that read the same both times, under a frame that says the inner ones changed.
    raw_ = stable_raw_;
    // They were seen when that read began, not the later ones that no longer matched: a call
    // among them had not ended then, and only then (its end bound).
    read_from_us = stable_from_us;
    // An asyncio task whose coroutine frame is among them is still the one running: the sample
    // (and a call of the entry in it) is the task's, not a call of the thread's own.
    locate_running_task(t);
    unsteady_sample_ = true;
    bool resolved = resolve_stack(ticks, true, &entry);
    unsteady_sample_ = false;
    if (resolved && entry && coroutine_call_in_no_task()) entry = nullptr;
    if (resolved) {
      stack_.push_back(marker_frame("<frames changed while read>"));
      failure = nullptr;
      partial = true;
      ++unsteady;
    }
  }
  if (failure) {
    // A thread that exited while we read it (its thread state is still listed, its stack is
    // already freed) has nothing left to sample: that is not a lost sample.
    if (ctx.host_tid > 0 && !target::thread_exists(memory_.pid(), ctx.host_tid)) return;
    count_error(failure);
    return;
  }
  if (torn) ++torn_retried;
  // (A stack without Python frames is not resolved: ctx.resolved keeps an older one.)
  ctx.stack_whole = !partial && err == python::WalkError::kNone && !raw_.empty();
  ctx.stack_tick = ticks;
  ctx.listed = ListedFrames(t);
  if (native && stop_error == native::Error::kNone && !partial)
    native_->merge(raw_, ctx.resolved.ids, batches_ok, writer_, stack_);  // (resolve_stack left them there)
  // The time since the thread's last sample. A failed sample leaves it to the next one, so no
  // time is lost (see the gap below).
  const int64_t elapsed = now_us - ctx.last_sample_us;
  int64_t previous_read_from = ctx.whole_read ? ctx.last_read_from_us : ctx.first_bound_us;
  ctx.last_sample_us = now_us;
  // A call not among the outer frames a partial read kept may have been running in the inner
  // ones: only a whole read bounds when a call first seen later began.
  if (!partial) {
    ctx.last_read_from_us = read_from_us;
    ctx.whole_read = true;
  }
  if (raw_.empty() || stack_.empty()) {
    // No Python frames (a thread starting, ending, or in C code only): whatever call it ran ended.
    if (!entries_.empty() && ctx.registered) {
      Reading reading{now_us, 0, {}};  // (no sample: when the thread was found without Python)
      trigger_.route(ticks, nullptr, ctx.index, 0, nullptr, {}, &reading);
    }
    ctx.last_stack.clear();
    return;
  }
  snapshot::Sample s;
  s.time_us = now_us;
  s.thread = register_thread(ctx);
  // What runs the stack, as far as the thread is concerned: its outermost Python frame (under
  // gevent each greenlet's own, parked or running).
  // (A program that has not imported greenlet, when greenlets are followed, has only its threads'
  // own stacks: no context, so its calls end with their thread's Python frames.)
  const bool plain_thread = greenlets_followed_ && !greenlets_followed_->imported();
  const uint64_t outermost = plain_thread ? 0 : greenlet_key(raw_.back().address);
  s.greenlet = plain_thread ? 0 : greenlet_index(outermost, raw_.back().code);
  int64_t born_us = 0;  // a greenlet seen for the first time, running: when the tracker saw it start
  std::vector<uint32_t>* context_stack = nullptr;  // the last stack of the greenlet or task that runs
  if (greenlets_followed_ && !plain_thread) {
    auto [found, fresh] = greenlet_contexts_.try_emplace(outermost);
    // A greenlet whose start the probes did not see (it began before they were on) began at any
    // time since greenlet was found: not only since the thread's previous sample, which another
    // greenlet may have had. So for one found on the GC's lists, and for one unknown to the
    // tracker first seen while the probes were being opened.
    int64_t unprobed_since = 0;
    if (fresh && (outermost & kGreenletSerial))
      for (const auto* known : greenlets_followed_->running())
        if ((kGreenletSerial | known->serial) == outermost) {
          born_us = known->born_us;
          unprobed_since = known->seeded_since_us;
        }
    if (fresh && !(outermost & kGreenletSerial) && greenlets_followed_->unprobed_at(now_us - 2 * options_.interval_us))
      unprobed_since = greenlets_followed_->attach_began_us();
    if (!born_us && unprobed_since) previous_read_from = std::min(previous_read_from, unprobed_since);
    GreenletContext& gc = found->second;
    gc.thread = ctx.index;
    if (gc.parked_seen) greenlet_thread_ = ctx.index;  // a followed greenlet runs here
    gc.last_sample_us = now_us;
    gc.last_tick = gc.last_running_tick = ticks;
    context_stack = &gc.last_stack;
  }
  uint64_t task = 0;  // the asyncio task the entry's call runs in
  if (running_task_ != SIZE_MAX) {
    // An asyncio task runs here: the sample is the task's, from its coroutine inward.
    TaskContext& tc = task_context(tasks_[running_task_], ctx.index, now_us);
    ran_tasks_.push_back(running_task_);
    s.greenlet = tc.index;
    s.context_depth = context_depth_;
    tc.last_sample_us = now_us;
    if (entry && entry_in_task_) task = task_key(tc);
    context_stack = &tc.last_stack;
  }
  s.stack = writer_.intern_stack(stack_);
  s.wall_us = elapsed;
  if (ctx.host_tid > 0) {
    auto r = ctx.early.ok ? ctx.early : cpu_at_read.ok ? cpu_at_read : stats_.read_cpu(ctx.host_tid);
    ctx.last_read_early = ctx.early.ok;
    if (r.ok) {
      uint64_t delta = ctx.cpu_known ? r.cpu_ns - std::min(r.cpu_ns, ctx.last_read.cpu_ns)
                                     : std::min<uint64_t>(r.cpu_ns, uint64_t(elapsed) * 1000);
      s.cpu_us = static_cast<int64_t>(delta / 1000);
      // The scheduler state costs a read of /proc/…/stat (the kernel formats fifty fields), read
      // only when schedstat cannot tell it:
      // - a thread that ran nine tenths of the time since its last sample runs now, as far as a
      //   sample can tell;
      // - a thread whose schedstat has not moved at all was neither switched out (that adds its
      //   run time) nor in (that counts a timeslice): it is as it was at its last read, running
      //   (schedstat advances a running thread only at the scheduler's tick, every 4 ms at
      //   HZ=250) or blocked in the same call, if that state was read (not told by the first
      //   rule: a thread that ran nine tenths of the time may have just gone to sleep). Only a
      //   thread woken and still waiting for a CPU reads as asleep until it runs; its wait is then
      //   counted from schedstat.
      const bool busy = ctx.cpu_known && elapsed > 0 && delta * 10 >= uint64_t(elapsed) * 1000 * 9;
      const bool unmoved = ctx.cpu_known && ctx.state_read && r.same_counters(ctx.last_read);
      if (!unmoved) {
        ctx.last_offcpu_reason.reset();
        ctx.switched_out = false;
      }
      bool looked = false;
      if (busy) {
        r.state = 'R';
        ctx.stop_unconfirmed_since_us = 0;
      } else if (unmoved) {
        r.state = ctx.stop_unconfirmed_since_us ? confirm_stop(ctx, now_us) : ctx.last_read.state;
      } else {
        r.state = scheduler_state(ctx, now_us, &looked);
      }
      ctx.state_read = !busy && r.state != '?';
      // schedstat counts a wait for a CPU when it ends. A thread that was runnable at its last read
      // and has not run since has been waiting all along: that time is counted now, and not again
      // when schedstat catches up.
      uint64_t runqueue_ns = r.runqueue_ns;
      if (ctx.cpu_known && ctx.last_read.state == 'R' && r.state == 'R' && r.cpu_ns == ctx.last_read.cpu_ns)
        runqueue_ns = std::max(runqueue_ns, ctx.last_runqueue_ns + uint64_t(elapsed) * 1000);
      uint64_t queued = ctx.cpu_known ? runqueue_ns - std::min(runqueue_ns, ctx.last_runqueue_ns)
                                      : std::min<uint64_t>(runqueue_ns, uint64_t(elapsed) * 1000);
      s.runqueue_us = static_cast<int64_t>(queued / 1000);
      ctx.last_runqueue_ns = std::max(runqueue_ns, ctx.last_runqueue_ns);
      ctx.last_read = r;
      ctx.cpu_known = true;
      if (r.state == 'R') {
        s.flags |= snapshot::kOnCpu;
      } else if (options_.idle || s.cpu_us != 0 || reuse_quiet_stacks_) {
        // (Not for a sample --no-idle is about to drop, unless it tells whether the thread's next
        // stacks need a read: see find_quiet_threads.) Still in the call it blocked in when
        // schedstat has not moved: no look at it again.
        if (!ctx.last_offcpu_reason)
          ctx.last_offcpu_reason = offcpu_reason(ctx.host_tid, r.state, &ctx.switched_out, looked);
        s.offcpu_reason = *ctx.last_offcpu_reason;
      }
    }
  }
  s.flags |= snapshot::kGilKnown;
  if (t.holds_gil) s.flags |= snapshot::kGilHeld;
  // A sample more than two intervals after the thread's previous one (the recorder fell behind)
  // keeps one interval; the rest is a gap, charged only to the frames the two stacks share.
  Gap gap = late_gap(elapsed, options_.interval_us, ctx.last_stack, stack_);
  if (gap.wall_us > 0) {
    gap.cpu_us = s.cpu_us * gap.wall_us / elapsed;
    gap.runqueue_us = s.runqueue_us * gap.wall_us / elapsed;
    s.wall_us -= gap.wall_us;
    s.cpu_us -= gap.cpu_us;
    s.runqueue_us -= gap.runqueue_us;
    ++late_samples;
    gap_us += gap.wall_us;
  }
  ctx.last_stack.assign(stack_.begin(), stack_.end());
  // A greenlet's or task's calls: what its own frames had in common across the gap (the thread's
  // previous sample may have been another greenlet's or task's).
  Gap routed = gap;
  if (context_stack) {
    std::span<const uint32_t> own(stack_.data() + s.context_depth, stack_.size() - s.context_depth);
    if (gap.wall_us > 0) routed.common = s.context_depth + frames_in_common(*context_stack, own);
    context_stack->assign(own.begin(), own.end());
  }
  bool kept = true;
  if (!options_.idle && s.cpu_us == 0 && !(s.flags & snapshot::kOnCpu)) {
    ++idle_dropped;
    kept = false;
  } else if (options_.gil_only && !(s.flags & snapshot::kGilHeld)) {
    ++not_gil_holder;
    kept = false;
  }
  if (kept) {
    ++samples;
    ++tick_samples;
    if (ctx.quiet) ++(ctx.gil_quiet ? gil_quiet_samples : quiet_samples);
  }
  if (!entries_.empty()) {
    // (A sample dropped still says which calls run: a request that waits before it computes
    // begins when it began, and two calls apart are two.)
    Reading reading{read_from_us, previous_read_from, routed, partial, task, born_us};
    trigger_.route(ticks, &s, ctx.index, outermost, entry, stack_, &reading, kept);
    return;
  }
  if (!kept) return;
  if (gap.wall_us > 0) {
    std::span<const uint32_t> common(stack_.data(), gap.common);
    write_sample(gap_sample(s, gap, writer_.intern_stack(common), gap.common), common, ctx);
  }
  write_sample(s, stack_, ctx);
}

// A parked greenlet's or suspended task's sample (--tasks), after the gap before it, if any.
void Recorder::add_parked_sample(const snapshot::Sample& s, const Gap& gap) {
  if (gap.wall_us > 0)
    writer_.add_sample(gap_sample(s, gap, writer_.intern_stack(std::span<const uint32_t>(stack_.data(), gap.common)), gap.common));
  writer_.add_sample(s);
}

void Recorder::write_sample(const snapshot::Sample& s, std::span<const uint32_t> stack, const ThreadContext& ctx) {
  writer_.add_sample(s);
  if (options_.observer) options_.observer->sample(s, stack, ctx.host_tid ? ctx.host_tid : ctx.tid, ctx.name);
}

// A thread's scheduler state, for a thread that neither ran nearly all the time nor stood still
// (see sample_thread). /proc/…/stat has the kernel format fifty fields; the system-call file alone
// tells a thread that runs from one blocked in a call, which OffCpuReasons reads anyway for the
// reason it waits. Blocked in a call, it is stopped only if its whole process is (SIGSTOP, Ctrl-Z,
// a debugger stopping all threads), which the main thread's state tells, read once a tick for all
// the threads that need it. A thread that stopped before the main thread did (a stop reaches the
// threads one by one, and a main thread in a system call stops when it returns) is told at a later
// tick (stop_unconfirmed_since_us). Otherwise, and for the main thread itself, its own stat.
char Recorder::scheduler_state(ThreadContext& ctx, int64_t now_us, bool* looked) {
  const pid_t tid = ctx.host_tid;
  ctx.stop_unconfirmed_since_us = 0;
  if (tid != memory_.pid()) {
    const char call = offcpu_.look(tid);
    *looked = true;
    if (call == 'R') return 'R';
    const char process = call == 'S' ? process_state() : '?';
    if (stopped(process)) return process;
    if (process == 'R' || process == 'S' || process == 'D') {
      ctx.stop_unconfirmed_since_us = std::max<int64_t>(1, now_us);
      return 'S';
    }
  }
  const char state = stats_.read_state(tid);
  if (tid == memory_.pid()) {
    process_state_ = state;
    process_state_tick_ = ticks;
  }
  return state;
}

// A thread found blocked in a call (scheduler_state) that has not run since: stopped meanwhile only
// if its process was. A main thread asleep that long would have been woken to stop; one running or
// in a call that does not stop (D) leaves it to the thread's own state.
char Recorder::confirm_stop(ThreadContext& ctx, int64_t now_us) {
  char stop = process_state();
  const bool settled = stopped(stop) || now_us - ctx.stop_unconfirmed_since_us >= kStopLagUs;
  if (settled && !stopped(stop) && stop != 'S') stop = stats_.read_state(ctx.host_tid);
  if (settled) ctx.stop_unconfirmed_since_us = 0;
  if (!stopped(stop)) return ctx.last_read.state;
  ctx.last_offcpu_reason.reset();
  return stop;
}

char Recorder::process_state() {
  if (process_state_tick_ != ticks) {
    process_state_ = stats_.read_state(memory_.pid());
    process_state_tick_ = ticks;
  }
  return process_state_;
}

// A thread that has not been on a CPU since its last sample has the stack it had then: no thread
// but its own changes its frames. schedstat tells it, read for every known thread at the start of
// the tick, before any stack: a thread found switched out at its last sample (after its stack was
// read: its off-CPU reason's read finds it off every CPU and run queue), whose counters read before
// that stack (run time, run-queue time, timeslices) have not moved since, was neither switched in
// (that counts a timeslice) nor running meanwhile (switching out adds run time). A state of S
// alone would not do: a thread is S from just before it calls the scheduler, and may be woken and
// run on without a switch. Its stack is left out of the tick's system call and its last one used
// again (unless the thread list shows its frames elsewhere): for a server's many idle threads, most
// of a tick. The threads that were not the GIL's last holder are left out of the read too, until
// the list tells whether that holds still (settle_gil_quiet).
void Recorder::find_quiet_threads() {
  quiet_tstates_.clear();
  gil_candidates_.clear();
  gil_candidate_tstates_.clear();
  for (auto& [tstate, ctx] : threads) {
    ctx.quiet = ctx.gil_quiet = ctx.early.ok = false;
    if (ctx.host_tid <= 0) continue;
    ctx.early_us = monotonic_us() - epoch_us_;
    ctx.early = stats_.read_cpu(ctx.host_tid);
    const char state = ctx.last_read.state;
    // (A kernel without schedstats shows no timeslices, and counters that never move.)
    ctx.quiet = ctx.early.ok && ctx.last_read_early && ctx.stack_whole && ctx.state_read && ctx.switched_out &&
                (state == 'S' || state == 'D') && ctx.early.timeslices > 0 && ctx.early.same_counters(ctx.last_read);
    // Not the GIL's last holder when the last tick's list was read (before any stack it read), and
    // read whole at that tick (or kept then): unchanged unless the GIL changed hands since, which
    // this tick's list tells (settle_gil_quiet).
    const bool gil_candidate = !ctx.quiet && ctx.stack_whole && ctx.stack_tick + 1 == ticks && gil_before_.valid &&
                               tstate != gil_before_.last_holder;
    if (gil_candidate) {
      gil_candidates_.push_back(&ctx);
      gil_candidate_tstates_.push_back(tstate);
    }
    if (ctx.quiet || gil_candidate) quiet_tstates_.push_back(tstate);
  }
  std::sort(quiet_tstates_.begin(), quiet_tstates_.end());
  std::sort(gil_candidate_tstates_.begin(), gil_candidate_tstates_.end());
  walker_.skip_stacks(quiet_tstates_);
}

// After this tick's list: if the GIL has neither changed hands nor holder since the last tick's list
// was read, no thread state but its holder took it, and the other threads kept the frames they
// had (see Walker::GilSeen): their stacks, left out of the tick's read, are used again. Not for a
// thread state whose OS thread runs another one too (C code swapping thread states takes no
// switch); otherwise, they are read now, all in one system call (a busy server's GIL changes
// hands between most ticks: one call for its threads, not one each).
void Recorder::settle_gil_quiet() {
  const python::Walker::GilSeen& now = walker_.gil_seen();
  bool unchanged = now.same(gil_before_) && walker_.threads_complete();
  gil_before_ = now;
  if (gil_candidates_.empty()) return;
  if (unchanged) {
    thread_ids_.clear();
    for (const auto& t : py_threads_) thread_ids_.push_back(t.thread_id);
    std::sort(thread_ids_.begin(), thread_ids_.end());
    unchanged = std::adjacent_find(thread_ids_.begin(), thread_ids_.end()) == thread_ids_.end();
  }
  if (!unchanged) {
    walker_.read_stacks(py_threads_, gil_candidate_tstates_);
    return;
  }
  for (ThreadContext* ctx : gil_candidates_) ctx->quiet = ctx->gil_quiet = true;
}

bool Recorder::tick(int64_t now_us) {
  ++ticks;
  // The recorder held up for over two intervals (a busy machine): calls that began and ended in
  // between were not seen; say when.
  if (ticks > 1 && now_us - previous_tick_us_ > 2 * options_.interval_us) note_stall(previous_tick_us_, now_us);
  const int64_t started = monotonic_us();
  if (reuse_quiet_stacks_) find_quiet_threads();
  // (≤3.13: with the fingerprints of the code objects the walks will likely validate.)
  list_read_us_ = monotonic_us() - epoch_us_;
  bool listed = walker_.read_threads(py_threads_, code_generation_ ? std::span<target::Memory::Request>() : codes_.fingerprint_reads(ticks));
  // A thread state freed while the list was followed cuts it short: read it once more.
  if (listed && !walker_.threads_complete()) listed = walker_.read_threads(py_threads_);
  if (auto generation = walker_.code_generation()) {  // (read with the list, before any walk)
    // 3.14+: code objects were freed since the last tick; cached addresses may be reused.
    if (code_generation_ && *code_generation_ != *generation) codes_.clear();
    code_generation_ = generation;
  }
  if (reuse_quiet_stacks_) {
    if (listed) settle_gil_quiet();
    else gil_before_ = {};
  }
  if (!listed) {
    // Not a lost sample: the interpreter list itself is unreadable, which happens while the
    // runtime shuts down. Counted apart; the process is usually gone by the next tick.
    if (!target::process_exists(memory_.pid())) return false;
    ++runtime_unreadable;
    previous_tick_us_ = now_us;
    return true;
  }
  const bool complete = walker_.threads_complete();
  if (!complete) ++partial_ticks;
  // asyncio tasks, when calls or tasks are followed: all of them, before the threads are read
  // (a running task is told by its coroutine's frame on its thread's stack). A program that
  // imports asyncio later is picked up at the next tick.
  // Greenlets: which live, run, or are parked, before the threads are walked.
  if (greenlets_followed_) greenlets_followed_->tick(now_us, epoch_us_);
  tasks_read_ = false;
  tasks_rescanned_ = false;
  if (tasks_wanted_) scan_tasks();
  uint64_t tick_samples = 0;
  listed_.clear();
  ran_tasks_.clear();
  for (const auto& t : py_threads_) {
    // A thread state bound to no running thread runs nothing; what its frame pointer shows is
    // stale (PyThread::unbound).
    if (t.unbound) continue;
    ThreadContext& ctx = context_for(t, ticks, now_us);
    sample_thread(t, ctx, now_us, tick_samples);
    if (ctx.registered) listed_.push_back(ctx.index);
  }
  if (!tasks_.empty()) sample_suspended_tasks(std::max(now_us, monotonic_us() - epoch_us_));
  if (greenlets_followed_ && greenlets_followed_->known()) {
    sample_parked_greenlets(std::max(now_us, monotonic_us() - epoch_us_));
  }
  if (!entries_.empty()) {
    // Tasks that still exist: a call in one that this tick saw neither running nor suspended (it
    // ran when the tasks were read, and no longer when its thread was) is no news, not ended.
    scanned_tasks_.clear();
    if (tasks_read_)
      for (const auto& task : tasks_)
        if (auto it = task_contexts_.find(task.address); it != task_contexts_.end() && it->second.coro == task.coro)
          scanned_tasks_.push_back(task_key(it->second));
    trigger_.end_tick(ticks, now_us, listed_, complete, tasks_read_ ? &scanned_tasks_ : nullptr,
                      monotonic_us() - epoch_us_);
  }
  // Threads that ended: forget them (not on a tick whose list was cut short).
  for (auto it = threads.begin(); complete && it != threads.end();) {
    if (it->second.last_tick != ticks) {
      if (it->second.host_tid > 0) {
        stats_.forget(it->second.host_tid);
        offcpu_.forget(it->second.host_tid);
      }
      it = threads.erase(it);
    } else {
      ++it;
    }
  }
  if (ticks % 64 == 0) {
    std::erase_if(task_contexts_, [&](const auto& c) { return c.second.last_tick + 64 < ticks; });
    std::erase_if(greenlet_contexts_, [&](const auto& c) { return c.second.last_tick + 64 < ticks; });
  }
  previous_tick_us_ = now_us;
  writer_.maybe_flush();
  double cost = static_cast<double>(monotonic_us() - started);
  if (tick_samples) {
    cost_total_us += cost;
    cost_max_us = std::max(cost_max_us, cost / static_cast<double>(tick_samples));
  }
  return true;
}

}  // namespace

// record --subprocesses: every descendant of the recorded process, found each tick (ProcessTree),
// looked at once (a process that is not Python, or runs an unsupported one, is listed with why),
// and each Python one sampled by a Recorder of its own into the same file; its threads name it.
// A process that calls exec is looked at again as the program it became.
class Descendants {
 public:
  Descendants(const Options& options, pid_t root, snapshot::Writer& writer, const std::vector<EntrySpec>& entries,
              int64_t epoch_us)
      : options_(options), tree_(root), writer_(writer), entries_(entries), epoch_us_(epoch_us) {}

  void tick(int64_t now_us) {
    // (A pid already followed that the scan reports again — its /proc entry unreadable for a
    // moment during exec — is the same process: the exec check below decides.)
    const ProcessTree::Scan scan = tree_.scan();
    for (const auto& f : scan.forked)
      if (std::none_of(followed_.begin(), followed_.end(), [&](const auto& o) { return !o->ended && o->pid == f.pid; }) &&
          std::none_of(pending_.begin(), pending_.end(), [&](const Pending& o) { return o.pid == f.pid; }))
        pending_.push_back({f.pid, f.parent, now_us, 0, first_scan_});
    first_scan_ = false;
    auto execed = [&](pid_t pid) { return std::find(scan.execed.begin(), scan.execed.end(), pid) != scan.execed.end(); };
    for (auto& f : followed_)
      if (!f->ended && execed(f->pid)) {
        end(*f, now_us, true);
        pending_.push_back({f->pid, f->parent, now_us, 0});
      }
    // A process that was not Python may exec one (a shell's `exec python3 ...`).
    std::erase_if(not_followed_pids_, [&](pid_t pid) {
      if (!execed(pid)) return !target::process_exists(pid);
      pending_.push_back({pid, 0, now_us, 0});
      return true;
    });
    // New ones, and ones whose Python was not ready at their last look (every 20 ms, for 5 s).
    std::vector<Pending> waiting;
    for (const Pending& p : pending_) {
      if (p.last_look_us && now_us - p.last_look_us < 20000) {
        waiting.push_back(p);
        continue;
      }
      if (!look(p, now_us)) waiting.push_back({p.pid, p.parent, p.found_us, now_us});
    }
    pending_.swap(waiting);
    for (auto& f : followed_)
      if (!f->ended && !f->recorder->tick(now_us)) end(*f, now_us);
  }

  // Recording stops: every followed process's calls are decided.
  void finish(int64_t now_us) {
    for (auto& f : followed_)
      if (!f->ended) end(*f, now_us);
  }

  // Every followed process's counts, for the summary, and what was seen: "N followed (PID
  // COMMAND, ...); M not followed (PID COMMAND: why; ...)".
  void add_counts_to(Recorder& main) const {
    for (const auto& f : followed_) main.add_counts(*f->recorder);
  }
  std::string summary() const {
    std::string text = fmt::format("{} followed", followed_.size());
    for (size_t i = 0; i < followed_.size() && i < 8; ++i)
      text += fmt::format("{}{} {} (Python {})", i ? ", " : ": ", followed_[i]->pid, followed_[i]->name,
                          followed_[i]->interp.version.text());
    if (followed_.size() > 8) text += ", ...";
    if (!not_followed_.empty()) {
      text += fmt::format("; {} not followed", not_followed_.size());
      for (size_t i = 0; i < not_followed_.size() && i < 8; ++i) text += (i ? ", " : ": ") + not_followed_[i];
      if (not_followed_.size() > 8) text += ", ...";
    }
    return text;
  }

 private:
  struct Followed {
    explicit Followed(pid_t p) : pid(p), memory(p) {}
    pid_t pid, parent = 0;
    std::string name;  // its command line, short
    python::Interpreter interp;
    target::Memory memory;
    std::unique_ptr<Recorder> recorder;
    bool ended = false;
  };
  struct Pending {
    pid_t pid, parent;
    int64_t found_us, last_look_us;
    bool at_start = false;  // there when the recording began (the first scan found it)
  };

  // True when decided (followed, or listed as not followed); false: look again later.
  bool look(const Pending& p, int64_t now_us) {
    if (!target::process_exists(p.pid)) return true;
    snapshot::Process process;
    process.pid = p.pid;
    process.parent = p.parent;
    process.command = target::read_cmdline(p.pid);
    process.found_us = p.found_us;
    auto f = std::make_unique<Followed>(p.pid);
    f->parent = p.parent;
    f->name = sanitize_text(join_arguments(process.command, 60));
    try {
      f->interp = python::discover(p.pid, f->memory);
      if (!python::runtime_ready(f->interp, f->memory)) throw UserError("its Python runtime did not initialise");
      python::refine_version(f->interp, f->memory);
      // ≤3.10 says its micro version only in sys.version, set a moment after the runtime (CI: a
      // 3.10.13 child was listed as 3.10.0): looked at again for up to a second.
      if (!f->interp.version_exact && now_us - p.found_us < 1000000) return false;
    } catch (const UserError& e) {
      std::string why = e.what();
      // Python, just exec'd: its runtime may not be initialised yet (or exec is half done and
      // the process not readable for a moment). Not Python: decided now; an exec later is seen.
      // (Right after exec a program's shared libpython is not mapped yet: not Python for 200 ms.)
      bool not_python = why.find("is not a Python process") != std::string::npos;
      bool settled = why.find("unsupported Python") != std::string::npos || why.find("free-threaded") != std::string::npos;
      if (!settled && now_us - p.found_us < (not_python ? 200000 : 5000000)) return false;
      if (not_python) why = "not Python";
      process.note = why;
      writer_.add_process(process);
      not_followed_.push_back(fmt::format("{} {}: {}", p.pid, f->name, sanitize_text(why)));
      not_followed_pids_.push_back(p.pid);
      return true;
    }
    process.python_version = f->interp.version.text();
    uint32_t index = writer_.add_process(process);
    f->recorder = std::make_unique<Recorder>(options_, f->interp, f->memory, writer_, entries_);
    f->recorder->set_process(index);
    f->recorder->set_epoch(epoch_us_);
    f->recorder->set_started(p.found_us, p.at_start);
    followed_.push_back(std::move(f));
    return true;
  }

  // `execed`: the program it ran is gone (its calls ended), though the process goes on.
  void end(Followed& f, int64_t now_us, bool execed = false) {
    f.recorder->finish(execed || !target::process_exists(f.pid) ? now_us : 0);
    f.ended = true;
  }

  const Options& options_;
  ProcessTree tree_;
  snapshot::Writer& writer_;
  const std::vector<EntrySpec>& entries_;
  int64_t epoch_us_;
  std::vector<std::unique_ptr<Followed>> followed_;
  std::vector<Pending> pending_;
  std::vector<std::string> not_followed_;
  std::vector<pid_t> not_followed_pids_;  // still running: watched for an exec
  bool first_scan_ = true;
};

int run(const Options& options) {
  if (options.interval_us < 100) throw UserError("--interval must be at least 100us");
  if (options.max_depth < 16 || options.max_depth > python::Walker::kMaxVisit)
    throw UserError(fmt::format("--max-depth must be between 16 and {}", python::Walker::kMaxVisit));
  auto entries = parse_entry_specs(options.entries);
  install_signal_handlers();

  // Fail on an unwritable output before starting anything (appending changes nothing).
  const bool output_existed = access(options.output.c_str(), F_OK) == 0;
  if (FILE* probe = std::fopen(options.output.c_str(), "ab")) std::fclose(probe);
  else throw UserError(fmt::format("cannot write {}: {}", options.output, std::strerror(errno)));

  std::optional<target::Child> child;
  pid_t pid = options.pid;
  if (!pid) {
    child = target::Child::launch(options.command);
    pid = child->pid();
  }
  python::Interpreter interp;
  try {
    if (child) {
      Launched launched = wait_for_python(*child, options.command);
      pid = launched.pid;
      interp = std::move(launched.interp);
    } else {
      interp = python::discover(pid, target::Memory(pid));
    }
    if (!child && !python::runtime_ready(interp, target::Memory(pid), python::kAttachLooks))
      throw UserError(fmt::format("process {} has not initialised its Python runtime (or is shutting down)", pid));
  } catch (...) {
    // Nothing was recorded: leave no empty file behind, and never touch a file that was there.
    if (!output_existed) std::remove(options.output.c_str());
    // A launched program that cannot be profiled is not left running behind our back.
    if (child && !child->poll_exited()) stop_child(*child);
    throw;
  }

  target::Memory memory(pid);
  std::unique_ptr<NativeFrames> native = options.native ? NativeFrames::primed(pid) : nullptr;
  pb::Header header;
  header.set_format_version(snapshot::kFormatVersion);
  header.set_swprof_version(SWPROF_VERSION);
  // Header strings are bytes in the file: an argument or path that is not UTF-8 is kept exactly.
  for (const auto& a : child ? options.command : target::read_cmdline(pid)) header.add_command(a);
  header.set_pid(pid);
  header.set_attached(!child);
  header.set_python_version(interp.version.text());
  header.set_python_build(interp.shared ? "shared" : "static");
  header.set_python_binary(interp.binary);
  header.set_interval_us(options.interval_us);
  header.set_start_unix_us(unix_now_us());
  header.set_hostname(hostname());
  for (const auto& e : options.entries) header.add_entry_specs(e);
  header.set_min_duration_us(options.min_duration_us);
  header.set_idle_kept(options.idle);
  header.set_gil_only(options.gil_only);
  header.set_max_segments(options.max_segments);
  header.set_max_parallel(options.max_parallel);
  header.set_source("record");
  header.set_max_depth(options.max_depth);
  // Sample times count from here; the program's time.monotonic() is the same clock.
  const int64_t epoch_us = monotonic_us();
  header.set_start_monotonic_us(epoch_us);
  snapshot::Writer writer(options.output, header);

  Status status(options.status, pid, interp.version.text());
  Recorder recorder(options, interp, memory, writer, entries, std::move(native));
  std::optional<Descendants> descendants;
  if (options.subprocesses) descendants.emplace(options, pid, writer, entries, epoch_us);
  if (options.observer) options.observer->begin(pid, header, writer);
  Clock clock(options.interval_us);
  // (After the program was started: only the sampling thread is real-time.)
  RealtimeSampling realtime;
  if (options.realtime) realtime.start();
  const int64_t start_us = epoch_us;
  const int64_t cpu_at_start_us = own_cpu_us();
  recorder.set_epoch(start_us);
  std::string stop_reason = "program exited";
  // The first tick reads the program as the recording starts: a call found then began before it
  // (and is marked so); one found later began after the tick before.
  for (bool first_tick = true;; first_tick = false) {
    if (!first_tick && !clock.wait(g_stop)) {
      stop_reason = g_signal == SIGINT ? "interrupted (SIGINT)" : g_signal == SIGTERM ? "SIGTERM" : "signal";
      break;
    }
    int64_t now = clock.now_us() - start_us;
    if (child && child->poll_exited()) break;
    if (!recorder.tick(now)) break;
    if (descendants) descendants->tick(now);
    if (realtime.active()) {
      const int64_t done = clock.now_us() - start_us;
      realtime.tick_worked(done - now, done);
    }
    if (options.observer &&
        !options.observer->tick({now, recorder.samples, recorder.errors, recorder.threads.size()})) {
      stop_reason = "stopped by the viewer";
      break;
    }
    if (options.duration_us && now >= options.duration_us) {
      stop_reason = "duration reached";
      break;
    }
    if (recorder.segments_done()) {
      stop_reason = "--max-segments reached";
      break;
    }
    if (writer.failed()) {  // a full disk: stop now, keep what was written
      stop_reason = writer.error_message();
      break;
    }
    status.update(now, recorder.samples, recorder.errors, recorder.threads.size());
  }
  const int64_t duration_us = clock.now_us() - start_us;
  realtime.stop();
  // A program that exited ended its calls by the time that was seen.
  recorder.finish(stop_reason == "program exited" ? duration_us : 0);
  if (descendants) {
    descendants->finish(duration_us);
    descendants->add_counts_to(recorder);
  }
  status.clear();

  // In launch mode the program gets the signal too, unless the terminal already sent it.
  if (child && g_stop && !g_signal_from_terminal) child->signal(g_signal);
  // A viewer that quits (top's q) ends a launched program as Ctrl-C would.
  if (child && stop_reason == "stopped by the viewer") child->signal(SIGINT);

  pb::Footer footer;
  footer.set_duration_us(duration_us);
  footer.set_samples(writer.samples_written());
  footer.set_errors(recorder.errors);
  footer.set_ticks(recorder.ticks);
  footer.set_late_ticks(clock.late_ticks());
  footer.set_cost_mean_us(recorder.samples ? recorder.cost_total_us / static_cast<double>(recorder.samples) : 0);
  footer.set_cost_max_us(recorder.cost_max_us);
  footer.set_outside_segments(recorder.trigger().outside());
  footer.set_idle_dropped(recorder.idle_dropped);
  footer.set_not_gil_holder(recorder.not_gil_holder);
  footer.set_segments_seen(recorder.trigger().seen());
  footer.set_segments_kept(recorder.trigger().kept());
  footer.set_segments_too_short(recorder.trigger().too_short());
  footer.set_segments_skipped(recorder.trigger().skipped());
  footer.set_stop_reason(stop_reason);
  footer.set_threads(recorder.threads_total);
  footer.set_runtime_unreadable_ticks(recorder.runtime_unreadable);
  footer.set_remote_reads(memory.syscalls());
  footer.set_recorder_cpu_us(own_cpu_us() - cpu_at_start_us);
  if (const std::string* note = recorder.greenlets_note()) footer.set_greenlets(*note);
  footer.set_greenlet_samples(recorder.greenlet_samples);
  footer.set_task_samples(recorder.task_samples);
  footer.set_uprobe_hits(recorder.greenlet_probe_hits());
  footer.set_uprobe_lost(recorder.greenlet_probe_lost());
  if (options.realtime) footer.set_realtime(realtime.summary());
  footer.set_torn_retried(recorder.torn_retried);
  footer.set_unsteady(recorder.unsteady);
  footer.set_quiet_samples(recorder.quiet_samples);
  footer.set_gil_quiet_samples(recorder.gil_quiet_samples);
  footer.set_cut_stacks(recorder.cut_stacks);
  footer.set_late_samples(recorder.late_samples);
  footer.set_gap_us(recorder.gap_us);
  footer.set_partial_ticks(recorder.partial_ticks);
  recorder.keep_longest_stalls();
  for (auto [from, to] : recorder.stalls) {
    auto* st = footer.add_stalls();
    st->set_start_us(from);
    st->set_end_us(to);
  }
  for (const auto& [kind, count] : recorder.error_kinds) {
    auto* e = footer.add_error_kinds();
    e->set_kind(kind);
    e->set_count(count);
  }
  if (int status = 0; child && !child->exited() && recorder.native_reaped_exit(status)) child->exited_with(status);
  if (child && child->poll_exited()) footer.set_exit_status(child->exit_status());
  if (const NativeFrames* native = recorder.native_frames()) footer.set_native(native->summary());
  if (descendants) footer.set_processes(descendants->summary());
  // The file is complete before waiting on anything else.
  const bool written = writer.finish(footer);
  if (!written) {  // the summary tells what the file holds: the records before the failure
    footer.set_samples(writer.samples_in_file());
    footer.set_stop_reason(writer.error_message());
  }
  if (options.observer) options.observer->end(footer);
  if (options.summary) print_summary(footer, header, writer.path(), writer.bytes_written());
  int exit_code = 0;
  if (child) {
    if (!child->exited())
      std::fprintf(stderr, "swprof: recording stopped (%s); waiting for pid %d to exit\n",
                   terminal_text(stop_reason).c_str(), pid);
    exit_code = child->wait();
  }
  if (!written)
    throw UserError(fmt::format("{}: recording stopped; {} keeps the {} samples written before", writer.error_message(),
                                writer.path(), writer.samples_in_file()));
  return exit_code;
}

}  // namespace swprof::record

// swprof record: find the interpreter, then on every tick read each Python thread's stack, resolve
// it to interned frames, weigh it by the time since that thread's previous sample, and hand it to
// the trigger (entry segments) or straight to the writer.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "record/clock.h"
#include "record/status.h"
#include "record/trigger.h"
#include "swprof/common.h"
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

// Waits for the launched program to become a running CPython. Throws when it never does.
python::Interpreter wait_for_python(target::Child& child, const target::Memory& memory,
                                    const std::vector<std::string>& command) {
  const int64_t started = monotonic_us();
  std::string last_error;
  bool saw_python = false;  // discovery found CPython in the process at least once
  for (;;) {
    if (g_stop) throw UserError("interrupted before Python started");
    if (child.poll_exited()) {
      int status = child.exit_status();
      if (!saw_python)
        throw UserError(fmt::format("{} is not a Python program: it exited with status {} without starting CPython",
                                    command[0], status),
                        status ? status : 1);
      throw UserError(fmt::format("{} exited with status {} before its interpreter was ready to sample "
                                  "(nothing to profile)",
                                  command[0], status),
                      status ? status : 1);
    }
    try {
      python::Interpreter interp = python::discover(child.pid(), memory);
      saw_python = true;
      if (python::runtime_ready(interp, memory)) {
        // Discovery ran before the runtime was up: sys.version appears a moment later (≤3.10).
        for (int i = 0; i < 200 && !interp.version_exact && !child.poll_exited(); ++i) {
          python::refine_version(interp, memory);
          if (!interp.version_exact) usleep(1000);
        }
        return interp;
      }
      last_error = "the Python runtime did not initialise";
    } catch (const UserError& e) {
      last_error = e.what();
      // Unsupported versions do not go away by waiting. Permission is refused for a moment while
      // the child is in the middle of exec; if it still is after a second, it is real.
      if (last_error.find("unsupported Python") != std::string::npos ||
          last_error.find("free-threaded") != std::string::npos ||
          (last_error.find("permission denied") != std::string::npos && monotonic_us() - started > 1000000))
        throw;
    }
    int64_t waited = monotonic_us() - started;
    bool python_mapped = last_error.find("not a Python process") == std::string::npos;
    if ((!python_mapped && waited > 3000000) || waited > 30000000)
      throw UserError(fmt::format("{} (stopped {})", last_error, command[0]));
    usleep(1000);
  }
}

struct ThreadContext {
  uint32_t index = 0;
  int64_t tid = 0;
  uint64_t ident = 0;
  int64_t last_sample_us = 0;
  uint64_t last_cpu_ns = 0;
  bool cpu_known = false;
  bool named = false;
  uint64_t last_tick = 0;
  uint32_t name_attempts = 0;
  int64_t next_name_attempt_us = 0;
};

class Recorder {
 public:
  Recorder(const Options& options, const python::Interpreter& interp, const target::Memory& memory,
           snapshot::Writer& writer, const std::vector<EntrySpec>& entries)
      : options_(options),
        interp_(interp),
        memory_(memory),
        writer_(writer),
        entries_(entries),
        walker_(memory, interp),
        codes_(memory, interp.layout),
        names_(memory, interp),
        stats_(memory.pid()),
        trigger_({options.min_duration_us, options.max_segments, options.max_parallel}, writer,
                 [this](const CallIdentity& id, std::vector<uint32_t>& out) { return probe_parked(id, out); }) {
    raw_.reserve(python::Walker::kMaxDepth);
    stack_.reserve(python::Walker::kMaxDepth);
    code_addresses_.reserve(python::Walker::kMaxDepth);
    // CPU time used before the first tick is not the first sample's: take a baseline now.
    for (pid_t tid : target::list_threads(memory.pid())) {
      auto r = stats_.read(tid);
      if (r.ok) baseline_cpu_[tid] = r.cpu_ns;
    }
  }

  // One tick: every thread once. False when the process is gone.
  bool tick(int64_t now_us);
  void finish() {
    if (!entries_.empty()) trigger_.finish();
  }
  bool segments_done() const { return !entries_.empty() && trigger_.done(); }

  uint64_t ticks = 0, samples = 0, errors = 0, idle_dropped = 0, not_gil_holder = 0, threads_total = 0;
  uint64_t runtime_unreadable = 0;
  double cost_total_us = 0, cost_max_us = 0;
  std::map<std::string, uint64_t> error_kinds;
  std::unordered_map<int64_t, ThreadContext> threads;
  const Trigger& trigger() const { return trigger_; }

 private:
  ThreadContext& context_for(const python::PyThread& t, uint64_t tick, int64_t now_us);
  bool resolve_stack(uint64_t tick, const CallIdentity** entry);
  void capture_identity(size_t i, python::CodeInfo& code);
  uint32_t frame_id_of(python::CodeInfo& code, int32_t offset);
  bool probe_parked(const CallIdentity& id, std::vector<uint32_t>& out);
  uint32_t greenlet_index(uint64_t bottom_frame, uint64_t bottom_code);
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
  Trigger trigger_;
  std::unordered_map<pid_t, uint64_t> baseline_cpu_;
  std::vector<python::PyThread> py_threads_;
  std::vector<python::RawFrame> raw_;
  std::vector<uint32_t> stack_;
  std::vector<uint64_t> code_addresses_;
  std::vector<python::RawFrame> parked_raw_;
  std::vector<uint32_t> listed_;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> greenlets_;
  CallIdentity identity_;
  int64_t previous_tick_us_ = 0;
  std::optional<uint64_t> code_generation_;
};

ThreadContext& Recorder::context_for(const python::PyThread& t, uint64_t tick, int64_t now_us) {
  int64_t key = t.native_id > 0 ? t.native_id : static_cast<int64_t>(t.tstate);
  auto [it, inserted] = threads.try_emplace(key);
  ThreadContext& c = it->second;
  if (inserted || c.ident != t.thread_id) {
    c = ThreadContext{};
    ++threads_total;
    c.tid = t.native_id;
    c.ident = t.thread_id;
    c.last_sample_us = previous_tick_us_;
    auto name = names_.lookup(t.thread_id, now_us);
    c.named = name.has_value();
    c.next_name_attempt_us = now_us + 50000;
    c.index = writer_.add_thread(t.native_id, name.value_or(""));
    if (auto b = baseline_cpu_.find(static_cast<pid_t>(t.native_id)); b != baseline_cpu_.end()) {
      c.last_cpu_ns = b->second;
      c.cpu_known = true;
    }
  } else if (!c.named && now_us >= c.next_name_attempt_us) {
    // threading registers a thread's name just after it starts: look again every 50 ms for a
    // second, then every 5 s (a thread started with _thread has no name to find).
    ++c.name_attempts;
    c.next_name_attempt_us = now_us + (c.name_attempts < 20 ? 50000 : 5000000);
    if (auto name = names_.lookup(t.thread_id, now_us)) {
      c.named = true;
      writer_.set_thread_name(c.index, *name);
    }
  }
  c.last_tick = tick;
  return c;
}

// What a thread runs is identified by its stack's outermost frame (and that frame's code, since a
// finished greenlet's slot is reused): a thread's first frame, or under gevent each greenlet's
// own. Indices are small and stable for --by-greenlet.
uint32_t Recorder::greenlet_index(uint64_t bottom_frame, uint64_t bottom_code) {
  auto [it, inserted] = greenlets_.try_emplace(std::make_pair(bottom_frame, bottom_code),
                                               static_cast<uint32_t>(greenlets_.size() + 1));
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

// A switched-out greenlet's call: its frames from the entry to the one that yielded.
bool Recorder::probe_parked(const CallIdentity& id, std::vector<uint32_t>& out) {
  out.clear();
  if (!walker_.parked_frames(id.frame, id.code, std::span<const uint64_t>(id.args, id.arg_count), codes_, ticks,
                             parked_raw_))
    return false;
  for (const auto& f : parked_raw_) {
    python::CodeInfo* code = codes_.get(f.code, ticks);
    if (!code) return false;
    out.push_back(frame_id_of(*code, f.offset));
  }
  return true;
}

// Everything that tells this call of the entry function (raw_[i]) from the next call that reuses
// its frame: see CallIdentity.
void Recorder::capture_identity(size_t i, python::CodeInfo& code) {
  const python::RawFrame& f = raw_[i];
  identity_ = CallIdentity{};
  identity_.frame = f.address;
  identity_.code = f.code;
  identity_.offset = f.offset;
  identity_.root_depth = static_cast<uint32_t>(stack_.size());
  // The callers cannot move while the call runs: their frames and offsets are part of it.
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t k = i + 1; k < raw_.size(); ++k)
    for (uint64_t v : {raw_[k].address, raw_[k].code, uint64_t(uint32_t(raw_[k].offset))}) h = (h ^ v) * 0x100000001b3ull;
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
  if (locals && walker_.read_locals(f.address, locals, slots)) {
    identity_.locals_known = true;
    std::copy(slots, slots + identity_.arg_count, identity_.args);
    for (size_t k = code.arg_count; k < locals; ++k)
      if (slots[k]) identity_.bound_locals |= uint64_t(1) << (k - code.arg_count);
  }
}

// raw_ (innermost first) -> stack_ (outermost first) of interned frame ids; finds the outermost
// entry frame. False when a frame's code cannot be resolved (the sample is dropped).
bool Recorder::resolve_stack(uint64_t tick, const CallIdentity** entry) {
  const python::Layout& layout = interp_.layout;
  // 3.14+ says when code objects are freed (the generation counter, checked once per tick); older
  // versions get one batched fingerprint read of the stack's code objects.
  if (!code_generation_) {
    code_addresses_.clear();
    for (const auto& f : raw_) code_addresses_.push_back(f.code);
    codes_.validate(code_addresses_, tick);
  }
  stack_.clear();
  *entry = nullptr;
  for (size_t i = raw_.size(); i-- > 0;) {
    const python::RawFrame& f = raw_[i];
    python::CodeInfo* code = codes_.get(f.code, tick);
    if (!code) return false;
    // 3.11+: a frame that has not reached its first traceable instruction is still being set up.
    if (layout.frame_model == python::FrameModel::kInterpreterFrame && f.owner != layout.owner_generator &&
        f.offset >= 0 && f.offset < code->first_traceable)
      continue;
    uint32_t frame_id = frame_id_of(*code, f.offset);
    if (!entries_.empty() && !*entry) {
      if (code->entry_match < 0) code->entry_match = static_cast<int8_t>(match_entry(entries_, *code) + 1);
      if (code->entry_match > 0) {
        capture_identity(i, *code);
        *entry = &identity_;
      }
    }
    stack_.push_back(frame_id);
  }
  return true;
}

bool Recorder::tick(int64_t now_us) {
  ++ticks;
  const int64_t started = monotonic_us();
  if (auto generation = walker_.code_generation()) {
    // 3.14+: code objects were freed since the last tick; cached addresses may be reused.
    if (code_generation_ && *code_generation_ != *generation) codes_.clear();
    code_generation_ = generation;
  }
  if (!walker_.read_threads(py_threads_)) {
    // Not a lost sample: the interpreter list itself is unreadable, which happens while the
    // runtime shuts down. Counted apart; the process is usually gone by the next tick.
    if (!target::process_exists(memory_.pid())) return false;
    ++runtime_unreadable;
    previous_tick_us_ = now_us;
    return true;
  }
  uint64_t tick_samples = 0;
  listed_.clear();
  for (const auto& t : py_threads_) {
    ThreadContext& ctx = context_for(t, ticks, now_us);
    listed_.push_back(ctx.index);
    int64_t wall = now_us - ctx.last_sample_us;
    ctx.last_sample_us = now_us;
    // The program runs while we read: a walk that met a half-updated frame chain is retried
    // from a fresh read of the thread state before it counts as an error. A walk that failed
    // within its first frames (the innermost frame returned as we read it, as when a deep
    // recursion unwinds) costs little to retry, so it gets more tries.
    const CallIdentity* entry = nullptr;
    const char* failure = nullptr;
    python::PyThread fresh = t;
    for (int attempt = 0; attempt < 3 || (failure && raw_.size() < 8 && attempt < 12); ++attempt) {
      if (attempt && !walker_.read_thread(t.tstate, t.interp, fresh)) break;
      python::WalkError err = walker_.walk(fresh, raw_);
      failure = nullptr;
      if (err != python::WalkError::kNone && err != python::WalkError::kTooDeep) failure = python::walk_error_name(err);
      else if (!raw_.empty() && !resolve_stack(ticks, &entry)) failure = "unreadable code object";
      if (!failure) break;
    }
    if (failure) {
      // A thread that exited while we read it (its thread state is still listed, its stack is
      // already freed) has nothing left to sample: that is not a lost sample.
      if (t.native_id > 0 && !target::thread_exists(memory_.pid(), static_cast<pid_t>(t.native_id))) {
        continue;
      }
      count_error(failure);
      continue;
    }
    if (raw_.empty()) continue;  // a thread with no Python frames (starting, or in C code only)
    if (stack_.empty()) continue;
    snapshot::Sample s;
    s.time_us = now_us;
    s.thread = ctx.index;
    s.greenlet = greenlet_index(walker_.bottom_frame(), walker_.bottom_code());
    s.stack = writer_.intern_stack(stack_);
    s.wall_us = wall;
    if (t.native_id > 0) {
      auto r = stats_.read(static_cast<pid_t>(t.native_id));
      if (r.ok) {
        uint64_t delta = ctx.cpu_known ? r.cpu_ns - std::min(r.cpu_ns, ctx.last_cpu_ns)
                                       : std::min<uint64_t>(r.cpu_ns, uint64_t(wall) * 1000);
        s.cpu_us = static_cast<int64_t>(delta / 1000);
        ctx.last_cpu_ns = r.cpu_ns;
        ctx.cpu_known = true;
        if (r.state == 'R') s.flags |= snapshot::kOnCpu;
      }
    }
    s.flags |= snapshot::kGilKnown;
    if (t.holds_gil) s.flags |= snapshot::kGilHeld;
    if (!options_.idle && s.cpu_us == 0 && !(s.flags & snapshot::kOnCpu)) {
      ++idle_dropped;
      continue;
    }
    if (options_.gil_only && !(s.flags & snapshot::kGilHeld)) {
      ++not_gil_holder;
      continue;
    }
    ++samples;
    ++tick_samples;
    if (entries_.empty()) writer_.add_sample(s);
    else trigger_.route(ticks, s, walker_.bottom_frame(), entry, stack_);
  }
  if (!entries_.empty()) trigger_.end_tick(ticks, now_us, listed_);
  // Threads that ended: forget them.
  for (auto it = threads.begin(); it != threads.end();) {
    if (it->second.last_tick != ticks) {
      if (it->second.tid > 0) stats_.forget(static_cast<pid_t>(it->second.tid));
      it = threads.erase(it);
    } else {
      ++it;
    }
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

int run(const Options& options) {
  if (options.interval_us < 100) throw UserError("--interval must be at least 100us");
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
  target::Memory memory(pid);
  python::Interpreter interp;
  try {
    interp = child ? wait_for_python(*child, memory, options.command) : python::discover(pid, memory);
    if (!child && !python::runtime_ready(interp, memory))
      throw UserError(fmt::format("process {} has not initialised its Python runtime (or is shutting down)", pid));
  } catch (...) {
    // Nothing was recorded: leave no empty file behind, and never touch a file that was there.
    if (!output_existed) std::remove(options.output.c_str());
    // A launched program that cannot be profiled is not left running behind our back.
    if (child && !child->poll_exited()) stop_child(*child);
    throw;
  }

  pb::Header header;
  header.set_format_version(snapshot::kFormatVersion);
  header.set_swprof_version(SWPROF_VERSION);
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
  snapshot::Writer writer(options.output, header);

  Status status(options.status, pid, interp.version.text());
  Recorder recorder(options, interp, memory, writer, entries);
  Clock clock(options.interval_us);
  const int64_t start_us = clock.now_us();
  std::string stop_reason = "program exited";
  for (;;) {
    if (!clock.wait(g_stop)) {
      stop_reason = g_signal == SIGINT ? "interrupted (SIGINT)" : g_signal == SIGTERM ? "SIGTERM" : "signal";
      break;
    }
    int64_t now = clock.now_us() - start_us;
    if (child && child->poll_exited()) break;
    if (!recorder.tick(now)) break;
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
  recorder.finish();
  status.clear();

  // In launch mode the program gets the signal too, unless the terminal already sent it.
  if (child && g_stop && !g_signal_from_terminal) child->signal(g_signal);

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
  for (const auto& [kind, count] : recorder.error_kinds) {
    auto* e = footer.add_error_kinds();
    e->set_kind(kind);
    e->set_count(count);
  }
  if (child && child->poll_exited()) footer.set_exit_status(child->exit_status());
  // The file is complete before waiting on anything else.
  const bool written = writer.finish(footer);
  if (!written) {  // the summary tells what the file holds: the records before the failure
    footer.set_samples(writer.samples_in_file());
    footer.set_stop_reason(writer.error_message());
  }
  print_summary(footer, header, writer.path(), writer.bytes_written());
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

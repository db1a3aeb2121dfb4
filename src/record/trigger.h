// The entry trigger: with --entry, a thread's samples belong to a segment (one call of an entry
// function) while a matching frame is on its stack; samples outside segments are not written.
// Segments shorter than --min-duration are discarded; at most --max-parallel are sampled at once;
// recording stops after --max-segments were kept.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "swprof/snapshot.h"

namespace swprof::python {
struct CodeInfo;
}

namespace swprof::record {

struct EntrySpec {
  std::string text;         // as given
  std::string file_suffix;  // "server.py" in "server.py:do_POST"; empty: any file
  std::string name;         // "do_POST" or "Handler.do_POST"
};

// Throws UserError for a spec that can never match (empty, malformed).
std::vector<EntrySpec> parse_entry_specs(const std::vector<std::string>& specs);
// Index of the first spec the code object matches, or -1.
int match_entry(const std::vector<EntrySpec>& specs, const python::CodeInfo& code);

// Identity of one call of an entry function, as far as it can be seen from outside. A frame
// address alone is not enough (CPython reuses it for the next call), so the argument objects and
// the progress of the frame are compared too.
struct CallIdentity {
  static constexpr size_t kMaxArgs = 8;
  static constexpr size_t kMaxLocals = 64;
  uint64_t frame = 0, code = 0;
  uint64_t args[kMaxArgs] = {};
  uint8_t arg_count = 0;
  uint64_t bound_locals = 0;  // bit i: local slot arg_count + i is bound
  bool locals_known = false;  // args and bound_locals were read
  int32_t offset = -1;        // executing instruction of the entry frame
  bool loop_free = false;     // the entry function has no backward jump: its offset never decreases
  uint32_t root_depth = 0;    // depth of the entry frame, counted from the outermost frame
  uint64_t callers = 0;       // hash of the frames above the entry: frozen while the call runs

  // True when `now` can be the same call observed later.
  bool continues_as(const CallIdentity& now) const;
};

// Under gevent many calls share a thread, one running at a time: a call whose greenlet is switched
// out stays open. Each tick such a call gets a `<switched out>` sample whose stack is the call's
// own frames up to the one that yielded, found by the prober.
enum class Probe {
  kParked,  // there, switched out: frames_from_entry holds its frames
  kGone,    // returned (or its greenlet finished)
  kNoNews,  // could not be told now (its greenlet ran while it was read): asked again next tick
};
using ParkedProber = std::function<Probe(uint64_t context, const CallIdentity&, std::vector<uint32_t>& frames_from_entry)>;

// Time a late sample does not charge to its own stack: the recorder fell behind, so all that is
// known of the time before the sample's own interval is that it was spent under the frames its
// thread's stack had in common before and after (`common` frames of the sample's stack).
struct Gap {
  int64_t wall_us = 0, cpu_us = 0, runqueue_us = 0;
  size_t common = 0;
};

// The gap of a sample `elapsed_us` after its context's previous one (a thread, or a parked
// greenlet or suspended task, whose stack was `before`; empty: none yet): when over two intervals
// and the stack moved, all but one interval (the same stack before and after keeps it all: the
// best guess is that it stayed). Its CPU and run-queue shares are the caller's to set.
Gap late_gap(int64_t elapsed_us, int64_t interval_us, std::span<const uint32_t> before, std::span<const uint32_t> now);
// How many outer frames of `now` are as they were in `before`.
size_t frames_in_common(std::span<const uint32_t> before, std::span<const uint32_t> now);

// The sample that carries `gap`, the time before `s`'s own: its stack is the first `depth`
// frames of `s`'s (interned as `stack`).
snapshot::Sample gap_sample(const snapshot::Sample& s, const Gap& gap, uint32_t stack, size_t depth);

// How a sample was read: the thread was read between `from_us` and the sample's time (which is
// when the read was done), and at its previous sample from `previous_from_us` on. A call seen is
// certain to exist between these; one not seen may have begun right after the earlier one.
struct Reading {
  int64_t from_us = 0, previous_from_us = 0;
  Gap gap;
  bool partial = false;  // only the outer frames could be read (the inner ones kept changing)
  // The asyncio task the call runs in (0: none; the thread or greenlet is the context). Tasks are
  // found every tick, running or suspended, so a task call not seen on a tick whose tasks were
  // all read has ended.
  uint64_t task = 0;
  // A greenlet seen for the first time: when it started, as the tracker saw it (0: unknown).
  int64_t born_us = 0;
};

class Trigger {
 public:
  struct Limits {
    int64_t min_duration_us = 0;
    uint32_t max_segments = 0;  // 0: unlimited
    uint32_t max_parallel = 5;
    // The sampling interval: after a held-up recorder, the most a new call's first sample weighs
    // when another call of its context ended meanwhile (0: as read).
    int64_t interval_us = 0;
  };
  Trigger(Limits limits, snapshot::Writer& writer, ParkedProber prober)
      : limits_(limits), writer_(writer), prober_(std::move(prober)) {}

  // One sample of a thread during tick `tick`. `greenlet` identifies what the thread was running
  // (its greenlet, or its stack's outermost frame); `entry` is null when no entry frame is on the stack; `frames`
  // is the sample's stack. Decided at end_tick(): the sample is written, buffered (its segment may
  // still prove too short) or dropped. A thread sampled with no Python frames at all is routed
  // with an empty stack and no sample (`sample` null): its call, if any, has ended. A sample not
  // `kept` (--no-idle, --gil drop it) still tells which calls run, begin and end; it is not
  // written, and the call's next sample weighs the time since it.
  void route(uint64_t tick, const snapshot::Sample* sample, uint32_t thread, uint64_t greenlet,
             const CallIdentity* entry, std::span<const uint32_t> frames, const Reading* reading = nullptr,
             bool kept = true);
  // After every thread of the tick was routed (`listed`: threads that still exist; `complete`:
  // the thread list was read whole, so a thread missing from it has ended). Calls that go on get
  // their samples; a call not seen this tick ended if its greenlet ran without it or its thread
  // is gone; a call whose greenlet is switched out gets a `<switched out>` sample while the
  // prober finds it alive. Only then do new calls start segments, so --max-parallel counts the
  // calls really running.
  // `tasks`: when every asyncio task was read this tick, the task contexts among them (a call in
  // a task not there ended with its task). `read_by_us`: when the tick's reads (thread list,
  // tasks, stacks) were all done: a call found gone without a sample of its own that says when
  // (its thread left the list, its task or greenlet is gone) ended by then, not by the tick's
  // start — the recorder can be held up between the two.
  void end_tick(uint64_t tick, int64_t now_us, std::span<const uint32_t> listed, bool complete = true,
                const std::vector<uint64_t>* tasks = nullptr, int64_t read_by_us = 0);
  // What ran as `from` (a greenlet known so far by its outermost frame) is now known as `to` (its
  // serial): its calls, and this tick's samples, move there.
  void rename_context(uint64_t from, uint64_t to);
  // Recording stops: decides every open segment. `ended_us`: when the program was found exited
  // (its calls ended by then), 0 when it runs on.
  void finish(int64_t ended_us);
  // Whether the first tick is the recording's (false: a process followed once it appeared).
  void set_first_tick_cuts(bool cuts) { first_tick_cuts_ = cuts; }
  bool done() const { return limits_.max_segments && kept_ >= limits_.max_segments; }

  uint64_t seen() const { return seen_; }
  uint64_t kept() const { return kept_; }
  uint64_t too_short() const { return too_short_; }
  uint64_t skipped() const { return skipped_; }
  uint64_t outside() const { return outside_; }
  // Another process's counts added to these (record --subprocesses: one summary).
  void add_counts(const Trigger& other) {
    seen_ += other.seen_;
    kept_ += other.kept_;
    too_short_ += other.too_short_;
    skipped_ += other.skipped_;
    outside_ += other.outside_;
  }

 private:
  struct Open {
    uint32_t thread = 0;
    uint64_t context = 0;        // the task it runs in, or its greenlet (see Recorder::greenlet_key)
    bool task = false;           // the context is an asyncio task
    uint32_t greenlet_index = 0;
    std::vector<uint32_t> callers;  // frames above the entry, from its last running sample
    CallIdentity identity;
    int64_t start_us = 0, start_bound_us = 0, first_seen_us = 0, last_us = 0;
    bool began_before_recording = false;  // found before any read bounded its start (see start())
    int64_t last_from_us = 0;  // when the read that last saw it began
    int64_t last_switched_out_us = 0;  // when the prober last found it parked
    uint64_t last_tick = 0;
    uint32_t id = 0;        // 0 until the segment is known to be kept
    bool skipped = false;   // over --max-parallel: observed but not sampled
    bool closed = false;
    std::vector<snapshot::Sample> buffered;
  };
  struct Pending {
    uint64_t tick = 0;
    snapshot::Sample sample;
    bool has_sample = false;
    bool kept = true;  // written (not dropped by --no-idle or --gil)
    uint32_t thread = 0;
    uint64_t greenlet = 0;  // what ran it (see Recorder::greenlet_key)
    uint64_t context = 0;   // the task, or `greenlet`
    bool task = false;
    bool has_entry = false;
    CallIdentity entry;
    std::vector<uint32_t> frames;
    Reading reading;
    size_t open = SIZE_MAX;  // the open call it continues
    bool duplicate = false;  // another sample of this tick already continued the same call
    bool unverified = false;  // late, its entry's locals unread: which call it saw is not known
    // Says nothing of which call runs: unverified, or only outer frames read, without the entry
    // (a call not among them may still run deeper).
    bool no_news_of_calls() const { return unverified || (reading.partial && !has_entry); }
  };
  // Whether `p`'s sample weighs over two intervals (the recorder was held up, and the stack read
  // after it was the same as before: no gap was taken off).
  bool weighs_a_stall(const Pending& p) const {
    return limits_.interval_us > 0 && p.sample.wall_us > 2 * limits_.interval_us;
  }
  // Whether `p` was sampled in the context (task, greenlet or thread) where `o` runs.
  static bool same_context(const Open& o, const Pending& p) {
    return o.context == p.context && o.task == p.task && (o.task || o.thread == p.thread);
  }
  bool promote(Open& s);
  // gone_us: when it was found gone (0: not known); still_running: the recording stopped first.
  void close(Open& s, int64_t gone_us, bool still_running = false);
  void add(Open& s, snapshot::Sample sample);
  void seen_alive(Open& s, const Pending& p);  // a sample not kept: the call ran until then
  void add_gap(Open& s, const Pending& p, bool continues);
  void start(Pending& p);
  uint32_t sampling() const;

  Limits limits_;
  snapshot::Writer& writer_;
  ParkedProber prober_;
  std::vector<Open> open_;
  std::vector<Pending> pending_;
  size_t pending_used_ = 0;
  struct Seen {
    uint64_t tick = 0, greenlet = 0;
    int64_t time_us = 0;  // when the thread was read
    bool no_python = false;  // it had no Python frames at all
  };
  std::unordered_map<uint32_t, Seen> sampled_;  // thread -> what it ran at its last sample
  std::vector<uint32_t> parked_frames_, parked_stack_;
  uint64_t seen_ = 0, kept_ = 0, too_short_ = 0, skipped_ = 0, outside_ = 0;
  bool first_tick_cuts_ = true;
};

}  // namespace swprof::record

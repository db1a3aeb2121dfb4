// Entry segments (record/trigger): when a call first seen in a greenlet began.
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "record/trigger.h"
#include "swprof/analyze.h"
#include "snapshot/format.h"
#include "swprof/snapshot.h"

using namespace swprof;

namespace {

pb::Header header() {
  pb::Header h;
  h.set_format_version(snapshot::kFormatVersion);
  h.set_python_version("3.11.2");
  h.add_command("python3");
  h.set_pid(42);
  h.set_interval_us(10000);
  return h;
}

// A recording of one thread (MainThread, tid 7) whose frames are in /app/server.py: `write`
// makes its samples (through a Trigger, as the recorder does). Returns the file as read back.
snapshot::Recording written(const std::string& name, int64_t duration_us,
                            const std::function<void(snapshot::Writer&, uint32_t thread, uint32_t file)>& write) {
  const std::string path = "/tmp/swprof-unit-" + name + ".swp";
  {
    snapshot::Writer w(path, header());
    const uint32_t thread = w.add_thread(7, "MainThread");
    write(w, thread, w.intern_string("/app/server.py"));
    pb::Footer f;
    f.set_duration_us(duration_us);
    f.set_samples(w.samples_written());
    w.finish(f);
  }
  auto r = snapshot::read_file(path);
  std::remove(path.c_str());
  return r;
}

// One greenlet's call of `handle` (its outermost frame), first seen running (or parked: `first`
// kSwitchedOut) at 100 ms in a sample weighing `wall_us`, seen again at 110 ms, and gone at 120 ms;
// the tracker saw the greenlet start at `born_us`; the recording stops at `stop_us` (0: while
// the program runs on). `followed_later`: the process was found after the recording began
// (--subprocesses), its first tick not the recording's. Returns the file as read back.
snapshot::Recording first_seen_running(const std::string& name, int64_t wall_us, int64_t born_us,
                                       uint32_t first = snapshot::kOnCpu, int64_t stop_us = 120000,
                                       bool followed_later = false) {
  return written(name, 120000, [&](snapshot::Writer& w, uint32_t thread, uint32_t file) {
    const uint32_t handle = w.intern_frame({w.intern_string("handle"), file, 12, 10});
    const uint32_t work = w.intern_frame({w.intern_string("work"), file, 22, 20});
    const std::vector<uint32_t> frames = {handle, work};
    record::Trigger trigger({}, w, nullptr);
    trigger.set_first_tick_cuts(!followed_later);
    record::CallIdentity call;
    call.frame = 0x7f0000001000;
    call.code = 0x7f0000002000;
    call.root_depth = 0;
    const uint64_t greenlet = 0x4000000000000001;  // a greenlet's key (its serial)
    const uint32_t listed[] = {thread};
    for (int64_t tick = 1; tick <= 2; ++tick) {
      snapshot::Sample s;
      s.time_us = 90000 + tick * 10000;
      s.thread = thread;
      s.stack = w.intern_stack(frames);
      s.wall_us = tick == 1 ? wall_us : 10000;
      s.flags = tick == 1 ? first : snapshot::kOnCpu;
      record::Reading reading{s.time_us - 100, s.time_us - s.wall_us - 100, {}, false, 0, tick == 1 ? born_us : 0};
      trigger.route(static_cast<uint64_t>(tick), &s, thread, greenlet, &call, frames, &reading);
      trigger.end_tick(static_cast<uint64_t>(tick), s.time_us, listed);
    }
    trigger.finish(stop_us);
  });
}

int64_t total_wall(const snapshot::Recording& r) {
  int64_t total = 0;
  for (const auto& s : r.samples) total += s.wall_us;
  return total;
}

// One segment, begun at `start_us` and bounded by `bound_us`, whose samples tile it up to 110 ms.
void check_call(const snapshot::Recording& r, int64_t start_us, int64_t bound_us) {
  REQUIRE(r.segments.size() == 1);
  CHECK(r.segments[0].start_us == start_us);
  CHECK(r.segments[0].start_bound_us == bound_us);
  CHECK(total_wall(r) == 110000 - start_us);
}

}  // namespace

TEST_CASE("a greenlet first seen running begins its call when the tracker saw it start") {
  // Started 4 ms before the sample, within its interval: the call (and its first sample) from then.
  auto r = first_seen_running("greenlet-born", 10000, 96000);
  check_call(r, 96000, 96000);
  REQUIRE(r.samples.size() == 2);
  CHECK(r.samples[0].wall_us == 4000);
}

TEST_CASE(" and one started before a recorder stall has the time to its first sample as a gap under its entry") {
  // Started at 30 ms; the recorder was held up and first saw it running at 100 ms (a sample that
  // keeps one interval, the rest of the thread's late time being another greenlet's business).
  auto r = first_seen_running("greenlet-stall", 10000, 30000);
  check_call(r, 30000, 30000);
  REQUIRE(r.samples.size() == 3);
  const auto& gap = r.samples[0];
  CHECK((gap.flags & snapshot::kGap) != 0);
  CHECK(gap.wall_us == 90000 - 30000);
  CHECK(r.stack(gap.stack).size() == 1);  // under the entry frame, no deeper
}

TEST_CASE(" and without the tracker's word, from the thread's previous sample") {
  auto r = first_seen_running("greenlet-unknown", 10000, 0);
  check_call(r, 90000, 89900);
}

TEST_CASE("a call found at the recording's first tick began before it, one running at a stop ran on") {
  // (The tracker's word dates a greenlet's call: not cut.)
  auto known = first_seen_running("cut-born", 10000, 96000);
  REQUIRE(known.segments.size() == 1);
  CHECK_FALSE(known.segments[0].began_before_recording);
  CHECK(analyze::segment_is_whole(known.segments[0]));
  // Otherwise the call's start is anywhere before the first read: its duration is a lower bound.
  auto cut = first_seen_running("cut-start", 10000, 0);
  REQUIRE(cut.segments.size() == 1);
  CHECK(cut.segments[0].began_before_recording);
  CHECK_FALSE(cut.segments[0].still_running);
  CHECK_FALSE(analyze::segment_is_whole(cut.segments[0]));
  auto rows = analyze::segment_rows(cut, {1});
  CHECK(rows[0].began_before_recording);
  CHECK(rows[0].complete);
  // Stopped (--duration, Ctrl-C) while the program ran on: the call's end is past the recording's.
  auto ran_on = first_seen_running("cut-end", 10000, 96000, snapshot::kOnCpu, 0);
  REQUIRE(ran_on.segments.size() == 1);
  CHECK(ran_on.segments[0].still_running);
  CHECK(ran_on.segments[0].end_us == 110000);
  CHECK_FALSE(analyze::segment_is_whole(ran_on.segments[0]));
  CHECK_FALSE(analyze::segment_rows(ran_on, {1})[0].complete);
  // A process followed once it appeared: its first read is bounded by the one before (not cut).
  auto later = first_seen_running("cut-later", 10000, 0, snapshot::kOnCpu, 120000, true);
  REQUIRE(later.segments.size() == 1);
  CHECK_FALSE(later.segments[0].began_before_recording);
}

TEST_CASE("per-segment selections leave cut segments out unless none is whole") {
  auto cut = first_seen_running("cut-only", 10000, 0);
  analyze::Selection sel;
  sel.whole_segments = true;
  CHECK(analyze::selected_segments(cut, sel) == std::vector<uint32_t>{1});  // (none whole: all)
  cut.segments.push_back(cut.segments[0]);
  cut.segments[1].id = 2;
  cut.segments[1].began_before_recording = false;
  CHECK(analyze::selected_segments(cut, sel) == std::vector<uint32_t>{2});
  sel.segments = {1};  // (asked for by id: as asked)
  CHECK(analyze::selected_segments(cut, sel) == std::vector<uint32_t>{1});
}

TEST_CASE(" and one first seen parked after a stall: the time before is a gap, not switched out") {
  // (A greenlet may run while the recorder is held up: parked at the late read is all that is
  // known. CI, ASan build: job_9 did its 20 ms of work in a 71 ms stall, shown as 80 ms asleep.)
  auto r = first_seen_running("greenlet-parked-stall", 10000, 30000, snapshot::kSwitchedOut);
  check_call(r, 30000, 30000);
  REQUIRE(r.samples.size() == 3);
  CHECK((r.samples[0].flags & snapshot::kGap) != 0);
  CHECK((r.samples[0].flags & snapshot::kSwitchedOut) != 0);  // the greenlet's time, not its thread's
  analyze::Selection sel;
  sel.segments = {r.segments[0].id};
  analyze::Tree tree = analyze::build_tree(r, analyze::select_samples(r, sel), sel, {});
  double not_sampled = 0, switched_out = 0;
  for (const auto& n : tree.nodes) {
    if (n.kind == analyze::NodeKind::kGap) not_sampled += n.total;
    if (n.kind == analyze::NodeKind::kSwitchedOut) switched_out += n.total;
  }
  CHECK(not_sampled == 60000);
  CHECK(switched_out == 10000);
}

TEST_CASE("a late sample's gap: all but one interval, under the frames both stacks share") {
  const std::vector<uint32_t> before = {1, 2, 3}, after = {1, 2, 4, 5}, none;
  auto gap = record::late_gap(50000, 10000, before, after);
  CHECK(gap.wall_us == 40000);
  CHECK(gap.common == 2);
  CHECK(record::late_gap(20000, 10000, before, after).wall_us == 0);  // two intervals: on time
  CHECK(record::late_gap(50000, 10000, before, before).wall_us == 0);  // the same stack: it stayed
  auto first = record::late_gap(50000, 10000, none, after);            // nothing known before
  CHECK(first.wall_us == 40000);
  CHECK(first.common == 0);
  CHECK(record::late_gap(50000, 10000, after, before).common == 2);
}

namespace {

// A sync worker's handler called for one request, then (the recorder held up 80 ms) for the next:
// the same function called from the same line, so the stacks before and after the stall share the
// entry frame (`same_stack`: all of it, so the late sample keeps its time; otherwise the time
// before the sample's own interval is a gap). `other_context`: the first call ran in another
// greenlet of the thread, which ended meanwhile: no news of when the second began. `torn`: the
// read after the stall kept only the outer frames, without the entry's locals; the next tick's
// read sees the second request whole. Returns the file as read back.
snapshot::Recording request_after_stall(const std::string& name, bool same_stack, bool other_context = false,
                                        bool torn = false) {
  return written(name, 210000, [&](snapshot::Writer& w, uint32_t thread, uint32_t file) {
    const uint32_t serve = w.intern_frame({w.intern_string("serve"), file, 5, 3});
    const uint32_t handle = w.intern_frame({w.intern_string("handle"), file, 12, 10});
    const uint32_t work = w.intern_frame({w.intern_string("work"), file, 22, 20});
    const std::vector<uint32_t> frames = {serve, handle, work};
    record::Trigger trigger({0, 0, 5, 10000}, w, nullptr);
    record::CallIdentity first, second;
    first.frame = second.frame = 0x7f0000001000;  // (the frame's memory reused by the next call)
    first.code = second.code = 0x7f0000002000;
    first.root_depth = second.root_depth = 1;
    first.arg_count = second.arg_count = 1;
    first.locals_known = second.locals_known = true;
    first.args[0] = 0x7f00000a0000;  // each request its own object
    second.args[0] = 0x7f00000b0000;
    const uint32_t listed[] = {thread};
    const uint64_t context = 1;
    record::CallIdentity unread = second;
    unread.locals_known = false;
    unread.args[0] = 0;
    const int64_t times[] = {100000, 110000, 200000, 210000};
    for (uint64_t tick = 1; tick <= (torn ? 4u : 3u); ++tick) {
      snapshot::Sample s;
      s.time_us = times[tick - 1];
      s.thread = thread;
      s.stack = w.intern_stack(frames);
      s.wall_us = 10000;
      s.cpu_us = 10000;
      s.flags = snapshot::kOnCpu;
      record::Reading reading{s.time_us - 100, s.time_us - s.wall_us - 100, {}};
      if (tick == 3) {
        reading.previous_from_us = times[1] - 100;
        if (same_stack) s.wall_us = s.cpu_us = 90000;
        else reading.gap = {80000, 80000, 0, 2};  // (the entry frame and its caller in common)
      }
      if (tick == 3 && torn) reading.partial = true;
      const record::CallIdentity* entry = tick < 3 ? &first : tick == 3 && torn ? &unread : &second;
      trigger.route(tick, &s, thread, tick < 3 && other_context ? context + 1 : context, entry, frames, &reading);
      trigger.end_tick(tick, s.time_us, listed);
    }
    trigger.finish(220000);
  });
}

}  // namespace

TEST_CASE("a request that follows another across a recorder stall begins after it, not at the stall") {
  // The stall's time was partly the first request's and partly nobody's (the worker waited for
  // the next client): none of it is the second's. (A gunicorn worker with the recorder stopped
  // 70 ms of every 170: a ~30 ms request estimated at 86 ms.)
  for (bool same_stack : {false, true}) {
    CAPTURE(same_stack);
    auto r = request_after_stall(same_stack ? "stall-same-stack" : "stall-gap", same_stack);
    REQUIRE(r.segments.size() == 2);
    CHECK(r.segments[0].start_us == 90000);
    CHECK(r.segments[1].start_us == 190000);        // its own sample's interval, no more
    CHECK(r.segments[1].start_bound_us == 109900);  // (after the read that saw the first request)
    REQUIRE(r.samples.size() == 3);
    for (const auto& s : r.samples) {
      CHECK((s.flags & snapshot::kGap) == 0);
      CHECK(s.wall_us == 10000);
      CHECK(s.cpu_us == 10000);
    }
  }
}

TEST_CASE(" but one that follows a call of another context keeps the stall under its entry frame") {
  // (Another greenlet's call ended: this one may have run all along, switched out.)
  auto r = request_after_stall("stall-other-context", false, true);
  REQUIRE(r.segments.size() == 2);
  CHECK(r.segments[1].start_us == 110000);
  REQUIRE(r.samples.size() == 4);
  CHECK((r.samples[2].flags & snapshot::kGap) != 0);
  CHECK(r.samples[2].wall_us == 80000);
}

TEST_CASE(" and one read torn after the stall, its locals unread, is no news of which call runs") {
  // (On 3.9 the handler's frame object is reused at one address: without its arguments, the
  // sample matched the first request, stretched over the stall: 86 ms for 20 ms.)
  auto r = request_after_stall("stall-torn", false, false, true);
  REQUIRE(r.segments.size() == 2);
  CHECK(r.segments[0].end_us == 110000);  // the first request, as last seen before the stall
  CHECK(r.segments[1].start_us == 200000);  // the second, from its first sample that says so
  for (const auto& s : r.samples) CHECK((s.flags & snapshot::kGap) == 0);
}

namespace {

// A handler's call with its one argument read (a request object).
record::CallIdentity handler_call() {
  record::CallIdentity call;
  call.frame = 0x7f0000001000;
  call.code = 0x7f0000002000;
  call.arg_count = 1;
  call.args[0] = 0x7f00000a0000;
  call.locals_known = true;
  return call;
}

}  // namespace

TEST_CASE("an asyncio task's call read torn as it runs after a stall goes on: no news, not its end") {
  // A handler that awaited, then computes: seen suspended through its task, then running on the
  // loop's thread after the recorder was held up 40 ms, that read torn (the entry's locals
  // unread; or, `outer_only`, only the frames outside the entry kept), then whole. (CI, TaskGroup
  // on 3.12 under load: the task's call ended at the torn read and a second segment began at the
  // next, 11 segments for 10 handlers.)
  for (bool outer_only : {false, true}) {
    CAPTURE(outer_only);
    auto r = written("task-torn", 160000, [&](snapshot::Writer& w, uint32_t thread, uint32_t file) {
      const uint32_t loop = w.intern_frame({w.intern_string("run_forever"), file, 5, 3});
      const uint32_t handle = w.intern_frame({w.intern_string("handle"), file, 12, 10});
      const uint32_t query = w.intern_frame({w.intern_string("query"), file, 22, 20});
      const uint32_t spin = w.intern_frame({w.intern_string("spin"), file, 32, 30});
      const std::vector<uint32_t> suspended = {handle, query}, running = {loop, handle, spin};
      record::Trigger trigger({0, 0, 5, 10000}, w, nullptr);
      const uint64_t task = 0x7f00000c0000;
      // (Its depth and callers count from the task's coroutine, running or not.)
      const record::CallIdentity call = handler_call();
      record::CallIdentity torn_call = call;
      torn_call.locals_known = false;
      torn_call.args[0] = 0;
      const uint32_t listed[] = {thread};
      const std::vector<uint64_t> tasks = {task};
      const int64_t times[] = {100000, 110000, 150000, 150200};
      for (uint64_t tick = 1; tick <= 4; ++tick) {
        snapshot::Sample s;
        s.time_us = times[tick - 1];
        s.thread = thread;
        s.wall_us = tick == 4 ? 200 : 10000;
        record::Reading reading{s.time_us - 100, times[tick > 1 ? tick - 2 : 0] - 10000, {}};
        reading.task = task;
        const record::CallIdentity* entry = &call;
        std::span<const uint32_t> frames = suspended;
        if (tick <= 2) {
          s.flags = snapshot::kSwitchedOut;
        } else {
          s.flags = snapshot::kOnCpu;
          s.cpu_us = s.wall_us;
          s.context_depth = 1;
          frames = running;
          if (tick == 3) {
            entry = outer_only ? nullptr : &torn_call;
            if (outer_only) frames = frames.first(1);
            s.wall_us = s.cpu_us = 40000;
            reading.gap = {30000, 30000, 0, 1};  // (the loop's frame in common with the last read)
            reading.partial = true;
          }
        }
        s.stack = w.intern_stack(frames);
        trigger.route(tick, &s, thread, task, entry, frames, &reading);
        trigger.end_tick(tick, s.time_us, listed, true, &tasks, s.time_us);
      }
      trigger.finish(160000);
    });
    REQUIRE(r.segments.size() == 1);
    CHECK(r.segments[0].start_us == 90000);
    CHECK(r.segments[0].end_us >= 150200);
  }
}

TEST_CASE("a new call seen twice in one tick (its thread listed twice) is one call") {
  // (CI on 3.12: a threaded server's thread listed twice while threads came and went, both of its
  // samples at that tick new: 201 segments for 200 requests, one of them a sample long.)
  auto r = written("listed-twice", 130000, [&](snapshot::Writer& w, uint32_t thread, uint32_t file) {
    const uint32_t handle = w.intern_frame({w.intern_string("handle"), file, 12, 10});
    const std::vector<uint32_t> frames = {handle};
    record::Trigger trigger({0, 0, 5, 10000}, w, nullptr);
    const record::CallIdentity call = handler_call();
    const uint32_t listed[] = {thread};
    for (uint64_t tick = 1; tick <= 3; ++tick) {
      for (int look = 0; look < (tick == 1 ? 2 : 1); ++look) {
        snapshot::Sample s;
        s.time_us = 90000 + static_cast<int64_t>(tick) * 10000 + look * 100;
        s.thread = thread;
        s.stack = w.intern_stack(frames);
        s.wall_us = look ? 100 : 10000;
        s.flags = snapshot::kOnCpu;
        record::Reading reading{s.time_us - 50, s.time_us - s.wall_us - 50, {}};
        trigger.route(tick, &s, thread, 0, &call, frames, &reading);
      }
      trigger.end_tick(tick, 90000 + static_cast<int64_t>(tick) * 10000, listed);
    }
    trigger.finish(130000);
  });
  REQUIRE(r.segments.size() == 1);
  CHECK(r.segments[0].start_us == 90000);
  CHECK(r.samples.size() == 3);
}

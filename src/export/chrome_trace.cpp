// export --format chrome: Chrome's Trace Event JSON, which chrome://tracing, Perfetto's UI and
// speedscope open, so that a request can be read left to right on its thread's timeline.
//
// One track (tid) per thread, named by "thread_name" metadata; under gevent each greenlet's calls
// get their own track, since their segments overlap in time on one thread. A segment is one
// complete ("X") event named after its entry function, with its id, duration, CPU time and sample
// count in args. The sampled stacks become nested complete events: a sample stands for the time
// since its context's previous sample, and a frame that stays on consecutive samples of a track
// (same function at the same depth under the same callers, within one segment) is one event
// from the start of its first sample to the end of its last. A thread blocked at its sample gets
// an innermost `<off-CPU: REASON>` event (what it waited on). Events are written per track in
// time order, an enclosing event before the events it contains.
#include <algorithm>
#include <iterator>
#include <map>

#include <fmt/format.h>

#include "export/frame_table.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

struct Event {
  int64_t ts = 0, dur = 0;
  int depth = 0;             // -1 for a segment: it encloses its stacks
  uint32_t entry = 0;        // frame table entry (stack events)
  uint32_t segment = 0;      // segment events: the id
  int64_t cpu_us = 0;
  uint64_t samples = 0;
  uint32_t first_sample = 0;  // segment events: names it after its entry function
};

struct Open {
  uint32_t entry;
  int64_t begin;
};

struct Track {
  uint32_t thread = 0, greenlet = 0;
  int64_t tid = 0;
  std::vector<Open> open;
  uint32_t segment = 0;
  int64_t last_end = INT64_MIN;  // end of the previous sample
  std::vector<Event> events;

  // Ends the open frames from depth `keep` on at the previous sample's end.
  void close_from(size_t keep) {
    for (size_t d = open.size(); d-- > keep;)
      if (last_end > open[d].begin)
        events.push_back({open[d].begin, last_end - open[d].begin, static_cast<int>(d), open[d].entry});
    open.resize(std::min(keep, open.size()));
  }
};

}  // namespace

void chrome_trace_json(const snapshot::Recording& rec, const ExportView& view, const Sink& sink) {
  std::vector<uint32_t> selected = analyze::select_samples(rec, view.selection);
  std::stable_sort(selected.begin(), selected.end(),
                   [&](uint32_t a, uint32_t b) { return rec.samples[a].time_us < rec.samples[b].time_us; });

  // Threads whose segments overlap in time (gevent: many requests' greenlets on one thread) get a
  // track per greenlet; the recording says which greenlet ran each sample.
  std::vector<std::pair<int64_t, int64_t>> span(rec.segments.size() + 1, {INT64_MAX, INT64_MIN});
  for (uint32_t i : selected) {
    const auto& s = rec.samples[i];
    if (!s.segment) continue;
    span[s.segment].first = std::min(span[s.segment].first, s.time_us - std::max<int64_t>(0, s.wall_us));
    span[s.segment].second = std::max(span[s.segment].second, s.time_us);
  }
  std::vector<bool> lanes(rec.threads.size(), false);
  std::vector<int64_t> busy_until(rec.threads.size(), INT64_MIN);
  std::vector<uint32_t> by_start;
  for (uint32_t id = 1; id < span.size(); ++id)
    if (span[id].first != INT64_MAX) by_start.push_back(id);
  std::sort(by_start.begin(), by_start.end(), [&](uint32_t a, uint32_t b) { return span[a].first < span[b].first; });
  for (uint32_t id : by_start) {
    uint32_t thread = rec.segments[id - 1].thread;
    if (span[id].first < busy_until[thread]) lanes[thread] = true;
    busy_until[thread] = std::max(busy_until[thread], span[id].second);
  }

  FrameTable frames(rec, view.selection, view.lines);
  std::map<std::pair<uint32_t, uint32_t>, size_t> track_of;  // (thread, greenlet) -> track
  std::vector<Track> tracks;
  std::vector<size_t> segment_event(rec.segments.size() + 1, SIZE_MAX);  // index in its track's events
  std::vector<uint32_t> stack;
  for (uint32_t i : selected) {
    const auto& s = rec.samples[i];
    const auto* seg = rec.segment(s.segment);
    // A greenlet's calls overlap other greenlets' on the thread: a track of their own (by the
    // segment when the greenlet is not known).
    uint32_t greenlet = seg && lanes[s.thread] ? (s.greenlet ? s.greenlet : UINT32_MAX - s.segment) : 0;
    auto [it, inserted] = track_of.try_emplace({s.thread, greenlet}, tracks.size());
    if (inserted) tracks.push_back({s.thread, greenlet});
    Track& t = tracks[it->second];

    int64_t begin = s.time_us - std::max<int64_t>(0, s.wall_us);
    if (t.last_end != INT64_MIN) begin = std::max(begin, t.last_end);
    if (s.segment != t.segment || t.last_end == INT64_MIN) {
      t.close_from(0);
      t.segment = s.segment;
      if (seg) {
        segment_event[s.segment] = t.events.size();
        t.events.push_back({begin, 0, -1, 0, s.segment, 0, 0, i});
      }
    }
    // A thread blocked at its sample shows on the timeline what it waited on, innermost: a
    // socket, a lock, a sleep (the off-CPU reasons record keeps for samples of blocked threads).
    const bool blocked = s.offcpu_reason && !(s.flags & snapshot::kOnCpu) && analyze::blocked_us(s) > 0;
    frames.stack_of(s, stack, blocked ? analyze::OffCpuLeaf::kReason : analyze::OffCpuLeaf::kNone);
    size_t same = 0;
    while (same < t.open.size() && same < stack.size() && t.open[same].entry == stack[same]) ++same;
    t.close_from(same);
    for (size_t d = same; d < stack.size(); ++d) t.open.push_back({stack[d], begin});
    t.last_end = std::max(t.last_end, s.time_us);
    if (seg) {
      Event& e = t.events[segment_event[s.segment]];
      e.dur = t.last_end - e.ts;
      e.cpu_us += s.cpu_us;
      ++e.samples;
    }
  }
  for (auto& t : tracks) t.close_from(0);

  // Track ids: the OS thread id where it is unique; greenlet tracks and imported segments
  // (whose threads have no id) get numbers above every real one.
  int64_t next_tid = 1;
  for (const auto& t : tracks) next_tid = std::max(next_tid, rec.threads[t.thread].tid + 1);
  std::vector<int64_t> used;
  for (auto& t : tracks) {
    int64_t tid = rec.threads[t.thread].tid;
    bool taken = std::find(used.begin(), used.end(), tid) != used.end();
    t.tid = t.greenlet || tid <= 0 || taken ? next_tid++ : tid;
    used.push_back(t.tid);
  }
  int64_t origin = 0;  // timestamps start at 0 or later: some viewers dislike negative ones
  for (const auto& t : tracks)
    for (const auto& e : t.events) origin = std::min(origin, e.ts);

  const int64_t pid = rec.header.pid();
  std::vector<double> duration_ms(rec.segments.size() + 1, 0);  // as analyze --segments reports it
  for (const auto& row : analyze::segment_rows(rec, analyze::selected_segments(rec, view.selection)))
    duration_ms[row.id] = row.duration_ms;
  // Written as it is made (a long recording's events can be gigabytes of text). Each frame entry's
  // name and args are quoted once, not once per event.
  std::vector<std::string> entry_name(frames.entries().size()), entry_args(frames.entries().size());
  for (size_t k = 0; k < entry_name.size(); ++k) {
    const auto& f = frames.entries()[k];
    entry_name[k] = json_quoted(f.function);
    if (!f.synthetic) entry_args[k] = fmt::format(R"(, "args": {{"file": {}, "line": {}}})", json_quoted(f.file), f.line);
  }
  ChunkedOutput output(rec, sink);
  std::string& out = output.text();
  auto to = std::back_inserter(out);
  out += "{\"traceEvents\": [\n";
  fmt::format_to(to, R"(  {{"name": "process_name", "ph": "M", "pid": {}, "tid": 0, "args": {{"name": {}}}}})", pid,
                 json_quoted(analyze::command_line(rec)));
  for (auto& t : tracks) {
    std::string name = thread_title(rec.threads[t.thread]);
    if (t.greenlet) name += fmt::format(" greenlet {}", t.greenlet);
    fmt::format_to(to, ",\n  {{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": {}, \"tid\": {}, \"args\": {{\"name\": {}}}}}",
                   pid, t.tid, json_quoted(name));
    const std::string track_ids = fmt::format(", \"pid\": {}, \"tid\": {}", pid, t.tid);
    std::stable_sort(t.events.begin(), t.events.end(), [](const Event& a, const Event& b) {
      if (a.ts != b.ts) return a.ts < b.ts;
      if (a.dur != b.dur) return a.dur > b.dur;
      return a.depth < b.depth;
    });
    for (const auto& e : t.events) {
      if (e.depth < 0) {
        const auto& seg = rec.segments[e.segment - 1];
        fmt::format_to(
            to,
            ",\n  {{\"name\": {}, \"cat\": \"segment\", \"ph\": \"X\", \"ts\": {}, \"dur\": {}, \"pid\": {}, \"tid\": {}, "
            "\"args\": {{\"segment\": {}, \"duration_ms\": {:.3f}, \"cpu_ms\": {:.3f}, \"samples\": {}}}}}",
            json_quoted(entry_function(rec, seg, rec.samples[e.first_sample])), e.ts - origin, e.dur, pid, t.tid,
            e.segment, duration_ms[e.segment], static_cast<double>(e.cpu_us) / 1e3, e.samples);
      } else {
        // (Appended piece by piece: a format string parsed per event was most of the export's time.)
        out += ",\n  {\"name\": ";
        out += entry_name[e.entry];
        out += ", \"cat\": \"python\", \"ph\": \"X\", \"ts\": ";
        append_number(out, e.ts - origin);
        out += ", \"dur\": ";
        append_number(out, e.dur);
        out += track_ids;
        out += entry_args[e.entry];
        out += '}';
      }
      output.piece_done();
    }
    std::vector<Event>().swap(t.events);  // written: its memory goes back before the next track's
  }
  fmt::format_to(
      to,
      "\n],\n \"displayTimeUnit\": \"ms\",\n \"otherData\": {{\"exporter\": \"swprof {}\", \"command\": {}, \"python\": {}, "
      "\"start_unix_us\": {}, \"ts_origin_us\": {}, \"samples\": {}}}}}\n",
      SWPROF_VERSION, json_quoted(analyze::command_line(rec)), json_quoted(rec.header.python_version()),
      rec.header.start_unix_us(), origin, selected.size());
  output.flush();
}

}  // namespace swprof::exporter

// export --format chrome: Chrome's Trace Event JSON, which chrome://tracing, Perfetto's UI and
// speedscope open, so that a request can be read left to right on its thread's timeline.
//
// One track (tid) per thread, named by "thread_name" metadata; under gevent each greenlet's calls
// get their own track, since their segments overlap in time on one thread. A segment is a duration
// event named after its entry function, with its id, duration, CPU time and sample count in args.
// The sampled stacks become nested duration events: a sample stands for the time since its
// context's previous sample, and a frame that stays on consecutive samples of a track (same
// function at the same depth under the same callers, within one segment) is one event from the
// start of its first sample to the end of its last. A thread blocked at its sample gets an
// innermost `<off-CPU: REASON>` event (what it waited on).
//
// Written as the samples come, in the file's order: each event is a begin ("B", with the args)
// when its frame appears and an end ("E", the same name) when it goes, so nothing but each track's
// open frames is held, however long the recording. A begin is written once its event has lasted:
// an event that would end where it began is left out (a segment's is kept, of no duration). The samples are read twice: first for
// what the begins need (each segment's extent, CPU time and samples, the earliest time) and to
// learn whether each thread's come in time order; a file whose do not (an import) has its
// selected samples held and sorted.
#include <algorithm>
#include <iterator>
#include <map>

#include <fmt/format.h>

#include "export/frame_table.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

constexpr uint32_t kSegmentEntry = UINT32_MAX;  // an open event that is the track's segment

struct Open {
  uint32_t entry;  // frame table entry, or kSegmentEntry
  int64_t begin;
};

struct Track {
  int64_t tid = 0;
  std::string ids;              // ", \"pid\": P, \"tid\": T"
  std::vector<Open> open;       // the segment, if any, then the frames, outermost first
  size_t begun = 0;             // open[0, begun) have had their begin written
  uint32_t segment = 0;
  std::string segment_name;     // quoted: its begin and its end say it
  std::string segment_begin;    // the segment's begin event, until written
  int64_t last_end = INT64_MIN;  // end of the previous sample
};

// What the first read of the samples learns.
struct SegmentTotals {
  int64_t first = INT64_MAX, last = INT64_MIN;  // from its first sample's start to its last's time
  int64_t cpu_us = 0;
  uint64_t samples = 0;
};

class TraceWriter {
 public:
  TraceWriter(const snapshot::Recording& rec, const ExportView& view, ChunkedOutput& output,
              const std::vector<SegmentTotals>& segments, int64_t origin)
      : rec_(rec), frames_(rec, view.selection, view.lines), output_(output), out_(output.text()),
        segments_(segments), origin_(origin), pid_(rec.header.pid()) {
    // Threads whose segments overlap in time (gevent: many requests' greenlets on one thread) get a
    // track per greenlet; the recording says which greenlet ran each sample.
    lanes_.assign(rec.threads.size(), false);
    std::vector<int64_t> busy_until(rec.threads.size(), INT64_MIN);
    std::vector<uint32_t> by_start;
    for (uint32_t id = 1; id < segments.size(); ++id)
      if (segments[id].first != INT64_MAX) by_start.push_back(id);
    std::sort(by_start.begin(), by_start.end(),
              [&](uint32_t a, uint32_t b) { return segments[a].first < segments[b].first; });
    for (uint32_t id : by_start) {
      uint32_t thread = rec.segments[id - 1].thread;
      if (segments[id].first < busy_until[thread]) lanes_[thread] = true;
      busy_until[thread] = std::max(busy_until[thread], segments[id].last);
    }
    duration_ms_.assign(rec.segments.size() + 1, 0);  // as analyze --segments reports it
    for (const auto& row : analyze::segment_rows(rec, analyze::selected_segments(rec, view.selection)))
      duration_ms_[row.id] = row.duration_ms;
    // Track ids: the OS thread id where it is unique; greenlet tracks and imported segments (whose
    // threads have no id) get numbers above every real one.
    for (const auto& t : rec.threads) next_tid_ = std::max(next_tid_, t.tid + 1);
  }

  void add(const snapshot::Sample& s) {
    const auto* seg = rec_.segment(s.segment);
    // A greenlet's calls overlap other greenlets' on the thread: a track of their own (by the
    // segment when the greenlet is not known).
    uint32_t greenlet = seg && lanes_[s.thread] ? (s.greenlet ? s.greenlet : UINT32_MAX - s.segment) : 0;
    Track& t = track(s.thread, greenlet);

    int64_t begin = s.time_us - std::max<int64_t>(0, s.wall_us);
    if (t.last_end != INT64_MIN) begin = std::max(begin, t.last_end);
    if (s.segment != t.segment || t.last_end == INT64_MIN) {
      close_from(t, 0);
      t.segment = s.segment;
      if (seg) {
        const SegmentTotals& totals = segments_[s.segment];
        t.segment_name = json_quoted(entry_function(rec_, *seg, s));
        t.segment_begin = fmt::format(
            ",\n  {{\"name\": {}, \"cat\": \"segment\", \"ph\": \"B\", \"ts\": {}{}, \"args\": {{\"segment\": {}, "
            "\"duration_ms\": {:.3f}, \"cpu_ms\": {:.3f}, \"samples\": {}}}}}",
            t.segment_name, begin - origin_, t.ids, s.segment, duration_ms_[s.segment],
            static_cast<double>(totals.cpu_us) / 1e3, totals.samples);
        t.open.push_back({kSegmentEntry, begin});
      }
    }
    // A thread blocked at its sample shows on the timeline what it waited on, innermost: a
    // socket, a lock, a sleep (the off-CPU reasons record keeps for samples of blocked threads).
    const bool blocked = s.offcpu_reason && !(s.flags & snapshot::kOnCpu) && analyze::blocked_us(s) > 0;
    frames_.stack_of(s, stack_, blocked ? analyze::OffCpuLeaf::kReason : analyze::OffCpuLeaf::kNone);
    const size_t base = t.segment && !t.open.empty() && t.open[0].entry == kSegmentEntry ? 1 : 0;
    size_t same = 0;
    while (base + same < t.open.size() && same < stack_.size() && t.open[base + same].entry == stack_[same]) ++same;
    close_from(t, base + same);
    for (size_t d = same; d < stack_.size(); ++d) t.open.push_back({stack_[d], begin});
    t.last_end = std::max(t.last_end, s.time_us);
    // Begins of the events that have now lasted (outer ones first: an inner one began no earlier).
    while (t.begun < t.open.size() && t.open[t.begun].begin < t.last_end) write_begin(t, t.open[t.begun++]);
  }

  void finish() {
    for (auto& t : tracks_) close_from(t, 0);
  }

 private:
  Track& track(uint32_t thread, uint32_t greenlet) {
    auto [it, inserted] = track_of_.try_emplace({thread, greenlet}, tracks_.size());
    if (!inserted) return tracks_[it->second];
    Track& t = tracks_.emplace_back();
    int64_t tid = rec_.threads[thread].tid;
    bool taken = std::find(used_.begin(), used_.end(), tid) != used_.end();
    t.tid = greenlet || tid <= 0 || taken ? next_tid_++ : tid;
    used_.push_back(t.tid);
    t.ids = fmt::format(", \"pid\": {}, \"tid\": {}", pid_, t.tid);
    std::string name = thread_title(rec_.threads[thread]);
    if (greenlet) name += fmt::format(" greenlet {}", greenlet);
    fmt::format_to(std::back_inserter(out_),
                   ",\n  {{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": {}, \"tid\": {}, \"args\": {{\"name\": {}}}}}",
                   pid_, t.tid, json_quoted(name));
    return t;
  }

  // Each frame entry's name and args are quoted once, not once per event.
  void quote(uint32_t entry) {
    const auto& entries = frames_.entries();
    if (entry_name_.size() < entries.size()) {
      entry_name_.resize(entries.size());
      entry_args_.resize(entries.size());
    }
    if (!entry_name_[entry].empty()) return;
    const auto& f = entries[entry];
    entry_name_[entry] = json_quoted(f.function);
    if (!f.synthetic) entry_args_[entry] = fmt::format(R"(, "args": {{"file": {}, "line": {}}})", json_quoted(f.file), f.line);
  }

  // (Appended piece by piece: a format string parsed per event was most of the export's time.)
  void write_begin(Track& t, const Open& o) {
    if (o.entry == kSegmentEntry) {
      out_ += t.segment_begin;
    } else {
      quote(o.entry);
      out_ += ",\n  {\"name\": ";
      out_ += entry_name_[o.entry];
      out_ += ", \"cat\": \"python\", \"ph\": \"B\", \"ts\": ";
      append_number(out_, o.begin - origin_);
      out_ += t.ids;
      out_ += entry_args_[o.entry];
      out_ += '}';
    }
    output_.piece_done();
  }

  // Ends the open events from depth `keep` on at the previous sample's end, innermost first.
  void close_from(Track& t, size_t keep) {
    for (size_t d = t.open.size(); d-- > keep;) {
      // Never begun, it would end where it began: left out, but for a segment, which stays one
      // event however short (its frames, never begun either, are inside it and left out).
      if (d >= t.begun && t.open[d].entry != kSegmentEntry) continue;
      if (d >= t.begun) write_begin(t, t.open[d]);
      out_ += ",\n  {\"name\": ";
      out_ += t.open[d].entry == kSegmentEntry ? t.segment_name : entry_name_[t.open[d].entry];
      out_ += ", \"ph\": \"E\", \"ts\": ";
      append_number(out_, t.last_end - origin_);
      out_ += t.ids;
      out_ += '}';
      output_.piece_done();
    }
    t.open.resize(std::min(keep, t.open.size()));
    t.begun = std::min(t.begun, t.open.size());
  }

  const snapshot::Recording& rec_;
  FrameTable frames_;
  ChunkedOutput& output_;
  std::string& out_;
  const std::vector<SegmentTotals>& segments_;
  const int64_t origin_;
  const int64_t pid_;
  std::vector<bool> lanes_;
  std::vector<double> duration_ms_;
  std::map<std::pair<uint32_t, uint32_t>, size_t> track_of_;  // (thread, greenlet) -> track
  std::deque<Track> tracks_;
  std::vector<int64_t> used_;
  int64_t next_tid_ = 1;
  std::vector<uint32_t> stack_;
  std::vector<std::string> entry_name_, entry_args_;
};

}  // namespace

void chrome_trace_json(const snapshot::Recording& rec, const SampleSource& samples, const ExportView& view,
                       const Sink& sink) {
  const analyze::SampleFilter filter(rec, view.selection);
  std::vector<SegmentTotals> segments(rec.segments.size() + 1);
  std::vector<int64_t> last_time(rec.threads.size(), INT64_MIN);
  bool in_order = true;
  uint64_t selected = 0;
  int64_t origin = 0;  // timestamps start at 0 or later: some viewers dislike negative ones
  samples([&](const snapshot::Sample& s) {
    if (!filter.accepts(s)) return;
    ++selected;
    int64_t start = s.time_us - std::max<int64_t>(0, s.wall_us);
    origin = std::min(origin, start);
    if (s.time_us < last_time[s.thread]) in_order = false;
    last_time[s.thread] = s.time_us;
    if (!s.segment) return;
    SegmentTotals& seg = segments[s.segment];
    seg.first = std::min(seg.first, start);
    seg.last = std::max(seg.last, s.time_us);
    seg.cpu_us += s.cpu_us;
    ++seg.samples;
  });

  // (A begin and an end take about 1.5 times the text of one complete event: a larger allowance.)
  ChunkedOutput output(rec, sink, 6);
  auto to = std::back_inserter(output.text());
  output.text() += "{\"traceEvents\": [\n";
  fmt::format_to(to, R"(  {{"name": "process_name", "ph": "M", "pid": {}, "tid": 0, "args": {{"name": {}}}}})",
                 rec.header.pid(), json_quoted(analyze::command_line(rec)));
  TraceWriter trace(rec, view, output, segments, origin);
  if (in_order) {
    samples([&](const snapshot::Sample& s) {
      if (filter.accepts(s)) trace.add(s);
    });
  } else {
    std::vector<snapshot::Sample> held =
        snapshot::hold_samples(rec, samples, [&](const snapshot::Sample& s) { return filter.accepts(s); });
    std::stable_sort(held.begin(), held.end(),
                     [](const snapshot::Sample& a, const snapshot::Sample& b) { return a.time_us < b.time_us; });
    for (const auto& s : held) trace.add(s);
  }
  trace.finish();
  fmt::format_to(
      to,
      "\n],\n \"displayTimeUnit\": \"ms\",\n \"otherData\": {{\"exporter\": \"swprof {}\", \"command\": {}, \"python\": {}, "
      "\"start_unix_us\": {}, \"ts_origin_us\": {}, \"samples\": {}}}}}\n",
      SWPROF_VERSION, json_quoted(analyze::command_line(rec)), json_quoted(rec.header.python_version()),
      rec.header.start_unix_us(), origin, selected);
  output.flush();
}

}  // namespace swprof::exporter

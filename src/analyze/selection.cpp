// Which samples an analysis covers (--thread, --segment, --slowest), the frames of a sample it
// sees, and the recording's length and command.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

namespace {

// A segment that was never closed (recorder stopped) ends at its last sample.
std::vector<int64_t> segment_ends(const snapshot::Recording& rec) {
  std::vector<int64_t> ends(rec.segments.size() + 1, -1);
  for (const auto& seg : rec.segments) ends[seg.id] = seg.end_us;
  for (const auto& s : rec.samples)
    if (s.segment && rec.segments[s.segment - 1].end_us < 0) ends[s.segment] = std::max(ends[s.segment], s.time_us);
  return ends;
}

std::set<uint32_t> threads_with_tid(const snapshot::Recording& rec, int64_t tid) {
  std::set<uint32_t> out;
  for (uint32_t i = 0; i < rec.threads.size(); ++i)
    if (rec.threads[i].tid == tid) out.insert(i);
  if (out.empty()) {
    std::string known;
    std::set<int64_t> tids;
    for (const auto& t : rec.threads) tids.insert(t.tid);
    for (int64_t t : tids) known += fmt::format("{}{}", known.empty() ? "" : ", ", t);
    throw UserError(fmt::format("no thread {} in this recording (threads: {})", tid, known));
  }
  return out;
}

// The threads of process `pid` (record --subprocesses; a pid that called exec is there twice).
std::set<uint32_t> threads_of_process(const snapshot::Recording& rec, int64_t pid) {
  std::set<uint32_t> out;
  for (uint32_t i = 0; i < rec.threads.size(); ++i)
    if (process_pid(rec, rec.threads[i].process) == pid) out.insert(i);
  if (out.empty()) {
    std::string known = fmt::format("{}", rec.header.pid());
    for (const auto& p : rec.processes)
      if (p.note.empty()) known += fmt::format(", {}", p.pid);
    throw UserError(fmt::format("no process {} in this recording (processes: {})", pid, known));
  }
  return out;
}

// Both --thread and --process: the threads both allow (all when neither is given: empty).
std::set<uint32_t> selected_threads(const snapshot::Recording& rec, const Selection& sel) {
  std::set<uint32_t> threads;
  if (sel.thread) threads = threads_with_tid(rec, *sel.thread);
  if (sel.process) {
    auto of_process = threads_of_process(rec, *sel.process);
    if (!sel.thread) return of_process;
    std::erase_if(threads, [&](uint32_t t) { return !of_process.count(t); });
    if (threads.empty()) throw UserError(fmt::format("thread {} is not in process {}", *sel.thread, *sel.process));
  }
  return threads;
}

}  // namespace

int64_t process_pid(const snapshot::Recording& rec, uint32_t process) {
  return process == 0 || process > rec.processes.size() ? rec.header.pid() : rec.processes[process - 1].pid;
}

std::string process_label(const snapshot::Recording& rec, uint32_t process) {
  constexpr size_t kShown = 80;  // characters of its command line
  std::string command = process == 0 || process > rec.processes.size()
                            ? join_arguments(rec.header.command(), kShown)
                            : join_arguments(rec.processes[process - 1].command, kShown);
  return fmt::format("process {}: {}", process_pid(rec, process), command);
}

std::vector<uint32_t> selected_segments(const snapshot::Recording& rec, const Selection& sel) {
  if (rec.segments.empty()) {
    if (!sel.segments.empty() || sel.slowest)
      throw UserError("this recording has no segments: record with --entry FUNCTION to get one per call");
    return {};
  }
  std::vector<uint32_t> ids;
  for (uint32_t id : sel.segments) {
    if (!rec.segment(id))
      throw UserError(fmt::format("no segment {} in this recording (it has segments 1 to {})", id, rec.segments.size()));
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  if (ids.empty())
    for (const auto& seg : rec.segments) ids.push_back(seg.id);
  if (sel.thread || sel.process) {
    auto threads = selected_threads(rec, sel);
    std::erase_if(ids, [&](uint32_t id) { return !threads.count(rec.segments[id - 1].thread); });
  }
  if (sel.whole_segments && sel.segments.empty()) {
    std::vector<uint32_t> whole;
    for (uint32_t id : ids)
      if (segment_is_whole(rec.segments[id - 1])) whole.push_back(id);
    if (!whole.empty()) ids = std::move(whole);
  }
  if (sel.slowest) {
    auto ends = segment_ends(rec);
    std::stable_sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
      return ends[a] - rec.segments[a - 1].start_us > ends[b] - rec.segments[b - 1].start_us;
    });
    if (ids.size() > sel.slowest) ids.resize(sel.slowest);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

SampleFilter::SampleFilter(const snapshot::Recording& rec, const Selection& sel)
    : some_threads_(sel.thread || sel.process), segmented_(!rec.segments.empty()), by_context_(sel.by_context) {
  if (some_threads_) {
    thread_on_.assign(rec.threads.size(), false);
    for (uint32_t t : selected_threads(rec, sel)) thread_on_[t] = true;
  }
  segment_on_.assign(rec.segments.size() + 1, false);
  for (uint32_t id : selected_segments(rec, sel)) segment_on_[id] = true;  // (throws for an unknown one)
}

bool SampleFilter::accepts(const snapshot::Sample& s) const {
  if (some_threads_ && !(s.thread < thread_on_.size() && thread_on_[s.thread])) return false;
  if (segmented_) return s.segment < segment_on_.size() && segment_on_[s.segment];
  // A suspended task's time is its own, not its thread's: shown in segments and by context.
  return by_context_ || !(s.flags & snapshot::kSwitchedOut);
}

std::vector<uint32_t> select_samples(const snapshot::Recording& rec, const Selection& sel) {
  SampleFilter filter(rec, sel);
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < rec.samples.size(); ++i)
    if (filter.accepts(rec.samples[i])) out.push_back(i);
  return out;
}

uint32_t sample_context(const snapshot::Recording&, const snapshot::Sample& s) {
  return s.greenlet;
}

std::span<const uint32_t> sample_frames(const snapshot::Recording& rec, const snapshot::Sample& s, const Selection& sel) {
  auto frames = rec.stack(s.stack);
  // A running asyncio task's sample starts with its event loop's frames: a segment's entry, and a
  // view by context, count from the task's coroutine.
  if (const auto* seg = rec.segment(s.segment); seg && !sel.full_stack)
    return frames.subspan(std::min<size_t>(size_t(s.context_depth) + seg->root_depth, frames.size()));
  if (sel.by_context && !sel.full_stack) return frames.subspan(std::min<size_t>(s.context_depth, frames.size()));
  return frames;
}

int64_t recording_duration_us(const snapshot::Recording& rec) {
  if (rec.footer) return rec.footer->duration_us();
  return rec.last_sample_us;
}

std::string command_line(const snapshot::Recording& rec) { return join_arguments(rec.header.command()); }

std::string offcpu_reason_label(const snapshot::Recording& rec, uint32_t reason) {
  return fmt::format("<off-CPU: {}>", rec.str(reason - 1));
}

std::vector<SegmentRow> segment_rows(const snapshot::Recording& rec, const std::vector<uint32_t>& ids) {
  auto ends = segment_ends(rec);
  std::vector<uint64_t> counts(rec.segments.size() + 1, 0);
  for (const auto& s : rec.samples) counts[s.segment] += s.count;
  std::vector<SegmentRow> rows;
  for (uint32_t id : ids) {
    const auto& seg = rec.segments[id - 1];
    SegmentRow r;
    r.id = id;
    r.tid = rec.threads[seg.thread].tid;
    r.thread_name = rec.threads[seg.thread].name;
    r.start_ms = static_cast<double>(seg.start_us) / 1000.0;
    int64_t end = ends[id] >= 0 ? ends[id] : seg.start_us;
    r.duration_ms = static_cast<double>(end - seg.start_us) / 1000.0;
    // The estimate (sample to sample, as the tree's weights add up) and the bounds sampling
    // allows: the call began after start_bound and by first_seen, ended after end_bound and by
    // gone.
    r.duration_min_ms = r.duration_max_ms = r.duration_ms;
    int64_t last_seen = seg.end_bound_us > 0 ? std::min(seg.end_bound_us, end) : end;
    if (seg.first_seen_us > 0 && seg.first_seen_us <= last_seen)
      r.duration_min_ms = static_cast<double>(last_seen - seg.first_seen_us) / 1000.0;
    int64_t earliest = seg.start_bound_us > 0 ? std::min(seg.start_bound_us, seg.start_us) : seg.start_us;
    if (seg.gone_us > end) r.duration_max_ms = static_cast<double>(seg.gone_us - earliest) / 1000.0;
    r.duration_min_ms = std::min(r.duration_min_ms, r.duration_ms);
    r.duration_max_ms = std::max(r.duration_max_ms, r.duration_ms);
    r.samples = counts[id];
    r.complete = segment_ended(seg);
    r.began_before_recording = seg.began_before_recording;
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace swprof::analyze

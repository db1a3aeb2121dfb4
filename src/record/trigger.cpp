#include "record/trigger.h"

#include <algorithm>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/python.h"

namespace swprof::record {

namespace {

bool valid_name_component(std::string_view c) {
  if (c.empty()) return false;
  if (c.front() == '<') return c.back() == '>' && c.size() > 2;  // <locals>, <lambda>, <module>
  for (unsigned char ch : c)
    if (std::isspace(ch) || ch == ':' || ch == '/' || ch == '(' || ch == ')' || ch == ',') return false;
  return !std::isdigit(static_cast<unsigned char>(c.front()));
}

bool ends_with_component(std::string_view text, std::string_view suffix, char separator) {
  if (suffix.size() > text.size() || text.substr(text.size() - suffix.size()) != suffix) return false;
  return suffix.size() == text.size() || text[text.size() - suffix.size() - 1] == separator;
}

}  // namespace

std::vector<EntrySpec> parse_entry_specs(const std::vector<std::string>& specs) {
  std::vector<EntrySpec> out;
  for (const auto& text : specs) {
    EntrySpec s;
    s.text = text;
    std::string_view rest = text;
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      s.file_suffix = std::string(rest.substr(0, colon));
      rest = rest.substr(colon + 1);
      if (s.file_suffix.empty())
        throw UserError(fmt::format("--entry '{}': the file part before ':' is empty (e.g. server.py:do_POST)", text));
    }
    s.name = std::string(rest);
    bool ok = !s.name.empty();
    for (size_t start = 0; ok && start <= s.name.size();) {
      size_t dot = s.name.find('.', start);
      if (dot == std::string::npos) dot = s.name.size();
      ok = valid_name_component(std::string_view(s.name).substr(start, dot - start));
      start = dot + 1;
    }
    if (!ok)
      throw UserError(fmt::format(
          "--entry '{}' can never match: give a function name (do_POST), a qualified name "
          "(Handler.do_POST), optionally after a file suffix (server.py:do_POST)",
          text));
    out.push_back(std::move(s));
  }
  return out;
}

int match_entry(const std::vector<EntrySpec>& specs, const python::CodeInfo& code) {
  for (size_t i = 0; i < specs.size(); ++i) {
    const EntrySpec& s = specs[i];
    // co_qualname is "Outer.<locals>.Handler.do_POST"; before 3.11 only the bare name is known,
    // so a qualified spec is matched on its last component there.
    std::string_view name = s.name;
    if (code.qualname.find('.') == std::string::npos && name.find('.') != std::string_view::npos)
      name = name.substr(name.rfind('.') + 1);
    if (!ends_with_component(code.qualname, name, '.')) continue;
    if (!s.file_suffix.empty() && !ends_with_component(code.filename, s.file_suffix, '/')) continue;
    return static_cast<int>(i);
  }
  return -1;
}

bool CallIdentity::continues_as(const CallIdentity& now) const {
  if (now.frame != frame || now.code != code || now.arg_count != arg_count || now.root_depth != root_depth ||
      now.callers != callers)
    return false;
  if (locals_known && now.locals_known) {
    if (!std::equal(args, args + arg_count, now.args)) return false;
    // A new call starts with every non-argument local unbound: one that was bound and is no longer
    // means the frame was reused by the next call.
    if ((bound_locals & ~now.bound_locals) != 0) return false;
  }
  // Without loops the executing offset only moves forward within one call.
  if (loop_free && offset >= 0 && now.offset >= 0 && now.offset < offset) return false;
  return true;
}

bool Trigger::promote(Open& s) {
  if (s.id) return true;
  if (s.last_us - s.start_us < limits_.min_duration_us) return false;
  // Never keep more than --max-segments, counting those still running.
  uint32_t promoted = 0;
  for (const auto& o : open_) promoted += o.id != 0 && !o.closed;
  if (limits_.max_segments && kept_ + promoted >= limits_.max_segments) return false;
  s.id = writer_.next_segment_id();  // (one counter for every process's calls: --subprocesses)
  snapshot::Segment seg;
  seg.id = s.id;
  seg.thread = s.thread;
  seg.start_us = s.start_us;
  seg.first_seen_us = s.first_seen_us;
  seg.start_bound_us = s.start_bound_us;
  seg.began_before_recording = s.began_before_recording;
  seg.root_depth = s.identity.root_depth;
  writer_.add_segment(seg);
  for (auto& sample : s.buffered) {
    sample.segment = s.id;
    writer_.add_sample(sample);
  }
  s.buffered.clear();
  s.buffered.shrink_to_fit();
  return true;
}

void Trigger::add(Open& s, snapshot::Sample sample) {
  // A call's samples tile its time: each weighs the time since the call's previous one, whatever
  // its thread did meanwhile (another greenlet ran; the thread's previous sample came later than
  // the call's own, as a probe of a parked call is timed at the tick's start). So a segment's
  // total is its duration exactly, less the samples --no-idle or --gil dropped (seen_alive).
  if (s.last_us > 0) sample.wall_us = std::max<int64_t>(0, sample.time_us - s.last_us);
  s.last_us = std::max(s.last_us, sample.time_us);
  if (s.skipped) {
    ++outside_;
    return;
  }
  if (s.id) {
    snapshot::Sample out = sample;
    out.segment = s.id;
    writer_.add_sample(out);
    return;
  }
  s.buffered.push_back(sample);
  promote(s);
}

// The late part of a sample, under the frames known to have stayed: within a call that goes on,
// at least down to its entry frame (its callers cannot have moved).
void Trigger::add_gap(Open& s, const Pending& p, bool continues) {
  if (p.reading.gap.wall_us <= 0) return;
  size_t depth = p.reading.gap.common;
  if (continues) depth = std::max<size_t>(depth, p.entry.root_depth + 1);
  depth = std::min(depth, p.frames.size());
  add(s, gap_sample(p.sample, p.reading.gap, writer_.intern_stack(std::span<const uint32_t>(p.frames.data(), depth)), depth));
}

size_t frames_in_common(std::span<const uint32_t> before, std::span<const uint32_t> now) {
  return static_cast<size_t>(std::mismatch(before.begin(), before.end(), now.begin(), now.end()).second - now.begin());
}

Gap late_gap(int64_t elapsed_us, int64_t interval_us, std::span<const uint32_t> before, std::span<const uint32_t> now) {
  Gap gap;
  const size_t common = frames_in_common(before, now);
  const bool same_stack = common == now.size() && before.size() == now.size();
  // (No stack before — the context's first sample, or its thread ran no Python — has nothing in
  // common: the first tick of a recording that was held up 150 ms put startup's time on the first
  // stack.)
  if (elapsed_us > 2 * interval_us && !same_stack) {
    gap.wall_us = elapsed_us - interval_us;
    gap.common = common;
  }
  return gap;
}

snapshot::Sample gap_sample(const snapshot::Sample& s, const Gap& gap, uint32_t stack, size_t depth) {
  snapshot::Sample g = s;
  g.time_us = s.time_us - s.wall_us;  // the gap ends where the sample's own time begins
  g.wall_us = gap.wall_us;
  g.cpu_us = gap.cpu_us;
  g.runqueue_us = gap.runqueue_us;
  g.offcpu_reason = 0;  // known at the sample's time, not the gap's
  // (A parked greenlet's or suspended task's gap keeps kSwitchedOut, which says whose time it is
  // — the context's, not its thread's; whether it was switched out then is not known.)
  g.flags = (s.flags & ~snapshot::kOnCpu) | snapshot::kGap;
  g.stack = stack;
  g.context_depth = std::min<uint32_t>(g.context_depth, static_cast<uint32_t>(depth));
  return g;
}

uint32_t Trigger::sampling() const {
  uint32_t n = 0;
  for (const auto& o : open_) n += !o.skipped && !o.closed;
  return n;
}

void Trigger::route(uint64_t tick, const snapshot::Sample* sample, uint32_t thread, uint64_t greenlet,
                    const CallIdentity* entry, std::span<const uint32_t> frames, const Reading* reading, bool kept) {
  if (pending_.size() <= pending_used_) pending_.emplace_back();
  Pending& p = pending_[pending_used_++];
  p.tick = tick;
  p.kept = kept;
  p.has_sample = sample != nullptr;
  if (sample) p.sample = *sample;
  p.thread = thread;
  p.greenlet = greenlet;
  p.task = reading && reading->task;
  p.context = p.task ? reading->task : greenlet;
  p.has_entry = entry != nullptr && sample != nullptr;
  if (p.has_entry) p.entry = *entry;
  p.frames.assign(frames.begin(), frames.end());
  p.reading = reading ? *reading : Reading{sample ? sample->time_us : 0, sample ? sample->time_us - sample->wall_us : 0, {}};
  p.open = SIZE_MAX;
  p.duplicate = p.unverified = false;
}

void Trigger::start(Pending& p) {
  ++seen_;
  Open o;
  o.thread = p.thread;
  o.context = p.context;
  o.task = p.task;
  o.greenlet_index = p.sample.greenlet;
  o.identity = p.entry;
  o.last_tick = 0;
  // The call began after the thread's previous sample (before a gap, if this sample was late) and
  // by this one. Time in a gap counts for the call only when the frames common to both sides of
  // the gap hold its entry frame, and no other call of its context ended in the gap: the frames
  // match when one request's handler follows another's (the same function, called from the same
  // line), but this call began only after that one ended, at an unknown time in the gap.
  const auto ended_in_gap = [&](const Open& other) { return other.closed && same_context(other, p); };
  const bool follows_another = std::any_of(open_.begin(), open_.end(), ended_in_gap);
  bool gap_is_ours = p.reading.gap.wall_us > 0 && p.reading.gap.common > p.entry.root_depth && !follows_another;
  // (A late sample whose stack is as it was keeps all its time, as the same call's would: a new
  // one keeps one interval, as after a gap. Late by less than that, as ticks jitter, it is not.)
  if (follows_another && weighs_a_stall(p)) {
    const int64_t kept = limits_.interval_us, late = p.sample.wall_us;
    p.sample.cpu_us = p.sample.cpu_us * kept / late;
    p.sample.runqueue_us = p.sample.runqueue_us * kept / late;
    p.sample.wall_us = kept;
    if (p.kept) ++outside_;
  }
  o.start_us = p.sample.time_us - p.sample.wall_us - (gap_is_ours ? p.reading.gap.wall_us : 0);
  o.start_bound_us = p.reading.previous_from_us;
  // Found at the recording's first tick, or before any read of its thread bounded its start (that
  // read failed, or kept only outer frames), a call had begun at any time before the recording
  // (unless the greenlet tracker saw it start).
  o.began_before_recording =
      p.reading.born_us == 0 && (p.reading.previous_from_us <= 0 || (first_tick_cuts_ && p.tick == 1));
  // A greenlet seen for the first time, running, whose start the tracker saw (its first switch):
  // its call began no earlier, and as far as anything shows, then (as for one first seen parked).
  // Started within the sample's interval, the sample weighs from then; started before (the
  // recorder was held up), the time up to the sample's own is a gap under the entry frame.
  if (p.reading.born_us > 0 && !gap_is_ours) {
    const int64_t born = std::min(p.reading.born_us, p.sample.time_us);
    if (born >= o.start_us) {
      p.sample.wall_us = p.sample.time_us - born;
    } else {
      p.reading.gap = {o.start_us - born, 0, 0, p.entry.root_depth + 1};
      gap_is_ours = true;
    }
    o.start_us = o.start_bound_us = born;
  }
  o.first_seen_us = p.sample.time_us;
  o.skipped = limits_.max_segments && kept_ >= limits_.max_segments;
  if (!o.skipped && sampling() >= limits_.max_parallel) {
    o.skipped = true;
    ++skipped_;
  }
  open_.push_back(std::move(o));
  p.open = open_.size() - 1;
  if (!p.kept) return;  // (its time is dropped, gap and all)
  if (gap_is_ours) add_gap(open_.back(), p, false);
  else if (p.reading.gap.wall_us > 0) ++outside_;
}

void Trigger::seen_alive(Open& s, const Pending& p) {
  // Not written: the call ran until then, and its next sample weighs only the time since.
  s.last_us = std::max(s.last_us, p.sample.time_us);
  if (!s.id && !s.skipped) promote(s);
}

void Trigger::end_tick(uint64_t tick, int64_t now_us, std::span<const uint32_t> listed, bool complete,
                       const std::vector<uint64_t>* tasks, int64_t read_by_us) {
  std::span<Pending> pending(pending_.data(), pending_used_);
  const int64_t gone_by_us = std::max(now_us, read_by_us);
  // A late sample whose entry frame's locals could not be read (kept from a torn read) cannot
  // tell the call it saw from the next one in the same frame, whose start the stall may hide: no
  // news of which call runs, rather than the one seen before stretched over the stall (a sync
  // worker's requests on 3.9: an 86 ms segment for 20 ms requests).
  for (Pending& p : pending) {
    const bool late = p.reading.gap.wall_us > 0 || weighs_a_stall(p);
    if (!p.has_entry || p.entry.locals_known || !late) continue;
    for (const Open& o : open_)
      if (!o.closed && same_context(o, p) && o.identity.locals_known && o.identity.continues_as(p.entry)) {
        p.has_entry = false;
        p.unverified = true;
        break;
      }
  }
  // What each sampled thread ran.
  for (const Pending& p : pending) {
    if (p.no_news_of_calls()) continue;
    // A parked greenlet's or a suspended task's sample is no news of its thread.
    if (p.has_sample && (p.sample.flags & snapshot::kSwitchedOut)) continue;
    sampled_[p.thread] = {tick, p.greenlet, p.has_sample ? p.sample.time_us : p.reading.from_us ? p.reading.from_us : now_us,
                          !p.has_sample};
  }
  // Calls that go on.
  for (Pending& p : pending) {
    if (!p.has_entry) continue;
    for (size_t i = 0; i < open_.size(); ++i) {
      Open& o = open_[i];
      if (o.closed || !same_context(o, p) || !o.identity.continues_as(p.entry)) continue;
      if (o.last_tick == tick) {
        // A second look at a call already seen this tick (a greenlet read parked just after it ran
        // on its thread): the same call, not a new one.
        p.duplicate = true;
        break;
      }
      o.last_tick = tick;
      p.open = i;
      break;
    }
  }
  // Calls that were not seen this tick: ended, switched out, or no news.
  for (auto& s : open_) {
    if (s.closed || s.last_tick == tick) continue;
    if (s.task) {
      // Its task was read without it (the call returned), or all tasks were read and its task was
      // not among them (it finished). Otherwise (a task that ran when the tasks were read, and no
      // longer when its thread was): no news. Nor is a read of the task that says nothing of the
      // call (torn after a stall, or only its outer frames).
      auto ran = std::find_if(pending.begin(), pending.end(), [&](const Pending& p) {
        return p.task && p.context == s.context && !p.no_news_of_calls();
      });
      if (ran != pending.end()) close(s, ran->has_sample ? ran->sample.time_us : gone_by_us);
      else if (tasks && std::find(tasks->begin(), tasks->end(), s.context) == tasks->end()) close(s, gone_by_us);
      continue;
    }
    bool thread_exists = std::find(listed.begin(), listed.end(), s.thread) != listed.end();
    auto seen = sampled_.find(s.thread);
    if ((!thread_exists && complete) || seen == sampled_.end()) {
      close(s, gone_by_us);
      continue;
    }
    if (seen->second.tick != tick) continue;  // its thread was not sampled this tick: no news
    if (seen->second.greenlet == s.context || (seen->second.no_python && !s.context)) {
      // Its own greenlet (or thread) ran without it, or the thread (no greenlets) runs no Python:
      // it returned. A thread caught with no Python frame while greenlets switch says nothing of
      // the parked ones: they are probed below.
      close(s, seen->second.time_us);
      continue;
    }
    // Another greenlet ran on the thread: this call is switched out, if it still exists.
    Probe probe = prober_ ? prober_(s.context, s.identity, parked_frames_) : Probe::kGone;
    if (probe == Probe::kNoNews) continue;
    if (probe == Probe::kGone) {
      close(s, gone_by_us);
      continue;
    }
    parked_stack_ = s.callers;
    parked_stack_.insert(parked_stack_.end(), parked_frames_.begin(), parked_frames_.end());
    snapshot::Sample sample;
    sample.time_us = now_us;
    sample.thread = s.thread;
    sample.stack = writer_.intern_stack(parked_stack_);
    sample.wall_us = now_us - s.last_us;
    sample.flags = snapshot::kSwitchedOut;
    sample.greenlet = s.greenlet_index;
    s.last_tick = tick;
    s.last_switched_out_us = now_us;
    add(s, sample);
  }
  // Samples of calls that go on; then new calls, now that ended ones no longer count as running.
  for (Pending& p : pending) {
    if (!p.has_sample) continue;
    if (!p.has_entry) {
      if (p.kept) outside_ += 1 + (p.reading.gap.wall_us > 0);
      continue;
    }
    if (p.duplicate) continue;
    if (p.open == SIZE_MAX) continue;
    Open& o = open_[p.open];
    o.identity = p.entry;
    o.callers.assign(p.frames.begin(), p.frames.begin() + std::min<size_t>(p.entry.root_depth, p.frames.size()));
    o.last_from_us = p.reading.from_us;
    if (!p.kept) {
      seen_alive(o, p);
      continue;
    }
    add_gap(o, p, true);
    // The call's own weight: time since its previous sample (it may have been switched out).
    snapshot::Sample own = p.sample;
    if (o.last_us > 0 && o.last_us < own.time_us) own.wall_us = std::min(own.wall_us, own.time_us - o.last_us);
    add(o, own);
  }
  for (Pending& p : pending) {
    if (!p.has_entry || p.open != SIZE_MAX || p.duplicate) continue;
    // Seen twice this tick and new both times (a thread listed twice): one call, not two.
    const bool begun = std::any_of(open_.begin(), open_.end(), [&](const Open& o) {
      return !o.closed && o.last_tick == tick && same_context(o, p) && o.identity.continues_as(p.entry);
    });
    if (begun) continue;
    start(p);
    Open& o = open_[p.open];
    o.last_tick = tick;
    o.last_from_us = p.reading.from_us;
    o.callers.assign(p.frames.begin(), p.frames.begin() + std::min<size_t>(p.entry.root_depth, p.frames.size()));
    if (p.kept) add(o, p.sample);
    else seen_alive(o, p);
  }
  std::erase_if(open_, [](const Open& s) { return s.closed; });
  pending_used_ = 0;
}

void Trigger::rename_context(uint64_t from, uint64_t to) {
  for (auto& o : open_)
    if (!o.task && o.context == from) o.context = to;
  for (size_t i = 0; i < pending_used_; ++i)
    if (!pending_[i].task && pending_[i].context == from) pending_[i].context = pending_[i].greenlet = to;
  for (auto& [thread, seen] : sampled_)
    if (seen.greenlet == from) seen.greenlet = to;
}

void Trigger::close(Open& s, int64_t gone_us, bool still_running) {
  if (s.closed) return;
  s.closed = true;
  if (s.skipped) return;
  if (promote(s)) {
    // It certainly ran until the last read that saw it began (a switched-out call, until its probe).
    writer_.end_segment(s.id, s.last_us, gone_us, std::max(s.last_from_us, s.last_switched_out_us), still_running);
    ++kept_;
    return;
  }
  outside_ += s.buffered.size();
  if (s.last_us - s.start_us < limits_.min_duration_us) ++too_short_;
  else ++skipped_;  // long enough, but --max-segments were already kept
}

void Trigger::finish(int64_t now_us) {
  // Calls still open when recording stops ended by now, if the program did (0: they run on).
  for (auto& s : open_) close(s, now_us, now_us == 0);
  open_.clear();
}

}  // namespace swprof::record

#include "record/trigger.h"

#include <algorithm>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/python.h"

namespace swprof::record {

namespace {

constexpr uint64_t kClosed = ~uint64_t(0);

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

uint32_t Trigger::promoted_open() const {
  uint32_t n = 0;
  for (const auto& s : open_) n += s.id != 0;
  return n;
}

bool Trigger::promote(Open& s) {
  if (s.id) return true;
  if (s.last_us - s.start_us < limits_.min_duration_us) return false;
  // Never keep more than --max-segments, counting those still running.
  if (limits_.max_segments && kept_ + promoted_open() >= limits_.max_segments) return false;
  s.id = next_id_++;
  snapshot::Segment seg;
  seg.id = s.id;
  seg.thread = s.thread;
  seg.start_us = s.start_us;
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

void Trigger::add(Open& s, const snapshot::Sample& sample) {
  s.last_us = sample.time_us;
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

void Trigger::route(uint64_t tick, const snapshot::Sample& sample, uint64_t greenlet, const CallIdentity* entry,
                    std::span<const uint32_t> frames) {
  sampled_[sample.thread] = {tick, greenlet};
  auto same_context = [&](const Open& o) { return o.thread == sample.thread && o.greenlet == greenlet; };
  if (!entry) {
    ++outside_;
    return;
  }
  Open* s = nullptr;
  for (auto& o : open_)
    if (same_context(o) && o.last_tick != tick && o.identity.continues_as(*entry)) {
      s = &o;
      break;
    }
  if (!s) {
    // A greenlet (or thread) runs one outermost entry call at a time: its previous one ended.
    for (auto& o : open_)
      if (same_context(o)) {
        close(o);
        o.last_tick = kClosed;
      }
    std::erase_if(open_, [](const Open& o) { return o.last_tick == kClosed; });
    ++seen_;
    Open o;
    o.thread = sample.thread;
    o.greenlet = greenlet;
    o.greenlet_index = sample.greenlet;
    o.start_us = sample.time_us - sample.wall_us;  // the call began after the previous tick
    uint32_t sampling = 0;
    for (const auto& x : open_) sampling += !x.skipped;
    o.skipped = limits_.max_segments && kept_ >= limits_.max_segments;
    if (!o.skipped && sampling >= limits_.max_parallel) {
      o.skipped = true;
      ++skipped_;
    }
    open_.push_back(std::move(o));
    s = &open_.back();
  }
  s->identity = *entry;
  s->last_tick = tick;
  s->callers.assign(frames.begin(), frames.begin() + std::min<size_t>(entry->root_depth, frames.size()));
  // The call's own weight: time since its previous sample (it may have been switched out).
  snapshot::Sample own = sample;
  if (s->last_us > 0 && s->last_us < sample.time_us) own.wall_us = std::min(own.wall_us, sample.time_us - s->last_us);
  add(*s, own);
}

void Trigger::close(Open& s) {
  if (s.skipped) return;
  if (promote(s)) {
    writer_.end_segment(s.id, s.last_us);
    ++kept_;
    return;
  }
  outside_ += s.buffered.size();
  if (s.last_us - s.start_us < limits_.min_duration_us) ++too_short_;
  else ++skipped_;  // long enough, but --max-segments were already kept
}

void Trigger::end_tick(uint64_t tick, int64_t now_us, std::span<const uint32_t> listed) {
  for (auto& s : open_) {
    if (s.last_tick == tick) continue;
    bool thread_exists = std::find(listed.begin(), listed.end(), s.thread) != listed.end();
    auto seen = sampled_.find(s.thread);
    if (!thread_exists || seen == sampled_.end()) {
      close(s);
      s.last_tick = kClosed;
      continue;
    }
    if (seen->second.tick != tick) continue;  // its thread was not sampled this tick: no news
    if (seen->second.greenlet == s.greenlet) {
      // Its own greenlet (or thread) ran without it: the call returned.
      close(s);
      s.last_tick = kClosed;
      continue;
    }
    // Another greenlet ran on the thread: this call is switched out, if it still exists.
    if (!prober_ || !prober_(s.identity, parked_frames_)) {
      close(s);
      s.last_tick = kClosed;
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
    add(s, sample);
  }
  std::erase_if(open_, [](const Open& s) { return s.last_tick == kClosed; });
}

void Trigger::finish() {
  for (auto& s : open_) close(s);
  open_.clear();
}

}  // namespace swprof::record

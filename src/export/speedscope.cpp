// export --format speedscope: speedscope's own file format (its file-format-schema.json), which
// https://www.speedscope.app and the `speedscope` npm package open.
//
// All frames are shared; each profile is "sampled": its stacks (root first, indices into the
// frames) in time order, each with its weight in µs of the chosen mode. One profile per thread,
// or per segment with --segments; the busiest one is shown first. speedscope rejects negative
// weights and skips zero ones, so an off-CPU weight (wall - CPU, which a sample can make
// negative; see call_tree.cpp) is floored at zero per sample and zero weights are left out. In
// off-CPU mode a sample is two: its blocked time under the leaf naming why, and its time waiting
// for a CPU under `<waiting for a CPU>` (analyze::OffCpuLeaf).
#include <algorithm>
#include <deque>
#include <iterator>
#include <map>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "export/frame_table.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

// One weighed part of a sample, as a profile keeps it: a few bytes, not the sample.
struct Part {
  int64_t time_us;
  uint32_t stack;  // into Stacks
  int64_t weight;
};

struct Profile {
  std::string name;
  std::vector<Part> parts;  // in file order, then sorted by time
  int64_t total = 0;
  // Its earliest sample (the first in the file of those at that time): profiles come in that order.
  int64_t first_us = INT64_MAX;
  uint64_t first_in_file = 0;
};

// The distinct stacks in frame-table numbers (a sample's, with its leaf), each written out once
// as JSON ("[0,4,7]"): samples repeat a few thousand stacks millions of times.
class Stacks {
 public:
  uint32_t id_of(const std::vector<uint32_t>& stack) {
    std::string_view key(reinterpret_cast<const char*>(stack.data()), stack.size() * sizeof(uint32_t));
    if (auto it = ids_.find(key); it != ids_.end()) return it->second;
    const auto id = static_cast<uint32_t>(text_.size());
    std::string text = "[";
    for (size_t j = 0; j < stack.size(); ++j) {
      if (j) text += ',';
      append_number(text, stack[j]);
    }
    text += ']';
    text_.push_back(std::move(text));
    ids_.emplace(keys_.emplace_back(key), id);
    return id;
  }
  const std::string& text(uint32_t id) const { return text_[id]; }

 private:
  std::deque<std::string> keys_;  // (a deque: the map's views into them stay valid)
  std::unordered_map<std::string_view, uint32_t> ids_;
  std::vector<std::string> text_;
};

}  // namespace

void speedscope_json(const snapshot::Recording& rec, const SampleSource& samples, const ExportView& view,
                     bool per_segment, const Sink& sink) {
  if (per_segment && rec.segments.empty())
    throw UserError("--segments needs a recording with segments: record with --entry FUNCTION");
  const analyze::SampleFilter filter(rec, view.selection);
  FrameTable frames(rec, view.selection, view.lines);
  Stacks stacks;
  std::map<uint32_t, size_t> index_of;  // thread index or segment id -> profile
  std::vector<Profile> profiles;
  std::vector<uint32_t> stack;
  uint64_t in_file = 0;
  samples([&](const snapshot::Sample& s) {
    ++in_file;
    if (!filter.accepts(s)) return;
    // A sample's weighed parts (off-CPU: blocked, then waiting for a CPU), those above zero.
    auto add = [&](analyze::OffCpuLeaf leaf, int64_t weight) {
      if (weight <= 0) return;
      uint32_t group = per_segment ? s.segment : s.thread;
      auto [it, inserted] = index_of.try_emplace(group, profiles.size());
      if (inserted) {
        Profile p;
        if (const auto* seg = per_segment ? rec.segment(s.segment) : nullptr)
          p.name = fmt::format("segment {}: {}, {}", seg->id, entry_function(rec, *seg, s), thread_title(rec.threads[seg->thread]));
        else
          p.name = thread_title(rec.threads[s.thread]);
        profiles.push_back(std::move(p));
      }
      frames.stack_of(s, stack, leaf);
      Profile& p = profiles[it->second];
      p.parts.push_back({s.time_us, stacks.id_of(stack), weight});
      p.total += weight;
      if (s.time_us < p.first_us) {
        p.first_us = s.time_us;
        p.first_in_file = in_file;
      }
    };
    switch (view.mode) {
      case analyze::Mode::kWall: add(analyze::OffCpuLeaf::kNone, s.wall_us); break;
      case analyze::Mode::kCpu: add(analyze::OffCpuLeaf::kNone, s.cpu_us); break;
      case analyze::Mode::kOffCpu:
        add(s.offcpu_reason ? analyze::OffCpuLeaf::kReason : analyze::OffCpuLeaf::kNone, analyze::blocked_us(s));
        add(analyze::OffCpuLeaf::kWaitingForCpu, s.runqueue_us);
        break;
    }
  });
  // Each profile's samples in time order, and the profiles in order of their first sample.
  for (auto& p : profiles)
    std::stable_sort(p.parts.begin(), p.parts.end(), [](const Part& a, const Part& b) { return a.time_us < b.time_us; });
  std::sort(profiles.begin(), profiles.end(), [](const Profile& a, const Profile& b) {
    return a.first_us != b.first_us ? a.first_us < b.first_us : a.first_in_file < b.first_in_file;
  });

  size_t busiest = 0;
  for (size_t k = 0; k < profiles.size(); ++k)
    if (profiles[k].total > profiles[busiest].total) busiest = k;
  const char* mode = view.mode == analyze::Mode::kWall ? "wall" : view.mode == analyze::Mode::kCpu ? "cpu" : "offcpu";
  // Written as it is made (a profile's samples can be hundreds of megabytes of text).
  ChunkedOutput output(rec, sink);
  std::string& out = output.text();
  auto to = std::back_inserter(out);
  fmt::format_to(to,
                 "{{\"$schema\": \"https://www.speedscope.app/file-format-schema.json\",\n"
                 " \"name\": {},\n \"exporter\": \"swprof@{}\",\n \"activeProfileIndex\": {},\n \"profiles\": [",
                 json_quoted(fmt::format("{} ({} time)", analyze::command_line(rec), mode)), SWPROF_VERSION, busiest);
  for (size_t k = 0; k < profiles.size(); ++k) {
    const Profile& p = profiles[k];
    fmt::format_to(to,
                   "{}\n  {{\"type\": \"sampled\", \"name\": {}, \"unit\": \"microseconds\", \"startValue\": 0, "
                   "\"endValue\": {}, \"samples\": [",
                   k ? "," : "", json_quoted(p.name), p.total);
    for (size_t i = 0; i < p.parts.size(); ++i) {
      if (i) out += ',';
      out += stacks.text(p.parts[i].stack);
      output.piece_done();
    }
    out += "], \"weights\": [";
    for (size_t i = 0; i < p.parts.size(); ++i) {
      if (i) out += ',';
      append_number(out, p.parts[i].weight);
      output.piece_done();
    }
    out += "]}";
  }
  if (profiles.empty())  // speedscope needs a profile to show; an empty one says "no samples"
    out += "\n  {\"type\": \"sampled\", \"name\": \"no samples\", \"unit\": \"microseconds\", \"startValue\": 0, "
           "\"endValue\": 0, \"samples\": [], \"weights\": []}";
  out += "],\n \"shared\": {\"frames\": [";
  bool first = true;
  for (const auto& e : frames.entries()) {
    out += first ? "\n    " : ",\n    ";
    first = false;
    if (e.synthetic) fmt::format_to(to, "{{\"name\": {}}}", json_quoted(e.function));
    else fmt::format_to(to, "{{\"name\": {}, \"file\": {}, \"line\": {}}}", json_quoted(e.function), json_quoted(e.file), e.line);
    output.piece_done();
  }
  out += "]}}\n";
  output.flush();
}

}  // namespace swprof::exporter

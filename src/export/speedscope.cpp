// export --format speedscope: speedscope's own file format (its file-format-schema.json), which
// https://www.speedscope.app and the `speedscope` npm package open.
//
// All frames are shared; each profile is "sampled": its stacks (root first, indices into the
// frames) in time order, each with its weight in µs of the chosen mode. One profile per thread,
// or per segment with --segments; the busiest one is shown first. speedscope rejects negative
// weights and skips zero ones, so an off-CPU weight (wall - CPU, which a sample can make
// negative; see call_tree.cpp) is floored at zero per sample and zero weights are left out.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "export/frame_table.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

struct Profile {
  std::string name;
  std::vector<uint32_t> samples;  // indices into the recording, in time order
  int64_t total = 0;
};

int64_t weight_of(const snapshot::Sample& s, analyze::Mode mode) {
  switch (mode) {
    case analyze::Mode::kWall: return s.wall_us;
    case analyze::Mode::kCpu: return s.cpu_us;
    case analyze::Mode::kOffCpu: return std::max<int64_t>(0, s.wall_us - s.cpu_us);
  }
  return 0;
}

}  // namespace

std::string speedscope_json(const snapshot::Recording& rec, const ExportView& view, bool per_segment) {
  if (per_segment && rec.segments.empty())
    throw UserError("--segments needs a recording with segments: record with --entry FUNCTION");
  std::vector<uint32_t> selected = analyze::select_samples(rec, view.selection);
  std::stable_sort(selected.begin(), selected.end(),
                   [&](uint32_t a, uint32_t b) { return rec.samples[a].time_us < rec.samples[b].time_us; });

  // Profiles in order of their first sample.
  std::map<uint32_t, size_t> index_of;  // thread index or segment id -> profile
  std::vector<Profile> profiles;
  for (uint32_t i : selected) {
    const auto& s = rec.samples[i];
    int64_t w = weight_of(s, view.mode);
    if (w <= 0) continue;
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
    profiles[it->second].samples.push_back(i);
    profiles[it->second].total += w;
  }

  FrameTable frames(rec, view.selection, view.lines);
  std::string body;
  std::vector<uint32_t> stack;
  size_t busiest = 0;
  for (size_t k = 0; k < profiles.size(); ++k) {
    const Profile& p = profiles[k];
    if (p.total > profiles[busiest].total) busiest = k;
    std::string samples, weights;
    for (uint32_t i : p.samples) {
      frames.stack_of(rec.samples[i], stack);
      samples += samples.empty() ? "[" : ",[";
      for (size_t j = 0; j < stack.size(); ++j) samples += fmt::format("{}{}", j ? "," : "", stack[j]);
      samples += "]";
      weights += fmt::format("{}{}", weights.empty() ? "" : ",", weight_of(rec.samples[i], view.mode));
    }
    body += fmt::format(
        "{}\n  {{\"type\": \"sampled\", \"name\": {}, \"unit\": \"microseconds\", \"startValue\": 0, "
        "\"endValue\": {}, \"samples\": [{}], \"weights\": [{}]}}",
        k ? "," : "", json_quoted(p.name), p.total, samples, weights);
  }
  if (profiles.empty())  // speedscope needs a profile to show; an empty one says "no samples"
    body = "\n  {\"type\": \"sampled\", \"name\": \"no samples\", \"unit\": \"microseconds\", \"startValue\": 0, "
           "\"endValue\": 0, \"samples\": [], \"weights\": []}";

  std::string shared;
  for (const auto& e : frames.entries()) {
    shared += shared.empty() ? "\n    " : ",\n    ";
    if (e.synthetic) shared += fmt::format("{{\"name\": {}}}", json_quoted(e.function));
    else shared += fmt::format("{{\"name\": {}, \"file\": {}, \"line\": {}}}", json_quoted(e.function), json_quoted(e.file), e.line);
  }
  const char* mode = view.mode == analyze::Mode::kWall ? "wall" : view.mode == analyze::Mode::kCpu ? "cpu" : "offcpu";
  return fmt::format(
      "{{\"$schema\": \"https://www.speedscope.app/file-format-schema.json\",\n"
      " \"name\": {},\n \"exporter\": \"swprof@{}\",\n \"activeProfileIndex\": {},\n"
      " \"shared\": {{\"frames\": [{}]}},\n \"profiles\": [{}]}}\n",
      json_quoted(fmt::format("{} ({} time)", analyze::command_line(rec), mode)), SWPROF_VERSION, busiest, shared, body);
}

}  // namespace swprof::exporter

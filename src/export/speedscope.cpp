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
#include <iterator>
#include <map>

#include <fmt/format.h>

#include "export/frame_table.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

struct Part {
  uint32_t sample;  // index into the recording
  analyze::OffCpuLeaf leaf;
  int64_t weight;
};

struct Profile {
  std::string name;
  std::vector<Part> parts;  // in time order
  int64_t total = 0;
};

// A sample's weighed parts (off-CPU: blocked, then waiting for a CPU), those above zero.
void parts_of(const snapshot::Sample& s, uint32_t i, analyze::Mode mode, std::vector<Part>& out) {
  out.clear();
  auto add = [&](analyze::OffCpuLeaf leaf, int64_t w) {
    if (w > 0) out.push_back({i, leaf, w});
  };
  switch (mode) {
    case analyze::Mode::kWall: add(analyze::OffCpuLeaf::kNone, s.wall_us); break;
    case analyze::Mode::kCpu: add(analyze::OffCpuLeaf::kNone, s.cpu_us); break;
    case analyze::Mode::kOffCpu:
      add(s.offcpu_reason ? analyze::OffCpuLeaf::kReason : analyze::OffCpuLeaf::kNone, analyze::blocked_us(s));
      add(analyze::OffCpuLeaf::kWaitingForCpu, s.runqueue_us);
      break;
  }
}

}  // namespace

void speedscope_json(const snapshot::Recording& rec, const ExportView& view, bool per_segment, const Sink& sink) {
  if (per_segment && rec.segments.empty())
    throw UserError("--segments needs a recording with segments: record with --entry FUNCTION");
  std::vector<uint32_t> selected = analyze::select_samples(rec, view.selection);
  std::stable_sort(selected.begin(), selected.end(),
                   [&](uint32_t a, uint32_t b) { return rec.samples[a].time_us < rec.samples[b].time_us; });

  // Profiles in order of their first sample.
  std::map<uint32_t, size_t> index_of;  // thread index or segment id -> profile
  std::vector<Profile> profiles;
  std::vector<Part> parts;
  for (uint32_t i : selected) {
    const auto& s = rec.samples[i];
    parts_of(s, i, view.mode, parts);
    if (parts.empty()) continue;
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
    for (const Part& part : parts) {
      profiles[it->second].parts.push_back(part);
      profiles[it->second].total += part.weight;
    }
  }

  size_t busiest = 0;
  for (size_t k = 0; k < profiles.size(); ++k)
    if (profiles[k].total > profiles[busiest].total) busiest = k;
  const char* mode = view.mode == analyze::Mode::kWall ? "wall" : view.mode == analyze::Mode::kCpu ? "cpu" : "offcpu";
  // Written as it is made (a profile's samples can be hundreds of megabytes of text), the frames
  // last: the samples number them as they come.
  FrameTable frames(rec, view.selection, view.lines);
  ChunkedOutput output(rec, sink);
  std::string& out = output.text();
  auto to = std::back_inserter(out);
  fmt::format_to(to,
                 "{{\"$schema\": \"https://www.speedscope.app/file-format-schema.json\",\n"
                 " \"name\": {},\n \"exporter\": \"swprof@{}\",\n \"activeProfileIndex\": {},\n \"profiles\": [",
                 json_quoted(fmt::format("{} ({} time)", analyze::command_line(rec), mode)), SWPROF_VERSION, busiest);
  std::vector<uint32_t> stack;
  for (size_t k = 0; k < profiles.size(); ++k) {
    const Profile& p = profiles[k];
    fmt::format_to(to,
                   "{}\n  {{\"type\": \"sampled\", \"name\": {}, \"unit\": \"microseconds\", \"startValue\": 0, "
                   "\"endValue\": {}, \"samples\": [",
                   k ? "," : "", json_quoted(p.name), p.total);
    for (size_t i = 0; i < p.parts.size(); ++i) {
      const Part& part = p.parts[i];
      frames.stack_of(rec.samples[part.sample], stack, part.leaf);
      out += i ? ",[" : "[";
      for (size_t j = 0; j < stack.size(); ++j) {
        if (j) out += ',';
        append_number(out, stack[j]);
      }
      out += ']';
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

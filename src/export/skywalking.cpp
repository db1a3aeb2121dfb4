// swprof export --format skywalking: ThreadSnapshot JSON as protobuf's JSON mapping of
// SkyWalking's Profile.proto prints it (camelCase keys, the int64 time as a string, every field
// present): one traceSegmentId per segment, its dumps numbered from 0 in time order, each stack
// root first with code signatures in the Python agent's form "filename.function: line" (the full
// co_filename, co_name, the executing line). Import is in skywalking_import.cpp.
#include <algorithm>

#include <fmt/format.h>

#include "export/frame_table.h"
#include "swprof/analyze.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

// The Python agent writes f'{frame.filename}.{frame.name}: {frame.lineno}' with the code's name
// (not its qualified name). A frame without a file came from an import: its name is the signature.
std::string signature(const snapshot::Recording& rec, const snapshot::Frame& f) {
  const std::string& name = rec.str(f.function);
  const std::string& file = rec.str(f.file);
  if (file.empty()) return name;
  // co_name is the last component of co_qualname ("Handler.do_POST" -> "do_POST").
  size_t dot = name.rfind('.');
  std::string short_name = dot == std::string::npos ? name : name.substr(dot + 1);
  return fmt::format("{}.{}: {}", file, short_name, f.line);
}

}  // namespace

void skywalking_export(const snapshot::Recording& rec, const snapshot::SampleSource& samples,
                       const std::vector<uint32_t>& segment_ids, const std::string& task_id,
                       const std::function<void(std::string_view)>& sink) {
  if (rec.segments.empty())
    throw UserError("SkyWalking snapshots belong to trace segments: record with --entry FUNCTION "
                    "(one segment per call) or import SkyWalking data");
  std::vector<bool> selected(rec.segments.size() + 1, false);
  for (uint32_t id : segment_ids) selected.at(id) = true;
  // Each segment's dumps are numbered in time order. A recorder writes a segment's samples in that
  // order, so they are written as they come, interleaved as an agent sends them, each segment
  // keeping only its count; a file that holds a segment's samples out of order (some imports) has
  // its selected samples held and sorted, one segment after another. The first read tells which.
  struct Previous {
    bool seen = false;
    int64_t sequence = -1, time = 0;
  };
  std::vector<Previous> previous(rec.segments.size() + 1);
  bool in_order = true;
  samples([&](const snapshot::Sample& s) {
    if (!in_order || !selected[s.segment]) return;
    Previous& p = previous[s.segment];
    if (p.seen && analyze::dump_comes_before(s.sequence, s.time_us, p.sequence, p.time)) in_order = false;
    p = {true, s.sequence, s.time_us};
  });
  std::vector<int64_t> written(rec.segments.size() + 1, 0);  // dumps of each segment so far

  std::vector<std::string> heads(rec.segments.size() + 1);
  for (uint32_t id : segment_ids) {
    const auto& seg = rec.segments[id - 1];
    std::string segment_name = seg.name.empty() ? fmt::format("swprof-{}-{}", rec.header.pid(), id) : seg.name;
    // Names that are not valid UTF-8 (a file name's bytes) get U+FFFD: JSON strings are Unicode.
    heads[id] = fmt::format("{{\"taskId\":\"{}\",\"traceSegmentId\":\"{}\",",
                            json_escape(seg.task_id.empty() ? task_id : seg.task_id), json_escape(segment_name));
  }
  // Every dump repeats its whole stack: a small file of many dumps of a deep stack exports to a
  // lot of text (ChunkedOutput).
  ChunkedOutput output(rec, sink);
  std::string& out = output.text();
  out += "[";
  bool first = true;
  auto write = [&](const snapshot::Sample& s) {
    int64_t counted = written[s.segment]++;
    int64_t sequence = s.sequence >= 0 ? s.sequence : std::min<int64_t>(counted, INT32_MAX);
    out += first ? "\n  " : ",\n  ";
    first = false;
    out += heads[s.segment];
    // Times are bounded by the reader (±2^50 µs, start under 2^60): this cannot overflow.
    out += fmt::format("\"time\":\"{}\",\"sequence\":{},\"stack\":{{\"codeSignatures\":[",
                       (rec.header.start_unix_us() + s.time_us + 500) / 1000, sequence);
    bool first_frame = true;
    for (uint32_t frame : rec.stack(s.stack)) {
      out += first_frame ? "\"" : ",\"";
      out += json_escape(signature(rec, rec.frames[frame]));
      out += '"';
      first_frame = false;
    }
    out += "]}}";
    output.piece_done();
  };
  if (in_order) {
    samples([&](const snapshot::Sample& s) {
      if (selected[s.segment]) write(s);
    });
  } else {
    std::vector<snapshot::Sample> held =
        snapshot::hold_samples(rec, samples, [&](const snapshot::Sample& s) { return selected[s.segment]; });
    std::stable_sort(held.begin(), held.end(), [](const snapshot::Sample& a, const snapshot::Sample& b) {
      if (a.segment != b.segment) return a.segment < b.segment;
      return analyze::dump_comes_before(a.sequence, a.time_us, b.sequence, b.time_us);
    });
    for (const auto& s : held) write(s);
  }
  out += "\n]\n";
  output.flush();
}

}  // namespace swprof::exporter

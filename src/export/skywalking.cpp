// swprof export --format skywalking: ThreadSnapshot JSON as protobuf's JSON mapping of
// SkyWalking's Profile.proto prints it (camelCase keys, the int64 time as a string, every field
// present): one traceSegmentId per segment, its dumps numbered from 0 in time order, each stack
// root first with code signatures in the Python agent's form "filename.function: line" (the full
// co_filename, co_name, the executing line). Import is in skywalking_import.cpp.
#include <algorithm>

#include <fmt/format.h>

#include "export/frame_table.h"
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

void skywalking_export(const snapshot::Recording& rec, const std::vector<uint32_t>& segment_ids,
                       const std::string& task_id, const std::function<void(std::string_view)>& sink) {
  if (rec.segments.empty())
    throw UserError("SkyWalking snapshots belong to trace segments: record with --entry FUNCTION "
                    "(one segment per call) or import SkyWalking data");
  std::vector<std::vector<const snapshot::Sample*>> by_segment(rec.segments.size() + 1);
  for (const auto& s : rec.samples)
    if (s.segment) by_segment[s.segment].push_back(&s);
  // Every dump repeats its whole stack: a small file of many dumps of a deep stack exports to a
  // lot of text (ChunkedOutput).
  ChunkedOutput output(rec, sink);
  std::string& out = output.text();
  out += "[";
  bool first = true;
  for (uint32_t id : segment_ids) {
    const auto& seg = rec.segments[id - 1];
    auto& samples = by_segment[id];
    std::stable_sort(samples.begin(), samples.end(), [](const snapshot::Sample* a, const snapshot::Sample* b) {
      if (a->sequence >= 0 && b->sequence >= 0) return a->sequence < b->sequence;
      return a->time_us < b->time_us;
    });
    std::string segment_name = seg.name.empty() ? fmt::format("swprof-{}-{}", rec.header.pid(), id) : seg.name;
    // Names that are not valid UTF-8 (a file name's bytes) get U+FFFD: JSON strings are Unicode.
    std::string head = fmt::format("{{\"taskId\":\"{}\",\"traceSegmentId\":\"{}\",",
                                   json_escape(seg.task_id.empty() ? task_id : seg.task_id), json_escape(segment_name));
    for (size_t i = 0; i < samples.size(); ++i) {
      const auto& s = *samples[i];
      int64_t sequence = s.sequence >= 0 ? s.sequence : std::min<int64_t>(static_cast<int64_t>(i), INT32_MAX);
      out += first ? "\n  " : ",\n  ";
      first = false;
      out += head;
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
    }
  }
  out += "\n]\n";
  output.flush();
}

}  // namespace swprof::exporter

// SkyWalking ThreadSnapshot JSON (protobuf's JSON mapping of Profile.proto), both ways.
//
// Export: one traceSegmentId per segment, its dumps numbered from 0 in time order, each stack root
// first with code signatures in the Python agent's form "filename.function: line" (the full
// co_filename, co_name, the executing line). Import: one segment per traceSegmentId, one sample
// per record, signatures kept verbatim as function names; times, sequences and task ids are kept
// so that exporting an import gives the same records back.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "skywalking_profile.pb.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

namespace pbj = google::protobuf::util;

constexpr size_t kMaxImportBytes = 2ull << 30;

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

int64_t median_gap_us(std::vector<int64_t> gaps, int64_t fallback) {
  if (gaps.empty()) return fallback;
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  return gaps[gaps.size() / 2];
}

}  // namespace

std::string skywalking_export(const snapshot::Recording& rec, const std::vector<uint32_t>& segment_ids,
                              const std::string& task_id) {
  if (rec.segments.empty())
    throw UserError("SkyWalking snapshots belong to trace segments: record with --entry FUNCTION "
                    "(one segment per call) or import SkyWalking data");
  std::vector<std::vector<const snapshot::Sample*>> by_segment(rec.segments.size() + 1);
  for (const auto& s : rec.samples)
    if (s.segment) by_segment[s.segment].push_back(&s);
  pbj::JsonPrintOptions options;
  options.always_print_primitive_fields = true;  // sequence 0 is written, not left out
  std::string out = "[";
  bool first = true;
  for (uint32_t id : segment_ids) {
    const auto& seg = rec.segments[id - 1];
    auto& samples = by_segment[id];
    std::stable_sort(samples.begin(), samples.end(), [](const snapshot::Sample* a, const snapshot::Sample* b) {
      if (a->sequence >= 0 && b->sequence >= 0) return a->sequence < b->sequence;
      return a->time_us < b->time_us;
    });
    std::string segment_name = seg.name.empty() ? fmt::format("swprof-{}-{}", rec.header.pid(), id) : seg.name;
    for (size_t i = 0; i < samples.size(); ++i) {
      const auto& s = *samples[i];
      skywalking::ThreadSnapshot snap;
      snap.set_task_id(seg.task_id.empty() ? task_id : seg.task_id);
      snap.set_trace_segment_id(segment_name);
      snap.set_time((rec.header.start_unix_us() + s.time_us + 500) / 1000);
      snap.set_sequence(static_cast<int32_t>(s.sequence >= 0 ? s.sequence : static_cast<int64_t>(i)));
      for (uint32_t frame : rec.stack(s.stack))
        snap.mutable_stack()->add_code_signatures(signature(rec, rec.frames[frame]));
      std::string json;
      auto status = pbj::MessageToJsonString(snap, &json, options);
      if (!status.ok()) throw UserError(fmt::format("cannot write SkyWalking JSON: {}", status.ToString()));
      out += first ? "\n  " : ",\n  ";
      out += json;
      first = false;
    }
  }
  out += "\n]\n";
  return out;
}

size_t skywalking_import(const std::string& json_path, const std::string& out_path) {
  std::ifstream in(json_path, std::ios::binary);
  if (!in) throw UserError(fmt::format("cannot open {}: {}", json_path, std::strerror(errno)));
  std::string text;
  {
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
  }
  if (text.size() > kMaxImportBytes) throw UserError(fmt::format("{} is larger than 2 GiB", json_path));
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos || (text[start] != '[' && text[start] != '{'))
    throw UserError(fmt::format("{} is not SkyWalking ThreadSnapshot JSON: expected an array of "
                                "{{\"taskId\", \"traceSegmentId\", \"time\", \"sequence\", \"stack\"}} records",
                                json_path));
  // An array of snapshots, or an object already shaped {"snapshots": [...]}.
  std::string wrapped = text[start] == '[' ? "{\"snapshots\": " + text + "}" : text;
  skywalking::ThreadSnapshotList list;
  pbj::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = pbj::JsonStringToMessage(wrapped, &list, options);
  if (!status.ok())
    throw UserError(fmt::format("{} is not SkyWalking ThreadSnapshot JSON: {}", json_path,
                                std::string(status.message().substr(0, 200))));
  if (list.snapshots().empty()) throw UserError(fmt::format("{} holds no snapshots", json_path));

  // Segments in order of first appearance; each one's dumps by sequence.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const skywalking::ThreadSnapshot*>> segments;
  int64_t min_time = INT64_MAX;
  for (int i = 0; i < list.snapshots_size(); ++i) {
    const auto& s = list.snapshots(i);
    if (s.trace_segment_id().empty())
      throw UserError(fmt::format("{}: snapshot {} has no traceSegmentId", json_path, i));
    if (s.sequence() < 0 || s.time() <= 0)
      throw UserError(fmt::format("{}: snapshot {} has a negative sequence or no time", json_path, i));
    auto [it, inserted] = segments.try_emplace(s.trace_segment_id());
    if (inserted) order.push_back(s.trace_segment_id());
    it->second.push_back(&s);
    min_time = std::min<int64_t>(min_time, s.time());
  }
  std::vector<int64_t> all_gaps;
  for (auto& [name, snaps] : segments) {
    std::stable_sort(snaps.begin(), snaps.end(), [](auto* a, auto* b) { return a->sequence() < b->sequence(); });
    for (size_t i = 1; i < snaps.size(); ++i) {
      if (snaps[i]->sequence() == snaps[i - 1]->sequence())
        throw UserError(fmt::format("{}: segment {} has two snapshots with sequence {}", json_path, name,
                                    snaps[i]->sequence()));
      all_gaps.push_back((snaps[i]->time() - snaps[i - 1]->time()) * 1000);
    }
  }
  int64_t interval_us = median_gap_us(all_gaps, 10000);
  int64_t max_time = min_time;
  for (const auto& s : list.snapshots()) max_time = std::max<int64_t>(max_time, s.time());

  pb::Header header;
  header.set_format_version(snapshot::kFormatVersion);
  header.set_swprof_version(SWPROF_VERSION);
  header.add_command("swprof");
  header.add_command("import");
  header.add_command(sanitize_text(json_path));  // a header string must be UTF-8
  header.set_interval_us(interval_us);
  header.set_start_unix_us(min_time * 1000);
  header.set_source("import:skywalking");
  snapshot::Writer writer(out_path, header);
  uint32_t file = writer.intern_string("");
  std::vector<uint32_t> frames;
  uint32_t next_id = 1;
  for (const auto& name : order) {
    const auto& snaps = segments[name];
    uint32_t thread = writer.add_thread(0, name);
    std::vector<int64_t> gaps;
    for (size_t i = 1; i < snaps.size(); ++i) gaps.push_back((snaps[i]->time() - snaps[i - 1]->time()) * 1000);
    int64_t first_weight = median_gap_us(gaps, interval_us);
    snapshot::Segment seg;
    seg.id = next_id++;
    seg.thread = thread;
    seg.start_us = (snaps.front()->time() - min_time) * 1000 - first_weight;
    seg.name = name;
    seg.task_id = snaps.front()->task_id();
    writer.add_segment(seg);
    for (size_t i = 0; i < snaps.size(); ++i) {
      const auto& s = *snaps[i];
      frames.clear();
      for (const auto& sig : s.stack().code_signatures())
        frames.push_back(writer.intern_frame({writer.intern_string(sig), file, 0, 0}));
      snapshot::Sample sample;
      sample.time_us = (s.time() - min_time) * 1000;
      sample.wall_us = i ? (s.time() - snaps[i - 1]->time()) * 1000 : first_weight;
      sample.thread = thread;
      sample.stack = writer.intern_stack(frames);
      sample.segment = seg.id;
      sample.sequence = s.sequence();
      writer.add_sample(sample);
    }
    writer.end_segment(seg.id, (snaps.back()->time() - min_time) * 1000);
  }
  pb::Footer footer;
  footer.set_duration_us((max_time - min_time) * 1000 + interval_us);
  footer.set_samples(writer.samples_written());
  footer.set_segments_seen(segments.size());
  footer.set_segments_kept(segments.size());
  footer.set_stop_reason("imported");
  writer.finish(footer);
  return static_cast<size_t>(list.snapshots_size());
}

}  // namespace swprof::exporter

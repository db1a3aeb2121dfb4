// Output formats beyond analyze's reports, one small file each: the interactive flame graph
// (SVG, also differential), pprof, speedscope, Chrome's Trace Event JSON, and SkyWalking's
// ThreadSnapshot JSON (export and import).
#pragma once

#include <functional>
#include <string>
#include <vector>
#include <string_view>

#include "swprof/analyze.h"
#include "swprof/diff.h"
#include "swprof/snapshot.h"

namespace swprof::exporter {

// A differential flame graph's second recording, per node of the drawn (NEW) tree: its total and
// self time and the base's, normalised to one unit (a second of recording or a segment) so that
// recordings of different lengths compare. Colors then show the change, not the code's origin.
struct FlamegraphDiff {
  std::vector<double> base_total, new_total, base_self, new_self;  // µs per unit, by NEW node index
  std::string unit;          // "s" or "segment"
  std::string base_only;     // what the base had that NEW lacks (not drawn), e.g. "3 frames, 12 ms/s"
  std::string cut_left_out;  // per segment: the segments cut by a recording's start or end, left out
};

struct FlamegraphOptions {
  std::string title = "swprof flame graph";
  std::string subtitle;       // e.g. the command and the mode
  bool inverted = false;      // icicle: roots at the top
  double min_width_pct = 0.05;  // frames narrower than this share of the total are left out
  const FlamegraphDiff* diff = nullptr;  // set: a differential flame graph
};

// The differential part (flamegraph_diff.cpp): BASE's values per node of NEW's tree, the fill that
// shows a node's change, and "per s: base 40.0 ms, new 60.0 ms, +20.0 ms, +50.0%".
FlamegraphDiff flamegraph_diff(const diff::Result& result, size_t new_nodes);
std::string diff_fill(const FlamegraphDiff& diff, uint32_t node);
std::string diff_summary(const FlamegraphDiff& diff, uint32_t node);

// One standalone SVG: frames labelled "function (file:line)", width = time, stable colors per
// name by code origin, hover details, click to zoom, reset, regex search with "Matched: x%".
std::string flamegraph_svg(const analyze::Tree& tree, const FlamegraphOptions& options);

// Where the exports that can outgrow memory (one entry per sample) write their text, piece by piece.
using Sink = std::function<void(std::string_view)>;

// Which samples an export covers and how it weighs and names them.
struct ExportView {
  analyze::Selection selection;                // --thread, --segment, --slowest, --full-stack
  analyze::Mode mode = analyze::Mode::kWall;   // speedscope's weights
  bool lines = false;                          // one frame per executing line (speedscope, Chrome)
};

// pprof: a gzip-compressed perftools.profiles.Profile with sample types samples, wall, cpu (and
// gil when recorded), one function per code object, one location per executing line, and labels
// thread_id, thread_name, segment_id, greenlet.
std::string pprof_profile(const snapshot::Recording& rec, const ExportView& view);

using snapshot::SampleSource;  // (the samples a timeline export reads: snapshot::samples_in_file)

// speedscope's file format: one sampled profile per thread, or per segment with `per_segment`,
// weighted in the view's mode (µs), stacks root first in time order. `rec` gives the names,
// stacks and segments (its samples may have been read merged); `samples` the samples, each kept
// as a few bytes.
void speedscope_json(const snapshot::Recording& rec, const SampleSource& samples, const ExportView& view,
                     bool per_segment, const Sink& sink);

// Chrome's Trace Event JSON (chrome://tracing, Perfetto, speedscope): one track per thread (per
// greenlet call under gevent), a duration event per segment, and the sampled stacks as nested
// duration events (begin "B" and end "E", written as the samples come), a frame present on
// consecutive samples being one event. `rec` gives the names, stacks and segments (its samples
// may have been read merged); `samples` the samples, read twice and held only when a thread's
// are out of time order.
void chrome_trace_json(const snapshot::Recording& rec, const SampleSource& samples, const ExportView& view,
                       const Sink& sink);

// SkyWalking ThreadSnapshot records in protobuf's JSON mapping of Profile.proto, handed to `sink`
// piece by piece (an export can be much larger than its snapshot file). `rec` gives the names,
// stacks and segments (its samples may have been read merged); `samples` the samples, read twice
// (to learn whether each segment's come in order) and held only when they do not.
void skywalking_export(const snapshot::Recording& rec, const SampleSource& samples,
                       const std::vector<uint32_t>& segments, const std::string& task_id, const Sink& sink);
// Reads such JSON into a new snapshot file: one segment per traceSegmentId, one sample per record.
// Returns the number of records read. Throws UserError on malformed input.
size_t skywalking_import(const std::string& json_path, const std::string& out_path);

}  // namespace swprof::exporter

// Output formats beyond analyze's reports, one small file each: the interactive flame graph
// (SVG), and SkyWalking's ThreadSnapshot JSON (export and import).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "swprof/analyze.h"
#include "swprof/snapshot.h"

namespace swprof::exporter {

struct FlamegraphOptions {
  std::string title = "swprof flame graph";
  std::string subtitle;       // e.g. the command and the mode
  bool inverted = false;      // icicle: roots at the top
  double min_width_pct = 0.05;  // frames narrower than this share of the total are left out
};

// One standalone SVG: frames labelled "function (file:line)", width = time, stable colors per
// name by code origin, hover details, click to zoom, reset, regex search with "Matched: x%".
std::string flamegraph_svg(const analyze::Tree& tree, const FlamegraphOptions& options);

// SkyWalking ThreadSnapshot records in protobuf's JSON mapping of Profile.proto, handed to `sink`
// piece by piece (an export can be much larger than its snapshot file).
void skywalking_export(const snapshot::Recording& rec, const std::vector<uint32_t>& segments,
                       const std::string& task_id, const std::function<void(std::string_view)>& sink);
// Reads such JSON into a new snapshot file: one segment per traceSegmentId, one sample per record.
// Returns the number of records read. Throws UserError on malformed input.
size_t skywalking_import(const std::string& json_path, const std::string& out_path);

}  // namespace swprof::exporter

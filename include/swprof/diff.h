// swprof diff: two recordings' call trees matched by call path, each node's total and self time
// in both and the change, normalised per second of recording or per segment so that recordings
// of different lengths (or with different numbers of requests) compare. Also feeds the
// differential flame graph (flamegraph --diff).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "swprof/analyze.h"
#include "swprof/snapshot.h"

namespace swprof::diff {

struct Values {
  double total = 0, self = 0;  // µs per unit (second of recording or segment)
  bool present = false;        // the node is in this side's tree
};

struct Node {
  std::string function, file;  // NEW's names where NEW has the node, else BASE's
  int32_t line = 0;
  analyze::NodeKind kind = analyze::NodeKind::kFrame;
  Values base, now;
  uint32_t parent = 0;
  std::vector<uint32_t> children;
};

// One recording as the reports describe it.
struct Side {
  std::string path, command, python;
  double duration_ms = 0;
  uint64_t samples = 0;
  size_t segments = 0;     // selected segments (0 without --entry)
  size_t cut_segments = 0;  // per segment: those the recording cut (began before it, or still
                            // running at its end), left out of the averages
  double divisor = 1;      // seconds of recording, or segments
  double matched_pct = 0;  // share of its time whose whole call path the other side has too
};

struct Result {
  std::vector<Node> nodes;  // nodes[0] is the root: all time
  Side base, now;
  bool per_segment = false;
  analyze::Mode mode = analyze::Mode::kWall;
  std::vector<uint32_t> of_new_node;  // NEW tree node index -> diff node (UINT32_MAX: unreachable)
};

// The facts of one side; the divisor is its duration in seconds, or with `per_segment` its number
// of segments as `selection` picks them (throws UserError when it has none). Per segment, the
// segments the recording cut are counted as left out when `selection` leaves them out.
Side side_of(const snapshot::Recording& rec, const std::string& path, const analyze::Selection& selection,
             bool per_segment);

// Matches two trees built with the same options. A node's key along the path is its kind, function
// and file name without directories (and line with --lines), so a program moved to another
// directory, virtualenv or Python version still matches; collapsed import chains match whatever
// their length.
Result compare(const analyze::Tree& base, const analyze::Tree& now, Side base_side, Side new_side, bool per_segment);

// Node indices other than the root, by the largest absolute change of total, then of self.
std::vector<uint32_t> by_change(const Result& result);

std::string text_report(const Result& result, size_t limit);  // limit 0: every node
std::string json_report(const Result& result);

}  // namespace swprof::diff

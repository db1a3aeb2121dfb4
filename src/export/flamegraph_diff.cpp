// The differential part of the flame graph (flamegraph NEW --diff BASE): per drawn node of NEW's
// tree, BASE's values beside NEW's, and a fill that shows the change. Width stays NEW's time;
// hue is the direction (red grew, blue shrank), saturation how much relative to the base (a frame
// that doubled or is new is fully red, one that halved half blue, one that did not move grey).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "swprof/diff.h"
#include "swprof/export.h"

namespace swprof::exporter {

FlamegraphDiff flamegraph_diff(const diff::Result& result, size_t new_nodes) {
  FlamegraphDiff d;
  d.unit = result.per_segment ? "segment" : "s";
  d.base_total.assign(new_nodes, 0);
  d.new_total.assign(new_nodes, 0);
  d.base_self.assign(new_nodes, 0);
  d.new_self.assign(new_nodes, 0);
  for (size_t i = 0; i < new_nodes && i < result.of_new_node.size(); ++i) {
    uint32_t m = result.of_new_node[i];
    if (m == UINT32_MAX) continue;
    const auto& n = result.nodes[m];
    d.base_total[i] = n.base.total;
    d.new_total[i] = n.now.total;
    d.base_self[i] = n.base.self;
    d.new_self[i] = n.now.self;
  }
  size_t gone = 0;
  double gone_us = 0;
  for (size_t i = 1; i < result.nodes.size(); ++i) {
    const auto& n = result.nodes[i];
    // Count a vanished subtree once, at its top.
    if (n.base.present && !n.now.present && result.nodes[n.parent].now.present) {
      ++gone;
      gone_us += n.base.total;
    }
  }
  if (gone)
    d.base_only = fmt::format("only in base, not drawn: {} call path{}, {:.1f} ms/{}", gone, gone == 1 ? "" : "s",
                              gone_us / 1e3, d.unit);
  if (result.now.cut_segments || result.base.cut_segments)
    d.cut_left_out = fmt::format("whole calls only: {} new and {} base segment{} cut by the recording left out",
                                 result.now.cut_segments, result.base.cut_segments,
                                 result.now.cut_segments + result.base.cut_segments == 1 ? "" : "s");
  return d;
}

std::string diff_fill(const FlamegraphDiff& d, uint32_t node) {
  double base = d.base_total[node], now = d.new_total[node];
  double k = base > 0 ? std::min(1.0, std::fabs(now - base) / base) : (now > 0 ? 1.0 : 0.0);
  // From a light grey (no change) towards red (grew) or blue (shrank).
  const double grey[3] = {232, 232, 232}, red[3] = {214, 39, 40}, blue[3] = {31, 119, 180};
  const double* to = now >= base ? red : blue;
  int rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = static_cast<int>(std::lround(grey[c] + (to[c] - grey[c]) * k));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

std::string diff_summary(const FlamegraphDiff& d, uint32_t node) {
  double base = d.base_total[node], now = d.new_total[node];
  std::string pct = base > 0 ? fmt::format("{:+.1f}%", 100 * (now - base) / base) : "new";
  return fmt::format("per {}: base {:.1f} ms, new {:.1f} ms, {:+.1f} ms, {}", d.unit, base / 1e3, now / 1e3,
                     (now - base) / 1e3, pct);
}

}  // namespace swprof::exporter

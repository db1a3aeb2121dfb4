// analyze --format collapsed: "root;...;leaf N" per line, N the self time in microseconds (an
// integer), as flamegraph.pl, inferno, speedscope and Perfetto read it.
#include <cmath>

#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

namespace {

// ';' separates frames and the last ' ' precedes the count: neither may hide inside a name.
std::string collapsed_label(const Node& n) {
  std::string label = sanitize_text(frame_label(n, true));
  for (char& c : label)
    if (c == ';') c = ':';
  return label;
}

void walk(const Tree& tree, uint32_t i, std::string& path, std::string& out) {
  const Node& n = tree.nodes[i];
  size_t mark = path.size();
  if (i != 0) {
    if (!path.empty()) path += ';';
    path += collapsed_label(n);
    long long self = std::llround(n.self);
    if (self > 0) out += fmt::format("{} {}\n", path, self);
  }
  for (uint32_t c : n.children) walk(tree, c, path, out);
  path.resize(mark);
}

}  // namespace

std::string collapsed_report(const Tree& tree) {
  std::string out, path;
  walk(tree, 0, path, out);
  return out;
}

}  // namespace swprof::analyze

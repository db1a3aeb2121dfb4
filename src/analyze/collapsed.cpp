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

}  // namespace

// Depth-first with an explicit stack (recursive Python code makes trees thousands of frames
// deep). One path string is shared: a node's path is its parent's, whose length it remembers.
std::string collapsed_report(const Tree& tree) {
  struct Todo {
    uint32_t node;
    size_t parent_path;
  };
  std::string out, path;
  std::vector<Todo> todo;
  const auto& roots = tree.root().children;
  for (size_t k = roots.size(); k-- > 0;) todo.push_back({roots[k], 0});
  while (!todo.empty()) {
    Todo t = todo.back();
    todo.pop_back();
    const Node& n = tree.nodes[t.node];
    path.resize(t.parent_path);
    if (!path.empty()) path += ';';
    path += collapsed_label(n);
    // An integer count; {:.0f} prints any magnitude (a cast to an integer type would overflow).
    if (double self = std::round(n.self); self >= 1) fmt::format_to(std::back_inserter(out), "{} {:.0f}\n", path, self);
    for (size_t k = n.children.size(); k-- > 0;) todo.push_back({n.children[k], path.size()});
  }
  return out;
}

}  // namespace swprof::analyze

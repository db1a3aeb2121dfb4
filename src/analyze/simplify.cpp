// Views that read better than the raw tree, for people (text and flame graph; JSON stays exact).
#include <fmt/format.h>

#include "swprof/analyze.h"

namespace swprof::analyze {

namespace {

bool is_import_machinery(const Node& n) {
  return n.kind == NodeKind::kFrame && n.file.rfind("<frozen importlib._bootstrap", 0) == 0;
}

}  // namespace

// A chain of import-machinery frames, each the only child of the one before, says only "an import
// happened here": it becomes one node, and the module being imported follows it. Widths and
// totals are unchanged (the chain's totals are equal); self times add up.
void collapse_import_machinery(Tree& tree) {
  tree.imports_collapsed = true;
  std::vector<uint32_t> stack{0};
  while (!stack.empty()) {
    uint32_t i = stack.back();
    stack.pop_back();
    Node& n = tree.nodes[i];
    if (is_import_machinery(n)) {
      size_t chain = 1;
      while (n.children.size() == 1 && is_import_machinery(tree.nodes[n.children[0]])) {
        Node& c = tree.nodes[n.children[0]];
        n.self += c.self;
        std::vector<uint32_t> grandchildren = std::move(c.children);
        c.children.clear();
        n.children = std::move(grandchildren);
        for (uint32_t g : n.children) tree.nodes[g].parent = i;
        ++chain;
      }
      if (chain > 1) {
        n.function = tree.labels.emplace_back(fmt::format("[import machinery: {} frames]", chain));
        n.file = "";
        n.line = 0;
      }
    }
    for (uint32_t c : n.children) stack.push_back(c);
  }
}

}  // namespace swprof::analyze

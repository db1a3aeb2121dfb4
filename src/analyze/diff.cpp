// Matching two call trees by path (swprof diff, flamegraph --diff): see include/swprof/diff.h.
#include "swprof/diff.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "swprof/common.h"

namespace swprof::diff {

namespace {

using Key = std::tuple<uint32_t, int, std::string, std::string, int32_t>;  // parent, kind, function, file, line

std::string_view base_name(std::string_view file) {
  size_t slash = file.rfind('/');
  return slash == std::string_view::npos ? file : file.substr(slash + 1);
}

Key key_of(uint32_t parent, const analyze::Node& n, bool lines) {
  std::string function(n.function);
  // "[import machinery: 3 frames]": the chain's length is no part of what it is.
  if (n.kind == analyze::NodeKind::kFrame && n.file.empty() && function.rfind("[import machinery", 0) == 0)
    function = "[import machinery]";
  return {parent, static_cast<int>(n.kind), std::move(function), std::string(base_name(n.file)), lines ? n.line : 0};
}

// Adds one tree's nodes (reachable from its root) into the result, side by side with the other's.
void merge(Result& r, std::map<Key, uint32_t>& index, const analyze::Tree& tree, double divisor, bool is_new) {
  auto values = [&](Node& n) -> Values& { return is_new ? n.now : n.base; };
  values(r.nodes[0]).total += tree.root().total / divisor;
  values(r.nodes[0]).self += tree.root().self / divisor;
  values(r.nodes[0]).present = true;
  if (is_new) {
    r.of_new_node.assign(tree.nodes.size(), UINT32_MAX);
    r.of_new_node[0] = 0;
  }
  std::vector<std::pair<uint32_t, uint32_t>> todo{{0, 0}};  // (tree node, diff node)
  while (!todo.empty()) {
    auto [t, d] = todo.back();
    todo.pop_back();
    for (uint32_t c : tree.nodes[t].children) {
      const analyze::Node& n = tree.nodes[c];
      auto [it, inserted] = index.try_emplace(key_of(d, n, tree.options.lines), static_cast<uint32_t>(r.nodes.size()));
      if (inserted) {
        Node fresh;
        fresh.kind = n.kind;
        fresh.parent = d;
        r.nodes.push_back(std::move(fresh));
        r.nodes[d].children.push_back(it->second);
      }
      Node& m = r.nodes[it->second];
      if (is_new || !m.now.present) {
        m.function = std::string(n.function);
        m.file = std::string(n.file);
        m.line = n.line;
      }
      values(m).total += n.total / divisor;
      values(m).self += n.self / divisor;
      values(m).present = true;
      if (is_new) r.of_new_node[c] = it->second;
      todo.emplace_back(c, it->second);
    }
  }
}

double matched_pct(const Result& r, bool of_new) {
  double all = 0, matched = 0;
  for (size_t i = 1; i < r.nodes.size(); ++i) {
    const Node& n = r.nodes[i];
    double self = std::max(0.0, of_new ? n.now.self : n.base.self);
    all += self;
    if (n.base.present && n.now.present) matched += self;
  }
  return all > 0 ? 100.0 * matched / all : 0;
}

}  // namespace

Side side_of(const snapshot::Recording& rec, const std::string& path, const analyze::Selection& selection,
             bool per_segment) {
  const auto taken = analyze::selected_segments(rec, selection);
  const size_t segments = taken.size();
  Side s;
  s.path = path;
  s.command = analyze::command_line(rec);
  s.python = rec.header.python_version();
  s.duration_ms = static_cast<double>(analyze::recording_duration_us(rec)) / 1e3;
  s.samples = rec.sample_count;
  s.segments = segments;
  if (per_segment) {
    if (segments == 0)
      throw UserError(fmt::format("{} has no segments to compare per segment: record it with --entry FUNCTION", path));
    s.divisor = static_cast<double>(segments);
    if (selection.whole_segments) {
      // The cut ones the same selection would have taken (none when none is whole: all taken).
      analyze::Selection all = selection;
      all.whole_segments = false;
      for (uint32_t id : analyze::selected_segments(rec, all))
        s.cut_segments += !std::binary_search(taken.begin(), taken.end(), id);  // (ids come sorted)
    }
  } else {
    s.divisor = s.duration_ms > 0 ? s.duration_ms / 1e3 : 1.0;  // an empty recording: its zeros as they are
  }
  return s;
}

Result compare(const analyze::Tree& base, const analyze::Tree& now, Side base_side, Side new_side, bool per_segment) {
  Result r;
  r.per_segment = per_segment;
  r.mode = now.options.mode;
  r.nodes.emplace_back();
  r.nodes[0].kind = analyze::NodeKind::kRoot;
  r.nodes[0].function = "all";
  std::map<Key, uint32_t> index;
  merge(r, index, base, base_side.divisor, false);
  merge(r, index, now, new_side.divisor, true);
  r.base = std::move(base_side);
  r.now = std::move(new_side);
  r.base.matched_pct = matched_pct(r, false);
  r.now.matched_pct = matched_pct(r, true);
  return r;
}

std::vector<uint32_t> by_change(const Result& r) {
  std::vector<uint32_t> order;
  for (uint32_t i = 1; i < r.nodes.size(); ++i) order.push_back(i);
  auto change = [&](uint32_t i) { return std::fabs(r.nodes[i].now.total - r.nodes[i].base.total); };
  auto self_change = [&](uint32_t i) { return std::fabs(r.nodes[i].now.self - r.nodes[i].base.self); };
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (change(a) != change(b)) return change(a) > change(b);
    return self_change(a) > self_change(b);
  });
  return order;
}

}  // namespace swprof::diff

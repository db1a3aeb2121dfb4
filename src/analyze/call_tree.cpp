// The call tree and its two estimators (DESIGN.md "Time attribution").
//
// Nodes are merged by identical path from the root: the same function at the same depth under the
// same parent is one node; recursion is not folded. A sample's path is its stack (from the
// segment's entry frame unless --full-stack), under a thread or greenlet root when asked, with a
// `<switched out>` leaf for a greenlet segment that was not running.
#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

namespace {

struct Key {
  uint32_t parent;
  NodeKind kind;
  uint32_t a, b;
  int32_t c;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = k.parent * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t(k.a) << 32 | k.b) * 0xC2B2AE3D27D4EB4Full;
    h ^= uint64_t(uint32_t(k.c)) * 0x165667B19E3779F9ull + static_cast<uint64_t>(k.kind);
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

class PathBuilder {
 public:
  PathBuilder(const snapshot::Recording& rec, Tree& tree, const Selection& sel)
      : rec_(rec), tree_(tree), sel_(sel) {}

  // Node indices from the outermost to the innermost for one sample (the root excluded).
  void path_of(const snapshot::Sample& s, std::vector<uint32_t>& path) {
    path.clear();
    uint32_t parent = 0;
    const auto& opt = tree_.options;
    if (opt.by_thread) {
      const auto& t = rec_.threads[s.thread];
      parent = child(parent, {parent, NodeKind::kThread, s.thread, 0, 0}, [&](Node& n) {
        n.function = label(t.name.empty() ? fmt::format("thread {}", t.tid) : fmt::format("thread {} ({})", t.tid, t.name));
      });
      path.push_back(parent);
    } else if (opt.by_greenlet) {
      parent = child(parent, {parent, NodeKind::kGreenlet, s.greenlet, s.thread, 0}, [&](Node& n) {
        const auto& t = rec_.threads[s.thread];
        if (const auto* c = rec_.context(s.greenlet); c && c->kind == snapshot::ContextKind::kTask) {
          n.function = label(fmt::format("task {} (thread {})", c->name, t.tid));
          return;
        }
        // A greenlet is named after the outermost frame it runs: the hub's loop, a handler, ...
        auto frames = rec_.stack(s.stack);
        std::string bottom = frames.empty() ? "" : rec_.str(rec_.frames[frames[0]].function);
        n.function = label(s.greenlet ? fmt::format("greenlet {}: {} (thread {})", s.greenlet, bottom, t.tid)
                                      : fmt::format("thread {}{}", t.tid, t.name.empty() ? "" : " (" + t.name + ")"));
      });
      path.push_back(parent);
    }
    for (uint32_t frame : sample_frames(rec_, s, sel_)) {
      const auto& f = rec_.frames[frame];
      int32_t line = opt.lines ? f.line : f.first_line;
      parent = child(parent, {parent, NodeKind::kFrame, f.function, f.file, line}, [&](Node& n) {
        n.function = rec_.str(f.function);
        n.file = rec_.str(f.file);
        n.line = line;
      });
      path.push_back(parent);
    }
    // (A suspended task's stack ends in the `<awaiting ...>` frame that says so.)
    const auto* task = rec_.context(s.greenlet);
    if ((s.flags & snapshot::kSwitchedOut) && !(task && task->kind == snapshot::ContextKind::kTask)) {
      parent = child(parent, {parent, NodeKind::kSwitchedOut, 0, 0, 0},
                     [&](Node& n) { n.function = "<switched out>"; });
      path.push_back(parent);
    }
    if (s.flags & snapshot::kGap) {
      // The recorder was late: this time is known to be under the frames above, no deeper.
      parent = child(parent, {parent, NodeKind::kGap, 0, 0, 0}, [&](Node& n) { n.function = "<not sampled>"; });
      path.push_back(parent);
    }
  }

 private:
  template <class Init>
  uint32_t child(uint32_t parent, const Key& key, Init init) {
    auto [it, inserted] = index_.try_emplace(key, static_cast<uint32_t>(tree_.nodes.size()));
    if (inserted) {
      Node n;
      n.kind = key.kind;
      n.parent = parent;
      init(n);
      tree_.nodes.push_back(std::move(n));
      tree_.nodes[parent].children.push_back(it->second);
    }
    return it->second;
  }
  std::string_view label(std::string s) { return tree_.labels.emplace_back(std::move(s)); }

  const snapshot::Recording& rec_;
  Tree& tree_;
  const Selection& sel_;
  std::unordered_map<Key, uint32_t, KeyHash> index_;
};

// Per-sample CPU time is not capped at the sample's wall time: the kernel advances a running
// thread's CPU time in scheduler ticks (4 ms at HZ=250), so one sample reads 8 ms and the next
// 12 ms of a 10 ms interval. Capping each would lose the excess; summed raw, they are exact.
// Off-CPU time likewise is summed as wall - cpu (negative for a sample is fine) and only a node's
// total is floored at zero.
double weight_of(const snapshot::Sample& s, Mode mode) {
  switch (mode) {
    case Mode::kWall: return static_cast<double>(s.wall_us);
    case Mode::kCpu: return static_cast<double>(s.cpu_us);
    case Mode::kOffCpu: return static_cast<double>(s.wall_us - s.cpu_us);
  }
  return 0;
}

void add_observations(Node& n, const snapshot::Sample& s) {
  n.wall += static_cast<double>(s.wall_us);
  n.cpu += static_cast<double>(s.cpu_us);
  if (s.flags & snapshot::kGilHeld) n.gil += static_cast<double>(s.wall_us);
  ++n.samples;
}

// Default: a node's total is the sum of the weights of the samples whose path contains it.
void estimate_default(const snapshot::Recording& rec, const std::vector<uint32_t>& samples, PathBuilder& paths,
                      Tree& tree) {
  std::vector<uint32_t> path;
  for (uint32_t i : samples) {
    const auto& s = rec.samples[i];
    double w = weight_of(s, tree.options.mode);
    paths.path_of(s, path);
    tree.nodes[0].total += w;
    add_observations(tree.nodes[0], s);
    for (uint32_t n : path) {
      tree.nodes[n].total += w;
      add_observations(tree.nodes[n], s);
    }
    (path.empty() ? tree.nodes[0] : tree.nodes[path.back()]).self += w;
  }
  // Off-CPU totals are differences of sums: floor the results, not the samples.
  if (tree.options.mode == Mode::kOffCpu)
    for (auto& n : tree.nodes) {
      n.total = std::max(0.0, n.total);
      n.self = std::max(0.0, n.self);
    }
}

// SkyWalking's OAP rule: within one segment the snapshots are numbered 0, 1, ... in time order;
// a node's duration is the sum, over each run of consecutive sequence numbers containing it, of
// (last snapshot time - first snapshot time); count is the number of snapshots containing it.
// Several segments are analysed one by one into the same merged tree. A recording without
// segments treats each thread as one sequence.
void estimate_skywalking(const snapshot::Recording& rec, const std::vector<uint32_t>& samples, PathBuilder& paths,
                         Tree& tree) {
  std::vector<uint32_t> order(samples);
  auto group_of = [&](uint32_t i) -> uint64_t {
    const auto& s = rec.samples[i];
    return s.segment ? uint64_t(s.segment) : (uint64_t(1) << 32) | s.thread;
  };
  // Imported SkyWalking dumps carry their own sequence numbers (gaps included); recorded ones are
  // numbered in time order.
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    uint64_t ga = group_of(a), gb = group_of(b);
    if (ga != gb) return ga < gb;
    const auto &x = rec.samples[a], &y = rec.samples[b];
    if (x.sequence >= 0 && y.sequence >= 0) return x.sequence < y.sequence;
    return x.time_us < y.time_us;
  });
  struct Run {
    uint64_t group = ~uint64_t(0);
    int64_t last_seq = -2;
    int64_t first_time = 0, last_time = 0;
  };
  std::vector<Run> runs;
  std::vector<double> duration;
  auto close_run = [&](uint32_t n) {
    if (runs[n].last_seq >= 0) duration[n] += static_cast<double>(runs[n].last_time - runs[n].first_time);
  };
  std::vector<uint32_t> path;
  uint64_t group = ~uint64_t(0);
  int64_t seq = 0;
  for (uint32_t i : order) {
    const auto& s = rec.samples[i];
    uint64_t g = group_of(i);
    seq = s.sequence >= 0 ? s.sequence : (g == group ? seq + 1 : 0);
    group = g;
    paths.path_of(s, path);
    runs.resize(tree.nodes.size());
    duration.resize(tree.nodes.size(), 0.0);
    add_observations(tree.nodes[0], s);
    for (uint32_t n : path) {
      add_observations(tree.nodes[n], s);
      Run& r = runs[n];
      if (r.group == g && r.last_seq == seq - 1) {
        r.last_time = s.time_us;
      } else {
        close_run(n);
        r.first_time = r.last_time = s.time_us;
      }
      r.group = g;
      r.last_seq = seq;
    }
  }
  for (uint32_t n = 0; n < runs.size(); ++n) close_run(n);
  duration.resize(tree.nodes.size(), 0.0);
  for (uint32_t n = 1; n < tree.nodes.size(); ++n) tree.nodes[n].total = duration[n];
  for (uint32_t c : tree.nodes[0].children) tree.nodes[0].total += duration[c];
  for (auto& n : tree.nodes) {
    double children = 0;
    for (uint32_t c : n.children) children += tree.nodes[c].total;
    n.self = n.total - children;
  }
}

}  // namespace

Tree build_tree(const snapshot::Recording& rec, const std::vector<uint32_t>& samples, const Selection& sel,
                const TreeOptions& options) {
  if (options.estimator == Estimator::kSkyWalking && options.mode != Mode::kWall)
    throw UserError("--estimator skywalking measures durations between dumps: it works with --mode wall only");
  Tree tree;
  tree.options = options;
  Node root;
  root.kind = NodeKind::kRoot;
  root.function = "all";
  tree.nodes.push_back(root);
  PathBuilder paths(rec, tree, sel);
  if (options.estimator == Estimator::kDefault) estimate_default(rec, samples, paths, tree);
  else estimate_skywalking(rec, samples, paths, tree);
  // Children by total, largest first; ties by name so output is stable.
  for (auto& n : tree.nodes)
    std::sort(n.children.begin(), n.children.end(), [&](uint32_t a, uint32_t b) {
      const Node &x = tree.nodes[a], &y = tree.nodes[b];
      if (x.total != y.total) return x.total > y.total;
      if (x.function != y.function) return x.function < y.function;
      return x.line < y.line;
    });
  return tree;
}

}  // namespace swprof::analyze

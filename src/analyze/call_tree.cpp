// The call tree and its two estimators (DESIGN.md "Time attribution").
//
// Nodes are merged by identical path from the root: the same function at the same depth under the
// same parent is one node; recursion is not folded. A sample's path is its stack (from the
// segment's entry frame unless --full-stack), under a thread or greenlet root when asked, with a
// `<switched out>` leaf for a greenlet segment that was not running. In off-CPU mode a sample's time
// is split between a leaf naming why it was blocked and a `<waiting for a CPU>` leaf (OffCpuLeaf).
#include <algorithm>
#include <stdexcept>
#include <span>
#include <unordered_map>
#include <unordered_set>

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

// Each node's memory in the tree (the node, its slot in its parent's children and the index) plus
// its label: charged to the recording's budget so that a small file cannot build a huge tree.
constexpr uint64_t kNodeCost = sizeof(Node) + 64;

class PathBuilder {
 public:
  PathBuilder(const snapshot::Recording& rec, Tree& tree, const Selection& sel)
      : rec_(rec), tree_(tree), sel_(sel), budget_used_(rec.memory_used) {
    depth_.push_back(0);
    jump_.push_back(0);
  }

  // The innermost node of a sample's path (0, the root, for an empty path). Samples that share a
  // stack and a context share a path: it is built once, then looked up.
  uint32_t leaf_of(const snapshot::Sample& s, OffCpuLeaf offcpu = OffCpuLeaf::kNone) {
    const auto& opt = tree_.options;
    uint64_t context = opt.by_thread ? s.thread : opt.by_greenlet ? (uint64_t(group_of(s)) << 32 | s.thread) : 0;
    // (--by-process: the thread's process is one of its roots; a thread is in one process.)
    if (opt.by_process && !opt.by_thread && !opt.by_greenlet) context = rec_.threads[s.thread].process;
    // (Two process records of one pid share the root node, not a path: keyed by record is fine.)
    auto frames = rec_.stack(s.stack);
    auto shown = sample_frames(rec_, s, sel_);
    auto from = static_cast<uint32_t>(shown.data() - frames.data());
    // (A suspended task's stack ends in the `<awaiting ...>` frame that says so.)
    const auto* task = rec_.context(s.greenlet);
    // (A parked greenlet's gap is its time, but whether it was switched out then is not known.)
    uint8_t leaves = (s.flags & snapshot::kGap)                                                                  ? 2
                     : (s.flags & snapshot::kSwitchedOut) && !(task && task->kind == snapshot::ContextKind::kTask) ? 1
                                                                                                                 : 0;
    uint32_t reason = offcpu == OffCpuLeaf::kReason ? s.offcpu_reason : offcpu == OffCpuLeaf::kWaitingForCpu ? UINT32_MAX : 0;
    PathKey key{context, s.stack, from, leaves, reason};
    auto [it, inserted] = leaves_.try_emplace(key, 0);
    if (inserted) it->second = build_path(s, shown, leaves, reason);
    return it->second;
  }

  // The deepest node on both paths to a and b (Myers' skew-binary jump pointers: O(log depth)).
  uint32_t common_ancestor(uint32_t a, uint32_t b) const {
    if (depth_[a] < depth_[b]) std::swap(a, b);
    while (depth_[a] > depth_[b]) a = depth_[jump_[a]] >= depth_[b] ? jump_[a] : tree_.nodes[a].parent;
    while (a != b) {
      if (jump_[a] != jump_[b]) {
        a = jump_[a];
        b = jump_[b];
      } else {
        a = tree_.nodes[a].parent;
        b = tree_.nodes[b].parent;
      }
    }
    return a;
  }

 private:
  struct PathKey {
    uint64_t context;
    uint32_t stack, from;
    uint8_t leaves;  // 1: a `<switched out>` leaf, 2: a `<not sampled>` one
    uint32_t offcpu;  // an off-CPU leaf: the reason's string id + 1, UINT32_MAX for waiting for a CPU
    bool operator==(const PathKey&) const = default;
  };
  struct PathKeyHash {
    size_t operator()(const PathKey& k) const {
      uint64_t h = k.context * 0x9E3779B97F4A7C15ull ^ (uint64_t(k.stack) << 32 | k.from) * 0xC2B2AE3D27D4EB4Full;
      return static_cast<size_t>(h ^ (h >> 29) ^ k.leaves ^ (uint64_t(k.offcpu) << 2));
    }
  };

  uint32_t group_of(const snapshot::Sample& s) const { return sample_context(rec_, s); }

  uint32_t build_path(const snapshot::Sample& s, std::span<const uint32_t> frames, uint8_t leaves, uint32_t offcpu) {
    uint32_t parent = 0;
    const auto& opt = tree_.options;
    if (opt.by_process) {
      // One root per pid (a process that called exec is in the file twice, as two programs).
      const uint32_t process = rec_.threads[s.thread].process;
      const auto pid = static_cast<uint32_t>(process_pid(rec_, process));
      parent = child(parent, {parent, NodeKind::kProcess, pid, 0, 0},
                     [&](Node& n) { n.function = label(process_label(rec_, process)); });
    }
    if (opt.by_thread) {
      const auto& t = rec_.threads[s.thread];
      parent = child(parent, {parent, NodeKind::kThread, s.thread, 0, 0}, [&](Node& n) {
        n.function = label(t.name.empty() ? fmt::format("thread {}", t.tid) : fmt::format("thread {} ({})", t.tid, t.name));
      });
    } else if (opt.by_greenlet) {
      const auto& t = rec_.threads[s.thread];
      const auto* task = rec_.context(s.greenlet);
      const bool greenlet = group_of(s) && !(task && task->kind == snapshot::ContextKind::kTask);
      // A greenlet is named after the outermost frame it runs: the hub's loop, a handler, ... Its
      // first sample can have no frame (time it was not sampled): the first one that has names it.
      auto name_greenlet = [&](Node& n) {
        auto frames = rec_.stack(s.stack);
        if (frames.empty()) return false;
        n.function = label(fmt::format("greenlet {}: {} (thread {})", s.greenlet, rec_.str(rec_.frames[frames[0]].function), t.tid));
        return true;
      };
      parent = child(parent, {parent, NodeKind::kGreenlet, group_of(s), s.thread, 0}, [&](Node& n) {
        if (task && task->kind == snapshot::ContextKind::kTask)
          n.function = label(fmt::format("task {} (thread {})", task->name, t.tid));
        else if (!greenlet)
          n.function = label(fmt::format("thread {}{}", t.tid, t.name.empty() ? "" : " (" + t.name + ")"));
        else if (!name_greenlet(n)) {
          n.function = label(fmt::format("greenlet {}: (thread {})", s.greenlet, t.tid));
          unnamed_greenlets_.insert(static_cast<uint32_t>(tree_.nodes.size()));
        }
      });
      if (greenlet && !unnamed_greenlets_.empty() && unnamed_greenlets_.count(parent) && name_greenlet(tree_.nodes[parent]))
        unnamed_greenlets_.erase(parent);
    }
    for (uint32_t frame : frames) {
      const auto& f = rec_.frames[frame];
      int32_t line = opt.lines ? f.line : f.first_line;
      parent = child(parent, {parent, NodeKind::kFrame, f.function, f.file, line}, [&](Node& n) {
        n.function = rec_.str(f.function);
        n.file = rec_.str(f.file);
        n.line = line;
      });
    }
    if (leaves & 1)
      parent = child(parent, {parent, NodeKind::kSwitchedOut, 0, 0, 0}, [&](Node& n) { n.function = "<switched out>"; });
    if (leaves & 2)  // the recorder was late: this time is known to be under the frames above, no deeper
      parent = child(parent, {parent, NodeKind::kGap, 0, 0, 0}, [&](Node& n) { n.function = "<not sampled>"; });
    if (offcpu == UINT32_MAX)
      parent = child(parent, {parent, NodeKind::kWaitingForCpu, 0, 0, 0}, [&](Node& n) { n.function = kWaitingForCpuLabel; });
    else if (offcpu)
      parent = child(parent, {parent, NodeKind::kOffCpuReason, offcpu, 0, 0},
                     [&](Node& n) { n.function = label(offcpu_reason_label(rec_, offcpu)); });
    return parent;
  }

  template <class Init>
  uint32_t child(uint32_t parent, const Key& key, Init init) {
    auto [it, inserted] = index_.try_emplace(key, static_cast<uint32_t>(tree_.nodes.size()));
    if (inserted) {
      Node n;
      n.kind = key.kind;
      n.parent = parent;
      init(n);
      budget_used_ += kNodeCost + n.function.size() + n.file.size();
      if (rec_.memory_limit && budget_used_ > rec_.memory_limit)
        throw UserError(fmt::format("the call tree of this recording would take more memory than its file size "
                                    "justifies ({} nodes so far): a corrupt or hostile file",
                                    tree_.nodes.size()));
      tree_.nodes.push_back(std::move(n));
      tree_.nodes[parent].children.push_back(it->second);
      // Skew-binary jump pointer: to the grandparent's jump when the parent's two jumps are of
      // equal length, else to the parent; any ancestor is then O(log depth) jumps away.
      uint32_t pj = jump_[parent];
      bool skip = parent != 0 && depth_[parent] - depth_[pj] == depth_[pj] - depth_[jump_[pj]];
      depth_.push_back(depth_[parent] + 1);
      jump_.push_back(skip ? jump_[pj] : parent);
    }
    return it->second;
  }
  std::string_view label(std::string s) { return tree_.labels.emplace_back(std::move(s)); }

  const snapshot::Recording& rec_;
  Tree& tree_;
  const Selection& sel_;
  uint64_t budget_used_;
  std::unordered_map<Key, uint32_t, KeyHash> index_;
  std::unordered_map<PathKey, uint32_t, PathKeyHash> leaves_;
  std::vector<uint32_t> depth_, jump_;
  std::unordered_set<uint32_t> unnamed_greenlets_;  // greenlet roots no sample with a frame has named yet
};

// Per-sample CPU time is not capped at the sample's wall time: the kernel advances a running
// thread's CPU time in scheduler ticks (4 ms at HZ=250), so one sample reads 8 ms and the next
// 12 ms of a 10 ms interval. Capping each would lose the excess; summed raw, they are exact.
// Off-CPU time likewise is summed as wall - cpu - run queue (negative for a sample is fine) and
// only a node's total is floored at zero.
double weight_of(const snapshot::Sample& s, Mode mode) {
  switch (mode) {
    case Mode::kWall: return static_cast<double>(s.wall_us);
    case Mode::kCpu: return static_cast<double>(s.cpu_us);
    case Mode::kOffCpu: return static_cast<double>(blocked_us(s));  // the rest: OffCpuLeaf::kWaitingForCpu
  }
  return 0;
}

void add_observations(Node& n, const snapshot::Sample& s) {
  n.wall += static_cast<double>(s.wall_us);
  n.cpu += static_cast<double>(s.cpu_us);
  if (s.flags & snapshot::kGilHeld) n.gil += static_cast<double>(s.wall_us);
  n.samples += s.count;
}

// Every sample was added to its leaf only; a node's observations are those of its whole subtree.
// Children come after their parent in `nodes`, so one backward pass sums them up.
void sum_subtrees(Tree& tree) {
  for (size_t i = tree.nodes.size(); i-- > 1;) {
    const Node& n = tree.nodes[i];
    Node& p = tree.nodes[n.parent];
    p.wall += n.wall;
    p.cpu += n.cpu;
    p.gil += n.gil;
    p.samples += n.samples;
  }
}

// Default: a node's total is the sum of the weights of the samples whose path contains it, i.e.
// the self weights of its subtree.
void estimate_default(const snapshot::Recording& rec, const std::vector<uint32_t>& samples, PathBuilder& paths,
                      Tree& tree) {
  for (uint32_t i : samples) {
    const auto& s = rec.samples[i];
    if (tree.options.mode != Mode::kOffCpu) {
      Node& leaf = tree.nodes[paths.leaf_of(s)];
      leaf.self += weight_of(s, tree.options.mode);
      add_observations(leaf, s);
      continue;
    }
    uint32_t blocked = paths.leaf_of(s, s.offcpu_reason ? OffCpuLeaf::kReason : OffCpuLeaf::kNone);
    uint32_t queued = s.runqueue_us ? paths.leaf_of(s, OffCpuLeaf::kWaitingForCpu) : blocked;
    tree.nodes[blocked].self += weight_of(s, Mode::kOffCpu);
    if (queued != blocked) tree.nodes[queued].self += static_cast<double>(s.runqueue_us);
    // The sample itself is counted once: where most of its off-CPU time went.
    add_observations(tree.nodes[s.runqueue_us > blocked_us(s) ? queued : blocked], s);
  }
  for (auto& n : tree.nodes) n.total = n.self;
  for (size_t i = tree.nodes.size(); i-- > 1;) tree.nodes[tree.nodes[i].parent].total += tree.nodes[i].total;
  sum_subtrees(tree);
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
//
// A run of a node opens at one snapshot's time and closes at a later one's; its duration is
// close - open. From one snapshot to the next only the nodes below the two paths' common ancestor
// open or close, and they do so together at the same time, so "add t to every node on the path
// from a leaf up to an ancestor" is recorded at the two ends (+t at the leaf, -t at the ancestor)
// and summed over subtrees at the end: each snapshot costs O(log depth), not O(depth).
//
// Each sequence keeps only its previous snapshot, so the snapshots may come interleaved, as a
// file holds them: what the estimator holds grows with the segments and the tree, not with the
// samples.
// The sequence a snapshot belongs to: its segment, or its thread outside segments.
uint64_t sequence_key(const snapshot::Sample& s) {
  return s.segment ? uint64_t(s.segment) : (uint64_t(1) << 32) | s.thread;
}

class SnapshotRuns {
 public:
  SnapshotRuns(PathBuilder& paths, Tree& tree) : paths_(paths), tree_(tree) {}

  // Adds the next snapshot of its sequence; false when it comes before that sequence's previous
  // one (its number or, unnumbered, its time is lower): then the snapshots must be sorted first.
  bool add(const snapshot::Sample& s) {
    uint64_t key = sequence_key(s);
    if (key != last_key_ || !last_) {
      last_ = &sequences_[key];
      last_key_ = key;
    }
    Sequence& q = *last_;
    bool in_order = !q.started || !dump_comes_before(s.sequence, s.time_us, q.sequence, q.time);
    int64_t next = s.sequence >= 0 ? s.sequence : (q.started ? q.number + 1 : 0);
    bool consecutive = q.started && next == q.number + 1;
    uint32_t leaf = paths_.leaf_of(s);
    uint32_t common = consecutive ? paths_.common_ancestor(q.previous, leaf) : 0;
    if (q.started) add_path(q.previous, common, q.time);  // runs that end: closed at the previous snapshot
    add_path(leaf, common, -s.time_us);                   // runs that start here
    add_observations(tree_.nodes[leaf], s);
    q = {true, next, s.sequence, leaf, s.time_us};
    return in_order;
  }

  // Closes every sequence's open runs at its last snapshot and sets the nodes' totals.
  void finish() {
    for (const auto& [key, q] : sequences_) add_path(q.previous, 0, q.time);
    delta_.resize(tree_.nodes.size(), 0);
    for (size_t i = tree_.nodes.size(); i-- > 1;) delta_[tree_.nodes[i].parent] += delta_[i];
    sum_subtrees(tree_);
    for (uint32_t n = 1; n < tree_.nodes.size(); ++n) tree_.nodes[n].total = static_cast<double>(delta_[n]);
    for (uint32_t c : tree_.nodes[0].children) tree_.nodes[0].total += static_cast<double>(delta_[c]);
    for (auto& n : tree_.nodes) {
      double children = 0;
      for (uint32_t c : n.children) children += tree_.nodes[c].total;
      n.self = n.total - children;
    }
  }

 private:
  struct Sequence {
    bool started = false;
    int64_t number = 0;     // the previous snapshot's number in its run (its own, or counted)
    int64_t sequence = -1;  // the previous snapshot's own number, -1 if none
    uint32_t previous = 0;  // its leaf
    int64_t time = 0;
  };
  // +t on every node from `leaf` up to, not including, `stop`. Exact: times are within ±2^50 µs,
  // so 128 bits hold any sum of them.
  void add_path(uint32_t leaf, uint32_t stop, int64_t t) {
    if (leaf == stop) return;
    delta_.resize(tree_.nodes.size(), 0);
    delta_[leaf] += t;
    delta_[stop] -= t;
  }

  PathBuilder& paths_;
  Tree& tree_;
  std::vector<__int128> delta_;
  std::unordered_map<uint64_t, Sequence> sequences_;
  uint64_t last_key_ = 0;
  Sequence* last_ = nullptr;  // sequences_[last_key_] (unordered_map keeps its elements in place)
};

// Sorted by sequence, then fed to the runs.
void add_sorted(std::vector<const snapshot::Sample*>& order, PathBuilder& paths, Tree& tree) {
  std::stable_sort(order.begin(), order.end(), [](const snapshot::Sample* a, const snapshot::Sample* b) {
    uint64_t ka = sequence_key(*a), kb = sequence_key(*b);
    if (ka != kb) return ka < kb;
    return dump_comes_before(a->sequence, a->time_us, b->sequence, b->time_us);
  });
  SnapshotRuns runs(paths, tree);
  for (const auto* s : order) runs.add(*s);
  runs.finish();
}

// A recording read merged holds no sample's time: its file's samples are read again one by one,
// each added as it comes. A recorder writes each sequence in time order; a file that does not
// (an import of dumps out of order) is read a third time, its selected samples held and sorted.
void estimate_skywalking(const snapshot::Recording& rec, const std::vector<uint32_t>& samples, const Selection& sel,
                         Tree& tree) {
  if (!rec.merged) {
    std::vector<const snapshot::Sample*> order;
    order.reserve(samples.size());
    for (uint32_t i : samples) order.push_back(&rec.samples[i]);
    PathBuilder paths(rec, tree, sel);
    add_sorted(order, paths, tree);
    return;
  }
  if (rec.path.empty())
    throw std::logic_error("the SkyWalking estimator needs each sample's time: a recording read merged from memory");
  const snapshot::SampleSource source = snapshot::samples_in_file(rec);
  const SampleFilter filter(rec, sel);
  const Tree empty = tree;
  {
    PathBuilder paths(rec, tree, sel);
    SnapshotRuns runs(paths, tree);
    bool in_order = true;
    source([&](const snapshot::Sample& s) {
      if (filter.accepts(s)) in_order = runs.add(s) && in_order;
    });
    if (in_order) {
      runs.finish();
      return;
    }
  }
  tree = empty;
  const std::vector<snapshot::Sample> held =
      snapshot::hold_samples(rec, source, [&](const snapshot::Sample& s) { return filter.accepts(s); });
  std::vector<const snapshot::Sample*> order;
  order.reserve(held.size());
  for (const auto& s : held) order.push_back(&s);
  PathBuilder paths(rec, tree, sel);
  add_sorted(order, paths, tree);
}

}  // namespace

snapshot::ReadOptions read_options_for(const TreeOptions& options, const std::string& path) {
  snapshot::ReadOptions r;
  // (The SkyWalking estimator reads the samples again, from a file that can be: estimate_skywalking.)
  r.merge_alike = options.estimator == Estimator::kDefault || snapshot::rereadable(path);
  return r;
}

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
  if (options.estimator == Estimator::kDefault) {
    PathBuilder paths(rec, tree, sel);
    estimate_default(rec, samples, paths, tree);
  } else {
    estimate_skywalking(rec, samples, sel, tree);
  }
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

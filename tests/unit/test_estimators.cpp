// The two estimators of DESIGN.md "Time attribution", on hand-computed cases.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "recording_builder.h"
#include "swprof/analyze.h"

using namespace swprof;

namespace {

const analyze::Node* find(const analyze::Tree& t, std::vector<std::string> path) {
  uint32_t at = 0;
  for (const auto& name : path) {
    bool found = false;
    for (uint32_t c : t.nodes[at].children)
      if (t.nodes[c].function == name) {
        at = c;
        found = true;
        break;
      }
    if (!found) return nullptr;
  }
  return &t.nodes[at];
}

analyze::Tree tree_of(test::RecordingBuilder& b, analyze::Estimator e, analyze::Mode m = analyze::Mode::kWall) {
  analyze::TreeOptions o;
  o.estimator = e;
  o.mode = m;
  return analyze::build_tree(b.rec, b.all(), {}, o);
}

// The blog example: 10 dumps 10 ms apart; the first 4 in methodC, the last 6 in methodD.
test::RecordingBuilder blog_example() {
  test::RecordingBuilder b;
  uint32_t seg = b.segment(0, 90000);
  for (int i = 0; i < 10; ++i)
    b.sample(i * 10000, {"methodA", "methodB", i < 4 ? "methodC" : "methodD"}, 10000, seg);
  return b;
}

}  // namespace

TEST_CASE("default estimator: 4 dumps in methodC and 6 in methodD count 40 and 60 ms", "[estimator]") {
  auto b = blog_example();
  auto t = tree_of(b, analyze::Estimator::kDefault);
  auto* B = find(t, {"methodA", "methodB"});
  auto* C = find(t, {"methodA", "methodB", "methodC"});
  auto* D = find(t, {"methodA", "methodB", "methodD"});
  REQUIRE((B && C && D));
  CHECK(C->total == 40000);
  CHECK(D->total == 60000);
  CHECK(B->total == 100000);
  CHECK(B->self == 0);
  CHECK(C->self == 40000);
  CHECK(C->samples == 4);
}

TEST_CASE("skywalking estimator: the same dumps give C = 30, D = 50, B = 90 with self 10", "[estimator]") {
  auto b = blog_example();
  auto t = tree_of(b, analyze::Estimator::kSkyWalking);
  auto* B = find(t, {"methodA", "methodB"});
  auto* C = find(t, {"methodA", "methodB", "methodC"});
  auto* D = find(t, {"methodA", "methodB", "methodD"});
  REQUIRE((B && C && D));
  CHECK(C->total == 30000);
  CHECK(D->total == 50000);
  CHECK(B->total == 90000);
  CHECK(B->self == 10000);
  CHECK(C->samples == 4);
  CHECK(D->samples == 6);
  CHECK(B->samples == 10);
}

TEST_CASE("skywalking estimator: a gap in the sequence splits a run", "[estimator]") {
  // X in dumps 0,1,2 and 5,6 (t = 0..60 ms, 10 ms apart); Y in 3,4.
  test::RecordingBuilder b;
  uint32_t seg = b.segment(0, 60000);
  for (int i = 0; i < 7; ++i) b.sample(i * 10000, {"root", (i == 3 || i == 4) ? "Y" : "X"}, 10000, seg);
  auto t = tree_of(b, analyze::Estimator::kSkyWalking);
  CHECK(find(t, {"root", "X"})->total == (20000 - 0) + (60000 - 50000));
  CHECK(find(t, {"root", "Y"})->total == 10000);
  CHECK(find(t, {"root"})->total == 60000);
  CHECK(find(t, {"root"})->self == 60000 - 30000 - 10000);
}

TEST_CASE("a node seen in a single dump lasts 0 ms under skywalking", "[estimator]") {
  test::RecordingBuilder b;
  uint32_t seg = b.segment(0, 20000);
  b.sample(0, {"root", "a"}, 10000, seg);
  b.sample(10000, {"root", "b"}, 10000, seg);
  b.sample(20000, {"root", "a"}, 10000, seg);
  auto t = tree_of(b, analyze::Estimator::kSkyWalking);
  CHECK(find(t, {"root", "a"})->total == 0);
  CHECK(find(t, {"root", "a"})->samples == 2);
  CHECK(find(t, {"root"})->total == 20000);
}

TEST_CASE("the same function under two parents is two nodes", "[estimator]") {
  test::RecordingBuilder b;
  for (int i = 0; i < 3; ++i) b.sample(i * 10000, {"main", "load", "parse"});
  for (int i = 3; i < 5; ++i) b.sample(i * 10000, {"main", "save", "parse"});
  for (auto e : {analyze::Estimator::kDefault, analyze::Estimator::kSkyWalking}) {
    auto t = tree_of(b, e);
    auto* under_load = find(t, {"main", "load", "parse"});
    auto* under_save = find(t, {"main", "save", "parse"});
    REQUIRE((under_load && under_save));
    CHECK(under_load != under_save);
    CHECK(under_load->samples == 3);
    CHECK(under_save->samples == 2);
  }
}

TEST_CASE("recursion is not folded: each depth is its own node", "[estimator]") {
  test::RecordingBuilder b;
  b.sample(0, {"fib", "fib", "fib"});
  b.sample(10000, {"fib", "fib"});
  auto t = tree_of(b, analyze::Estimator::kDefault);
  CHECK(find(t, {"fib"})->total == 20000);
  CHECK(find(t, {"fib", "fib"})->total == 20000);
  CHECK(find(t, {"fib", "fib"})->self == 10000);
  CHECK(find(t, {"fib", "fib", "fib"})->total == 10000);
}

TEST_CASE("several segments merged: skywalking runs never span two segments", "[estimator]") {
  // Two calls, each 3 dumps of handler -> work, 10 ms apart; the second starts 1 s later.
  test::RecordingBuilder b;
  uint32_t s1 = b.segment(0, 20000), s2 = b.segment(1000000, 1020000);
  for (int i = 0; i < 3; ++i) b.sample(i * 10000, {"handler", "work"}, 10000, s1);
  for (int i = 0; i < 3; ++i) b.sample(1000000 + i * 10000, {"handler", "work"}, 10000, s2);
  auto sw = tree_of(b, analyze::Estimator::kSkyWalking);
  CHECK(find(sw, {"handler", "work"})->total == 2 * 20000);
  CHECK(find(sw, {"handler"})->samples == 6);
  auto def = tree_of(b, analyze::Estimator::kDefault);
  CHECK(find(def, {"handler", "work"})->total == 6 * 10000);
}

TEST_CASE("a late sample weighs the time since the thread's previous sample", "[estimator]") {
  test::RecordingBuilder b;
  b.sample(10000, {"a"}, 10000);
  b.sample(45000, {"b"}, 35000);  // three ticks late
  auto t = tree_of(b, analyze::Estimator::kDefault);
  CHECK(find(t, {"b"})->total == 35000);
  CHECK(t.root().total == 45000);
}

TEST_CASE("modes: wall weighs elapsed time, cpu the CPU time, offcpu the rest", "[estimator]") {
  test::RecordingBuilder b;
  b.sample(10000, {"spin"}, 10000, 0, 9500);
  b.sample(20000, {"sleep"}, 10000, 0, 100);
  auto wall = tree_of(b, analyze::Estimator::kDefault, analyze::Mode::kWall);
  auto cpu = tree_of(b, analyze::Estimator::kDefault, analyze::Mode::kCpu);
  auto off = tree_of(b, analyze::Estimator::kDefault, analyze::Mode::kOffCpu);
  CHECK(find(wall, {"spin"})->total == 10000);
  CHECK(find(cpu, {"spin"})->total == 9500);
  CHECK(find(cpu, {"sleep"})->total == 100);
  CHECK(find(off, {"spin"})->total == 500);
  CHECK(find(off, {"sleep"})->total == 9900);
  CHECK(find(wall, {"sleep"})->cpu == 100);
}

TEST_CASE("offcpu: blocked time under a leaf naming why, run-queue time under <waiting for a CPU>", "[estimator]") {
  test::RecordingBuilder b;
  b.sample(10000, {"serve", "recv"}, 10000, 0, 1000);
  b.rec.samples.back().offcpu_reason = b.str("recvfrom socket 127.0.0.1:5432") + 1;
  b.rec.samples.back().runqueue_us = 500;  // blocked 8500
  b.sample(20000, {"serve", "spin"}, 10000, 0, 7000);
  b.rec.samples.back().runqueue_us = 2900;  // running: blocked 100, no reason
  auto off = tree_of(b, analyze::Estimator::kDefault, analyze::Mode::kOffCpu);
  const auto* reason = find(off, {"serve", "recv", "<off-CPU: recvfrom socket 127.0.0.1:5432>"});
  REQUIRE(reason);
  CHECK(reason->kind == analyze::NodeKind::kOffCpuReason);
  CHECK(reason->total == 8500);
  CHECK(reason->samples == 1);
  CHECK(find(off, {"serve", "recv", "<waiting for a CPU>"})->total == 500);
  CHECK(find(off, {"serve", "recv"})->total == 9000);
  CHECK(find(off, {"serve", "spin"})->self == 100);
  const auto* queued = find(off, {"serve", "spin", "<waiting for a CPU>"});
  REQUIRE(queued);
  CHECK(queued->kind == analyze::NodeKind::kWaitingForCpu);
  CHECK(queued->total == 2900);
  CHECK(queued->samples == 1);  // the sample counts once, where most of its off-CPU time went
  CHECK(find(off, {"serve"})->samples == 2);
  // Other modes show no off-CPU leaves.
  auto wall = tree_of(b, analyze::Estimator::kDefault, analyze::Mode::kWall);
  CHECK(find(wall, {"serve", "recv"})->children.empty());
}

TEST_CASE("analysis starts at a segment's entry frame unless the full stack is asked for", "[estimator]") {
  test::RecordingBuilder b;
  uint32_t seg = b.segment(0, 10000, 0, /*root_depth=*/2);
  b.sample(0, {"serve_forever", "handle", "do_POST", "work"}, 10000, seg);
  auto t = tree_of(b, analyze::Estimator::kDefault);
  CHECK(find(t, {"do_POST", "work"}) != nullptr);
  analyze::Selection full;
  full.full_stack = true;
  auto f = analyze::build_tree(b.rec, b.all(), full, {});
  CHECK(find(f, {"serve_forever", "handle", "do_POST", "work"}) != nullptr);
}

// --- the estimators against a plain reference ---------------------------------------------------
//
// build_tree shares each path between the samples of one stack and sums bottom-up (O(samples +
// nodes)); its SkyWalking runs open and close only below two snapshots' common ancestor. The
// reference below walks every frame of every sample, as the definitions say, and both must agree
// on random recordings: threads, segments with entry depths, imported sequences with gaps.
namespace {

using Path = std::vector<std::string>;
struct Expected {
  double total = 0, self = 0, wall = 0, cpu = 0;
  uint64_t samples = 0;
};

std::map<Path, Expected> reference(const snapshot::Recording& rec, const analyze::TreeOptions& o, bool full_stack) {
  auto path_of = [&](const snapshot::Sample& s) {
    Path p;
    if (o.by_thread) p.push_back("thread " + std::to_string(rec.threads[s.thread].tid));
    auto frames = rec.stack(s.stack);
    size_t from = 0;
    if (auto* seg = rec.segment(s.segment); seg && !full_stack) from = std::min<size_t>(seg->root_depth, frames.size());
    for (size_t i = from; i < frames.size(); ++i) p.push_back(rec.str(rec.frames[frames[i]].function));
    return p;
  };
  std::map<Path, Expected> out;
  std::vector<uint32_t> order(rec.samples.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  if (o.estimator == analyze::Estimator::kDefault) {
    for (const auto& s : rec.samples) {
      Path p = path_of(s);
      double w = o.mode == analyze::Mode::kWall ? double(s.wall_us) : double(s.cpu_us);
      for (size_t k = 1; k <= p.size(); ++k) {
        auto& e = out[Path(p.begin(), p.begin() + k)];
        e.total += w;
        e.wall += double(s.wall_us);
        e.cpu += double(s.cpu_us);
        ++e.samples;
        if (k == p.size()) e.self += w;
      }
    }
    return out;
  }
  auto group = [&](uint32_t i) {
    const auto& s = rec.samples[i];
    return s.segment ? uint64_t(s.segment) : (uint64_t(1) << 32) | s.thread;
  };
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (group(a) != group(b)) return group(a) < group(b);
    const auto &x = rec.samples[a], &y = rec.samples[b];
    if (x.sequence >= 0 && y.sequence >= 0) return x.sequence < y.sequence;
    return x.time_us < y.time_us;
  });
  struct Run {
    uint64_t group = ~0ull;
    int64_t last_seq = -2, first = 0, last = 0;
  };
  std::map<Path, Run> runs;
  auto close = [&](const Path& p, Run& r) {
    if (r.last_seq >= 0) out[p].total += double(r.last - r.first);
  };
  uint64_t g_prev = ~0ull;
  int64_t seq = 0;
  for (uint32_t i : order) {
    const auto& s = rec.samples[i];
    uint64_t g = group(i);
    seq = s.sequence >= 0 ? s.sequence : (g == g_prev ? seq + 1 : 0);
    g_prev = g;
    Path p = path_of(s);
    for (size_t k = 1; k <= p.size(); ++k) {
      Path sub(p.begin(), p.begin() + k);
      auto& e = out[sub];
      e.wall += double(s.wall_us);
      e.cpu += double(s.cpu_us);
      ++e.samples;
      Run& r = runs[sub];
      if (r.group == g && r.last_seq == seq - 1) {
        r.last = s.time_us;
      } else {
        close(sub, r);
        r.first = r.last = s.time_us;
      }
      r.group = g;
      r.last_seq = seq;
    }
  }
  for (auto& [p, r] : runs) close(p, r);
  for (auto& [p, e] : out) {
    double children = 0;
    for (auto& [q, f] : out)
      if (q.size() == p.size() + 1 && std::equal(p.begin(), p.end(), q.begin())) children += f.total;
    e.self = e.total - children;
  }
  return out;
}

std::map<Path, Expected> actual(const analyze::Tree& t) {
  std::map<Path, Expected> out;
  std::vector<std::pair<uint32_t, Path>> todo{{0, {}}};
  while (!todo.empty()) {
    auto [i, p] = todo.back();
    todo.pop_back();
    for (uint32_t c : t.nodes[i].children) {
      Path q = p;
      const auto& n = t.nodes[c];
      std::string name(n.function);
      if (n.kind == analyze::NodeKind::kThread) name = name.substr(0, name.find(" ("));
      q.push_back(name);
      out[q] = {n.total, n.self, n.wall, n.cpu, n.samples};
      todo.push_back({c, q});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("both estimators agree with a frame-by-frame reference on random recordings", "[estimator]") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 60; ++trial) {
    test::RecordingBuilder b;
    b.rec.threads.push_back({2000, "worker"});
    bool segmented = trial % 2, imported = trial % 4 == 1;
    std::vector<uint32_t> segs;
    if (segmented)
      for (int k = 0; k < 3; ++k) segs.push_back(b.segment(0, 1000000, k % 2, rng() % 3));
    const char* names[] = {"a", "b", "c", "d"};
    int64_t time = 0, sequence = 0;
    for (int i = 0; i < 80; ++i) {
      Path p;
      size_t depth = 1 + rng() % 7;
      for (size_t k = 0; k < depth; ++k) p.push_back(names[(k == 0 ? 0 : rng() % 4)]);
      time += 5000 + rng() % 10000;
      uint32_t seg = segmented ? segs[rng() % segs.size()] : 0;
      uint32_t thread = segmented ? b.rec.segments[seg - 1].thread : rng() % 2;
      b.sample(time, p, 5000 + rng() % 10000, seg, rng() % 9000, 0, thread);
      // Imported: unique increasing sequence numbers, some with gaps.
      if (imported) b.rec.samples.back().sequence = sequence += 1 + (rng() % 4 == 0 ? 3 : 0);
    }
    for (auto e : {analyze::Estimator::kDefault, analyze::Estimator::kSkyWalking})
      for (auto m : {analyze::Mode::kWall, analyze::Mode::kCpu})
        for (bool by_thread : {false, true})
          for (bool full : {false, true}) {
            if (e == analyze::Estimator::kSkyWalking && m != analyze::Mode::kWall) continue;
            analyze::TreeOptions o;
            o.estimator = e;
            o.mode = m;
            o.by_thread = by_thread;
            analyze::Selection sel;
            sel.full_stack = full;
            auto want = reference(b.rec, o, full);
            auto got = actual(analyze::build_tree(b.rec, b.all(), sel, o));
            INFO("trial " << trial << " estimator " << int(e) << " mode " << int(m) << " by_thread " << by_thread
                          << " full " << full);
            REQUIRE(got.size() == want.size());
            for (const auto& [path, w] : want) {
              REQUIRE(got.count(path));
              const auto& g = got[path];
              CHECK(g.total == Approx(w.total).margin(1e-6));
              CHECK(g.self == Approx(w.self).margin(1e-6));
              CHECK(g.wall == Approx(w.wall).margin(1e-6));
              CHECK(g.cpu == Approx(w.cpu).margin(1e-6));
              CHECK(g.samples == w.samples);
            }
          }
  }
}

TEST_CASE("a call tree may not take more memory than its file's size justifies", "[estimator]") {
  test::RecordingBuilder b;
  std::vector<std::string> deep(3000, "recurse");
  for (int i = 0; i < 50; ++i) {
    b.rec.threads.push_back({3000 + i, ""});
    b.sample(i * 10000, deep, 10000, 0, 0, 0, static_cast<uint32_t>(i + 1));
  }
  analyze::TreeOptions o;
  o.by_thread = true;  // 50 threads x 3000 frames: 150,000 nodes
  CHECK(analyze::build_tree(b.rec, b.all(), {}, o).nodes.size() == 1 + 50 + 150000);
  b.rec.memory_limit = 4 << 20;  // as if read from a file of a few kilobytes
  CHECK_THROWS_WITH(analyze::build_tree(b.rec, b.all(), {}, o), Catch::Contains("more memory than its file size justifies"));
}

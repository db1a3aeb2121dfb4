// The two estimators of DESIGN.md "Time attribution", on hand-computed cases.
#include <catch2/catch.hpp>

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

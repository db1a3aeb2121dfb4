// swprof top's numbers (src/live/top_model.h) on hand-computed windows: frames interned by a real
// snapshot::Writer, as the recorder interns them.
#include <unistd.h>

#include <cstdio>
#include <string>

#include <catch2/catch.hpp>

#include "live/top_model.h"
#include "swprof.pb.h"

using namespace swprof;
using live::SortKey;

namespace {

struct Fixture {
  std::string path = "/tmp/swprof-top-model-" + std::to_string(getpid()) + ".swp";
  snapshot::Writer writer{path, pb::Header()};
  live::TopModel model;
  ~Fixture() { std::remove(path.c_str()); }

  uint32_t frame(const std::string& function, int line, int first_line = 1, const std::string& file = "app.py") {
    snapshot::Frame f;
    f.function = writer.intern_string(function);
    f.file = writer.intern_string(file);
    f.line = line;
    f.first_line = first_line;
    return writer.intern_frame(f);
  }
  // A sample of `wall_us` on thread `tid`: `cpu_us` on a CPU, holding the GIL or not.
  void add(std::vector<uint32_t> stack, int64_t wall_us, int64_t cpu_us, bool gil, int64_t tid = 1,
           uint32_t extra_flags = 0) {
    snapshot::Sample s;
    s.wall_us = wall_us;
    s.cpu_us = cpu_us;
    s.flags = snapshot::kGilKnown | (gil ? snapshot::kGilHeld : 0) | (cpu_us ? snapshot::kOnCpu : 0) | extra_flags;
    model.add(s, stack, tid, tid == 1 ? "MainThread" : "worker", writer);
  }
};

const live::TopRow& row(const std::vector<live::TopRow>& rows, const std::string& function, int line = -1) {
  for (const auto& r : rows)
    if (r.function == function && (line < 0 || r.line == line)) return r;
  FAIL("no row for " << function);
  return rows.front();
}

}  // namespace

TEST_CASE("a window of 3 samples in spin and 1 in parse: own and total shares of the sampled time") {
  Fixture f;
  uint32_t main = f.frame("main", 10), spin = f.frame("spin", 3), parse = f.frame("parse", 7);
  for (int i = 0; i < 3; ++i) f.add({main, spin}, 10000, 10000, true);
  f.add({main, parse}, 10000, 5000, false);
  f.model.close_window(40000);
  auto rows = f.model.rows(false, false, 0, SortKey::kOwn, 10);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].function == "spin");
  CHECK(rows[0].own_pct == Approx(75.0));
  CHECK(row(rows, "parse").own_pct == Approx(25.0));
  CHECK(row(rows, "main").own_pct == Approx(0.0));
  CHECK(row(rows, "main").total_pct == Approx(100.0));
  // CPU% and GIL% are of the window's 40 ms: spin ran 30 ms on a CPU holding the GIL.
  CHECK(row(rows, "spin").cpu_pct == Approx(75.0));
  CHECK(row(rows, "spin").gil_pct == Approx(75.0));
  CHECK(row(rows, "parse").cpu_pct == Approx(12.5));
  CHECK(row(rows, "parse").gil_pct == Approx(0.0));
  CHECK(row(rows, "main").total_s == Approx(0.04));
}

TEST_CASE("a recursive function counts once in a sample's total") {
  Fixture f;
  uint32_t walk = f.frame("walk", 5);
  f.add({walk, walk, walk}, 10000, 10000, true);
  f.model.close_window(10000);
  auto rows = f.model.rows(false, false, 0, SortKey::kTotal, 10);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].total_pct == Approx(100.0));
  CHECK(rows[0].own_pct == Approx(100.0));
}

TEST_CASE("idle samples (no CPU, not running) are hidden unless asked for") {
  Fixture f;
  uint32_t spin = f.frame("spin", 3), wait = f.frame("wait", 9);
  f.add({spin}, 10000, 10000, true, 1);
  f.add({wait}, 10000, 0, false, 2);
  f.model.close_window(10000);
  auto busy = f.model.rows(false, false, 0, SortKey::kOwn, 10);
  REQUIRE(busy.size() == 1);
  CHECK(busy[0].function == "spin");
  CHECK(busy[0].own_pct == Approx(100.0));
  auto all = f.model.rows(false, true, 0, SortKey::kOwn, 10);
  REQUIRE(all.size() == 2);
  CHECK(row(all, "spin").own_pct == Approx(50.0));
  CHECK(row(all, "wait").own_pct == Approx(50.0));
}

TEST_CASE("following a thread shows its samples alone") {
  Fixture f;
  uint32_t a = f.frame("in_a", 1), b = f.frame("in_b", 2);
  f.add({a}, 10000, 10000, true, 1);
  f.add({b}, 10000, 10000, false, 2);
  f.add({b}, 10000, 10000, false, 2);
  f.model.close_window(10000);
  auto threads = f.model.threads();
  REQUIRE(threads.size() == 2);
  CHECK(threads[1].tid == 2);
  CHECK(threads[1].name == "worker");
  auto rows = f.model.rows(false, false, 2, SortKey::kOwn, 10);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].function == "in_b");
  CHECK(rows[0].own_pct == Approx(100.0));
  CHECK(f.model.window_samples(2) == 2);
  CHECK(f.model.window_samples(0) == 3);
}

TEST_CASE("since start adds up across windows; each window's shares are its own") {
  Fixture f;
  uint32_t first = f.frame("first", 1), second = f.frame("second", 2);
  f.add({first}, 10000, 10000, true);
  f.model.close_window(10000);
  f.add({second}, 10000, 10000, true);
  f.add({second}, 10000, 10000, true);
  f.model.close_window(20000);
  auto rows = f.model.rows(false, false, 0, SortKey::kOwn, 10);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].function == "second");
  CHECK(rows[0].own_pct == Approx(100.0));
  CHECK(row(rows, "first").own_pct == Approx(0.0));
  CHECK(row(rows, "first").own_s == Approx(0.01));
  auto by_since = f.model.rows(false, false, 0, SortKey::kOwnSinceStart, 10);
  CHECK(by_since[0].function == "second");
  CHECK(by_since[0].own_s == Approx(0.02));
}

TEST_CASE("the line view splits a function by its executing line; the function view keeps its def line") {
  Fixture f;
  uint32_t l4 = f.frame("spin", 4, 2), l5 = f.frame("spin", 5, 2);
  f.add({l4}, 10000, 10000, true);
  f.add({l5}, 10000, 10000, true);
  f.add({l5}, 10000, 10000, true);
  f.model.close_window(30000);
  auto functions = f.model.rows(false, false, 0, SortKey::kOwn, 10);
  REQUIRE(functions.size() == 1);
  CHECK(functions[0].line == 2);
  auto lines = f.model.rows(true, false, 0, SortKey::kOwn, 10);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].line == 5);
  CHECK(lines[0].own_pct == Approx(200.0 / 3));
}

TEST_CASE("a late sample's gap is <not sampled> under the frames both sides shared") {
  Fixture f;
  uint32_t main = f.frame("main", 1);
  f.add({main}, 30000, 0, false, 1, snapshot::kGap);
  f.model.close_window(30000);
  auto rows = f.model.rows(false, true, 0, SortKey::kOwn, 10);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].function == "<not sampled>");
  CHECK(rows[0].own_pct == Approx(100.0));
  CHECK(row(rows, "main").total_pct == Approx(100.0));
}

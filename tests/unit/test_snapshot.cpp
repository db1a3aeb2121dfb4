// The snapshot file: round trip, truncation, corruption, validation.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "snapshot/format.h"
#include "swprof/common.h"
#include "swprof/snapshot.h"

using namespace swprof;

namespace {

std::string temp_path(const char* name) { return std::string("/tmp/swprof-unit-") + name + ".swp"; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

pb::Header header() {
  pb::Header h;
  h.set_format_version(snapshot::kFormatVersion);
  h.set_python_version("3.11.7");
  h.add_command("python3");
  h.add_command("app.py");
  h.set_pid(42);
  h.set_interval_us(10000);
  return h;
}

// Writes `chunks` chunks of 100 samples each, flushed one by one; returns the file's path.
std::string write_sample_file(const char* name, int chunks, bool finish = true) {
  std::string path = temp_path(name);
  snapshot::Writer w(path, header());
  uint32_t t = w.add_thread(1234, "MainThread");
  int64_t time = 0;
  for (int c = 0; c < chunks; ++c) {
    for (int i = 0; i < 100; ++i) {
      uint32_t fn = w.intern_string("func" + std::to_string(i % 7));
      uint32_t file = w.intern_string("/app/módulo_💥.py");
      uint32_t f1 = w.intern_frame({w.intern_string("main"), file, 10, 1});
      uint32_t f2 = w.intern_frame({fn, file, 20 + i % 7, 20});
      uint32_t frames[] = {f1, f2};
      snapshot::Sample s;
      time += 10000;
      s.time_us = time;
      s.thread = t;
      s.stack = w.intern_stack(frames);
      s.wall_us = 10000;
      s.cpu_us = 2500;
      s.flags = snapshot::kGilKnown | (i % 2 ? snapshot::kGilHeld : 0);
      w.add_sample(s);
    }
    w.maybe_flush(true);
  }
  if (finish) {
    pb::Footer f;
    f.set_duration_us(time);
    f.set_samples(w.samples_written());
    f.set_errors(3);
    w.finish(f);
  }
  return path;
}

}  // namespace

TEST_CASE("a snapshot round trip keeps every field", "[snapshot]") {
  std::string path = temp_path("roundtrip");
  {
    snapshot::Writer w(path, header());
    uint32_t t0 = w.add_thread(1234, "MainThread");
    uint32_t t1 = w.add_thread(1235, "");
    w.set_thread_name(t1, "worker-1");
    uint32_t file = w.intern_string("/app/unicodé_💥.py");
    uint32_t fa = w.intern_frame({w.intern_string("функция"), file, 12, 10});
    uint32_t fb = w.intern_frame({w.intern_string("Handler.do_POST"), file, 40, 38});
    uint32_t frames[] = {fb, fa};
    uint32_t stack = w.intern_stack(frames);
    CHECK(w.intern_stack(frames) == stack);
    snapshot::Segment seg;
    seg.id = 1;
    seg.thread = t1;
    seg.start_us = 5000;
    seg.root_depth = 1;
    seg.greenlet = 77;
    w.add_segment(seg);
    snapshot::Sample s{15000, t1, stack, 10000, 4000, snapshot::kGilKnown | snapshot::kGilHeld, 1, 3};
    w.add_sample(s);
    w.maybe_flush(true);
    w.end_segment(1, 15000);
    snapshot::Sample s2{25000, t0, stack, 9000, 0, snapshot::kSwitchedOut, 0, 0};
    w.add_sample(s2);
    snapshot::Sample s3{35000, t0, stack, 10000, 200, 0, 0, 0};
    s3.offcpu_reason = w.intern_string("recvfrom socket 127.0.0.1:5432") + 1;
    s3.runqueue_us = 1500;
    w.add_sample(s3);
    pb::Footer f;
    f.set_duration_us(30000);
    f.set_errors(2);
    f.set_segments_kept(1);
    w.finish(f);
  }
  auto r = snapshot::read_file(path);
  CHECK_FALSE(r.truncated);
  REQUIRE(r.footer);
  CHECK(r.footer->errors() == 2);
  CHECK(r.header.python_version() == "3.11.7");
  CHECK(r.header.command_size() == 2);
  REQUIRE(r.threads.size() == 2);
  CHECK(r.threads[1].name == "worker-1");
  CHECK(r.threads[1].tid == 1235);
  REQUIRE(r.samples.size() == 3);
  const auto& a = r.samples[0];
  CHECK(a.time_us == 15000);
  CHECK(a.wall_us == 10000);
  CHECK(a.cpu_us == 4000);
  CHECK(a.flags == (snapshot::kGilKnown | snapshot::kGilHeld));
  CHECK(a.segment == 1);
  CHECK(a.greenlet == 3);
  CHECK(r.samples[1].time_us == 25000);
  CHECK(r.samples[1].flags == snapshot::kSwitchedOut);
  CHECK(a.offcpu_reason == 0);
  CHECK(a.runqueue_us == 0);
  REQUIRE(r.samples[2].offcpu_reason > 0);
  CHECK(r.str(r.samples[2].offcpu_reason - 1) == "recvfrom socket 127.0.0.1:5432");
  CHECK(r.samples[2].runqueue_us == 1500);
  auto st = r.stack(a.stack);
  REQUIRE(st.size() == 2);
  CHECK(r.str(r.frames[st[1]].function) == "функция");
  CHECK(r.str(r.frames[st[1]].file) == "/app/unicodé_💥.py");
  CHECK(r.frames[st[1]].line == 12);
  CHECK(r.frames[st[1]].first_line == 10);
  REQUIRE(r.segments.size() == 1);
  CHECK(r.segments[0].start_us == 5000);
  CHECK(r.segments[0].end_us == 15000);
  CHECK(r.segments[0].root_depth == 1);
  CHECK(r.segments[0].greenlet == 77);
  std::remove(path.c_str());
}

TEST_CASE("chunks handed to the writer's thread faster than it writes reach the file whole and in order",
          "[snapshot]") {
  // More chunks than may wait at once, each of its own strings, frames and stacks: a chunk's
  // buffers reused after it was written must hold nothing of it, and the hand-over must wait
  // rather than drop or reorder.
  const std::string path = temp_path("handover");
  constexpr int kChunks = 60, kPerChunk = 500;
  snapshot::Writer w(path, header());
  const uint32_t thread = w.add_thread(7, "MainThread");
  for (int c = 0; c < kChunks; ++c) {
    const uint32_t file = w.intern_string("/app/chunk_" + std::to_string(c) + "_💥.py");
    for (int i = 0; i < kPerChunk; ++i) {
      const uint32_t frame = w.intern_frame({w.intern_string("f" + std::to_string(i % 13)), file, i % 13 + 1, 1});
      snapshot::Sample s;
      s.time_us = int64_t(c) * kPerChunk + i + 1;
      s.thread = thread;
      s.stack = w.intern_stack(std::span<const uint32_t>(&frame, 1));
      s.wall_us = 1;
      s.cpu_us = c;
      w.add_sample(s);
    }
    w.maybe_flush(true);
    CHECK(w.samples_in_file() <= w.samples_written());
  }
  pb::Footer f;
  f.set_samples(w.samples_written());
  REQUIRE(w.finish(f));
  CHECK(w.samples_in_file() == uint64_t(kChunks) * kPerChunk);
  CHECK(w.bytes_written() == slurp(path).size());
  auto r = snapshot::read_file(path);
  CHECK_FALSE(r.truncated);
  REQUIRE(r.samples.size() == size_t(kChunks) * kPerChunk);
  CHECK(r.stack_offsets.size() == size_t(kChunks) * 13 + 1);
  for (size_t n = 0; n < r.samples.size(); ++n) {
    const auto& s = r.samples[n];
    const int chunk = int(n / kPerChunk);
    REQUIRE(s.time_us == int64_t(n) + 1);
    REQUIRE(s.cpu_us == chunk);
    const auto stack = r.stack(s.stack);
    REQUIRE(stack.size() == 1);
    const auto& frame = r.frames[stack[0]];
    REQUIRE(r.str(frame.file) == "/app/chunk_" + std::to_string(chunk) + "_💥.py");
    REQUIRE(r.str(frame.function) == "f" + std::to_string(n % kPerChunk % 13));
  }
  std::remove(path.c_str());
}

TEST_CASE("a sample costs a few bytes: 1000 samples of repeated stacks stay under 8 bytes each", "[snapshot]") {
  auto path = write_sample_file("size", 10);
  auto size = slurp(path).size();
  CHECK(size < 8 * 1000);
  std::remove(path.c_str());
}

TEST_CASE("a file cut anywhere reads up to its last complete chunk and says it is truncated", "[snapshot]") {
  auto path = write_sample_file("cut", 5, /*finish=*/false);
  std::string data = slurp(path);
  auto full = snapshot::read_file(path);
  CHECK(full.truncated);  // no footer: the recorder never finished
  CHECK(full.samples.size() == 500);
  size_t last_samples = 0;
  for (size_t cut = sizeof snapshot::format::kMagic + 1; cut < data.size(); cut += 7) {
    std::string cut_path = temp_path("cut-part");
    spit(cut_path, data.substr(0, cut));
    try {
      auto r = snapshot::read_file(cut_path);
      CHECK(r.truncated);
      CHECK(r.samples.size() % 100 == 0);  // whole chunks only
      CHECK(r.samples.size() >= last_samples);
      last_samples = r.samples.size();
    } catch (const UserError& e) {
      // Only a file cut inside its header has nothing to read.
      CHECK(std::string(e.what()).find("truncated before its header") != std::string::npos);
    }
    std::remove(cut_path.c_str());
  }
  CHECK(last_samples == 400);
  std::remove(path.c_str());
}

TEST_CASE("corrupt bytes anywhere give one clear error or a valid prefix, never a crash", "[snapshot]") {
  auto path = write_sample_file("corrupt", 3);
  std::string data = slurp(path);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    std::string bad = data;
    size_t at = rng() % bad.size();
    bad[at] = static_cast<char>(bad[at] ^ (1 + rng() % 255));
    std::string bad_path = temp_path("corrupt-part");
    spit(bad_path, bad);
    try {
      auto r = snapshot::read_file(bad_path);
      CHECK(r.samples.size() <= 300);
    } catch (const UserError& e) {
      std::string msg = e.what();
      CHECK(msg.find(bad_path) != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
    }
    std::remove(bad_path.c_str());
  }
  std::remove(path.c_str());
}

TEST_CASE("a file that is not a snapshot, or from a newer swprof, is refused clearly", "[snapshot]") {
  std::string path = temp_path("notswp");
  spit(path, "#!/bin/sh\necho hello\n");
  CHECK_THROWS_WITH(snapshot::read_file(path), Catch::Contains("is not a swprof snapshot file"));
  spit(path, "");
  CHECK_THROWS_WITH(snapshot::read_file(path), Catch::Contains("is not a swprof snapshot file"));
  {
    auto h = header();
    h.set_format_version(snapshot::kFormatVersion + 1);
    snapshot::Writer w(path, h);
    w.finish({});
  }
  CHECK_THROWS_WITH(snapshot::read_file(path), Catch::Contains("newer than this swprof"));
  CHECK_THROWS_WITH(snapshot::read_file("/nonexistent/x.swp"), Catch::Contains("cannot open"));
  std::remove(path.c_str());
}

TEST_CASE("ids that point past what the file defined are rejected", "[snapshot]") {
  std::string path = temp_path("badids");
  {
    snapshot::Writer w(path, header());
    w.add_thread(1, "t");
    snapshot::Sample s;
    s.stack = 5;  // no stack 5 exists
    w.add_sample(s);
    w.finish({});
  }
  CHECK_THROWS_WITH(snapshot::read_file(path), Catch::Contains("unknown stack"));
  {
    snapshot::Writer w(path, header());
    uint32_t t = w.add_thread(1, "t");
    uint32_t f = w.intern_frame({w.intern_string("f"), w.intern_string("f.py"), 1, 1});
    snapshot::Sample s{0, t, w.intern_stack(std::span<const uint32_t>(&f, 1)), 10000, 0, 0, 0, 0};
    s.offcpu_reason = 1000;  // no string 999 exists
    w.add_sample(s);
    w.finish({});
  }
  CHECK_THROWS_WITH(snapshot::read_file(path), Catch::Contains("off-CPU reason names an unknown string"));
  std::remove(path.c_str());
}

// ReadOptions::merge_alike: a file read with alike samples merged gives every report that adds
// weights up exactly as read sample by sample, while holding only its distinct samples.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "swprof/analyze.h"
#include "swprof/export.h"
#include "swprof/snapshot.h"
#include "snapshot/format.h"

using namespace swprof;

namespace {

// Two threads, three functions, segments that open and close, gaps, switched-out greenlet
// samples, off-CPU reasons and run-queue time, drawn at random (seeded): what a recording with
// --entry --tasks on a busy machine holds.
std::string write_varied_file(int samples, bool varied, const std::string& test) {
  // (ctest runs the test cases in parallel: one file each.)
  std::string path = "/tmp/swprof-unit-merged-" + test + ".swp";
  pb::Header h;
  h.set_format_version(snapshot::kFormatVersion);
  h.set_python_version("3.12.1");
  h.add_command("python3");
  h.set_pid(42);
  h.set_interval_us(1000);
  snapshot::Writer w(path, h);
  uint32_t threads[] = {w.add_thread(100, "MainThread"), w.add_thread(101, "worker")};
  uint32_t file = w.intern_string("/app/server.py");
  std::vector<uint32_t> frames;
  for (const char* name : {"main", "handle", "query", "render", "json.dumps"})
    frames.push_back(w.intern_frame({w.intern_string(name), file, static_cast<int32_t>(10 + frames.size()), 1}));
  uint32_t reasons[] = {w.intern_string("recvfrom socket 127.0.0.1:5432"), w.intern_string("futex")};
  std::mt19937 random(7);
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(random() % n); };
  int64_t time = 0;
  uint32_t open_segment[2] = {0, 0};
  for (int i = 0; i < samples; ++i) {
    uint32_t t = pick(2);
    time += 500 + pick(1000);
    if (pick(400) == 0) {  // a call of handle starts or ends on this thread
      if (open_segment[t]) {
        w.end_segment(open_segment[t], time, time + 1000, time - 1000);
        open_segment[t] = 0;
      } else {
        snapshot::Segment seg;
        seg.id = w.next_segment_id();
        seg.thread = threads[t];
        seg.start_us = time;
        seg.root_depth = 1;
        w.add_segment(seg);
        open_segment[t] = seg.id;
      }
    }
    std::vector<uint32_t> stack = {frames[0], frames[1]};
    for (uint32_t d = pick(4); d-- > 0;) stack.push_back(frames[2 + pick(3)]);
    // A steady program: 3 stacks, weights that vary, nothing else.
    if (!varied) stack.assign(frames.begin(), frames.begin() + 2 + i % 3);
    snapshot::Sample s;
    s.time_us = time;
    s.thread = threads[t];
    s.stack = w.intern_stack(stack);
    s.wall_us = 1000 + pick(3) * 700;
    s.cpu_us = pick(1200);
    s.flags = snapshot::kGilKnown;
    if (varied) {
      s.runqueue_us = pick(4) == 0 ? pick(300) : 0;
      s.flags |= (pick(2) ? snapshot::kGilHeld : 0) | (pick(2) ? snapshot::kOnCpu : 0);
      if (pick(20) == 0) s.flags |= snapshot::kGap;
      if (pick(10) == 0 && open_segment[t]) s.flags |= snapshot::kSwitchedOut;
      if (!(s.flags & snapshot::kOnCpu) && pick(2)) s.offcpu_reason = reasons[pick(2)] + 1;
      s.segment = open_segment[t];
      s.greenlet = pick(3);
    }
    w.add_sample(s);
    w.maybe_flush();
  }
  pb::Footer f;
  f.set_duration_us(time);
  f.set_samples(w.samples_written());
  REQUIRE(w.finish(f));
  return path;
}

snapshot::Recording read_merged(const std::string& path) {
  snapshot::ReadOptions merge;
  merge.merge_alike = true;
  return snapshot::read_file(path, merge);
}

std::string report(const snapshot::Recording& rec, analyze::Selection sel, analyze::TreeOptions options) {
  analyze::Tree tree = analyze::build_tree(rec, analyze::select_samples(rec, sel), sel, options);
  return analyze::json_report(rec, tree, false) + analyze::collapsed_report(tree);
}

}  // namespace

TEST_CASE("alike samples merged give the same trees, segments and pprof as samples read one by one", "[snapshot]") {
  const int kSamples = 20000;
  std::string path = write_varied_file(kSamples, true, "varied");
  snapshot::Recording each = snapshot::read_file(path);
  snapshot::Recording merged = read_merged(path);
  REQUIRE(each.samples.size() == kSamples);
  // Memory by distinct samples (threads, stacks, flags, contexts, reasons, segments): fewer than
  // the samples even with all of them drawn at random...
  CHECK(merged.samples.size() < each.samples.size());
  CHECK(merged.sample_count == each.samples.size());
  CHECK(merged.last_sample_us == each.samples.back().time_us);
  uint64_t counted = 0;
  for (const auto& s : merged.samples) counted += s.count;
  CHECK(counted == kSamples);

  for (auto mode : {analyze::Mode::kWall, analyze::Mode::kCpu, analyze::Mode::kOffCpu}) {
    analyze::TreeOptions options;
    options.mode = mode;
    analyze::Selection all;
    CHECK(report(merged, all, options) == report(each, all, options));
    options.by_thread = true;
    CHECK(report(merged, all, options) == report(each, all, options));
    options.by_thread = false;
    options.by_greenlet = true;
    analyze::Selection by_context;
    by_context.by_context = true;
    CHECK(report(merged, by_context, options) == report(each, by_context, options));
  }
  analyze::Selection all_samples, slowest;
  slowest.slowest = 3;
  CHECK(report(merged, slowest, {}) == report(each, slowest, {}));
  auto rows = [](const snapshot::Recording& rec) {
    return analyze::segments_json(analyze::segment_rows(rec, analyze::selected_segments(rec, {})));
  };
  CHECK(rows(merged) == rows(each));
  exporter::ExportView view;
  CHECK(exporter::pprof_profile(merged, view) == exporter::pprof_profile(each, view));

  // The SkyWalking estimator needs each sample's time: on a recording read merged it reads the
  // file's samples again one by one, and gives what the samples held give.
  analyze::TreeOptions sw;
  sw.estimator = analyze::Estimator::kSkyWalking;
  CHECK(analyze::read_options_for(sw, path).merge_alike);
  CHECK(analyze::read_options_for({}, path).merge_alike);
  CHECK_FALSE(analyze::read_options_for(sw, "/dev/stdin").merge_alike);  // a pipe is read once
  CHECK(analyze::read_options_for({}, "/dev/stdin").merge_alike);
  analyze::Selection worker;
  worker.thread = 101;
  for (const auto* selection : {&all_samples, &slowest, &worker}) {
    CHECK(report(merged, *selection, sw) == report(each, *selection, sw));
    sw.by_thread = true;
    CHECK(report(merged, *selection, sw) == report(each, *selection, sw));
    sw.by_thread = false;
  }
  // The SkyWalking export from the file's samples read again is the one from the samples held:
  // each segment's dumps numbered from 0 in time order.
  auto skywalking = [&](const snapshot::Recording& rec, const snapshot::SampleSource& samples) {
    std::string text;
    exporter::skywalking_export(rec, samples, analyze::selected_segments(rec, {}), "t",
                                [&](std::string_view piece) { text += piece; });
    return text;
  };
  const std::string exported = skywalking(merged, snapshot::samples_in_file(merged));
  CHECK(exported == skywalking(each, snapshot::samples_of(each)));
  CHECK(exported.find("\"sequence\":0,") != std::string::npos);
  // A recording merged in memory has no file to read them from.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  snapshot::ReadOptions merge;
  merge.merge_alike = true;
  snapshot::Recording from_memory = snapshot::read_bytes(bytes, "memory", merge);
  CHECK_THROWS_AS(analyze::build_tree(from_memory, analyze::select_samples(from_memory, {}), {}, sw), std::logic_error);
  std::remove(path.c_str());
}

TEST_CASE("the SkyWalking estimator on dumps whose sequence numbers the file holds out of order", "[snapshot]") {
  // Imported SkyWalking dumps: two segments' snapshots interleaved, each segment's numbers
  // shuffled and with gaps (a dump the agent lost), so the file's order is not the sequences'.
  std::string path = "/tmp/swprof-unit-merged-shuffled.swp";
  pb::Header h;
  h.set_format_version(snapshot::kFormatVersion);
  h.set_python_version("3.12.1");
  h.set_pid(42);
  h.set_interval_us(10000);
  snapshot::Writer w(path, h);
  uint32_t thread = w.add_thread(100, "MainThread");
  uint32_t file = w.intern_string("/app/server.py");
  std::vector<uint32_t> frames;
  for (const char* name : {"handle", "query", "render"})
    frames.push_back(w.intern_frame({w.intern_string(name), file, static_cast<int32_t>(10 + frames.size()), 1}));
  uint32_t segments[2];
  for (auto& id : segments) {
    snapshot::Segment seg;
    seg.id = id = w.next_segment_id();
    seg.thread = thread;
    seg.start_us = 0;
    w.add_segment(seg);
  }
  std::vector<std::pair<uint32_t, int32_t>> dumps;  // (segment, sequence)
  for (uint32_t seg : segments)
    for (int32_t seq = 0; seq < 40; ++seq)
      if (seq % 7 != 3) dumps.push_back({seg, seq});
  std::mt19937 random(11);
  std::shuffle(dumps.begin(), dumps.end(), random);
  for (auto [seg, seq] : dumps) {
    snapshot::Sample s;
    s.time_us = 1000 + int64_t(seq) * 10000 + seg;
    s.thread = thread;
    s.segment = seg;
    s.sequence = seq;
    std::vector<uint32_t> stack = {frames[0]};
    if (seq % 5 < 3) stack.push_back(frames[1 + (seq / 5) % 2]);
    s.stack = w.intern_stack(stack);
    s.wall_us = 10000;
    w.add_sample(s);
  }
  pb::Footer f;
  f.set_duration_us(500000);
  f.set_samples(w.samples_written());
  REQUIRE(w.finish(f));

  analyze::TreeOptions sw;
  sw.estimator = analyze::Estimator::kSkyWalking;
  snapshot::Recording each = snapshot::read_file(path);
  snapshot::Recording merged = read_merged(path);
  const std::string held = report(each, {}, sw);
  CHECK(report(merged, {}, sw) == held);
  // Exported, each segment's dumps come together in their order (held and sorted).
  std::string exported;
  exporter::skywalking_export(merged, snapshot::samples_in_file(merged),
                              analyze::selected_segments(merged, {}), "t",
                              [&](std::string_view piece) { exported += piece; });
  std::vector<std::pair<std::string, int>> order;  // (segment, sequence) as written
  for (size_t at = exported.find("swprof-42-"); at != std::string::npos; at = exported.find("swprof-42-", at + 1)) {
    size_t seq = exported.find("\"sequence\":", at);
    order.push_back({exported.substr(at, exported.find('"', at) - at), std::stoi(exported.substr(seq + 11))});
  }
  CHECK(order.size() == dumps.size());
  CHECK(std::is_sorted(order.begin(), order.end()));
  // Not the file's order: handle ran in every dump, 5 runs of consecutive numbers per segment.
  analyze::Tree tree = analyze::build_tree(merged, analyze::select_samples(merged, {}), {}, sw);
  REQUIRE(tree.nodes.size() > 1);
  const analyze::Node& handle = tree.nodes[tree.nodes[0].children.at(0)];
  CHECK(handle.function == "handle");
  CHECK(handle.samples == dumps.size());
  std::remove(path.c_str());
}

TEST_CASE("a steady program's samples merge into one per thread and stack", "[snapshot]") {
  std::string path = write_varied_file(50000, false, "steady");
  snapshot::Recording merged = read_merged(path);
  // ...and as many as the thread and stack pairs for a steady program (2 threads x 3 stacks).
  CHECK(merged.samples.size() == 2 * 3);
  CHECK(merged.sample_count == 50000);
  snapshot::Recording each = snapshot::read_file(path);
  CHECK(report(merged, {}, {}) == report(each, {}, {}));
  CHECK(merged.memory_used * 20 < each.memory_used);
  // Samples held to be sorted count against what the file justifies, as the reader's own do.
  auto all = [](const snapshot::Sample&) { return true; };
  CHECK(snapshot::hold_samples(merged, snapshot::samples_in_file(merged), all).size() == 50000);
  snapshot::Recording tight = merged;
  tight.memory_limit = tight.memory_used + 1000 * sizeof(snapshot::Sample);
  CHECK_THROWS_WITH(snapshot::hold_samples(tight, snapshot::samples_in_file(tight), all),
                    Catch::Contains("larger than its size justifies"));
  // Another file put in its place before the samples are read again: refused, not misread.
  write_varied_file(50000, true, "steady");
  analyze::TreeOptions sw;
  sw.estimator = analyze::Estimator::kSkyWalking;
  CHECK_THROWS_WITH(analyze::build_tree(merged, analyze::select_samples(merged, {}), {}, sw),
                    Catch::Contains("changed while it was read"));
  std::remove(path.c_str());
}

TEST_CASE("a file still being recorded is read again only as far as it was read first", "[snapshot]") {
  const int kSamples = 20000;
  std::string path = write_varied_file(kSamples, true, "growing");
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // The file as a recorder leaves it while it runs: its records without the footer.
  size_t at = sizeof snapshot::format::kMagic, end = at;
  while (at + snapshot::format::kRecordHeaderSize <= bytes.size()) {
    auto byte = [&](size_t i) { return uint32_t(static_cast<unsigned char>(bytes[at + i])); };
    if (byte(4) == snapshot::format::kFooter) break;
    at += snapshot::format::kRecordHeaderSize + (byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24);
    end = at;
  }
  REQUIRE(end < bytes.size());
  bytes.resize(end);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  snapshot::Recording each = snapshot::read_file(path);
  snapshot::Recording merged = read_merged(path);
  REQUIRE(merged.truncated);
  REQUIRE(merged.sample_count == each.samples.size());
  // Then the recorder goes on: a record whose header is written and whose payload is not yet
  // (bytes that are no record at all, read as such, would make the file corrupt).
  std::ofstream(path, std::ios::binary | std::ios::app) << std::string("\x40\x00\x00\x00\x02", 5) << "partial";
  size_t handed = 0;
  snapshot::samples_in_file(merged)([&](const snapshot::Sample&) { ++handed; });
  CHECK(handed == merged.sample_count);
  std::ofstream(path, std::ios::binary | std::ios::app) << std::string(64, '\xff');
  analyze::TreeOptions sw;
  sw.estimator = analyze::Estimator::kSkyWalking;
  CHECK(report(merged, {}, sw) == report(each, {}, sw));
  std::remove(path.c_str());
}

TEST_CASE("speedscope from the samples handed over one by one is the same as from samples held", "[snapshot][export]") {
  const int kSamples = 20000;
  std::string path = write_varied_file(kSamples, true, "handed");
  snapshot::Recording each = snapshot::read_file(path);
  snapshot::Recording merged = read_merged(path);
  // Handed over, not held: counted all the same.
  size_t handed = 0;
  snapshot::ReadOptions count_only;
  count_only.each_sample = [&](const snapshot::Sample&) { ++handed; };
  snapshot::Recording counted = snapshot::read_file(path, count_only);
  CHECK(handed == kSamples);
  CHECK(counted.samples.empty());
  CHECK(counted.sample_count == kSamples);
  CHECK(counted.memory_used * 10 < each.memory_used);

  snapshot::SampleSource from_file = snapshot::samples_in_file(merged);
  auto speedscope = [](const snapshot::Recording& rec, const snapshot::SampleSource& samples,
                       const exporter::ExportView& view, bool per_segment) {
    std::string text;
    exporter::speedscope_json(rec, samples, view, per_segment, [&](std::string_view piece) { text += piece; });
    return text;
  };
  analyze::Selection all, slowest, worker;
  slowest.slowest = 3;
  worker.thread = 101;
  for (auto mode : {analyze::Mode::kWall, analyze::Mode::kCpu, analyze::Mode::kOffCpu})
    for (const auto* selection : {&all, &slowest, &worker})
      for (bool per_segment : {false, true}) {
        exporter::ExportView view;
        view.mode = mode;
        view.selection = *selection;
        CHECK(speedscope(merged, from_file, view, per_segment) ==
              speedscope(each, snapshot::samples_of(each), view, per_segment));
      }
  std::remove(path.c_str());
}

// pprof, speedscope and Chrome trace exports, swprof diff and the differential flame graph, on
// small recordings built by hand. (Their consumers open real recordings in tests/e2e.)
#include <zlib.h>

#include <catch2/catch.hpp>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <string>

#include "pprof_profile.pb.h"
#include "recording_builder.h"
#include "swprof/analyze.h"
#include "swprof/common.h"
#include "swprof/diff.h"
#include "swprof/export.h"

using namespace swprof;
namespace gp = google::protobuf;

namespace {

std::string gunzip(const std::string& data) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out(data.size() * 20 + 1024, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(inflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

perftools::profiles::Profile pprof_of(const snapshot::Recording& rec, const exporter::ExportView& view = {}) {
  perftools::profiles::Profile p;
  REQUIRE(p.ParseFromString(gunzip(exporter::pprof_profile(rec, view))));
  return p;
}

// A streamed export's whole text.
std::string whole(const std::function<void(const exporter::Sink&)>& make) {
  std::string text;
  make([&](std::string_view piece) { text += piece; });
  return text;
}
std::string speedscope_text(const snapshot::Recording& rec, const exporter::ExportView& view, bool per_segment) {
  return whole([&](const exporter::Sink& sink) {
    exporter::speedscope_json(rec, snapshot::samples_of(rec), view, per_segment, sink);
  });
}
std::string chrome_text(const snapshot::Recording& rec, const exporter::ExportView& view) {
  return whole([&](const exporter::Sink& sink) { exporter::chrome_trace_json(rec, snapshot::samples_of(rec), view, sink); });
}

gp::Struct json_of(const std::string& text) {
  gp::Struct s;
  auto status = gp::util::JsonStringToMessage(text, &s);
  INFO(text.substr(0, 500));
  REQUIRE(status.ok());
  return s;
}

const gp::Value& at(const gp::Struct& s, const std::string& key) { return s.fields().at(key); }

// A Chrome trace's events with each begin ("B") and its end ("E") made one complete event ("X",
// with its duration) where the begin was; metadata as it is. Each end must close the innermost
// open event of its track, by name.
std::vector<gp::Struct> trace_slices(const std::string& text) {
  std::vector<gp::Struct> out;
  std::map<double, std::vector<size_t>> open;  // tid -> indices in out
  const gp::Struct doc = json_of(text);
  for (const auto& v : at(doc, "traceEvents").list_value().values()) {
    const auto& e = v.struct_value();
    const std::string ph = at(e, "ph").string_value();
    double tid = e.fields().count("tid") ? at(e, "tid").number_value() : 0;
    if (ph == "B") {
      open[tid].push_back(out.size());
      out.push_back(e);
      (*out.back().mutable_fields())["ph"].set_string_value("X");
    } else if (ph == "E") {
      REQUIRE_FALSE(open[tid].empty());
      gp::Struct& b = out[open[tid].back()];
      open[tid].pop_back();
      CHECK(at(b, "name").string_value() == at(e, "name").string_value());
      (*b.mutable_fields())["dur"].set_number_value(at(e, "ts").number_value() - at(b, "ts").number_value());
    } else {
      out.push_back(e);
    }
  }
  for (const auto& [tid, left] : open) CHECK(left.empty());
  return out;
}

// The blog example: 4 samples in methodC and 6 in methodD under A -> B, 10 ms apart.
test::RecordingBuilder blog(int c = 4, int d = 6) {
  test::RecordingBuilder b;
  for (int i = 0; i < c + d; ++i)
    b.sample(10000 * (i + 1), {"A", "B", i < c ? "C" : "D"}, 10000, 0, 1000 * i);
  return b;
}

}  // namespace

TEST_CASE("pprof: sample types, values, leaf-first locations, labels", "[export][pprof]") {
  auto b = blog();
  b.rec.threads.push_back({2000, ""});
  b.sample(110000, {"A", "E"}, 10000, 0, 0, snapshot::kGilKnown | snapshot::kGilHeld, 1);
  b.rec.header.set_start_unix_us(1'700'000'000'000'000);
  auto p = pprof_of(b.rec);
  const auto& strings = p.string_table();
  REQUIRE(strings[0].empty());
  auto str = [&](int64_t i) { return strings[static_cast<int>(i)]; };
  REQUIRE(p.sample_type_size() == 4);  // the GIL is known for one sample
  CHECK(str(p.sample_type(0).type()) == "samples");
  CHECK(str(p.sample_type(1).type()) == "wall");
  CHECK(str(p.sample_type(1).unit()) == "nanoseconds");
  CHECK(str(p.sample_type(3).type()) == "gil");
  CHECK(str(p.default_sample_type()) == "wall");
  CHECK(p.period() == 10'000'000);
  CHECK(p.time_nanos() == 1'700'000'000'000'000'000);

  std::map<uint64_t, std::string> function_name;
  for (const auto& f : p.function()) {
    function_name[f.id()] = str(f.name());
    CHECK(str(f.system_name()) != str(f.name()));  // else pprof "demangles" names like <module>
    CHECK(str(f.filename()) == "/src/app.py");
  }
  std::map<uint64_t, std::string> location_function;
  for (const auto& l : p.location()) location_function[l.id()] = function_name[l.line(0).function_id()];

  int64_t samples = 0, wall = 0, gil = 0;
  std::map<std::string, int64_t> leaf_wall;
  for (const auto& s : p.sample()) {
    samples += s.value(0);
    wall += s.value(1);
    gil += s.value(3);
    leaf_wall[location_function[s.location_id(0)]] += s.value(1);
    CHECK(location_function[s.location_id(s.location_id_size() - 1)] == "A");  // the root last
    std::map<std::string, int64_t> labels;
    for (const auto& l : s.label()) labels[str(l.key())] = l.num();
    CHECK((labels["thread_id"] == 1000 || labels["thread_id"] == 2000));
  }
  CHECK(samples == 11);
  CHECK(wall == 110'000'000);
  CHECK(gil == 10'000'000);
  CHECK(leaf_wall["C"] == 40'000'000);
  CHECK(leaf_wall["D"] == 60'000'000);

  // Off-CPU: the reason is a label (samples of one stack blocked on different things stay apart),
  // the run-queue time a value.
  b.sample(120000, {"A", "E"}, 10000, 0, 1000, 0, 1);
  b.rec.samples.back().offcpu_reason = b.str("futex") + 1;
  b.rec.samples.back().runqueue_us = 3000;
  auto q = pprof_of(b.rec);
  REQUIRE(q.sample_type_size() == 5);
  CHECK(q.string_table(static_cast<int>(q.sample_type(4).type())) == "runqueue");
  int64_t runqueue = 0, futex_wall = 0;
  for (const auto& s : q.sample()) {
    runqueue += s.value(4);
    for (const auto& l : s.label())
      if (q.string_table(static_cast<int>(l.key())) == "offcpu_reason" && q.string_table(static_cast<int>(l.str())) == "futex")
        futex_wall += s.value(1);
  }
  CHECK(runqueue == 3'000'000);
  CHECK(futex_wall == 10'000'000);
}

TEST_CASE("pprof: segments are cut at the entry frame and labelled", "[export][pprof]") {
  test::RecordingBuilder b;
  uint32_t s1 = b.segment(0, 20000, 0, 1), s2 = b.segment(20000, 40000, 0, 1);
  b.sample(10000, {"main", "handle", "work"}, 10000, s1);
  b.sample(30000, {"main", "handle", "work"}, 10000, s2);
  auto p = pprof_of(b.rec);
  REQUIRE(p.sample_size() == 2);
  for (const auto& s : p.sample()) {
    CHECK(s.location_id_size() == 2);  // handle, work: main is above the entry
    bool labelled = false;
    for (const auto& l : s.label()) labelled |= p.string_table(static_cast<int>(l.key())) == "segment_id";
    CHECK(labelled);
  }
  exporter::ExportView full;
  full.selection.full_stack = true;
  CHECK(pprof_of(b.rec, full).sample(0).location_id_size() == 3);
}

TEST_CASE("pprof: an empty recording is a valid empty profile", "[export][pprof]") {
  test::RecordingBuilder b;
  auto p = pprof_of(b.rec);
  CHECK(p.sample_size() == 0);
  CHECK(p.sample_type_size() == 3);
}

TEST_CASE("speedscope: one sampled profile per thread, root-first stacks, weights in the mode", "[export][speedscope]") {
  auto b = blog();
  b.rec.threads.push_back({2000, "worker"});
  b.sample(50000, {"W"}, 30000, 0, 40000, 0, 1);  // CPU above wall: its off-CPU weight is floored at 0
  auto doc = json_of(speedscope_text(b.rec, {}, false));
  const auto& frames = at(at(doc, "shared").struct_value(), "frames").list_value();
  const auto& profiles = at(doc, "profiles").list_value();
  REQUIRE(profiles.values_size() == 2);
  const auto& main = profiles.values(0).struct_value();
  CHECK(at(main, "name").string_value() == "thread 1000 (MainThread)");
  CHECK(at(main, "type").string_value() == "sampled");
  CHECK(at(main, "endValue").number_value() == 100000);
  const auto& first = at(main, "samples").list_value().values(0).list_value();
  auto name = [&](const gp::Value& index) {
    return at(frames.values(static_cast<int>(index.number_value())).struct_value(), "name").string_value();
  };
  CHECK(name(first.values(0)) == "A");
  CHECK(name(first.values(2)) == "C");
  CHECK(at(doc, "activeProfileIndex").number_value() == 0);  // the busiest thread

  exporter::ExportView offcpu;
  offcpu.mode = analyze::Mode::kOffCpu;
  auto off = json_of(speedscope_text(b.rec, offcpu, false));
  const auto& off_profiles = at(off, "profiles").list_value();
  REQUIRE(off_profiles.values_size() == 1);  // the worker's only sample weighs nothing: left out
  for (const auto& w : at(off_profiles.values(0).struct_value(), "weights").list_value().values())
    CHECK(w.number_value() > 0);

  // Off-CPU time split by why: a sample blocked 7 ms in futex and queued 2 ms is two, each with its leaf.
  b.sample(60000, {"L"}, 10000, 0, 1000);
  b.rec.samples.back().offcpu_reason = b.str("futex") + 1;
  b.rec.samples.back().runqueue_us = 2000;
  auto split = json_of(speedscope_text(b.rec, offcpu, false));
  const auto& split_frames = at(at(split, "shared").struct_value(), "frames").list_value();
  const auto& main_off = at(split, "profiles").list_value().values(0).struct_value();
  std::map<std::string, double> leaf_weight;
  const auto& stacks = at(main_off, "samples").list_value();
  for (int i = 0; i < stacks.values_size(); ++i) {
    const auto& stack = stacks.values(i).list_value();
    auto leaf = at(split_frames.values(static_cast<int>(stack.values(stack.values_size() - 1).number_value())).struct_value(), "name");
    leaf_weight[leaf.string_value()] += at(main_off, "weights").list_value().values(i).number_value();
  }
  CHECK(leaf_weight["<off-CPU: futex>"] == 7000);
  CHECK(leaf_weight["<waiting for a CPU>"] == 2000);
}

TEST_CASE("speedscope: per segment, and an empty recording still has a profile", "[export][speedscope]") {
  test::RecordingBuilder b;
  uint32_t s1 = b.segment(0, 20000, 0, 1), s2 = b.segment(20000, 40000, 0, 1);
  b.sample(10000, {"main", "handle"}, 10000, s1);
  b.sample(30000, {"main", "handle"}, 10000, s2);
  auto doc = json_of(speedscope_text(b.rec, {}, true));
  const auto& profiles = at(doc, "profiles").list_value();
  REQUIRE(profiles.values_size() == 2);
  CHECK(at(profiles.values(1).struct_value(), "name").string_value() == "segment 2: handle, thread 1000 (MainThread)");
  test::RecordingBuilder none;
  auto empty = json_of(speedscope_text(none.rec, {}, false));
  CHECK(at(empty, "profiles").list_value().values_size() == 1);
  CHECK_THROWS_AS(speedscope_text(none.rec, {}, true), UserError);
}

TEST_CASE("timeline exports are handed out in pieces, and refused past what their file justifies", "[export]") {
  // A deep stack on every sample, alternating with a shallow one: every sample is a long entry
  // (speedscope) and opens and closes many events (chrome).
  test::RecordingBuilder b;
  std::vector<std::string> deep;
  for (int d = 0; d < 250; ++d) deep.push_back("f" + std::to_string(d));
  b.sample(1000, {"main"}, 1000);
  b.sample(2000, deep, 1000);
  for (int i = 2; i < 3000; ++i) {
    b.rec.samples.push_back(b.rec.samples[i % 2]);
    b.rec.samples.back().time_us = 1000 * (i + 1);
  }
  for (auto format : {"speedscope", "chrome"}) {
    INFO(format);
    auto make = [&](const exporter::Sink& sink) {
      if (std::string(format) == "speedscope") exporter::speedscope_json(b.rec, snapshot::samples_of(b.rec), {}, false, sink);
      else exporter::chrome_trace_json(b.rec, snapshot::samples_of(b.rec), {}, sink);
    };
    size_t pieces = 0, largest = 0, total = 0;
    std::string text;
    make([&](std::string_view piece) {
      ++pieces;
      largest = std::max(largest, piece.size());
      total += piece.size();
      text += piece;
    });
    CHECK(total > (5u << 18));  // over a megabyte
    CHECK(pieces >= total / (2u << 20) + 1);    // never the whole text at once
    CHECK(largest < (1u << 20) + (64u << 10));  // about a megabyte each
    json_of(text);  // and they make one JSON document
    b.rec.memory_limit = 64 << 10;          // a file that justifies holding 64 KiB exports 256 KiB at most
    CHECK_THROWS_WITH(make([](std::string_view) {}), Catch::Contains("would export to more than"));
    b.rec.memory_limit = 0;
  }
}

TEST_CASE("chrome trace: a frame on consecutive samples is one event, nested in its callers", "[export][chrome]") {
  auto b = blog();
  std::map<std::string, std::vector<std::pair<double, double>>> events;
  for (const auto& e : trace_slices(chrome_text(b.rec, {}))) {
    if (at(e, "ph").string_value() != "X") continue;
    events[at(e, "name").string_value()].emplace_back(at(e, "ts").number_value(), at(e, "dur").number_value());
  }
  // Samples at 10..100 ms each cover the 10 ms before them.
  REQUIRE(events["A"].size() == 1);
  CHECK(events["A"][0] == std::make_pair(0.0, 100000.0));
  REQUIRE(events["C"].size() == 1);
  CHECK(events["C"][0] == std::make_pair(0.0, 40000.0));
  REQUIRE(events["D"].size() == 1);
  CHECK(events["D"][0] == std::make_pair(40000.0, 60000.0));
  // Written as the samples come; a thread's samples out of time order (an import) are sorted first.
  auto shuffled = blog();
  std::reverse(shuffled.rec.samples.begin(), shuffled.rec.samples.end());
  std::swap(shuffled.rec.samples[2], shuffled.rec.samples[7]);
  CHECK(chrome_text(shuffled.rec, {}) == chrome_text(b.rec, {}));
}

TEST_CASE("chrome trace: an event is written as its frame appears and ends, holding only open frames", "[export][chrome]") {
  // One frame on every sample, and under it a frame that changes at every sample: the begins and
  // ends come out in time order while the samples are read, and an event that would end where it
  // began (a sample that weighs nothing) is left out.
  test::RecordingBuilder b;
  for (int i = 1; i <= 6; ++i) b.sample(1000 * i, {"loop", i % 2 ? "odd" : "even"}, 1000);
  b.sample(7000, {"loop", "instant"}, 0);
  b.sample(8000, {"loop", "odd"}, 1000);
  std::vector<std::string> seen;  // "B name" / "E name" in the order written
  std::vector<double> times;
  const gp::Struct doc = json_of(chrome_text(b.rec, {}));
  for (const auto& v : at(doc, "traceEvents").list_value().values()) {
    const auto& e = v.struct_value();
    const std::string ph = at(e, "ph").string_value();
    if (ph == "M") continue;
    seen.push_back(ph + " " + at(e, "name").string_value());
    times.push_back(at(e, "ts").number_value());
  }
  CHECK(std::is_sorted(times.begin(), times.end()));
  CHECK(seen == std::vector<std::string>{"B loop", "B odd", "E odd", "B even", "E even", "B odd", "E odd", "B even",
                                         "E even", "B odd", "E odd", "B even", "E even", "B odd", "E odd", "E loop"});
}

TEST_CASE("chrome trace: each segment is an event enclosing its stacks; runs end at its edge", "[export][chrome]") {
  test::RecordingBuilder b;
  uint32_t s1 = b.segment(0, 20000, 0, 1), s2 = b.segment(20000, 40000, 0, 1);
  b.sample(10000, {"main", "handle", "work"}, 10000, s1);
  b.sample(20000, {"main", "handle", "work"}, 10000, s1);
  b.sample(30000, {"main", "handle", "work"}, 10000, s2);
  exporter::ExportView view;
  view.selection.full_stack = true;  // even "main", on every sample, ends with each segment
  std::vector<std::string> order;
  int segments = 0, mains = 0;
  for (const auto& e : trace_slices(chrome_text(b.rec, view))) {
    if (at(e, "ph").string_value() != "X") continue;
    order.push_back(at(e, "name").string_value());
    if (at(e, "cat").string_value() == "segment") {
      ++segments;
      CHECK(at(at(e, "args").struct_value(), "segment").number_value() == segments);
    }
    if (at(e, "name").string_value() == "main") ++mains;
  }
  CHECK(segments == 2);
  CHECK(mains == 2);
  // Segment first (it encloses), then the stack from the outermost frame.
  CHECK(order == std::vector<std::string>{"handle", "main", "handle", "work", "handle", "main", "handle", "work"});
}

TEST_CASE("diff: paths match by function and file name, values per second or per segment", "[diff]") {
  auto before = blog(4, 6);  // 100 ms: C 40, D 60
  auto after = blog(2, 8);   // C 20, D 80, and E appears
  after.sample(110000, {"A", "E"});
  for (auto& s : after.rec.strings)
    if (s == "/src/app.py") s = "/elsewhere/checkout/app.py";  // another directory: still app.py
  auto tree = [](const test::RecordingBuilder& b) { return analyze::build_tree(b.rec, b.all(), {}, {}); };
  diff::Side base, now;
  base.divisor = 0.1;  // seconds
  now.divisor = 0.2;
  auto r = diff::compare(tree(before), tree(after), base, now, false);
  std::map<std::string, const diff::Node*> by_name;
  for (const auto& n : r.nodes) by_name[n.function] = &n;
  CHECK(by_name["C"]->base.total == Approx(400000));  // 40 ms in 0.1 s: 400 ms/s
  CHECK(by_name["C"]->now.total == Approx(100000));   // 20 ms in 0.2 s
  CHECK(by_name["E"]->now.present);
  CHECK_FALSE(by_name["E"]->base.present);
  CHECK(r.base.matched_pct == Approx(100));
  CHECK(r.now.matched_pct == Approx(100.0 * 100 / 110));
  auto order = diff::by_change(r);
  CHECK(r.nodes[order[0]].function == "B");  // 1000 ms/s -> 500 ms/s: the largest change

  auto per_segment = diff::compare(tree(before), tree(after), diff::Side{.divisor = 1}, diff::Side{.divisor = 1}, true);
  CHECK(diff::json_report(per_segment).find("\"unit\": \"ms/segment\"") != std::string::npos);
  CHECK(diff::text_report(per_segment, 0).find("gone") == std::string::npos);
  CHECK(diff::text_report(per_segment, 0).find(" new ") != std::string::npos);
}

TEST_CASE("differential flame graph: red grew, blue shrank, grey stayed; NEW's nodes carry both", "[diff][flamegraph]") {
  auto before = blog(4, 6);
  auto after = blog(2, 8);
  auto now_tree = analyze::build_tree(after.rec, after.all(), {}, {});
  auto base_tree = analyze::build_tree(before.rec, before.all(), {}, {});
  auto r = diff::compare(base_tree, now_tree, diff::Side{.divisor = 1}, diff::Side{.divisor = 1}, false);
  auto d = exporter::flamegraph_diff(r, now_tree.nodes.size());
  std::map<std::string, std::string> fill;
  for (uint32_t i = 1; i < now_tree.nodes.size(); ++i) fill[std::string(now_tree.nodes[i].function)] = exporter::diff_fill(d, i);
  auto rgb = [](const std::string& f) {
    return std::array<int, 3>{std::stoi(f.substr(1, 2), nullptr, 16), std::stoi(f.substr(3, 2), nullptr, 16),
                              std::stoi(f.substr(5, 2), nullptr, 16)};
  };
  CHECK(rgb(fill["D"])[0] > rgb(fill["D"])[2]);  // 60 -> 80: red
  CHECK(rgb(fill["C"])[2] > rgb(fill["C"])[0]);  // 40 -> 20: blue
  CHECK(fill["B"] == "#e8e8e8");                 // 100 -> 100: grey
  exporter::FlamegraphOptions options;
  options.diff = &d;
  std::string svg = exporter::flamegraph_svg(now_tree, options);
  CHECK(svg.find("per s: base 40.0 ms, new 20.0 ms, -20.0 ms, -50.0%") != std::string::npos);
  CHECK(svg.find("data-bt=\"40000\"") != std::string::npos);
}

TEST_CASE("chrome trace: segments overlapping on one thread (gevent) get a track per greenlet", "[export][chrome]") {
  test::RecordingBuilder b;
  uint32_t s1 = b.segment(0, 30000, 0, 0), s2 = b.segment(10000, 40000, 0, 0);
  for (int i = 1; i <= 3; ++i) {  // two requests interleaved on one thread, each its own greenlet
    b.sample(10000 * i, {"handle", "a"}, 10000, s1);
    b.rec.samples.back().greenlet = 1;
    b.sample(10000 * i + 10000, {"handle", "b"}, 10000, s2);
    b.rec.samples.back().greenlet = 2;
  }
  std::map<double, int> segments_per_track;
  std::vector<std::string> track_names;
  for (const auto& e : trace_slices(chrome_text(b.rec, {}))) {
    if (at(e, "name").string_value() == "thread_name")
      track_names.push_back(at(at(e, "args").struct_value(), "name").string_value());
    if (at(e, "ph").string_value() == "X" && at(e, "cat").string_value() == "segment")
      ++segments_per_track[at(e, "tid").number_value()];
  }
  CHECK(segments_per_track.size() == 2);
  for (const auto& [tid, n] : segments_per_track) CHECK(n == 1);
  CHECK(track_names == std::vector<std::string>{"thread 1000 (MainThread) greenlet 1", "thread 1000 (MainThread) greenlet 2"});
}

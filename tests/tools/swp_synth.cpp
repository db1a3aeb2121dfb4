// swp_synth --samples N -o FILE [--threads T] [--stacks S] [--seed X] [--segment-ms M]: writes a recording of N
// samples with the real snapshot::Writer, as `record` would (T threads sampled every millisecond,
// each sample one of S distinct stacks 8–40 frames deep over a few hundred functions, wall and
// CPU weights, idle and on-CPU flags), without profiling anything: a large file for measuring
// analyze, flamegraph and export (tests/bench/vs_austin.py). With --segment-ms, each thread makes
// calls of M ms one after another, each a segment (record --entry): for the SkyWalking estimator
// and export. Deterministic for a given seed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/snapshot.h"

using namespace swprof;

int main(int argc, char** argv) {
  uint64_t samples = 1000000, seed = 1;
  uint32_t threads = 4, stacks = 2000, segment_ms = 0;
  std::string out;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--samples") samples = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--threads") threads = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    else if (a == "--stacks") stacks = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    else if (a == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--segment-ms") segment_ms = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    else if (a == "-o") out = argv[i + 1];
    else {
      std::fprintf(stderr, "swp_synth: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (out.empty() || threads == 0 || stacks == 0) {
    std::fprintf(stderr, "usage: swp_synth --samples N -o FILE [--threads T] [--stacks S] [--seed X] [--segment-ms M]\n");
    return 2;
  }
  try {
    pb::Header header;
    header.set_format_version(snapshot::kFormatVersion);
    header.set_swprof_version(SWPROF_VERSION);
    header.add_command("swp_synth");
    header.set_pid(1);
    header.set_python_version("3.11.7");
    header.set_interval_us(1000);
    header.set_source("record");
    header.set_max_depth(256);
    snapshot::Writer writer(out, header);

    std::mt19937_64 rng(seed);
    // Functions in a few modules; stacks share prefixes the way a program's call paths do.
    constexpr uint32_t kFunctions = 400;
    std::vector<uint32_t> function_frames;
    for (uint32_t f = 0; f < kFunctions; ++f) {
      snapshot::Frame frame;
      frame.function = writer.intern_string(fmt::format("module{}.Class{}.method_{}", f % 17, f % 31, f));
      frame.file = writer.intern_string(fmt::format("/srv/app/pkg{}/module{}.py", f % 5, f % 17));
      frame.first_line = static_cast<int32_t>(10 + f * 3);
      for (int line = 0; line < 3; ++line) {
        frame.line = frame.first_line + 1 + line;
        function_frames.push_back(writer.intern_frame(frame));
      }
    }
    std::vector<uint32_t> stack_ids;
    std::vector<uint32_t> path;
    for (uint32_t s = 0; s < stacks; ++s) {
      size_t depth = 8 + rng() % 33;
      path.clear();
      for (size_t d = 0; d < depth; ++d) {
        // Outer frames from a few roots, inner ones varied.
        uint64_t span = d < 4 ? 4 + d : function_frames.size();
        path.push_back(function_frames[rng() % span]);
      }
      stack_ids.push_back(writer.intern_stack(path));
    }
    std::vector<uint32_t> thread_ids;
    for (uint32_t t = 0; t < threads; ++t) thread_ids.push_back(writer.add_thread(1000 + t, fmt::format("worker-{}", t)));
    // Each thread stays on a stack for a while, as a program does.
    std::vector<uint32_t> current(threads, 0), call(threads, 0);
    for (uint64_t i = 0; i < samples; ++i) {
      uint32_t t = static_cast<uint32_t>(i % threads);
      if (rng() % 8 == 0) current[t] = static_cast<uint32_t>(rng() % stack_ids.size());
      snapshot::Sample s;
      s.time_us = static_cast<int64_t>(i / threads) * 1000 + t;
      if (segment_ms && (i / threads) % segment_ms == 0) {  // this thread's next call begins
        if (call[t]) writer.end_segment(call[t], s.time_us - 1);
        snapshot::Segment seg;
        seg.id = call[t] = writer.next_segment_id();
        seg.thread = thread_ids[t];
        seg.start_us = s.time_us;
        writer.add_segment(seg);
      }
      s.segment = call[t];
      s.thread = thread_ids[t];
      s.stack = stack_ids[current[t]];
      s.wall_us = 1000;
      bool on_cpu = rng() % 4 != 0;
      s.cpu_us = on_cpu ? 900 + static_cast<int64_t>(rng() % 100) : 0;
      s.flags = snapshot::kGilKnown | (on_cpu ? snapshot::kOnCpu | snapshot::kGilHeld : 0);
      writer.add_sample(s);
      if (i % 4096 == 0) writer.maybe_flush();
    }
    for (uint32_t id : call)
      if (id) writer.end_segment(id, static_cast<int64_t>(samples / threads) * 1000);
    pb::Footer footer;
    footer.set_duration_us(static_cast<int64_t>(samples / threads) * 1000 + 1000);
    footer.set_samples(writer.samples_written());
    footer.set_ticks(samples / threads);
    footer.set_threads(threads);
    footer.set_stop_reason("synthetic");
    if (!writer.finish(footer)) {
      std::fprintf(stderr, "swp_synth: %s\n", writer.error_message().c_str());
      return 1;
    }
    std::printf("%s: %llu samples, %llu bytes\n", out.c_str(), static_cast<unsigned long long>(samples),
                static_cast<unsigned long long>(writer.bytes_written()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swp_synth: %s\n", e.what());
    return 1;
  }
  return 0;
}

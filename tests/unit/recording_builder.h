// Builds small in-memory recordings for unit tests: functions by name, stacks by name lists.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "swprof/snapshot.h"

namespace test {

class RecordingBuilder {
 public:
  RecordingBuilder() {
    rec.stack_offsets.push_back(0);
    rec.threads.push_back({1000, "MainThread"});
    rec.header.set_interval_us(10000);
  }
  uint32_t frame(const std::string& name, int line = 1) {
    auto key = name + ":" + std::to_string(line);
    if (auto it = frames_.find(key); it != frames_.end()) return it->second;
    uint32_t fn = str(name), file = str("/src/app.py");
    rec.frames.push_back({fn, file, line, line});
    return frames_[key] = static_cast<uint32_t>(rec.frames.size() - 1);
  }
  uint32_t stack(const std::vector<std::string>& names) {
    for (const auto& n : names) rec.stack_frames.push_back(frame(n));
    rec.stack_offsets.push_back(static_cast<uint32_t>(rec.stack_frames.size()));
    return static_cast<uint32_t>(rec.stack_offsets.size() - 2);
  }
  uint32_t segment(int64_t start_us, int64_t end_us, uint32_t thread = 0, uint32_t root_depth = 0) {
    swprof::snapshot::Segment s;
    s.id = static_cast<uint32_t>(rec.segments.size() + 1);
    s.thread = thread;
    s.start_us = start_us;
    s.end_us = end_us;
    s.root_depth = root_depth;
    rec.segments.push_back(s);
    return s.id;
  }
  // A sample at `time_us` weighing `wall_us` (CPU `cpu_us`) with the given stack.
  void sample(int64_t time_us, const std::vector<std::string>& names, int64_t wall_us = 10000, uint32_t segment = 0,
              int64_t cpu_us = 0, uint32_t flags = 0, uint32_t thread = 0) {
    swprof::snapshot::Sample s;
    s.time_us = time_us;
    s.stack = stack(names);
    s.wall_us = wall_us;
    s.cpu_us = cpu_us;
    s.segment = segment;
    s.flags = flags;
    s.thread = thread;
    rec.samples.push_back(s);
    ++rec.sample_count;
    rec.last_sample_us = std::max(rec.last_sample_us, time_us);
    rec.weight_max_us = std::max(rec.weight_max_us, wall_us);
  }
  std::vector<uint32_t> all() const {
    std::vector<uint32_t> v(rec.samples.size());
    for (uint32_t i = 0; i < v.size(); ++i) v[i] = i;
    return v;
  }
  swprof::snapshot::Recording rec;

  uint32_t str(const std::string& s) {
    for (uint32_t i = 0; i < rec.strings.size(); ++i)
      if (rec.strings[i] == s) return i;
    rec.strings.push_back(s);
    return static_cast<uint32_t>(rec.strings.size() - 1);
  }

 private:
  std::map<std::string, uint32_t> frames_;
};

}  // namespace test

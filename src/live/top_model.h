// What swprof top shows, computed from the recorder's samples: per function (or per line) its
// own time (leaf of the stack) and total time (anywhere on it) over the last window and since
// start, and over the window its on-CPU time and the time it held the GIL, for all threads or one.
// Pure bookkeeping, no terminal: tests/unit/test_top_model.cpp drives it with made-up samples.
//
// Idle samples (a thread asleep for its whole interval: no CPU time, not running, as record's
// --no-idle tells them) are kept apart and shown only on request, as py-spy top does: a thread
// blocked in sleep() or a lock is not what a live view is for.
//
// Shares: OWN% and TOTAL% are of the window's sampled time (the shown samples' weights, so a
// busy thread beside an equally busy one shows 50 %); CPU% and GIL% are of the window's length
// (100 % = one CPU the whole window, or the GIL the whole window), as Linux top shows CPU.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "swprof/snapshot.h"

namespace swprof::live {

enum class SortKey : uint8_t { kOwn, kTotal, kCpu, kGil, kOwnSinceStart, kTotalSinceStart };
constexpr int kSortKeys = 6;
const char* sort_key_name(SortKey key);  // the column's title: "OWN%", "TOTAL%", ...

struct TopRow {
  std::string function, file;
  int line = 0;  // the def line, or the executing line in line view
  double own_pct = 0, total_pct = 0, cpu_pct = 0, gil_pct = 0;  // over the last window
  double own_s = 0, total_s = 0;                                  // since start
};

struct TopThread {
  int64_t tid = 0;
  std::string name;
};

class TopModel {
 public:
  // A sample's frames are named through `names` (the recording's interned frames and strings).
  void add(const snapshot::Sample& sample, std::span<const uint32_t> stack, int64_t tid, std::string_view thread_name,
           const snapshot::Writer& names);
  // The window being filled becomes "the last window", `elapsed_us` long.
  void close_window(int64_t elapsed_us);

  // Rows of the last window, `thread` 0 for all threads, sorted by `key`, at most `limit`;
  // functions with no time since start are left out.
  std::vector<TopRow> rows(bool lines, bool idle, int64_t thread, SortKey key, size_t limit) const;
  // Threads seen so far, by id.
  std::vector<TopThread> threads() const;
  // The last window: samples and sampled wall time (of `thread`, 0 for all), and its length.
  uint64_t window_samples(int64_t thread) const;
  int64_t window_elapsed_us() const { return last_elapsed_us_; }

 private:
  struct Times {
    int64_t own = 0, total = 0, own_cpu = 0, own_gil = 0;  // µs
  };
  struct Entity {
    std::string function, file;  // escaped for a terminal (top writes nowhere else)
    int line = 0;
  };
  // [view][idle]: view 0 functions, 1 lines; idle 0 busy samples, 1 idle ones. By entity.
  using Table = std::vector<Times>[2][2];
  struct PerThread {
    Table window, last, since_start;
    uint64_t window_samples = 0, last_samples = 0;
    std::string name;
  };
  uint32_t entity_of(uint32_t frame, bool lines, const snapshot::Writer& names);
  uint32_t marker(std::string_view text, bool lines);

  std::vector<Entity> entities_[2];
  std::unordered_map<std::string, uint32_t> entity_ids_[2];
  std::vector<uint32_t> frame_entities_[2];  // writer frame id -> entity, +1 (0: not yet named)
  std::unordered_map<int64_t, PerThread> threads_;
  std::vector<uint64_t> stamp_[2];  // which sample last counted an entity's total (recursion counts once)
  std::vector<uint32_t> scratch_;
  uint64_t samples_ = 0;
  int64_t last_elapsed_us_ = 0;
};

}  // namespace swprof::live

// The entry trigger: with --entry, a thread's samples belong to a segment (one call of an entry
// function) while a matching frame is on its stack; samples outside segments are not written.
// Segments shorter than --min-duration are discarded; at most --max-parallel are sampled at once;
// recording stops after --max-segments were kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "swprof/snapshot.h"

namespace swprof::python {
struct CodeInfo;
}

namespace swprof::record {

struct EntrySpec {
  std::string text;         // as given
  std::string file_suffix;  // "server.py" in "server.py:do_POST"; empty: any file
  std::string name;         // "do_POST" or "Handler.do_POST"
};

// Throws UserError for a spec that can never match (empty, malformed).
std::vector<EntrySpec> parse_entry_specs(const std::vector<std::string>& specs);
// Index of the first spec the code object matches, or -1.
int match_entry(const std::vector<EntrySpec>& specs, const python::CodeInfo& code);

// Identity of one call of an entry function, as far as it can be seen from outside. A frame
// address alone is not enough (CPython reuses it for the next call), so the argument objects and
// the progress of the frame are compared too.
struct CallIdentity {
  static constexpr size_t kMaxArgs = 8;
  static constexpr size_t kMaxLocals = 64;
  uint64_t frame = 0, code = 0;
  uint64_t args[kMaxArgs] = {};
  uint8_t arg_count = 0;
  uint64_t bound_locals = 0;  // bit i: local slot arg_count + i is bound
  int32_t offset = -1;        // executing instruction of the entry frame
  bool loop_free = false;     // the entry function has no backward jump: its offset never decreases
  uint32_t root_depth = 0;    // depth of the entry frame, counted from the outermost frame
  uint64_t callers = 0;       // hash of the frames above the entry: frozen while the call runs

  // True when `now` can be the same call observed later.
  bool continues_as(const CallIdentity& now) const;
};

class Trigger {
 public:
  struct Limits {
    int64_t min_duration_us = 0;
    uint32_t max_segments = 0;  // 0: unlimited
    uint32_t max_parallel = 5;
  };
  Trigger(Limits limits, snapshot::Writer& writer) : limits_(limits), writer_(writer) {}

  // One sample of a thread during tick `tick`; `entry` is null when no entry frame is on the
  // stack. The sample is written, buffered (its segment may still prove too short) or dropped.
  void route(uint64_t tick, const snapshot::Sample& sample, const CallIdentity* entry);
  // After every thread of the tick was routed: calls whose thread was not in them this tick ended.
  void end_tick(uint64_t tick);
  // Recording stops: decides every open segment.
  void finish();
  bool done() const { return limits_.max_segments && kept_ >= limits_.max_segments; }

  uint64_t seen() const { return seen_; }
  uint64_t kept() const { return kept_; }
  uint64_t too_short() const { return too_short_; }
  uint64_t skipped() const { return skipped_; }
  uint64_t outside() const { return outside_; }

 private:
  struct Open {
    uint32_t thread = 0;
    CallIdentity identity;
    int64_t start_us = 0, last_us = 0;
    uint64_t last_tick = 0;
    uint32_t id = 0;        // 0 until the segment is known to be kept
    bool skipped = false;   // over --max-parallel: observed but not sampled
    std::vector<snapshot::Sample> buffered;
  };
  bool promote(Open& s);
  void close(Open& s);
  uint32_t promoted_open() const;

  Limits limits_;
  snapshot::Writer& writer_;
  std::vector<Open> open_;
  uint32_t next_id_ = 1;
  uint64_t seen_ = 0, kept_ = 0, too_short_ = 0, skipped_ = 0, outside_ = 0;
};

}  // namespace swprof::record

// The .swp snapshot file: a streaming writer (interning strings, frames and stacks to small ids,
// flushing self-contained zstd chunks at least once a second) and a reader that validates every
// id and size before trusting it. The format is described in proto/swprof.proto.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "swprof.pb.h"

namespace swprof::snapshot {

constexpr uint32_t kFormatVersion = 1;

enum SampleFlags : uint32_t {
  kGilHeld = 1u << 0,      // the thread held the GIL
  kOnCpu = 1u << 1,        // the thread was running (state R) when sampled
  kSwitchedOut = 1u << 2,  // a greenlet segment that was not running (its stack as it yielded)
  kGilKnown = 1u << 3,     // the GIL bit is meaningful
  kGap = 1u << 4,          // time the recorder was late for: its stack is only the frames that
                           // stayed on the thread's stack across the gap (see record's Gap)
};

struct Frame {
  uint32_t function = 0, file = 0;  // string ids
  int32_t line = 0, first_line = 0;
  bool operator==(const Frame&) const = default;
};

struct Thread {
  int64_t tid = 0;
  std::string name;
};

struct Segment {
  uint32_t id = 0;
  uint32_t thread = 0;
  int64_t start_us = 0, end_us = -1;  // end -1: never closed (recorder stopped or killed)
  // When recorded: the call began in (start_bound_us, first_seen_us] and ended in
  // [end_bound_us, gone_us); 0 when not known (imports, files of older swprof versions).
  int64_t first_seen_us = 0, start_bound_us = 0, gone_us = 0, end_bound_us = 0;
  uint32_t root_depth = 0;
  std::string name;
  uint64_t greenlet = 0;
  std::string task_id;
};

struct Sample {
  int64_t time_us = 0;  // since the recording start
  uint32_t thread = 0;
  uint32_t stack = 0;
  int64_t wall_us = 0;
  int64_t cpu_us = 0;
  uint32_t flags = 0;
  uint32_t segment = 0;
  uint32_t greenlet = 0;
  int64_t sequence = -1;  // SkyWalking dump sequence when imported; -1: by time within the segment
};

// A whole file in memory, validated.
struct Recording {
  pb::Header header;
  std::optional<pb::Footer> footer;  // absent: the recorder did not finish (killed)
  std::vector<std::string> strings;
  std::vector<Frame> frames;
  std::vector<uint32_t> stack_frames;   // all stacks, concatenated
  std::vector<uint32_t> stack_offsets;  // stack i = [offsets[i], offsets[i+1])
  std::vector<Thread> threads;
  std::vector<Segment> segments;        // by id - 1
  std::vector<Sample> samples;
  bool truncated = false;               // stopped at an incomplete record
  uint64_t file_size = 0;

  std::span<const uint32_t> stack(uint32_t id) const {
    return {stack_frames.data() + stack_offsets[id], stack_frames.data() + stack_offsets[id + 1]};
  }
  size_t stack_count() const { return stack_offsets.empty() ? 0 : stack_offsets.size() - 1; }
  const std::string& str(uint32_t id) const { return strings[id]; }
  const Segment* segment(uint32_t id) const {
    return id >= 1 && id <= segments.size() ? &segments[id - 1] : nullptr;
  }
};

// Reads and validates a file. Throws UserError with one line on a missing, non-swprof, corrupt or
// unsupported file. A file cut short (recorder killed) reads up to its last complete record and
// sets `truncated`.
Recording read_file(const std::string& path);

class Writer {
 public:
  // Creates (truncates) the file and writes the header. Throws UserError if it cannot.
  Writer(const std::string& path, const pb::Header& header);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  uint32_t intern_string(std::string_view s);
  uint32_t intern_frame(const Frame& f);
  uint32_t intern_stack(std::span<const uint32_t> frames);  // root first
  uint32_t add_thread(int64_t tid, std::string_view name);
  void set_thread_name(uint32_t thread, std::string_view name);
  // What an id interned so far stands for (a live viewer of the recording names its frames).
  const Frame& frame(uint32_t id) const { return frame_by_id_.at(id); }
  std::string_view string(uint32_t id) const { return *string_by_id_.at(id); }
  void add_segment(const Segment& s);  // s.id must be the next id (1, 2, ...)
  void end_segment(uint32_t id, int64_t end_us, int64_t gone_us = 0, int64_t end_bound_us = 0);
  void add_sample(const Sample& s);

  // Writes pending data as a chunk when `force`, when enough has piled up, or when a second
  // passed since the last chunk.
  void maybe_flush(bool force = false);
  // Flushes and writes the footer. Throws UserError when the disk refuses.
  void finish(const pb::Footer& footer);

  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t samples_written() const { return samples_written_; }
  const std::string& path() const { return path_; }

 private:
  void write_record(uint8_t kind, const google::protobuf::Message& message);

  struct FrameHash {
    size_t operator()(const Frame& f) const {
      return (size_t(f.function) * 0x9E3779B97F4A7C15ull) ^ (size_t(f.file) << 20) ^ size_t(f.line) ^
             (size_t(f.first_line) << 40);
    }
  };
  struct StackKey {
    uint64_t hash;
    uint32_t id;
  };

  std::string path_;
  FILE* file_ = nullptr;
  bool failed_ = false;
  uint64_t bytes_written_ = 0;
  uint64_t samples_written_ = 0;
  int64_t last_flush_us_ = 0;
  int64_t last_sample_time_us_ = 0;

  std::unordered_map<std::string, uint32_t> strings_;
  std::unordered_map<Frame, uint32_t, FrameHash> frames_;
  std::vector<const std::string*> string_by_id_;  // keys of strings_ (node-based: they stay put)
  std::vector<Frame> frame_by_id_;
  std::unordered_multimap<uint64_t, uint32_t> stacks_;  // hash -> id
  std::vector<uint32_t> stack_pool_, stack_offsets_{0};
  uint32_t threads_ = 0;
  pb::Chunk pending_;
  size_t pending_samples_ = 0;
  void* zstd_ = nullptr;
  std::string serialized_, compressed_;
};

}  // namespace swprof::snapshot

// The .swp snapshot file: a streaming writer (interning strings, frames and stacks to small ids,
// flushing self-contained zstd chunks at least once a second) and a reader that validates every
// id and size before trusting it. The format is described in proto/swprof.proto.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "swprof.pb.h"
#include "swprof/output_file.h"

namespace swprof::snapshot {

constexpr uint32_t kFormatVersion = 1;

enum SampleFlags : uint32_t {
  kGilHeld = 1u << 0,      // the thread held the GIL
  kOnCpu = 1u << 1,        // the thread was running (state R) when sampled
  kSwitchedOut = 1u << 2,  // a greenlet segment that was not running (its stack as it yielded)
  kGilKnown = 1u << 3,     // the GIL bit is meaningful
  kGap = 1u << 4,          // time the recorder was late for: its stack is only the frames that
                           // stayed on the thread's stack across the gap (see record's Gap)
  // kSwitchedOut also marks a suspended asyncio task's sample: its await chain ending in an
  // `<awaiting ...>` frame.
};

struct Frame {
  uint32_t function = 0, file = 0;  // string ids
  int32_t line = 0, first_line = 0;
  bool operator==(const Frame&) const = default;
};

struct Thread {
  int64_t tid = 0;
  std::string name;
  uint32_t process = 0;  // 0: the recording's process; k: processes[k - 1]
};

// record --subprocesses: a descendant process (see pb::Process).
struct Process {
  int32_t pid = 0;
  std::vector<std::string> command;
  std::string python_version;
  std::string note;  // why it was not followed; "" when it was
  int32_t parent = 0;
  int64_t found_us = 0;
};

struct Segment {
  uint32_t id = 0;
  uint32_t thread = 0;
  int64_t start_us = 0, end_us = -1;  // end -1: never closed (recorder stopped or killed)
  // When recorded: the call began in (start_bound_us, first_seen_us] and ended in
  // [end_bound_us, gone_us); 0 when not known (imports, files of older swprof versions).
  int64_t first_seen_us = 0, start_bound_us = 0, gone_us = 0, end_bound_us = 0;
  // Already running when the recording first read its thread: it began at an unknown time
  // before, so its duration is a lower bound.
  bool began_before_recording = false;
  // Still running when the recording stopped (the program did not exit): it ended later.
  bool still_running = false;
  uint32_t root_depth = 0;
  std::string name;
  uint64_t greenlet = 0;
  std::string task_id;
};

enum class ContextKind : uint32_t { kGreenlet = 1, kTask = 2 };

struct Context {
  uint32_t index = 0;
  ContextKind kind = ContextKind::kGreenlet;
  std::string name;
  uint32_t thread = 0;
  uint64_t address = 0;
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
  uint32_t context_depth = 0;  // outer frames that are the thread's, not the context's
  uint32_t offcpu_reason = 0;  // string id + 1 of why the thread was not running; 0: none
  int64_t runqueue_us = 0;     // of wall_us, runnable but waiting for a CPU
  // Samples this one stands for when read with ReadOptions::merge_alike (their weights summed,
  // time_us the latest); 1 otherwise.
  uint32_t count = 1;
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
  std::vector<Process> processes;       // record --subprocesses: descendants, by index - 1
  std::vector<Segment> segments;        // by id - 1
  std::vector<Context> contexts;        // asyncio tasks (and named greenlets), in order of appearance
  std::unordered_map<uint32_t, uint32_t> context_at;  // index -> position in contexts
  const Context* context(uint32_t index) const {
    auto it = context_at.find(index);
    return it == context_at.end() ? nullptr : &contexts[it->second];
  }
  std::vector<Sample> samples;
  // Of every sample in the file, merged or not: how many, the latest time and the heaviest weight.
  uint64_t sample_count = 0;
  int64_t last_sample_us = 0, weight_max_us = 0;
  bool merged = false;                  // read with ReadOptions::merge_alike
  std::string path;                     // the file read (read_file); empty when read from memory
  bool truncated = false;               // stopped at an incomplete record
  uint64_t file_size = 0;
  // What the file's size allows it to make this process hold (see read_file); 0: no limit (a
  // recording built in memory). Analysis charges what it builds from the recording to it too.
  uint64_t memory_limit = 0, memory_used = 0;

  std::span<const uint32_t> stack(uint32_t id) const {
    return {stack_frames.data() + stack_offsets[id], stack_frames.data() + stack_offsets[id + 1]};
  }
  size_t stack_count() const { return stack_offsets.empty() ? 0 : stack_offsets.size() - 1; }
  const std::string& str(uint32_t id) const { return strings[id]; }
  const Segment* segment(uint32_t id) const {
    return id >= 1 && id <= segments.size() ? &segments[id - 1] : nullptr;
  }
};

// Bounds on what a file may contain. Times and weights are microseconds; every time a reader
// accepts is within ±kMaxTimeUs (35 years) so that sums and differences of them cannot overflow.
constexpr int64_t kMaxTimeUs = int64_t(1) << 50;
constexpr size_t kMaxStackDepth = 1 << 16;      // frames in one stack (the recorder writes ≤ 2048)
constexpr size_t kMaxStringBytes = 64 << 10;   // one name (the recorder writes ≤ ~16 KiB)

// Reads and validates a file. Throws UserError with one line on a missing, non-swprof, corrupt or
// unsupported file. A file cut short (recorder killed) reads up to its last complete record and
// sets `truncated`. A file may not decompress to more than kMaxExpansion times its compressed
// records plus 1 MiB, nor make the reader hold more than kMemoryPerFileByte bytes of memory per
// byte read plus 64 MiB (it fails with "... larger than its size justifies") — the limits and
// their reasons are in src/snapshot/reader.cpp.
struct ReadOptions {
  // Samples alike but for their time and weights (same thread, stack, flags, segment, context,
  // off-CPU reason, dump sequence) become one, with their weights summed and `count` saying how
  // many: memory and analysis time then grow with the distinct stacks and segments, not with the
  // samples. For whatever adds weights up (a call tree, a flame graph, pprof); what needs each
  // sample's time (timelines, the SkyWalking estimator) reads the file's samples again one by one
  // (samples_in_file).
  bool merge_alike = false;
  // Each sample handed to this, in file order, instead of held (Recording::samples stays empty;
  // sample_count and the rest still count them): for an export that needs each sample's time but
  // keeps only a few bytes of it. Not with merge_alike.
  std::function<void(const Sample&)> each_sample;
  // read_file reads no further than this many bytes, as if the file ended there (0: to its end):
  // a second read of a file still being recorded stops where the first one stopped.
  uint64_t up_to_bytes = 0;
};
Recording read_file(const std::string& path, ReadOptions options = {});
// The same for a file already in memory; `name` is what error messages call it.
Recording read_bytes(std::string_view data, const std::string& name, ReadOptions options = {});

// The samples an analysis or export reads, handed to `each` one by one in file order: a
// recording's own (samples_of), or a second read of its file that holds none of them.
using SampleSource = std::function<void(const std::function<void(const Sample&)>& each)>;
SampleSource samples_of(const Recording& rec);
// The samples `rec` was read from, one by one: its own when it holds them (read unmerged), else
// its file's read again and handed over, not held: as many as `rec` counted (a file still being
// recorded may have grown since), each checked against `rec`'s threads, stacks, segments and
// strings (UserError if the file changed in between).
SampleSource samples_in_file(const Recording& rec);
// Whether `path` can be read a second time: a regular file, not a pipe. A reader that needs each
// sample's time reads such a file merged, then its samples again; anything else unmerged, once.
bool rereadable(const std::string& path);
// The samples of `source` that `keep` accepts, held (to be sorted): charged to what `rec`'s file
// justifies, like the reader's own (UserError past it).
std::vector<Sample> hold_samples(const Recording& rec, const SampleSource& source,
                                 const std::function<bool(const Sample&)>& keep);

class Writer {
 public:
  // Creates the file and writes the header. Throws UserError if it cannot. kStream (record) writes
  // in place, so a killed recorder leaves a readable prefix; kReplace (import) writes a temporary
  // file renamed over `path` by a successful finish().
  Writer(const std::string& path, const pb::Header& header,
         OutputFile::Mode mode = OutputFile::Mode::kStream);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  uint32_t intern_string(std::string_view s);
  uint32_t intern_frame(const Frame& f);
  uint32_t intern_stack(std::span<const uint32_t> frames);  // root first
  uint32_t add_thread(int64_t tid, std::string_view name, uint32_t process = 0);
  uint32_t add_process(const Process& p);  // its index (1, 2, ...), for add_thread
  void set_thread_name(uint32_t thread, std::string_view name);
  void add_context(const Context& c);
  // What an id interned so far stands for (a live viewer of the recording names its frames).
  const Frame& frame(uint32_t id) const { return frame_by_id_.at(id); }
  std::string_view string(uint32_t id) const { return *string_by_id_.at(id); }
  void add_segment(const Segment& s);  // s.id must be the next id (1, 2, ...)
  uint32_t next_segment_id() const { return segments_ + 1; }
  void end_segment(uint32_t id, int64_t end_us, int64_t gone_us = 0, int64_t end_bound_us = 0,
                   bool still_running = false);
  void add_sample(const Sample& s);

  // Hands pending data over as a chunk when `force`, when enough has piled up, or when a second
  // passed since the last chunk. Chunks are serialized, compressed and written by a thread of the
  // writer's own (a chunk of 20,000 samples takes 1-8 ms, which on the sampling thread made that
  // many ticks late); at most kChunksInFlight wait for it, then this call waits too (a disk slower
  // than the samples come). Rethrows what that thread could not do (out of memory).
  void maybe_flush(bool force = false);
  // Flushes, writes the footer and closes (kReplace: renames into place). False when the disk
  // refused, now or earlier: failed() and error_message() say why, and the file holds every
  // record written before the failure (kReplace: the target is left as it was).
  // `verify` may read the complete file before a kReplace rename (see OutputFile::commit).
  bool finish(const pb::Footer& footer, const std::function<void(const std::string& written)>& verify = {});

  // The first write that failed stops all writing; a record cut short by it is removed, so the
  // file stays a sequence of whole records.
  // (Told by the chunk thread: a chunk handed over is known failed once that thread tried it.)
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  std::string error_message() const;  // "writing PATH failed: why"

  uint64_t bytes_written() const { return bytes_written_; }      // whole records on disk
  uint64_t samples_written() const { return samples_written_; }  // samples added
  uint64_t samples_in_file() const { return samples_in_file_; }  // samples in whole chunks on disk
  const std::string& path() const { return out_.path(); }

 private:
  static constexpr size_t kChunksInFlight = 2;
  bool write_record(uint8_t kind, const google::protobuf::Message& message);
  void write_chunks();           // the chunk thread
  void stop_chunk_thread();      // writes what was handed over, then joins
  void rethrow_chunk_error();

  struct FrameHash {
    size_t operator()(const Frame& f) const {
      return (size_t(f.function) * 0x9E3779B97F4A7C15ull) ^ (size_t(f.file) << 20) ^ size_t(f.line) ^
             (size_t(f.first_line) << 40);
    }
  };
  struct ZstdFree {
    void operator()(void* context) const;
  };

  OutputFile out_;  // written by the chunk thread while it runs
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> bytes_written_{0}, samples_in_file_{0};
  uint64_t samples_written_ = 0;
  int64_t last_flush_us_ = 0;
  int64_t last_sample_time_us_ = 0;

  std::unordered_map<std::string, uint32_t> strings_;
  std::unordered_map<Frame, uint32_t, FrameHash> frames_;
  std::vector<const std::string*> string_by_id_;  // keys of strings_ (node-based: they stay put)
  std::vector<Frame> frame_by_id_;
  std::unordered_multimap<uint64_t, uint32_t> stacks_;  // hash -> id
  std::vector<uint32_t> stack_pool_, stack_offsets_{0};
  uint32_t threads_ = 0, processes_ = 0, segments_ = 0;
  pb::Chunk pending_;
  size_t pending_samples_ = 0;
  std::unique_ptr<void, ZstdFree> zstd_;
  std::string serialized_, record_;  // the chunk thread's, once it runs

  struct HandedOver {
    std::unique_ptr<pb::Chunk> chunk;
    size_t samples = 0;
  };
  std::mutex chunks_mutex_;
  std::condition_variable chunks_changed_;
  std::deque<HandedOver> chunks_;                 // waiting for the chunk thread, oldest first
  std::vector<std::unique_ptr<pb::Chunk>> spare_;  // written and cleared: their buffers are reused
  bool closing_ = false;
  std::exception_ptr chunk_error_;
  std::thread chunk_thread_;
};

}  // namespace swprof::snapshot

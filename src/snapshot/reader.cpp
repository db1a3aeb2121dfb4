// Reads a .swp file. Nothing read is trusted: every size is bounded before allocation, every id is
// checked against what earlier records defined, every time is range-checked so that analysis can
// add and subtract them freely, and the file may not make the reader use more than its own size
// justifies, so a corrupt or hostile file yields one error line.
//
// The limits (measured on real files, see also the README):
//   * Decompressed bytes: at most kMaxExpansion (1024) times the compressed record bytes read so
//     far, plus 1 MiB. Recordings compress 2-6x; the most regular file swprof itself writes (a
//     SkyWalking import of 50 identical segments of 2000 dumps) 268x. The 1 MiB covers the
//     header, the footer and the first chunks of a short recording however well they compress.
//   * Memory: every record's items are counted from its protobuf wire format before it is parsed,
//     and what parsing and keeping them costs must fit in 64 MiB plus kMemoryPerFileByte (256)
//     bytes per byte read so far. A recording holds 20-60 bytes of memory per file byte (56 per
//     sample at 1-3 bytes per sample); a perfectly regular import up to ~1100, which the 64 MiB
//     still covers up to about a million samples. Analysis charges its call tree to the same
//     budget (Recording::memory_limit). Read with ReadOptions::merge_alike (analyze, flamegraph,
//     pprof, collapsed, diff), samples alike but for their time and weights are held once: a
//     10 M-sample recording of 2000 stacks then holds 19 MB instead of 713 MB.
#include <sys/stat.h>
#include <zstd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <istream>
#include <memory>
#include <streambuf>
#include <unordered_map>

#include <fmt/format.h>

#include "snapshot/format.h"
#include "swprof/common.h"
#include "swprof/snapshot.h"

namespace swprof::snapshot {

namespace {

constexpr uint64_t kMaxExpansion = 1024;
constexpr uint64_t kDecompressSlack = 1ull << 20;
constexpr uint64_t kMemoryPerFileByte = 256;
constexpr uint64_t kMemorySlack = 64ull << 20;

class Corrupt : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TooLarge : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void check(bool ok, const char* what) {
  if (!ok) throw Corrupt(what);
}

bool time_ok(int64_t t) { return t >= -kMaxTimeUs && t <= kMaxTimeUs; }

// --- counting a chunk's items from its wire format, before parsing it -------------------------

struct WireReader {
  const uint8_t* at;
  const uint8_t* end;

  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at == end) return false;
      uint8_t b = *at++;
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // One field: its number, wire type and, for length-delimited fields, its payload.
  bool field(uint32_t& number, uint32_t& type, std::string_view& payload) {
    uint64_t tag, len;
    if (!varint(tag)) return false;
    number = static_cast<uint32_t>(tag >> 3);
    type = static_cast<uint32_t>(tag & 7);
    payload = {};
    switch (type) {
      case 0: return varint(len);
      case 1: return skip(8);
      case 5: return skip(4);
      case 2:
        if (!varint(len) || len > static_cast<uint64_t>(end - at)) return false;
        payload = {reinterpret_cast<const char*>(at), static_cast<size_t>(len)};
        at += len;
        return true;
      default: return false;
    }
  }
  bool skip(size_t n) {
    if (static_cast<size_t>(end - at) < n) return false;
    at += n;
    return true;
  }
  static WireReader of(std::string_view s) {
    auto* p = reinterpret_cast<const uint8_t*>(s.data());
    return {p, p + s.size()};
  }
};

// Varints in a packed field: bytes without the continuation bit.
uint64_t packed_count(std::string_view payload) {
  uint64_t n = 0;
  for (char c : payload) n += (static_cast<uint8_t>(c) & 0x80) == 0;
  return n;
}

// Elements of the repeated scalar fields of a message (packed or not): all of them, and those of
// field `counted`.
struct Elements {
  uint64_t all = 0, counted = 0;
};
Elements repeated_elements(std::string_view message, uint32_t counted) {
  WireReader r = WireReader::of(message);
  uint32_t number, type;
  std::string_view payload;
  Elements n;
  while (r.at != r.end) {
    check(r.field(number, type, payload), "chunk does not parse");
    uint64_t k = type == 2 ? packed_count(payload) : 1;
    n.all += k;
    if (number == counted) n.counted += k;
  }
  return n;
}

// Bytes of memory that parsing a header or footer may take: its repeated fields (argv, entry
// specs, error kinds) are objects of their own.
uint64_t header_or_footer_cost(std::string_view message, uint8_t kind) {
  WireReader r = WireReader::of(message);
  uint32_t number, type;
  std::string_view payload;
  uint64_t cost = 0;
  while (r.at != r.end) {
    check(r.field(number, type, payload), kind == format::kHeader ? "header does not parse" : "footer does not parse");
    bool repeated = kind == format::kHeader ? number == 3 || number == 12 : number == 16;
    cost += 2 * payload.size() + (repeated ? 64 : 0);
  }
  return cost;
}

// Bytes of memory that parsing a chunk (protobuf's objects) and keeping its items (Recording)
// may take, from the chunk's wire format: per item a fixed cost for its objects, its payload
// twice (names are copied into protobuf's objects and again into the Recording), and 8 bytes per
// repeated number (a sample column entry or a stack's frame id: at least one byte on the wire,
// up to 8 in protobuf's arrays plus 4 in the Recording), 56 per sample (snapshot::Sample).
uint64_t chunk_cost(std::string_view chunk) {
  WireReader r = WireReader::of(chunk);
  uint32_t number, type;
  std::string_view payload;
  uint64_t cost = 0;
  while (r.at != r.end) {
    check(r.field(number, type, payload), "chunk does not parse");
    cost += 2 * payload.size();
    switch (number) {
      case 1: cost += 80; break;                                                // a string
      case 2: cost += 64; break;                                                // a frame
      case 3: cost += 64 + 8 * repeated_elements(payload, 1).all; break;        // a stack
      case 4: cost += 96; break;                                                // a thread
      case 5: cost += 208; break;                                               // a segment
      case 6: cost += 48; break;                                                // a segment end
      case 7: {                                                                 // the samples
        Elements e = repeated_elements(payload, 2);  // column 2: one thread index per sample
        cost += 8 * e.all + sizeof(Sample) * e.counted;
        break;
      }
      case 8: cost += 64; break;                                                // a thread name
      case 9: cost += 160; break;                                               // a context
      case 10: cost += 256 + 96 * repeated_elements(payload, 2).all; break;     // a process
      default: break;                                                           // unknown: skipped
    }
  }
  return cost;
}

// --- applying a parsed chunk --------------------------------------------------------------------

class Reader {
 public:
  Reader(Recording& r, ReadOptions options) : r_(r), options_(options) {}

  void apply_chunk(const pb::Chunk& c);
  void check_header(const pb::Header& h);
  void check_footer(const pb::Footer& f);
  uint64_t held() const { return held_; }

 private:
  // The sample `x` stands for alike (ReadOptions::merge_alike), or nullptr: a new one.
  Sample* alike(const Sample& x);

  Recording& r_;
  ReadOptions options_;
  uint64_t held_ = 0;  // bytes the Recording holds
  // merge_alike: the merged samples by what makes them alike, and each thread's last one (a
  // thread's consecutive samples often share their stack: no hashing then).
  struct AlikeKey {
    uint32_t thread, stack, flags, segment, greenlet, context_depth, offcpu_reason, queue_shape;
    int64_t sequence;
    bool operator==(const AlikeKey&) const = default;
  };
  struct AlikeHash {
    size_t operator()(const AlikeKey& k) const {
      uint64_t h = 0x9E3779B97F4A7C15ull;
      for (uint64_t v : {uint64_t(k.thread), uint64_t(k.stack), uint64_t(k.flags), uint64_t(k.segment),
                         uint64_t(k.greenlet), uint64_t(k.context_depth), uint64_t(k.offcpu_reason), uint64_t(k.sequence)})
        h = (h ^ v) * 0xFF51AFD7ED558CCDull;
      h = (h ^ k.queue_shape) * 0xFF51AFD7ED558CCDull;
      return static_cast<size_t>(h ^ (h >> 32));
    }
  };
  std::unordered_map<AlikeKey, uint32_t, AlikeHash> alike_;
  std::vector<uint32_t> last_of_thread_;  // index + 1 into r_.samples; 0: none
};

// The off-CPU view counts a sample where most of its off-CPU time went (run queue or blocked),
// and under <waiting for a CPU> only when it waited for one: samples that differ there stay apart,
// so that their sums decide as each of them did.
uint32_t queue_shape(const Sample& s) {
  if (s.runqueue_us == 0) return 0;
  return s.runqueue_us > s.wall_us - s.cpu_us - s.runqueue_us ? 2 : 1;
}

Sample* Reader::alike(const Sample& x) {
  const uint32_t shape = queue_shape(x);
  auto same = [&](const Sample& y) {
    return y.stack == x.stack && y.flags == x.flags && y.segment == x.segment && y.greenlet == x.greenlet &&
           y.context_depth == x.context_depth && y.offcpu_reason == x.offcpu_reason && y.sequence == x.sequence &&
           queue_shape(y) == shape;
  };
  if (last_of_thread_.size() <= x.thread) last_of_thread_.resize(r_.threads.size(), 0);
  uint32_t& last = last_of_thread_[x.thread];
  if (last && same(r_.samples[last - 1])) return &r_.samples[last - 1];
  AlikeKey key{x.thread, x.stack, x.flags, x.segment, x.greenlet, x.context_depth, x.offcpu_reason, shape, x.sequence};
  auto [it, fresh] = alike_.try_emplace(key, static_cast<uint32_t>(r_.samples.size()));
  last = it->second + 1;
  if (fresh) {
    held_ += sizeof(AlikeKey) + 2 * sizeof(void*) + sizeof(uint32_t);  // (a node of the map)
    return nullptr;
  }
  return &r_.samples[it->second];
}

void Reader::check_header(const pb::Header& h) {
  check(h.interval_us() >= 0 && h.interval_us() <= kMaxTimeUs, "sampling interval out of range");
  check(h.start_unix_us() >= 0 && h.start_unix_us() <= (int64_t(1) << 60), "start time out of range");
  check(h.min_duration_us() >= 0 && h.min_duration_us() <= kMaxTimeUs, "minimum duration out of range");
}

void Reader::check_footer(const pb::Footer& f) {
  check(time_ok(f.duration_us()), "duration out of range");
  check(std::isfinite(f.cost_mean_us()) && std::isfinite(f.cost_max_us()), "recorder cost is not a number");
}

void Reader::apply_chunk(const pb::Chunk& c) {
  for (const auto& s : c.strings()) {
    check(s.size() <= kMaxStringBytes, "a name longer than any swprof writes");
    r_.strings.push_back(s);
    held_ += sizeof(std::string) + s.size();
  }
  for (const auto& f : c.frames()) {
    check(f.function() < r_.strings.size() && f.file() < r_.strings.size(), "frame names an unknown string");
    r_.frames.push_back({f.function(), f.file(), f.line(), f.first_line()});
    held_ += sizeof(Frame);
  }
  for (const auto& s : c.stacks()) {
    check(static_cast<size_t>(s.frames_size()) <= kMaxStackDepth, "a stack deeper than any swprof writes");
    for (uint32_t id : s.frames()) check(id < r_.frames.size(), "stack names an unknown frame");
    r_.stack_frames.insert(r_.stack_frames.end(), s.frames().begin(), s.frames().end());
    check(r_.stack_frames.size() < UINT32_MAX, "more stack frames than a file can index");
    r_.stack_offsets.push_back(static_cast<uint32_t>(r_.stack_frames.size()));
    held_ += 4 + 4 * static_cast<uint64_t>(s.frames_size());
  }
  // (Processes before threads: a chunk's threads may name the processes it defines.)
  for (const auto& p : c.processes()) {
    check(r_.processes.size() < (1u << 20), "too many processes");
    check(p.command_size() <= 4096, "a command line longer than any swprof writes");
    Process pr{p.pid(), {}, p.python_version(), p.note(), p.parent(), p.found_us()};
    uint64_t bytes = 0;
    for (const auto& a : p.command()) {
      check(a.size() <= kMaxStringBytes, "a name longer than any swprof writes");
      pr.command.push_back(a);
      bytes += a.size() + sizeof(std::string);
    }
    check(pr.python_version.size() <= 64 && pr.note.size() <= kMaxStringBytes, "a name longer than any swprof writes");
    check(pr.found_us >= -kMaxTimeUs && pr.found_us <= kMaxTimeUs, "a time out of range");
    r_.processes.push_back(std::move(pr));
    held_ += sizeof(Process) + bytes + p.note().size() + 64;
  }
  for (const auto& t : c.threads()) {
    check(t.process() <= r_.processes.size(), "thread of an unknown process");
    r_.threads.push_back({t.tid(), t.name(), t.process()});
    held_ += sizeof(Thread) + t.name().size();
  }
  for (const auto& x : c.contexts()) {
    check(x.thread() < r_.threads.size(), "context on an unknown thread");
    check(x.kind() == 1 || x.kind() == 2, "context of an unknown kind");
    check(r_.contexts.size() < (1u << 24), "too many contexts");
    check(x.name().size() <= kMaxStringBytes, "a name longer than any swprof writes");
    r_.context_at[x.index()] = static_cast<uint32_t>(r_.contexts.size());
    r_.contexts.push_back({x.index(), static_cast<ContextKind>(x.kind()), x.name(), x.thread(), x.address()});
    held_ += sizeof(Context) + 64 + x.name().size();
  }
  for (const auto& n : c.thread_names()) {
    check(n.thread() < r_.threads.size(), "thread name for an unknown thread");
    r_.threads[n.thread()].name = n.name();
    held_ += n.name().size();
  }
  for (const auto& s : c.segments()) {
    check(s.id() == r_.segments.size() + 1, "segment ids out of order");
    check(s.thread() < r_.threads.size(), "segment on an unknown thread");
    check(time_ok(s.start_us()) && time_ok(s.first_seen_us()) && time_ok(s.start_bound_us()),
          "segment start out of range");
    Segment seg;
    seg.id = s.id();
    seg.thread = s.thread();
    seg.start_us = s.start_us();
    seg.first_seen_us = s.first_seen_us();
    seg.start_bound_us = s.start_bound_us();
    seg.began_before_recording = s.began_before_recording();
    seg.root_depth = s.root_depth();
    seg.name = s.name();
    seg.greenlet = s.greenlet();
    seg.task_id = s.task_id();
    held_ += sizeof(Segment) + seg.name.size() + seg.task_id.size();
    r_.segments.push_back(std::move(seg));
  }
  for (const auto& e : c.segment_ends()) {
    check(e.id() >= 1 && e.id() <= r_.segments.size(), "end of an unknown segment");
    Segment& seg = r_.segments[e.id() - 1];
    check(time_ok(e.end_us()) && e.end_us() >= seg.start_us, "segment ends before it starts");
    seg.end_us = e.end_us();
    check(time_ok(e.gone_us()) && time_ok(e.end_bound_us()), "segment end bounds out of range");
    seg.gone_us = e.gone_us();
    seg.end_bound_us = e.end_bound_us();
    seg.still_running = e.still_running();
  }
  const auto& s = c.samples();
  size_t n = static_cast<size_t>(s.thread_size());
  check(s.time_delta_us_size() == int(n) && s.stack_size() == int(n) && s.wall_us_size() == int(n) &&
            s.cpu_us_size() == int(n) && s.flags_size() == int(n) && s.segment_size() == int(n) &&
            (s.greenlet_size() == int(n) || s.greenlet_size() == 0) &&
            (s.sequence_size() == int(n) || s.sequence_size() == 0) &&
            (s.context_depth_size() == int(n) || s.context_depth_size() == 0) &&
            (s.offcpu_reason_size() == int(n) || s.offcpu_reason_size() == 0) &&
            (s.runqueue_us_size() == int(n) || s.runqueue_us_size() == 0),
        "sample columns of different lengths");
  int64_t time = 0;
  size_t stacks = r_.stack_count();
  // Geometric growth: reserving exactly what each chunk adds would copy every sample read so far
  // at every chunk (quadratic: a 10 M-sample file took minutes).
  const bool held = !options_.each_sample;
  if (held && !options_.merge_alike && r_.samples.capacity() < r_.samples.size() + n)
    r_.samples.reserve(std::max(r_.samples.size() + n, r_.samples.capacity() * 2));
  for (size_t i = 0; i < n; ++i) {
    Sample x;
    check(!__builtin_add_overflow(time, s.time_delta_us(int(i)), &time) && time >= 0 && time <= kMaxTimeUs,
          "sample time out of range");
    x.time_us = time;
    x.thread = s.thread(int(i));
    x.stack = s.stack(int(i));
    check(x.thread < r_.threads.size(), "sample on an unknown thread");
    check(x.stack < stacks, "sample with an unknown stack");
    check(s.wall_us(int(i)) <= uint64_t(kMaxTimeUs) && s.cpu_us(int(i)) <= uint64_t(kMaxTimeUs),
          "sample weight out of range");
    x.wall_us = static_cast<int64_t>(s.wall_us(int(i)));
    x.cpu_us = static_cast<int64_t>(s.cpu_us(int(i)));
    x.flags = s.flags(int(i));
    x.segment = s.segment(int(i));
    check(x.segment <= r_.segments.size(), "sample in an unknown segment");
    x.greenlet = s.greenlet_size() ? s.greenlet(int(i)) : 0;
    // Stored as sequence + 1 so that 0 means "none"; SkyWalking's sequence is an int32.
    uint32_t sequence = s.sequence_size() ? s.sequence(int(i)) : 0;
    check(sequence <= uint32_t(INT32_MAX) + 1, "dump sequence out of range");
    x.sequence = static_cast<int64_t>(sequence) - 1;
    x.context_depth = s.context_depth_size() ? s.context_depth(int(i)) : 0;
    check(x.context_depth <= r_.stack(x.stack).size(), "sample's context starts beyond its stack");
    x.offcpu_reason = s.offcpu_reason_size() ? s.offcpu_reason(int(i)) : 0;
    check(x.offcpu_reason <= r_.strings.size(), "sample's off-CPU reason names an unknown string");
    uint64_t runqueue = s.runqueue_us_size() ? s.runqueue_us(int(i)) : 0;
    check(runqueue <= uint64_t(kMaxTimeUs), "sample's run-queue time out of range");
    x.runqueue_us = static_cast<int64_t>(runqueue);
    ++r_.sample_count;
    r_.last_sample_us = std::max(r_.last_sample_us, x.time_us);
    r_.weight_max_us = std::max(r_.weight_max_us, x.wall_us);
    if (!held) {
      options_.each_sample(x);
      continue;
    }
    if (options_.merge_alike) {
      // A merged sample's weights stay under 2^60, so that analysis can still take differences of
      // three of them (wall - cpu - run queue) without overflow; a hostile file's weights (each
      // up to 2^50) that would pass it start a new sample. Real ones are years away from it.
      constexpr int64_t kMaxMergedUs = kMaxTimeUs << 10;
      Sample* same = alike(x);
      const int64_t wall = same ? same->wall_us + x.wall_us : 0, cpu = same ? same->cpu_us + x.cpu_us : 0,
                    runqueue = same ? same->runqueue_us + x.runqueue_us : 0;  // (each ≤ 2^60 + 2^50)
      if (same && same->count < UINT32_MAX && wall <= kMaxMergedUs && cpu <= kMaxMergedUs && runqueue <= kMaxMergedUs) {
        same->time_us = std::max(same->time_us, x.time_us);
        same->wall_us = wall;
        same->cpu_us = cpu;
        same->runqueue_us = runqueue;
        ++same->count;
        continue;
      }
      held_ += sizeof(Sample);
    }
    r_.samples.push_back(x);
  }
  if (held && !options_.merge_alike) held_ += n * sizeof(Sample);
}

// A streambuf over bytes already in memory, so read_bytes shares read_stream without a copy.
class MemoryBuffer : public std::streambuf {
 public:
  explicit MemoryBuffer(std::string_view data) {
    char* p = const_cast<char*>(data.data());
    setg(p, p, p + data.size());
  }
};

struct DctxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

Recording read_stream(std::istream& in, uint64_t size, const std::string& name, ReadOptions options) {
  Recording r;
  r.merged = options.merge_alike;
  r.stack_offsets.push_back(0);
  r.file_size = size;

  unsigned char magic[sizeof format::kMagic];
  in.read(reinterpret_cast<char*>(magic), sizeof magic);
  if (in.gcount() != sizeof magic || std::memcmp(magic, format::kMagic, sizeof magic) != 0)
    throw UserError(fmt::format("{} is not a swprof snapshot file (those start with the .swp magic bytes)", name));

  std::unique_ptr<ZSTD_DCtx, DctxFree> dctx(ZSTD_createDCtx());
  if (!dctx) throw std::bad_alloc();
  Reader reader(r, options);
  std::string payload, raw;
  uint64_t offset = sizeof magic;
  uint64_t compressed_total = 0, decompressed_total = 0;
  uint64_t record_end = offset, memory_limit = kMemorySlack;
  bool have_header = false;
  try {
    for (;;) {
      // The file ends where its size said when it was opened (or ReadOptions::up_to_bytes): bytes
      // a recorder appends meanwhile are not read, not even a record's header.
      if (r.file_size && offset >= r.file_size) break;
      if (r.file_size && offset + format::kRecordHeaderSize > r.file_size) {
        r.truncated = true;
        break;
      }
      unsigned char head[format::kRecordHeaderSize];
      in.read(reinterpret_cast<char*>(head), sizeof head);
      if (in.gcount() == 0) break;  // clean end of file
      if (in.gcount() != sizeof head) {
        r.truncated = true;
        break;
      }
      uint32_t size = uint32_t(head[0]) | uint32_t(head[1]) << 8 | uint32_t(head[2]) << 16 | uint32_t(head[3]) << 24;
      uint8_t kind = head[4];
      check(kind >= format::kHeader && kind <= format::kFooter, "unknown record kind");
      check(size <= format::kMaxPayload, "record larger than any swprof writes");
      if (r.file_size && offset + sizeof head + size > r.file_size) {
        r.truncated = true;
        break;
      }
      payload.resize(size);
      in.read(payload.data(), size);
      if (static_cast<uint32_t>(in.gcount()) != size) {
        r.truncated = true;
        break;
      }
      unsigned long long content = ZSTD_getFrameContentSize(payload.data(), payload.size());
      check(content != ZSTD_CONTENTSIZE_ERROR && content != ZSTD_CONTENTSIZE_UNKNOWN, "record is not zstd data");
      check(content <= format::kMaxDecompressed, "record decompresses to an implausible size");
      compressed_total += size;
      decompressed_total += content;
      record_end = offset + sizeof head + size;
      memory_limit = kMemorySlack + kMemoryPerFileByte * record_end;
      if (decompressed_total > kDecompressSlack + kMaxExpansion * compressed_total ||
          reader.held() + content > memory_limit)
        throw TooLarge(fmt::format("it decompresses to {} from {} bytes", format_bytes(decompressed_total),
                                   compressed_total));
      raw.resize(content);
      size_t got = ZSTD_decompressDCtx(dctx.get(), raw.data(), raw.size(), payload.data(), payload.size());
      check(!ZSTD_isError(got) && got == content, "record fails its checksum or does not decompress");

      if (kind != format::kChunk) {
        uint64_t cost = header_or_footer_cost(raw, kind);
        if (reader.held() + content + cost > memory_limit)
          throw TooLarge(fmt::format("its {} would take {} of memory from {} bytes",
                                     kind == format::kHeader ? "header" : "footer", format_bytes(cost), record_end));
      }
      if (kind == format::kHeader) {
        check(!have_header, "second header");
        check(r.header.ParseFromString(raw), "header does not parse");
        if (r.header.format_version() > kFormatVersion)
          throw UserError(fmt::format("{} uses snapshot format {}, newer than this swprof reads ({}): upgrade swprof",
                                      name, r.header.format_version(), kFormatVersion));
        reader.check_header(r.header);
        have_header = true;
      } else {
        check(have_header, "data before the header");
        if (kind == format::kChunk) {
          uint64_t cost = chunk_cost(raw);
          if (reader.held() + content + cost > memory_limit)
            throw TooLarge(fmt::format("its items would take {} of memory from {} bytes",
                                       format_bytes(reader.held() + cost), record_end));
          pb::Chunk chunk;
          check(chunk.ParseFromString(raw), "chunk does not parse");
          reader.apply_chunk(chunk);
        } else {
          pb::Footer footer;
          check(footer.ParseFromString(raw), "footer does not parse");
          reader.check_footer(footer);
          r.footer = std::move(footer);
          break;
        }
      }
      offset += sizeof head + size;
    }
  } catch (const Corrupt& e) {
    throw UserError(fmt::format("{} is corrupt at byte {}: {}", name, offset, e.what()));
  } catch (const TooLarge& e) {
    throw UserError(fmt::format("{} is larger than its size justifies at byte {} ({}): a corrupt or hostile file",
                                name, offset, e.what()));
  }
  if (!have_header) throw UserError(fmt::format("{} is truncated before its header: it holds no data", name));
  if (!r.footer) r.truncated = true;
  r.memory_limit = memory_limit;
  r.memory_used = reader.held();
  return r;
}

}  // namespace

Recording read_file(const std::string& path, ReadOptions options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st = {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw UserError(fmt::format("{} is a directory", path));
  uint64_t size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
  if (options.up_to_bytes && (size == 0 || size > options.up_to_bytes)) size = options.up_to_bytes;
  Recording r = read_stream(in, size, path, options);
  r.path = path;
  return r;
}

Recording read_bytes(std::string_view data, const std::string& name, ReadOptions options) {
  MemoryBuffer buffer(data);
  std::istream in(&buffer);
  return read_stream(in, data.size(), name, options);
}

SampleSource samples_of(const Recording& rec) {
  return [&rec](const std::function<void(const Sample&)>& each) {
    for (const auto& s : rec.samples) each(s);
  };
}

SampleSource samples_in_file(const Recording& rec) {
  if (!rec.merged) return samples_of(rec);
  return [&rec](const std::function<void(const Sample&)>& each) {
    const std::string changed =
        fmt::format("{} changed while it was read: analyse a copy that no one writes to", rec.path);
    uint64_t left = rec.sample_count;
    ReadOptions one_by_one;
    one_by_one.up_to_bytes = rec.file_size;  // a file still being recorded has grown since
    one_by_one.each_sample = [&](const Sample& s) {
      if (left == 0) return;
      --left;
      // The same file gives the same first samples; another one put in its place may not.
      if (s.thread >= rec.threads.size() || s.stack >= rec.stack_count() || s.segment > rec.segments.size() ||
          s.offcpu_reason > rec.strings.size())
        throw UserError(changed);
      each(s);
    };
    read_file(rec.path, one_by_one);
    if (left != 0) throw UserError(changed);
  };
}

bool rereadable(const std::string& path) {
  struct stat st = {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<Sample> hold_samples(const Recording& rec, const SampleSource& source,
                                 const std::function<bool(const Sample&)>& keep) {
  std::vector<Sample> held;
  source([&](const Sample& s) {
    if (!keep(s)) return;
    if (rec.memory_limit && rec.memory_used + (held.size() + 1) * sizeof(Sample) > rec.memory_limit)
      throw UserError(fmt::format("{} is larger than its size justifies ({} samples to sort): a corrupt or hostile file",
                                  rec.path, held.size() + 1));
    held.push_back(s);
  });
  return held;
}

}  // namespace swprof::snapshot

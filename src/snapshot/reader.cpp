// Reads a .swp file. Nothing read is trusted: every size is bounded before allocation and every id
// is checked against what earlier records defined, so a corrupt file yields one error line.
#include <sys/stat.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "snapshot/format.h"
#include "swprof/common.h"
#include "swprof/snapshot.h"

namespace swprof::snapshot {

namespace {

class Corrupt : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void check(bool ok, const char* what) {
  if (!ok) throw Corrupt(what);
}

void apply_chunk(const pb::Chunk& c, Recording& r) {
  for (const auto& s : c.strings()) r.strings.push_back(s);
  for (const auto& f : c.frames()) {
    check(f.function() < r.strings.size() && f.file() < r.strings.size(), "frame names an unknown string");
    r.frames.push_back({f.function(), f.file(), f.line(), f.first_line()});
  }
  for (const auto& s : c.stacks()) {
    for (uint32_t id : s.frames()) check(id < r.frames.size(), "stack names an unknown frame");
    r.stack_frames.insert(r.stack_frames.end(), s.frames().begin(), s.frames().end());
    r.stack_offsets.push_back(static_cast<uint32_t>(r.stack_frames.size()));
  }
  for (const auto& t : c.threads()) r.threads.push_back({t.tid(), t.name()});
  for (const auto& x : c.contexts()) {
    check(x.thread() < r.threads.size(), "context on an unknown thread");
    check(x.kind() == 1 || x.kind() == 2, "context of an unknown kind");
    check(r.contexts.size() < (1u << 24), "too many contexts");
    r.context_at[x.index()] = static_cast<uint32_t>(r.contexts.size());
    r.contexts.push_back({x.index(), static_cast<ContextKind>(x.kind()), x.name(), x.thread(), x.address()});
  }
  for (const auto& n : c.thread_names()) {
    check(n.thread() < r.threads.size(), "thread name for an unknown thread");
    r.threads[n.thread()].name = n.name();
  }
  for (const auto& s : c.segments()) {
    check(s.id() == r.segments.size() + 1, "segment ids out of order");
    check(s.thread() < r.threads.size(), "segment on an unknown thread");
    Segment seg;
    seg.id = s.id();
    seg.thread = s.thread();
    seg.start_us = s.start_us();
    seg.first_seen_us = s.first_seen_us();
    seg.start_bound_us = s.start_bound_us();
    seg.root_depth = s.root_depth();
    seg.name = s.name();
    seg.greenlet = s.greenlet();
    seg.task_id = s.task_id();
    r.segments.push_back(std::move(seg));
  }
  for (const auto& e : c.segment_ends()) {
    check(e.id() >= 1 && e.id() <= r.segments.size(), "end of an unknown segment");
    r.segments[e.id() - 1].end_us = e.end_us();
    r.segments[e.id() - 1].gone_us = e.gone_us();
    r.segments[e.id() - 1].end_bound_us = e.end_bound_us();
  }
  const auto& s = c.samples();
  size_t n = static_cast<size_t>(s.thread_size());
  check(s.time_delta_us_size() == int(n) && s.stack_size() == int(n) && s.wall_us_size() == int(n) &&
            s.cpu_us_size() == int(n) && s.flags_size() == int(n) && s.segment_size() == int(n) &&
            (s.greenlet_size() == int(n) || s.greenlet_size() == 0) &&
            (s.sequence_size() == int(n) || s.sequence_size() == 0) &&
            (s.context_depth_size() == int(n) || s.context_depth_size() == 0),
        "sample columns of different lengths");
  int64_t time = 0;
  size_t stacks = r.stack_count();
  for (size_t i = 0; i < n; ++i) {
    Sample x;
    time += s.time_delta_us(int(i));
    x.time_us = time;
    x.thread = s.thread(int(i));
    x.stack = s.stack(int(i));
    check(x.thread < r.threads.size(), "sample on an unknown thread");
    check(x.stack < stacks, "sample with an unknown stack");
    check(s.wall_us(int(i)) < (1ull << 50) && s.cpu_us(int(i)) < (1ull << 50), "sample weight out of range");
    x.wall_us = static_cast<int64_t>(s.wall_us(int(i)));
    x.cpu_us = static_cast<int64_t>(s.cpu_us(int(i)));
    x.flags = s.flags(int(i));
    x.segment = s.segment(int(i));
    check(x.segment <= r.segments.size(), "sample in an unknown segment");
    x.greenlet = s.greenlet_size() ? s.greenlet(int(i)) : 0;
    // Stored as sequence + 1 so that 0 means "none".
    x.sequence = s.sequence_size() ? static_cast<int64_t>(s.sequence(int(i))) - 1 : -1;
    x.context_depth = s.context_depth_size() ? s.context_depth(int(i)) : 0;
    check(x.context_depth <= r.stack(x.stack).size(), "sample's context starts beyond its stack");
    r.samples.push_back(x);
  }
}

}  // namespace

Recording read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw UserError(fmt::format("{} is a directory", path));
  Recording r;
  r.stack_offsets.push_back(0);
  r.file_size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;

  unsigned char magic[sizeof format::kMagic];
  in.read(reinterpret_cast<char*>(magic), sizeof magic);
  if (in.gcount() != sizeof magic || std::memcmp(magic, format::kMagic, sizeof magic) != 0)
    throw UserError(fmt::format("{} is not a swprof snapshot file (those start with the .swp magic bytes)", path));

  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::string payload, raw;
  uint64_t offset = sizeof magic;
  bool have_header = false;
  try {
    for (;;) {
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
      raw.resize(content);
      size_t got = ZSTD_decompressDCtx(dctx, raw.data(), raw.size(), payload.data(), payload.size());
      check(!ZSTD_isError(got) && got == content, "record fails its checksum or does not decompress");

      if (kind == format::kHeader) {
        check(!have_header, "second header");
        check(r.header.ParseFromString(raw), "header does not parse");
        if (r.header.format_version() > kFormatVersion)
          throw UserError(fmt::format("{} uses snapshot format {}, newer than this swprof reads ({}): upgrade swprof",
                                      path, r.header.format_version(), kFormatVersion));
        have_header = true;
      } else {
        check(have_header, "data before the header");
        if (kind == format::kChunk) {
          pb::Chunk chunk;
          check(chunk.ParseFromString(raw), "chunk does not parse");
          apply_chunk(chunk, r);
        } else {
          pb::Footer footer;
          check(footer.ParseFromString(raw), "footer does not parse");
          r.footer = std::move(footer);
          break;
        }
      }
      offset += sizeof head + size;
    }
  } catch (const Corrupt& e) {
    ZSTD_freeDCtx(dctx);
    throw UserError(fmt::format("{} is corrupt at byte {}: {}", path, offset, e.what()));
  }
  ZSTD_freeDCtx(dctx);
  if (!have_header) throw UserError(fmt::format("{} is truncated before its header: it holds no data", path));
  if (!r.footer) r.truncated = true;
  return r;
}

}  // namespace swprof::snapshot

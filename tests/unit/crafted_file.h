// Snapshot files put together record by record, for tests of what the reader refuses: valid
// framing (magic, record heads, zstd with a content size and checksum) around any message.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "snapshot/format.h"
#include "swprof.pb.h"
#include "swprof/snapshot.h"

namespace test {

// A zstd frame of `size` zero bytes, compressed a block at a time (no buffer of `size` bytes).
inline std::string zero_frame(uint64_t size) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setPledgedSrcSize(c, size);
  std::string zeros(1 << 20, '\0'), out, buf(ZSTD_CStreamOutSize(), '\0');
  for (uint64_t left = size;;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
    left -= n;
    ZSTD_inBuffer in{zeros.data(), n, 0};
    ZSTD_EndDirective mode = left ? ZSTD_e_continue : ZSTD_e_end;
    for (;;) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      size_t rest = ZSTD_compressStream2(c, &o, &in, mode);
      out.append(buf.data(), o.pos);
      if (mode == ZSTD_e_end ? rest == 0 : in.pos == in.size) break;
    }
    if (!left) break;
  }
  ZSTD_freeCCtx(c);
  return out;
}

class CraftedFile {
 public:
  CraftedFile() : data_(reinterpret_cast<const char*>(swprof::snapshot::format::kMagic), 8) {}

  // A record whose payload is `payload` as is (already compressed, or garbage).
  CraftedFile& raw(uint8_t kind, std::string_view payload) {
    uint32_t size = static_cast<uint32_t>(payload.size());
    for (int i = 0; i < 4; ++i) data_ += static_cast<char>(size >> (8 * i));
    data_ += static_cast<char>(kind);
    data_ += payload;
    return *this;
  }
  // A record holding `bytes` compressed the way swprof writes them.
  CraftedFile& record(uint8_t kind, std::string_view bytes) {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    std::string out(ZSTD_compressBound(bytes.size()), '\0');
    out.resize(ZSTD_compress2(c, out.data(), out.size(), bytes.data(), bytes.size()));
    ZSTD_freeCCtx(c);
    return raw(kind, out);
  }
  CraftedFile& header(const swprof::pb::Header& h) { return record(1, h.SerializeAsString()); }
  CraftedFile& chunk(const swprof::pb::Chunk& c) { return record(2, c.SerializeAsString()); }
  CraftedFile& footer(const swprof::pb::Footer& f) { return record(3, f.SerializeAsString()); }

  static swprof::pb::Header plain_header() {
    swprof::pb::Header h;
    h.set_format_version(swprof::snapshot::kFormatVersion);
    h.set_python_version("3.11.7");
    h.add_command("python3");
    h.set_interval_us(10000);
    return h;
  }
  // A chunk with one thread, one frame and one stack, ready for samples.
  static swprof::pb::Chunk one_stack_chunk() {
    swprof::pb::Chunk c;
    c.add_strings("main");
    c.add_strings("/app.py");
    auto* f = c.add_frames();
    f->set_function(0);
    f->set_file(1);
    c.add_stacks()->add_frames(0);
    c.add_threads()->set_tid(1);
    return c;
  }
  static void add_sample(swprof::pb::Chunk& c, int64_t time_delta, uint64_t wall = 10000) {
    auto* s = c.mutable_samples();
    s->add_time_delta_us(time_delta);
    s->add_thread(0);
    s->add_stack(0);
    s->add_wall_us(wall);
    s->add_cpu_us(0);
    s->add_flags(0);
    s->add_segment(0);
  }

  swprof::snapshot::Recording read() const { return swprof::snapshot::read_bytes(data_, "crafted.swp"); }
  const std::string& bytes() const { return data_; }

 private:
  std::string data_;
};

}  // namespace test

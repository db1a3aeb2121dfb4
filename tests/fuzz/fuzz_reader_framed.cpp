// libFuzzer: the snapshot reader past its framing and zstd layer. The input is a list of records
// [u8 kind][u32 little-endian length][payload]; each payload is compressed the way swprof writes
// it and framed, so mutations reach the protobuf parser, the validation and the analysis paths
// (raw bytes rarely survive zstd's checksum). tests/fuzz/make_seeds.py turns real recordings
// into this form.
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "exercise.h"
#include "snapshot/format.h"
#include "swprof/common.h"
#include "swprof/snapshot.h"

namespace {

std::string frame(const uint8_t* data, size_t size) {
  using namespace swprof::snapshot;
  static ZSTD_CCtx* cctx = [] {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    return c;
  }();
  std::string file(reinterpret_cast<const char*>(format::kMagic), sizeof format::kMagic);
  std::string compressed;
  for (size_t at = 0; at + 5 <= size;) {
    uint8_t kind = data[at];
    uint32_t len = uint32_t(data[at + 1]) | uint32_t(data[at + 2]) << 8 | uint32_t(data[at + 3]) << 16 |
                   uint32_t(data[at + 4]) << 24;
    at += 5;
    if (len > size - at) len = static_cast<uint32_t>(size - at);
    compressed.resize(ZSTD_compressBound(len));
    size_t n = ZSTD_compress2(cctx, compressed.data(), compressed.size(), data + at, len);
    if (ZSTD_isError(n)) break;
    for (int i = 0; i < 4; ++i) file += static_cast<char>(n >> (8 * i));
    file += static_cast<char>(kind);
    file.append(compressed.data(), n);
    at += len;
  }
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = (swprof::fuzz::quiet(), true);
  (void)quiet;
  std::string file = frame(data, size);
  try {
    auto rec = swprof::snapshot::read_bytes(file, "fuzz.swp");
    swprof::fuzz::exercise(rec, size ? data[size - 1] : 0);
    // As analyze, flamegraph and pprof read it: alike samples merged.
    swprof::snapshot::ReadOptions merged;
    merged.merge_alike = true;
    swprof::fuzz::exercise_merged(swprof::snapshot::read_bytes(file, "fuzz.swp", merged), size ? data[size - 1] : 0);
  } catch (const swprof::UserError&) {
  }
  return 0;
}

// libFuzzer: the snapshot reader on raw bytes (magic, framing, zstd, protobuf, validation), then
// every analysis and export path on what it accepts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "exercise.h"
#include "swprof/common.h"
#include "swprof/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = (swprof::fuzz::quiet(), true);
  (void)quiet;
  try {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    auto rec = swprof::snapshot::read_bytes(bytes, "fuzz.swp");
    swprof::fuzz::exercise(rec, size ? data[size / 2] : 0);
    // As analyze, flamegraph and pprof read it: alike samples merged.
    swprof::snapshot::ReadOptions merged;
    merged.merge_alike = true;
    swprof::fuzz::exercise_merged(swprof::snapshot::read_bytes(bytes, "fuzz.swp", merged), size ? data[size / 2] : 0);
  } catch (const swprof::UserError&) {
  }
  return 0;
}

// Framing shared by the writer and the reader (see proto/swprof.proto).
#pragma once

#include <cstddef>
#include <cstdint>

namespace swprof::snapshot::format {

// PNG-style: a high byte catches 7-bit transfers, CR LF and ^Z catch text-mode mangling.
constexpr unsigned char kMagic[8] = {0x89, 'S', 'W', 'P', '\r', '\n', 0x1a, '\n'};

enum RecordKind : uint8_t { kHeader = 1, kChunk = 2, kFooter = 3 };

constexpr size_t kRecordHeaderSize = 5;               // u32 payload size + u8 kind
constexpr uint32_t kMaxPayload = 256u << 20;          // compressed
constexpr uint64_t kMaxDecompressed = 1024ull << 20;  // one chunk, decompressed

}  // namespace swprof::snapshot::format

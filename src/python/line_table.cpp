// The three line-number table formats, decoded into byte-offset ranges. Each decoder mirrors the
// reference algorithm in CPython's Objects/codeobject.c for its version, and stops at the end of
// the (bounded) table rather than trusting counts in it.
#include <algorithm>

#include "swprof/python.h"

namespace swprof::python {

namespace {

constexpr int32_t kOpenEnd = 0x7FFFFFFF;

void push_range(std::vector<LineRange>& out, int32_t start, int32_t end, int32_t line) {
  if (end <= start) return;
  out.push_back({start, end, line});
}

// 3.8–3.9 co_lnotab: (address increment, signed line increment) byte pairs.
void decode_lnotab(std::string_view t, int first_line, std::vector<LineRange>& out) {
  int32_t addr = 0, line = first_line;
  for (size_t i = 0; i + 1 < t.size(); i += 2) {
    int32_t next = addr + static_cast<uint8_t>(t[i]);
    push_range(out, addr, next, line);
    addr = next;
    line += static_cast<int8_t>(t[i + 1]);
  }
  push_range(out, addr, kOpenEnd, line);
}

// 3.10 co_linetable: (byte length, signed line delta or -128 for "no line") pairs.
void decode_linetable310(std::string_view t, int first_line, std::vector<LineRange>& out) {
  int32_t start = 0, line = first_line;
  for (size_t i = 0; i + 1 < t.size(); i += 2) {
    int32_t end = start + static_cast<uint8_t>(t[i]);
    int8_t delta = static_cast<int8_t>(t[i + 1]);
    int32_t this_line = -1;
    if (delta != -128) {
      line += delta;
      this_line = line;
    }
    push_range(out, start, end, this_line);
    start = end;
  }
}

// 3.11+ location table: entries start with a byte that has bit 7 set: 4-bit code, 3-bit length-1
// (code units). Varints are 6-bit groups with bit 6 as continuation.
struct VarintReader {
  std::string_view t;
  size_t pos;
  uint32_t varint() {
    uint32_t value = 0;
    unsigned shift = 0;
    while (pos < t.size()) {
      uint8_t b = static_cast<uint8_t>(t[pos++]);
      if (shift < 32) value |= static_cast<uint32_t>(b & 63) << shift;
      shift += 6;
      if (!(b & 64)) break;
    }
    return value;
  }
  int32_t signed_varint() {
    uint32_t u = varint();
    return (u & 1) ? -static_cast<int32_t>(u >> 1) : static_cast<int32_t>(u >> 1);
  }
};

void decode_locations(std::string_view t, int first_line, std::vector<LineRange>& out) {
  int32_t start = 0, line = first_line;
  size_t pos = 0;
  while (pos < t.size()) {
    uint8_t first = static_cast<uint8_t>(t[pos]);
    if (!(first & 0x80)) {  // not an entry start: corrupt; resynchronise
      ++pos;
      continue;
    }
    int code = (first >> 3) & 15;
    int32_t length = ((first & 7) + 1) * 2;
    VarintReader r{t, pos + 1};
    int32_t delta = 0;
    if (code == 13 || code == 14) delta = r.signed_varint();
    else if (code >= 10 && code <= 12) delta = code - 10;
    line += delta;
    push_range(out, start, start + length, code == 15 ? -1 : line);
    start += length;
    // Skip to the next entry start; column data never has bit 7 set.
    pos = std::max(pos + 1, r.pos);
    while (pos < t.size() && !(static_cast<uint8_t>(t[pos]) & 0x80)) ++pos;
  }
}

}  // namespace

std::vector<LineRange> decode_line_table(LineTableFormat format, std::string_view table, int first_line) {
  std::vector<LineRange> out;
  switch (format) {
    case LineTableFormat::kLnotab: decode_lnotab(table, first_line, out); break;
    case LineTableFormat::kLinetable310: decode_linetable310(table, first_line, out); break;
    case LineTableFormat::kLocations: decode_locations(table, first_line, out); break;
  }
  return out;
}

int line_for_offset(const std::vector<LineRange>& ranges, int32_t offset, int first_line) {
  if (offset < 0 || ranges.empty()) return first_line;
  auto it = std::upper_bound(ranges.begin(), ranges.end(), offset,
                             [](int32_t o, const LineRange& r) { return o < r.start; });
  if (it == ranges.begin()) return first_line;
  --it;
  if (offset >= it->end) return first_line;
  // An instruction without a line (compiler-generated), or on the artificial line 0 (3.12+ puts
  // a module's first RESUME there): report the closest real line before it.
  for (;; --it) {
    if (it->line > 0) return it->line;
    if (it == ranges.begin()) return first_line;
  }
}

}  // namespace swprof::python

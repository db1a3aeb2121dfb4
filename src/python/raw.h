// Reading fields out of bytes copied from the target, and telling a pointer worth following.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>

namespace swprof::python {

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The end of the last of some 8-byte fields (the bytes to read to have them all); absent ones
// (kAbsent) do not count.
inline uint32_t end_of_fields(std::initializer_list<uint32_t> offsets) {
  uint32_t end = 0;
  for (uint32_t o : offsets)
    if (o != 0xFFFFFFFFu && o + 8 > end) end = o + 8;
  return end;
}

// An aligned user-space address: anything else read where a pointer should be is a torn read.
inline bool plausible_pointer(uint64_t p) { return p >= 4096 && p < (1ull << 56) && (p & 7) == 0; }

}  // namespace swprof::python

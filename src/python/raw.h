// Reading fields out of bytes copied from the target, and telling a pointer worth following.
#pragma once

#include <cstdint>
#include <cstring>

namespace swprof::python {

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// An aligned user-space address: anything else read where a pointer should be is a torn read.
inline bool plausible_pointer(uint64_t p) { return p >= 4096 && p < (1ull << 56) && (p & 7) == 0; }

}  // namespace swprof::python

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include "swprof/target.h"

namespace swprof::target {

bool Memory::read(uint64_t address, void* out, size_t size) const {
  if (size == 0) return true;
  if (address == 0) return false;
  iovec local{out, size};
  iovec remote{reinterpret_cast<void*>(address), size};
  ++syscalls_;
  ssize_t got = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
  return got == static_cast<ssize_t>(size);
}

size_t Memory::read_batch(std::span<Request> requests) const {
  // process_vm_readv stops at the first remote range it cannot read and reports the bytes done so
  // far; everything after that range is retried in the next call.
  constexpr size_t kMaxIov = 512;
  iovec local[kMaxIov];
  iovec remote[kMaxIov];
  size_t ok_count = 0;
  size_t next = 0;
  for (auto& r : requests) r.ok = false;
  while (next < requests.size()) {
    size_t n = 0;
    size_t first = next;
    while (next < requests.size() && n < kMaxIov) {
      Request& r = requests[next];
      if (r.address == 0 || r.size == 0) {
        r.ok = r.size == 0;
        if (r.ok) ++ok_count;
        if (n == 0) {
          ++next;
          first = next;
          continue;
        }
        break;  // keep the index mapping simple: stop the batch here
      }
      local[n] = {r.out, r.size};
      remote[n] = {reinterpret_cast<void*>(r.address), r.size};
      ++n;
      ++next;
    }
    if (n == 0) continue;
    ++syscalls_;
    ssize_t got = process_vm_readv(pid_, local, n, remote, n, 0);
    size_t done = got > 0 ? static_cast<size_t>(got) : 0;
    size_t i = 0;
    for (; i < n; ++i) {
      Request& r = requests[first + i];
      if (done < r.size) break;
      done -= r.size;
      r.ok = true;
      ++ok_count;
    }
    if (i < n) {
      // Request first+i failed (or was partial): mark it failed and resume after it.
      next = first + i + 1;
    }
  }
  return ok_count;
}

}  // namespace swprof::target

// The GC's generation lists walked from outside (see greenlets.h). Each generation is a circular
// list of PyGC_Head {_gc_next, _gc_prev} threaded through the tracked objects, the object right
// after its header, its head embedded in struct _gc_runtime_state. The low bits of _gc_next can
// carry flags (3.14's old-space bit, a collection's unreachable mark): they are masked.
#include <unordered_set>

#include <fmt/format.h>

#include "live/gc_walk.h"
#include "python/raw.h"
#include "swprof/common.h"

namespace swprof::live {

namespace {

constexpr uint64_t kBlock = 16384;
constexpr size_t kMaxCachedBlocks = 4096;  // 64 MiB at most
constexpr uint64_t kGcHeadSize = 16;

// Reads 32 bytes (a GC header, the object's refcount and type) through a cache of 16 KiB blocks.
class BlockReader {
 public:
  explicit BlockReader(const target::Memory& memory) : memory_(memory) {}
  bool read32(uint64_t address, uint64_t out[4]) {
    uint64_t base = address & ~(kBlock - 1);
    if (address + 32 <= base + kBlock) {
      auto it = blocks_.find(base);
      if (it == blocks_.end()) {
        if (blocks_.size() >= kMaxCachedBlocks) blocks_.clear();
        std::vector<uint8_t> bytes(kBlock);
        // A block that is not all mapped (the end of a heap) is not cached: read the words alone.
        if (!memory_.read(base, bytes.data(), bytes.size())) return memory_.read(address, out, 32);
        it = blocks_.emplace(base, std::move(bytes)).first;
      }
      std::memcpy(out, it->second.data() + (address - base), 32);
      return true;
    }
    return memory_.read(address, out, 32);
  }

 private:
  const target::Memory& memory_;
  std::unordered_map<uint64_t, std::vector<uint8_t>> blocks_;
};

}  // namespace

GcWalkStats walk_gc_objects(const target::Memory& memory, const python::Interpreter& interp, uint64_t interp_state,
                            size_t max_objects, int64_t max_us,
                            const std::function<void(uint64_t object, uint64_t type)>& visit) {
  const auto& live = interp.layout.live;
  GcWalkStats stats;
  const int64_t started = monotonic_us();
  auto stop = [&](std::string why) {
    stats.complete = false;
    if (stats.stopped.empty()) stats.stopped = std::move(why);
  };
  if (live.gc_state == python::kAbsent) {
    stop("the GC's lists are not known for this version");
    return stats;
  }
  const uint64_t state = (live.gc_in_runtime ? interp.runtime : interp_state) + live.gc_state;
  std::vector<uint64_t> heads;
  for (uint32_t g = 0; g < python::Layout::Live::kGcGenerations; ++g)
    heads.push_back(state + live.gc_generations + g * live.gc_generation_size);
  heads.push_back(state + live.gc_permanent);
  BlockReader reader(memory);
  std::unordered_set<uint64_t> seen;
  for (uint64_t head : heads) {
    uint64_t words[4];
    if (!reader.read32(head, words)) {
      stop("a generation list is unreadable");
      continue;
    }
    uint64_t gc = words[0] & ~uint64_t(3);
    while (gc != head) {
      if (stats.objects >= max_objects) {
        stop(fmt::format("stopped after {} objects", max_objects));
        break;
      }
      if ((stats.objects & 1023) == 0 && monotonic_us() - started > max_us) {
        stop(fmt::format("stopped after {} (the search's time limit)", format_duration_us(max_us)));
        break;
      }
      // A list that changed under the walk can lead anywhere: into freed memory, into a loop,
      // into another list. Stop this one there; what was found stays checked one by one.
      if (!python::plausible_pointer(gc) || !seen.insert(gc).second || !reader.read32(gc, words)) {
        stop("a list changed while it was read");
        break;
      }
      ++stats.objects;
      uint64_t type = words[3];
      if (python::plausible_pointer(type)) visit(gc + kGcHeadSize, type);
      gc = words[0] & ~uint64_t(3);
    }
    if (stats.objects >= max_objects || monotonic_us() - started > max_us) break;
  }
  stats.elapsed_us = monotonic_us() - started;
  return stats;
}

}  // namespace swprof::live

// Every object the garbage collector tracks, found from outside along its generation lists. A
// dump looks for greenlets there: greenlet keeps no registry of them, and a dump cannot wait for
// switches (record's uprobes see greenlets only as they switch); a greenlet is GC-tracked, so
// each live one is on a list. The walk reads each object's GC header
// and type (in 16 KiB blocks, as objects of one list mostly sit together), is bounded in count
// and time, and is as consistent as the moment allows: the lists change while a running program
// is read, so a greenlet can be missed, never made up — each one found is checked by
// GreenletReader (its back-pointers) before its frames are read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "swprof/python.h"

namespace swprof::live {

struct GcWalkStats {
  size_t objects = 0;
  bool complete = true;  // every list was followed back to its head
  std::string stopped;   // why not
  int64_t elapsed_us = 0;
};

// Calls `visit(object, type)` for every object on the generation lists (and the permanent one)
// of the interpreter whose state is at `interp_state` (3.8: the runtime's lists).
GcWalkStats walk_gc_objects(const target::Memory& memory, const python::Interpreter& interp, uint64_t interp_state,
                            size_t max_objects, int64_t max_us,
                            const std::function<void(uint64_t object, uint64_t type)>& visit);

}  // namespace swprof::live

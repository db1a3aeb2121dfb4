// A frame's local variables read from outside: names from its code object (co_varnames,
// co_cellvars, co_freevars up to 3.10; co_localsplusnames and co_localspluskinds from 3.11),
// values from the frame's localsplus slots, each shown as a short, bounded repr of a simple value
// (None, bool, int, float, str and bytes prefixes), a container's length, or its type's name.
// Nothing is followed further than one object (and a cell's content): huge, self-referential
// and unreadable values cost one read and show as what they are.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "swprof/live.h"
#include "swprof/python.h"

namespace swprof::live {

class LocalsReader {
 public:
  static constexpr size_t kMaxLocals = 256;  // slots read per frame
  static constexpr size_t kMaxShown = 64;    // bound locals shown per frame

  LocalsReader(const target::Memory& memory, const python::Layout& layout);
  // How many localsplus slots the frames of `code` have (what Walker::set_locals_wanted wants).
  size_t slots(uint64_t code);
  // Fills frame.locals for a frame at `frame_address` running `code`. `slot_values`, when given,
  // are the frame's first slots as its walk read them; otherwise they are read now.
  void read(uint64_t frame_address, uint64_t code, const uint64_t* slot_values, size_t slot_count, Frame& frame);
  // The short repr of one object and its type's name.
  std::string repr(uint64_t object, std::string& type);

 private:
  struct Names {
    std::vector<std::string> names;
    std::vector<uint8_t> kinds;  // kLocal, kCell, kFree, kHidden per slot
    size_t args = 0;             // the first `args` slots are the arguments
    bool ok = false;
  };
  enum Kind : uint8_t { kLocal = 1, kCell = 2, kFree = 4, kHidden = 8 };
  const Names& names_of(uint64_t code);
  bool tuple_strings(uint64_t tuple, std::vector<std::string>& out, size_t limit);
  std::string type_name(uint64_t type);
  std::string int_repr(const uint8_t* object, size_t size, bool as_bool);

  const target::Memory& memory_;
  const python::Layout& layout_;
  python::ObjectReader objects_;
  std::unordered_map<uint64_t, Names> names_;
  std::unordered_map<uint64_t, std::string> type_names_;
};

}  // namespace swprof::live

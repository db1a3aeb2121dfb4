// Following gevent's greenlets from their first switch: which greenlets exist, so that one that is
// switched out (parked) is sampled where it waits even if it never ran at a sample instant.
//
// Greenlets have no registry. Linux uprobes on greenlet's own functions (found in the target: see
// include/swprof/greenlet.h) report each greenlet as it is made (UserGreenlet's constructor: its
// C++ object and its PyGreenlet) and as it starts (g_initialstub). Only those two are probed, not
// every switch: a probe hit costs the program about 2 µs (the kernel's breakpoint trap), which at
// 50,000 switches a second would be a fifth of a core, while a greenlet is made and started once.
// Each tick the tracker reads the state of every greenlet it knows; the recorder samples the parked
// ones. Where uprobes cannot be had, greenlets are found only when sampled running, and note() says
// so once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "swprof/greenlet.h"
#include "swprof/python.h"
#include "swprof/uprobe.h"

namespace swprof::record {

class GreenletTracker {
 public:
  GreenletTracker(const target::Memory& memory, const python::Interpreter& interp);
  ~GreenletTracker();

  // Once per tick: looks for greenlet until it is imported, attaches the probes, takes the hits
  // and drops greenlets that died. `now_us` throttles the search.
  void tick(int64_t now_us);
  // The greenlets that are parked now, with their frames (innermost first), read one by one.
  struct Parked {
    uint64_t object = 0;
    std::vector<python::RawFrame> frames;
    uint64_t bottom_frame = 0, bottom_code = 0;  // its outermost Python frame: its context
  };
  void parked(std::vector<Parked>& out);

  // A line for the summary when greenlets are in use: how they were followed, or why not.
  const std::string& note() const { return note_; }
  uint64_t probe_hits() const;
  uint64_t probe_lost() const;
  size_t known() const { return known_.size(); }

 private:
  void attach();
  void take_hits();

  const target::Memory& memory_;
  const python::Interpreter& interp_;
  std::optional<python::GreenletModule> module_;
  std::unique_ptr<python::GreenletReader> reader_;
  std::unique_ptr<target::UprobeSession> session_;
  std::vector<python::SwitchEntry> entries_;  // in site order
  python::Walker walker_;  // its own: a parked greenlet's walk must not disturb the threads'
  std::vector<target::UprobeHit> hits_, pending_;
  std::vector<uint64_t> targets_;
  std::unordered_map<uint64_t, int64_t> known_;  // PyGreenlet -> when last seen alive (µs)
  std::vector<python::RawFrame> frames_;
  int64_t next_search_us_ = 0;
  bool gave_up_ = false;
  std::string note_;
};

}  // namespace swprof::record

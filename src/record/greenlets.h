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
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "swprof/greenlet.h"
#include "swprof/python.h"
#include "swprof/uprobe.h"

namespace swprof::record {

class GreenletTracker {
 public:
  GreenletTracker(const target::Memory& memory, const python::Interpreter& interp);
  ~GreenletTracker();

  // Once per tick, before the threads are walked: looks for greenlet until it is imported,
  // attaches the probes, takes the hits and reads the state of every greenlet known (dropping
  // those that died). `now_us` (the recorder's clock, `epoch_us` its zero) throttles the search.
  void tick(int64_t now_us, int64_t epoch_us);

  // A greenlet is known by a serial number, not by its address: a finished greenlet's memory (its
  // PyGreenlet, its frames, its arguments) is soon reused by the next one, which is a new greenlet
  // with new calls.
  struct Known {
    uint64_t serial = 0;
    int64_t born_us = 0;  // when it started (its first switch; the recorder's clock)
    bool started = false;
    python::GreenletState state;
    // Found on the GC's lists (born_us unknown): when the search for greenlet's probes began. It
    // existed then, or began since (the probes were not on yet).
    int64_t seeded_since_us = 0;
    int dead_reads = 0;  // ticks in a row it read as finished (see read_states)
  };
  // Each greenlet parked now, with its frames (innermost first), given to `visit` right after they
  // were read, while walker() still holds their bytes (the entry's locals are read from them).
  struct Parked {
    const Known& greenlet;
    std::vector<python::RawFrame>& frames;
    uint64_t bottom_frame = 0, bottom_code = 0;  // its outermost Python frame
  };
  void parked(const std::function<void(const Parked&)>& visit);
  // Whether the greenlet `serial` was alive at this tick's read.
  bool alive(uint64_t serial) const { return alive_.count(serial) != 0; }
  // Whether it was parked at this tick's read and still is, parked the same way (read again now).
  bool parked_since_tick(uint64_t serial);
  // The greenlets that ran (were their thread's current one) at this tick's read.
  const std::vector<const Known*>& running() const { return running_; }

  // When greenlet was found and the probes' opening began (the recorder's clock; 0: not yet), and
  // whether a greenlet could start unseen by them at `at_us` (they were not on yet; the GC's lists
  // were read at their opening's end).
  int64_t attach_began_us() const { return attach_began_us_; }
  bool unprobed_at(int64_t at_us) const { return attach_began_us_ && (!probes_on_us_ || at_us <= probes_on_us_); }

  // A line for the summary when greenlets are in use: how they were followed, or why not.
  const std::string& note() const { return note_; }
  // The walker that read the parked frames (for their locals).
  python::Walker& walker() { return walker_; }
  uint64_t probe_hits() const;
  uint64_t probe_lost() const;
  size_t known() const { return known_.size(); }
  // Whether the program has imported greenlet (so far).
  bool imported() const { return module_.has_value(); }

 private:
  void attach();
  void attached();
  std::vector<uint64_t> existing_greenlets(const target::Memory& memory, python::GreenletReader& reader) const;
  void seed_existing(const std::vector<uint64_t>& found);
  void take_hits();
  void read_states();

  const target::Memory& memory_;
  const python::Interpreter& interp_;
  std::optional<python::GreenletModule> module_;
  std::unique_ptr<python::GreenletReader> reader_;
  std::unique_ptr<target::UprobeSession> session_;
  struct Attached {
    std::unique_ptr<target::UprobeSession> session;
    std::vector<uint64_t> existing;  // greenlets on the GC's lists once the probes were on
  };
  std::future<Attached> attaching_;  // being opened (attach())
  std::vector<python::SwitchEntry> entries_;  // in site order
  python::Walker walker_;  // its own: a parked greenlet's walk must not disturb the threads'
  std::vector<target::UprobeHit> hits_, pending_;
  std::vector<uint64_t> targets_;
  std::unordered_map<uint64_t, Known> known_;  // by PyGreenlet
  std::unordered_set<uint64_t> alive_;         // serials alive at this tick's read
  std::vector<const Known*> running_;
  uint64_t next_serial_ = 1;
  int64_t epoch_us_ = 0;
  std::vector<python::RawFrame> frames_;
  int64_t next_search_us_ = 0;
  int64_t attach_began_us_ = 0;  // the recorder's clock when greenlet was found and attach() began
  int64_t probes_on_us_ = 0;     // ... and when the probes were on and existing greenlets seeded
  bool gave_up_ = false;
  std::string note_;
};

}  // namespace swprof::record

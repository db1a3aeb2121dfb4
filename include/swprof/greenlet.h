// Greenlets seen from outside: where their switches can be probed, what state a greenlet is in,
// and the Python frames of one that is switched out ("parked").
//
// Why this approach:
// - Switch entry points come from the target itself, so stripped builds work: the greenlet type's
//   method table ("switch", "throw") and the C-API capsule (greenlet._C_API: PyGreenlet_Switch,
//   PyGreenlet_Throw) give the public ones, whose first argument is the target PyGreenlet. But a
//   greenlet that finishes returns to its parent, and an unfinished one that is collected gets
//   GreenletExit thrown into it, through greenlet's internal C++ switch, not through those. Every
//   switch of any kind ends in Greenlet::g_switchstack() (this = the target's C++ object), and the
//   first one into a greenlet starts in UserGreenlet::g_initialstub(); greenlet 2 and 3 export both
//   in .dynsym, and the UserGreenlet constructor, which holds the C++ object and its PyGreenlet
//   side by side in its arguments. So the preferred probes are these three (one hit per switch,
//   two per greenlet's life), and the public entry points are the fallback when the build hides
//   them. The constructor's pair names a greenlet's PyGreenlet even when it is gone before
//   swprof reads memory (a greenlet that lives less than a poll).
// - greenlet's C++ object ("impl", PyGreenlet.pimpl) is private and its layout differs between
//   greenlet versions and Python versions. Its offsets are learned at run time from live greenlets
//   and accepted only when back-pointers agree: impl -> PyGreenlet -> the same impl; a main greenlet
//   marked by stack_stop == -1; a parked greenlet's frame object whose interpreter frame points
//   back at it; a data-stack triple (chunk, top, limit = chunk + chunk.size). Nothing is assumed
//   from one build; a build that does not show these facts is refused by name.
// - A parked greenlet's frames are where greenlet saved the thread's: on 3.11+ its current
//   interpreter frame and data-stack chunk, on 3.8–3.10 its top frame object. Reading them is a
//   walk of a thread state that is not running, so the Walker does it (python::Walker::walk on a
//   PyThread made of those fields).
// - Identity across switches: the PyGreenlet address (CPython's id()) plus a generation that
//   SwitchDecoder bumps each time a greenlet is born at that address (its constructor, or its start
//   when the constructor was not seen): an address freed and reused gets a new generation.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "swprof/python.h"
#include "swprof/uprobe.h"

namespace swprof::python {

// A function whose entry is a greenlet switch.
struct SwitchEntry {
  enum class Kind : uint8_t {
    kStackSwitch,   // Greenlet::g_switchstack(): every switch, after the target was chosen
    kStart,         // UserGreenlet::g_initialstub(): the first switch into a greenlet begins
    kCreate,        // UserGreenlet::UserGreenlet(PyGreenlet*, parent): a greenlet is made (impl, PyGreenlet)
    kSwitchMethod,  // greenlet.switch (tp_methods)
    kThrowMethod,   // greenlet.throw (tp_methods)
    kCapiSwitch,    // PyGreenlet_Switch (capsule slot 6)
    kCapiThrow,     // PyGreenlet_Throw (capsule slot 5)
  };
  Kind kind;
  std::string name;
  uint64_t address = 0;
  uint8_t target_arg = 0;      // which integer argument register holds the target (kCreate: the impl)
  bool target_is_impl = false; // it is greenlet's C++ object, not the PyGreenlet
  uint8_t object_arg = 0;      // kCreate: the argument holding the PyGreenlet
  bool internal() const { return kind == Kind::kStackSwitch || kind == Kind::kStart || kind == Kind::kCreate; }
};
const char* switch_entry_kind_name(SwitchEntry::Kind kind);

// The greenlet extension loaded in the target.
struct GreenletModule {
  std::string version;         // greenlet.__version__, e.g. "2.0.2"
  std::string file;            // the extension's path, as the target maps it
  uint64_t type = 0;           // PyGreenlet_Type
  uint64_t capsule_api = 0;    // the void*[] behind greenlet._C_API
  uint64_t code_start = 0, code_end = 0;  // the extension's mapped address range
  std::vector<SwitchEntry> entries;  // every entry point found (internal ones when exported)
  // The probes that see every switch once: the internal ones when g_switchstack and g_initialstub
  // were found (with the constructor when it was), else the public entry points (then a finishing
  // greenlet's return to its parent is not seen).
  std::vector<SwitchEntry> probes() const;
  bool has_internal() const;
};

// Finds greenlet in the target through sys.modules. nullopt while greenlet is not imported (or
// not initialised yet); throws UserError with one line when it is there but not usable.
std::optional<GreenletModule> find_greenlet(const Interpreter& interp, const target::Memory& memory);

// Where each entry point is, as a uprobe wants it. Entries that cannot be located are left out and
// said in `problems`.
std::vector<target::ProbeSite> probe_sites(pid_t pid, std::span<const SwitchEntry> entries, std::vector<std::string>& problems);

enum class GreenletStatus : uint8_t { kNotStarted, kRunning, kParked, kDead };
const char* greenlet_status_name(GreenletStatus s);

struct GreenletState {
  uint64_t object = 0, impl = 0;
  GreenletStatus status = GreenletStatus::kNotStarted;
  bool main = false;          // a thread's main greenlet
  bool running_known = false; // kRunning / kParked told from the thread's current greenlet
  uint64_t parent = 0;        // PyGreenlet, 0 for a main greenlet (or unknown)
  uint64_t main_greenlet = 0; // the main greenlet of its thread (0: unknown)
  // Where a parked greenlet's Python frames are (0: it has none, e.g. parked in C code only).
  uint64_t top_frame_object = 0;  // the PyFrameObject greenlet keeps for its top frame
  PyThread frames;                // top_frame (+ datastack on 3.11+), for Walker::walk

  // Both parked, the same way (same frames, same stack top): it did not run in between, or ran and
  // came back to exactly where it was, which a read of its frames cannot tell from not running.
  bool parked_as(const GreenletState& earlier) const {
    return status == GreenletStatus::kParked && earlier.status == GreenletStatus::kParked && impl == earlier.impl &&
           top_frame_object == earlier.top_frame_object && frames.top_frame == earlier.frames.top_frame &&
           frames.datastack_top == earlier.frames.datastack_top;
  }
};

// This greenlet build's private layout, learned from live greenlets (see the note on top).
struct GreenletImplLayout {
  struct Class {
    uint64_t vtable = 0;
    uint32_t self = kAbsent;            // the PyGreenlet back-pointer
    uint32_t main_greenlet = kAbsent;   // user greenlets
    uint32_t parent = kAbsent;          // user greenlets
    uint32_t thread_state = kAbsent;    // main greenlets: greenlet's ThreadState
    bool main = false;
  };
  std::vector<Class> classes;
  uint32_t stack_start = kAbsent;       // StackState: start, stop, (copy, saved, prev)
  uint32_t top_frame = kAbsent;         // PythonState._top_frame
  uint32_t current_frame = kAbsent;     // 3.11+: current_frame, datastack_chunk, datastack_top
  uint32_t span = 0;                    // bytes to read from an impl
  const Class* find(uint64_t vtable) const;
};

class GreenletReader {
 public:
  GreenletReader(const target::Memory& memory, const Interpreter& interp, const GreenletModule& module);

  // Learns the layout from switch targets (PyGreenlet addresses, or impls when `impls`). True once
  // it knows enough to read states and parked frames; feed it more targets until then.
  bool calibrate(std::span<const uint64_t> targets, bool impls);
  bool calibrated() const { return calibrated_; }
  // Why calibration has not succeeded, after enough targets to expect it: "unknown greenlet build
  // 2.0.2: ...". Empty while it may still succeed.
  const std::string& calibration_problem() const { return problem_; }
  const GreenletImplLayout& layout() const { return layout_; }

  // Whether objects of this type are greenlets (greenlet.greenlet or a subclass: gevent's
  // Greenlet, its Hub), remembered per type.
  bool is_greenlet_type(uint64_t type);
  // The PyGreenlet of a live impl (back-pointers checked), 0 otherwise.
  uint64_t object_of_impl(uint64_t impl);
  // A greenlet's state now. False when `object` is not a live greenlet (freed, torn).
  bool read(uint64_t object, GreenletState& out);
  // A parked greenlet's Python frames, innermost first, validated: false when it is not parked
  // (any more) or its frames changed while they were read. Uses `walker` like a thread walk (so
  // Walker::read_locals then refers to this walk).
  bool parked_frames(const GreenletState& state, Walker& walker, std::vector<RawFrame>& out);

 private:
  bool is_greenlet(uint64_t object);
  bool read_impl(uint64_t impl, std::vector<uint8_t>& out, size_t bytes);
  bool learn_object(uint64_t object);
  bool learn_impl(uint64_t impl, uint64_t object);
  void learn_frames(const std::vector<uint8_t>& impl_bytes, uint32_t end);
  void update_calibrated();

  const target::Memory& memory_;
  const Interpreter& interp_;
  const GreenletModule& module_;
  ObjectReader objects_;
  GreenletImplLayout layout_;
  std::unordered_map<uint64_t, bool> greenlet_types_;  // type -> is greenlet or a subtype
  std::vector<uint64_t> examined_;                      // targets already looked at
  std::unordered_map<uint32_t, std::vector<uint64_t>> stop_votes_;  // StackState.stop offset -> impls showing it
  bool calibrated_ = false;
  std::string problem_;
  std::vector<uint8_t> buf_, buf2_;
};

// Turns uprobe hits on the entry points (in time order) into switches: resolves the target to its
// PyGreenlet, numbers generations, tells what each thread ran before. Pure bookkeeping; impls are
// turned into PyGreenlets by `object_of_impl` (GreenletReader::object_of_impl), once per impl
// until that impl starts a new greenlet.
struct GreenletSwitch {
  int64_t time_ns = 0;
  pid_t tid = 0;
  uint64_t target = 0;          // PyGreenlet; 0 when it could not be resolved (freed before the drain)
  uint64_t target_impl = 0;     // greenlet's C++ object, when the probe gives it
  uint32_t generation = 0;      // (target, generation) names one greenlet for the whole recording
                                // (0: born before the probes and not seen starting)
  bool starts = false;          // the target's run() begins
  bool is_throw = false;
  uint64_t origin = 0;          // what ran on the thread before: the previous target (0: not known)
  uint32_t origin_generation = 0;
};

class SwitchDecoder {
 public:
  // `entries`: the probed entry points, in the order of the session's sites.
  SwitchDecoder(std::vector<SwitchEntry> entries, std::function<uint64_t(uint64_t impl)> object_of_impl)
      : entries_(std::move(entries)), object_of_impl_(std::move(object_of_impl)) {}
  // Appends the switches the hits describe. Hits must come in time order (UprobeSession::drain).
  void decode(std::span<const target::UprobeHit> hits, std::vector<GreenletSwitch>& out);
  // The greenlet running on a thread after the last decoded switch (0: not known).
  uint64_t current(pid_t tid) const;
  uint32_t generation(uint64_t object) const;
  uint64_t unresolved() const { return unresolved_; }

 private:
  struct ThreadView {
    uint64_t current = 0;
    uint32_t current_generation = 0;
    uint64_t pending_start = 0;  // an impl whose g_initialstub hit awaits its g_switchstack
    uint64_t capi_switch_target = 0;  // the last hit was PyGreenlet_Switch to this greenlet
  };
  std::vector<SwitchEntry> entries_;
  std::function<uint64_t(uint64_t)> object_of_impl_;
  std::unordered_map<pid_t, ThreadView> threads_;
  struct Generation {
    uint32_t number = 0;
    bool unstarted = false;  // born by its constructor, not started yet: its start is no new birth
  };
  std::unordered_map<uint64_t, Generation> generations_;
  // impl -> PyGreenlet: from constructor hits, else looked up; forgotten when the impl starts anew
  // without a constructor hit (it may hold a new greenlet).
  std::unordered_map<uint64_t, uint64_t> impl_objects_;
  uint64_t unresolved_ = 0;
};

}  // namespace swprof::python

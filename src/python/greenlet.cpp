// Greenlets from outside (see swprof/greenlet.h for the approach): the entry points of switches,
// the run-time calibration of greenlet's private C++ object, greenlet states and parked frames.
// Public facts used (greenlet.h, the same in greenlet 2 and 3): PyGreenlet is {PyObject_HEAD,
// weakreflist, dict, pimpl}; the C-API array has PyGreenlet_Type in slot 0, PyGreenlet_Throw in
// slot 5, PyGreenlet_Switch in slot 6. Everything inside the impl is learned and validated.
#include "swprof/greenlet.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "python/raw.h"
#include "swprof/common.h"
#include "swprof/elf.h"

namespace swprof::python {

namespace {

constexpr uint32_t kPimplOffset = 32;   // PyGreenlet.pimpl (greenlet.h)
constexpr uint32_t kCapsulePointer = 16, kCapsuleName = 24;  // PyCapsule {HEAD, pointer, name, ...}
constexpr size_t kCapiSlots = 12;
constexpr size_t kCapiType = 0, kCapiThrow = 5, kCapiSwitch = 6;
// PyTypeObject.tp_methods and tp_base: the slots before them have not moved since Python 3.0
// (static type initialisers in every extension rely on their order).
constexpr uint32_t kTpMethods = 232, kTpBase = 256;
constexpr size_t kMethodDefSize = 32;   // PyMethodDef {name, meth, flags, doc}
constexpr size_t kMaxMethods = 64;
constexpr size_t kImplScan = 512;       // bytes of an impl examined while calibrating
constexpr size_t kCalibrationTargets = 256;  // after this many distinct targets, say why not
constexpr uint64_t kMainStackStop = ~uint64_t(0);  // StackState of a main greenlet: stop == (char*)-1

// The internal switch functions' mangled names (greenlet 2.0 and 3.x export them).
constexpr const char* kStackSwitchSymbol = "_ZN8greenlet8Greenlet13g_switchstackEv";
constexpr const char* kStartSymbol = "_ZN8greenlet12UserGreenlet13g_initialstubEPv";
// UserGreenlet::UserGreenlet(PyGreenlet*, BorrowedGreenlet parent): returns nothing, so this = the
// first argument, the PyGreenlet the second.
constexpr const char* kCreateSymbol =
    "_ZN8greenlet12UserGreenletC1EP9_greenletNS_4refs17_BorrowedGreenletIS1_XadL_ZNS3_15GreenletCheckerEPvEEEE";
// Both return a non-trivial struct: on x86-64 its address is the hidden first argument and `this`
// the second; aarch64 passes that address in x8, so `this` is the first.
#if defined(__aarch64__)
constexpr uint8_t kThisArgument = 0;
#else
constexpr uint8_t kThisArgument = 1;
#endif

uint64_t word(const std::vector<uint8_t>& b, size_t off) { return off + 8 <= b.size() ? load<uint64_t>(b.data() + off) : 0; }

// StackState {start, stop, ...} of an impl read into `b`: stop is 0 until the greenlet starts,
// start is 0 once it died.
bool started_and_alive(const std::vector<uint8_t>& b, uint32_t stack_start) {
  return word(b, stack_start) != 0 && word(b, stack_start + 8) != 0;
}

}  // namespace

const char* switch_entry_kind_name(SwitchEntry::Kind kind) {
  switch (kind) {
    case SwitchEntry::Kind::kStackSwitch: return "g_switchstack";
    case SwitchEntry::Kind::kStart: return "g_initialstub";
    case SwitchEntry::Kind::kCreate: return "UserGreenlet()";
    case SwitchEntry::Kind::kSwitchMethod: return "greenlet.switch";
    case SwitchEntry::Kind::kThrowMethod: return "greenlet.throw";
    case SwitchEntry::Kind::kCapiSwitch: return "PyGreenlet_Switch";
    case SwitchEntry::Kind::kCapiThrow: return "PyGreenlet_Throw";
  }
  return "?";
}

const char* greenlet_status_name(GreenletStatus s) {
  switch (s) {
    case GreenletStatus::kNotStarted: return "not-started";
    case GreenletStatus::kRunning: return "running";
    case GreenletStatus::kParked: return "parked";
    case GreenletStatus::kDead: return "dead";
  }
  return "?";
}

bool GreenletModule::has_internal() const {
  bool stack = false, start = false;
  for (const auto& e : entries) {
    stack |= e.kind == SwitchEntry::Kind::kStackSwitch;
    start |= e.kind == SwitchEntry::Kind::kStart;
  }
  return stack && start;
}

std::vector<SwitchEntry> GreenletModule::probes() const {
  bool internal = has_internal();
  std::vector<SwitchEntry> out;
  for (const auto& e : entries)
    if (e.internal() == internal) out.push_back(e);
  return out;
}

std::optional<GreenletModule> find_greenlet(const Interpreter& interp, const target::Memory& memory) {
  const Layout& l = interp.layout;
  ObjectReader objects(memory, l);
  uint64_t type = objects.module_global(interp.runtime, "greenlet._greenlet", "greenlet");
  uint64_t capsule = objects.module_global(interp.runtime, "greenlet._greenlet", "_C_API");
  if (!type || !capsule) return std::nullopt;  // not imported, or still initialising
  GreenletModule g;
  g.type = type;
  std::string version_text;
  if (uint64_t v = objects.module_global(interp.runtime, "greenlet", "__version__")) objects.read_str(v, version_text, 32);
  g.version = version_text.empty() ? "(unknown version)" : sanitize_text(version_text);
  auto unusable = [&](const std::string& why) {
    return UserError(fmt::format("greenlet {} in process {} cannot be followed: {}", g.version, memory.pid(), why));
  };
  if (objects.type_name(type) != "greenlet.greenlet") throw unusable("greenlet._greenlet.greenlet is not its type");

  // The C API: slot 0 must be the type, which proves the array is greenlet's.
  uint64_t api = 0, name_ptr = 0;
  char name[24] = {};
  if (objects.type_name(objects.type_of(capsule)) != "PyCapsule" || !memory.read_value(capsule + kCapsulePointer, api) ||
      !memory.read_value(capsule + kCapsuleName, name_ptr) || !memory.read(name_ptr, name, 16) ||
      std::string_view(name, strnlen(name, 16)) != "greenlet._C_API")
    throw unusable("greenlet._C_API is not its C-API capsule");
  uint64_t slots[kCapiSlots] = {};
  if (!plausible_pointer(api) || !memory.read(api, slots, sizeof slots) || slots[kCapiType] != type)
    throw unusable("the C-API table does not start with the greenlet type");
  g.capsule_api = api;
  g.entries.push_back({SwitchEntry::Kind::kCapiSwitch, "PyGreenlet_Switch", slots[kCapiSwitch], 0, false});
  g.entries.push_back({SwitchEntry::Kind::kCapiThrow, "PyGreenlet_Throw", slots[kCapiThrow], 0, false});

  // The method table.
  uint64_t methods = 0;
  if (memory.read_value(type + kTpMethods, methods) && plausible_pointer(methods)) {
    uint8_t table[kMaxMethods * kMethodDefSize];
    size_t count = memory.read(methods, table, sizeof table)                 ? kMaxMethods
                   : memory.read(methods, table, 16 * kMethodDefSize) ? 16  // the table ends a mapping
                                                                              : 0;
    {
      for (size_t i = 0; i < count; ++i) {
        uint64_t name_at = load<uint64_t>(table + i * kMethodDefSize), meth = load<uint64_t>(table + i * kMethodDefSize + 8);
        if (!name_at) break;
        char method[8] = {};
        if (!memory.read(name_at, method, 7)) break;
        std::string_view m(method, strnlen(method, 7));
        if (m == "switch") g.entries.push_back({SwitchEntry::Kind::kSwitchMethod, "greenlet.switch", meth, 0, false});
        if (m == "throw") g.entries.push_back({SwitchEntry::Kind::kThrowMethod, "greenlet.throw", meth, 0, false});
      }
    }
  }
  if (g.entries.size() < 4) throw unusable("greenlet's type has no switch/throw methods");

  // The extension file: the one whose executable mapping holds PyGreenlet_Switch.
  auto maps = target::read_maps(memory.pid());
  const target::Mapping* code = nullptr;
  for (const auto& m : maps)
    if (slots[kCapiSwitch] >= m.start && slots[kCapiSwitch] < m.end && m.executable && !m.path.empty()) code = &m;
  if (!code) throw unusable("PyGreenlet_Switch is not in a mapped file");
  g.file = code->path;
  g.code_start = code->start;
  g.code_end = code->end;
  for (const auto& m : maps)
    if (m.path == g.file && m.inode == code->inode) {
      g.code_start = std::min(g.code_start, m.start);
      g.code_end = std::max(g.code_end, m.end);
    }
  for (const auto& e : g.entries)
    if (e.address < code->start || e.address >= code->end) throw unusable(fmt::format("{} is outside {}", e.name, g.file));

  // The internal switch functions, when the build exports them.
  std::optional<target::ElfFile> elf;
  for (const auto& path : target::host_paths(memory.pid(), *code))
    if ((elf = target::ElfFile::open(path))) break;
  if (elf) {
    auto bias = elf->load_bias(maps, code->path);
    auto stack = elf->symbol(kStackSwitchSymbol), start = elf->symbol(kStartSymbol);
    auto in_code = [&](uint64_t a) { return a >= code->start && a < code->end; };
    if (bias && stack && start && in_code(*stack + *bias) && in_code(*start + *bias)) {
      g.entries.push_back({SwitchEntry::Kind::kStackSwitch, "greenlet::Greenlet::g_switchstack()", *stack + *bias,
                           kThisArgument, true});
      g.entries.push_back({SwitchEntry::Kind::kStart, "greenlet::UserGreenlet::g_initialstub(void*)", *start + *bias,
                           kThisArgument, true});
      auto create = elf->symbol(kCreateSymbol);
      if (create && in_code(*create + *bias))
        g.entries.push_back({SwitchEntry::Kind::kCreate, "greenlet::UserGreenlet::UserGreenlet(PyGreenlet*, parent)",
                             *create + *bias, 0, true, 1});
    }
  }
  return g;
}

std::vector<target::ProbeSite> probe_sites(pid_t pid, std::span<const SwitchEntry> entries, std::vector<std::string>& problems) {
  auto maps = target::read_maps(pid);
  std::vector<target::ProbeSite> sites;
  for (const auto& e : entries) {
    std::string error;
    if (auto site = target::locate_probe_site(pid, maps, e.address, e.name, error, true)) sites.push_back(std::move(*site));
    else problems.push_back(error);
  }
  return sites;
}

// ---------------------------------------------------------------------------------------------
// The reader and its calibration.

const GreenletImplLayout::Class* GreenletImplLayout::find(uint64_t vtable) const {
  for (const auto& c : classes)
    if (c.vtable == vtable) return &c;
  return nullptr;
}

GreenletReader::GreenletReader(const target::Memory& memory, const Interpreter& interp, const GreenletModule& module)
    : memory_(memory), interp_(interp), module_(module), objects_(memory, interp.layout) {}

bool GreenletReader::is_greenlet(uint64_t object) {
  return plausible_pointer(object) && is_greenlet_type(objects_.type_of(object));
}

bool GreenletReader::is_greenlet_type(uint64_t type) {
  // greenlet.greenlet or a subclass (gevent's Greenlet, its Hub): follow tp_base, bounded, up to
  // a type already known. Every type on the way gets the same answer (a dump asks for each type
  // of the heap's objects, and most share their bases).
  constexpr int kMaxDepth = 16;
  uint64_t chain[kMaxDepth];
  int length = 0;
  bool yes = false;
  for (uint64_t t = type; length < kMaxDepth && plausible_pointer(t);) {
    if (t == module_.type) {
      yes = true;
      break;
    }
    if (auto it = greenlet_types_.find(t); it != greenlet_types_.end()) {
      yes = it->second;
      break;
    }
    chain[length++] = t;
    if (!memory_.read_value(t + kTpBase, t)) break;
  }
  for (int i = 0; i < length && greenlet_types_.size() < (1u << 16); ++i) greenlet_types_.emplace(chain[i], yes);
  return yes;
}

// Reads up to `bytes` of an impl, stopping at the first unreadable page (an impl near the end of
// a mapping). False when fewer than 64 bytes could be read.
bool GreenletReader::read_impl(uint64_t impl, std::vector<uint8_t>& out, size_t bytes) {
  out.resize(bytes);
  if (!plausible_pointer(impl)) return false;
  if (memory_.read(impl, out.data(), bytes)) return true;
  uint64_t page_end = (impl | 4095) + 1;
  size_t first = static_cast<size_t>(std::min<uint64_t>(bytes, page_end - impl));
  if (!memory_.read(impl, out.data(), first)) return false;
  out.resize(first);
  return first >= 64;
}

bool GreenletReader::learn_object(uint64_t object) {
  uint64_t impl = 0;
  if (!is_greenlet(object) || !memory_.read_value(object + kPimplOffset, impl)) return false;
  return learn_impl(impl, object);
}

bool GreenletReader::learn_impl(uint64_t impl, uint64_t object) {
  std::vector<uint8_t> b;
  if (!read_impl(impl, b, kImplScan)) return false;
  uint64_t vtable = word(b, 0);
  if (vtable < module_.code_start || vtable >= module_.code_end) return false;  // not an impl of this module
  // Which PyGreenlet: given, or the word pointing at a greenlet whose pimpl is this impl.
  uint32_t self = kAbsent;
  for (uint32_t k = 8; k + 8 <= b.size(); k += 8) {
    uint64_t w = word(b, k), back = 0;
    if (object ? w == object : (is_greenlet(w) && memory_.read_value(w + kPimplOffset, back) && back == impl)) {
      self = k;
      object = w;
      break;
    }
  }
  if (self == kAbsent) return false;
  GreenletImplLayout::Class* cls = nullptr;
  for (auto& c : layout_.classes)
    if (c.vtable == vtable) cls = &c;
  if (!cls) {
    if (layout_.classes.size() >= 8) return false;
    layout_.classes.push_back({vtable, self});
    cls = &layout_.classes.back();
  }
  if (cls->self != self) return false;  // one class keeps its back-pointer in one place

  // StackState {start, stop, copy, saved, prev}: a main greenlet's stop is (char*)-1. Among the
  // greenlets a user greenlet points to (its main greenlet, its parent), the main one's impl has
  // -1 there, as its first -1 (the fields before it are pointers), and the user's own impl does
  // not. The bytes read past an impl belong to its neighbours, so two impls must agree.
  if (layout_.stack_start == kAbsent) {
    uint32_t best = kAbsent;
    for (uint32_t k = 8; k + 8 <= b.size(); k += 8) {
      uint64_t w = word(b, k), wimpl = 0;
      if (k == self || !is_greenlet(w) || !memory_.read_value(w + kPimplOffset, wimpl) || !read_impl(wimpl, buf2_, kImplScan))
        continue;
      for (uint32_t m = 16; m + 8 <= buf2_.size() && m < best; m += 8)
        if (word(buf2_, m) == kMainStackStop) {
          if (word(b, m) != kMainStackStop) best = m;
          break;
        }
    }
    if (best == kAbsent) return true;
    auto& voters = stop_votes_[best];
    if (std::find(voters.begin(), voters.end(), impl) == voters.end()) voters.push_back(impl);
    if (voters.size() < 2) return true;
    layout_.stack_start = best - 8;
  }
  const uint32_t stop = layout_.stack_start + 8;
  bool is_main = word(b, stop) == kMainStackStop;
  if (cls->main_greenlet == kAbsent && cls->thread_state == kAbsent) cls->main = is_main;
  if (cls->main != is_main) return false;

  // greenlet sets _main_greenlet when a greenlet starts and clears it when it dies; _parent is set
  // from its creation on. Learnt from one not started or dead, whose parent is a main greenlet,
  // _parent would pass for _main_greenlet (seen: gevent's hub), and every greenlet whose parent is
  // not main would then look parked while it ran.
  if (!is_main) {
    if (cls->main_greenlet == kAbsent && !started_and_alive(b, layout_.stack_start)) return true;
    // _main_greenlet: the first word naming a greenlet whose impl is a main one.
    for (uint32_t k = 8; cls->main_greenlet == kAbsent && k + 8 <= b.size(); k += 8) {
      uint64_t w = word(b, k), wimpl = 0, wstop = 0;
      if (k != self && is_greenlet(w) && memory_.read_value(w + kPimplOffset, wimpl) &&
          memory_.read_value(wimpl + stop, wstop) && wstop == kMainStackStop)
        cls->main_greenlet = k;
    }
    if (cls->main_greenlet == kAbsent) return true;
    // greenlet 2 and 3 keep _main_greenlet, _run_callable, _parent in this order.
    uint32_t parent = cls->main_greenlet + 16;
    if (cls->parent == kAbsent && parent + 8 <= b.size() && is_greenlet(word(b, parent))) cls->parent = parent;
    // The main greenlet is rarely a switch target: learn its class (and its ThreadState) here.
    bool main_known = std::any_of(layout_.classes.begin(), layout_.classes.end(),
                                  [](const auto& c) { return c.main && c.thread_state != kAbsent; });
    if (!main_known) {
      learn_object(word(b, cls->main_greenlet));  // a main greenlet does not come back here
      // It may have added a class: `cls` pointed into the vector that grew.
      for (auto& c : layout_.classes)
        if (c.vtable == vtable) cls = &c;
    }
  } else if (cls->thread_state == kAbsent) {
    // greenlet's ThreadState starts {main_greenlet, current_greenlet}.
    for (uint32_t k = layout_.stack_start + 40; k + 8 <= b.size(); k += 8) {
      uint64_t ts = word(b, k), head[2] = {};
      if (!plausible_pointer(ts) || !memory_.read(ts, head, sizeof head)) continue;
      if (head[0] == object && is_greenlet(head[1])) {
        cls->thread_state = k;
        break;
      }
    }
  }
  // PythonState lies between StackState and the derived class's own fields (and before _self
  // where, as in greenlet 2, _self is one of those).
  uint32_t end = is_main ? cls->thread_state : cls->main_greenlet;
  if (cls->self > layout_.stack_start) end = std::min(end, cls->self);
  if (layout_.top_frame == kAbsent && end != kAbsent) learn_frames(b, end);
  return true;
}

// The frame fields of PythonState, from a parked greenlet: _top_frame is a frame object (whose
// interpreter frame points back at it, 3.11+), and on 3.11+ current_frame is followed by the
// data-stack triple (chunk, top, limit) that the chunk's own header confirms.
void GreenletReader::learn_frames(const std::vector<uint8_t>& b, uint32_t end) {
  const Layout& l = interp_.layout;
  if (!started_and_alive(b, layout_.stack_start)) return;  // nothing saved
  bool interpreter_frames = l.frame_model == FrameModel::kInterpreterFrame;
  end = std::min<uint32_t>(end, static_cast<uint32_t>(b.size()));
  for (uint32_t f = layout_.stack_start + 40; f + 8 <= end; f += 8) {
    uint64_t fo = word(b, f);
    if (!plausible_pointer(fo) || objects_.type_name(objects_.type_of(fo)) != "frame") continue;
    if (!interpreter_frames) {
      int64_t refcount = 0;
      uint64_t code = 0;
      if (!memory_.read_value(fo, refcount) || refcount <= 0 || !memory_.read_value(fo + l.frame.code, code) ||
          objects_.type_name(objects_.type_of(code)) != "code")
        continue;
      layout_.top_frame = f;
      return;
    }
    uint64_t iframe = 0, back = 0;
    if (!memory_.read_value(fo + l.frame_object_f_frame, iframe) || !plausible_pointer(iframe) ||
        !memory_.read_value(iframe + l.frame.frame_obj, back) || back != fo)
      continue;
    for (uint32_t c = f + 8; c + 32 <= end; c += 8) {
      uint64_t current = word(b, c), chunk = word(b, c + 8), top = word(b, c + 16), limit = word(b, c + 24);
      uint64_t header[3] = {};  // _PyStackChunk {previous, size, top}
      if (!plausible_pointer(current) || !plausible_pointer(chunk) || top <= chunk || limit < top ||
          !memory_.read(chunk, header, sizeof header) || chunk + header[1] != limit || current < chunk || current >= top)
        continue;
      layout_.top_frame = f;
      layout_.current_frame = c;
      return;
    }
  }
}

void GreenletReader::update_calibrated() {
  bool has_main = false, has_user = false;
  for (const auto& c : layout_.classes) {
    if (c.main && c.thread_state != kAbsent) has_main = true;
    if (!c.main && c.main_greenlet != kAbsent) has_user = true;
  }
  bool frames = layout_.top_frame != kAbsent &&
                (interp_.layout.frame_model == FrameModel::kFrameObject || layout_.current_frame != kAbsent);
  calibrated_ = has_main && has_user && frames && layout_.stack_start != kAbsent;
  if (calibrated_) {
    uint32_t span = std::max({layout_.stack_start + 16, layout_.top_frame + 8,
                              layout_.current_frame == kAbsent ? 0u : layout_.current_frame + 24});
    for (const auto& c : layout_.classes)
      for (uint32_t o : {c.self, c.main_greenlet, c.parent, c.thread_state})
        if (o != kAbsent) span = std::max(span, o + 8);
    layout_.span = span;
    problem_.clear();
    return;
  }
  if (examined_.size() >= kCalibrationTargets) {
    std::string missing = !has_user ? "no user greenlet pointing to its main greenlet"
                          : !has_main ? "no main greenlet with its thread state"
                                      : "no parked greenlet's frame validated";
    problem_ = fmt::format("unknown greenlet build {} (Python {}): {} among {} switch targets", module_.version,
                           interp_.version.text(), missing, examined_.size());
  }
}

bool GreenletReader::calibrate(std::span<const uint64_t> targets, bool impls) {
  if (calibrated_) return true;
  // A target may be running when first seen and parked later: each call looks at every distinct
  // target it is given (bounded), and the count of distinct ones decides when to give up.
  size_t looked = 0;
  std::vector<uint64_t> seen_now;
  for (uint64_t t : targets) {
    if (!t || looked >= 64 || std::find(seen_now.begin(), seen_now.end(), t) != seen_now.end()) continue;
    seen_now.push_back(t);
    ++looked;
    if (examined_.size() < kCalibrationTargets && std::find(examined_.begin(), examined_.end(), t) == examined_.end())
      examined_.push_back(t);
    if (impls) learn_impl(t, 0);
    else learn_object(t);
    update_calibrated();
    if (calibrated_) break;
  }
  return calibrated_;
}

uint64_t GreenletReader::object_of_impl(uint64_t impl) {
  if (!calibrated_ || !read_impl(impl, buf_, layout_.span) || buf_.size() < layout_.span) return 0;
  const auto* cls = layout_.find(word(buf_, 0));
  if (!cls) return 0;
  uint64_t object = word(buf_, cls->self), back = 0;
  if (!is_greenlet(object) || !memory_.read_value(object + kPimplOffset, back) || back != impl) return 0;
  return object;
}

bool GreenletReader::read(uint64_t object, GreenletState& out) {
  out = GreenletState{};
  if (!calibrated_ || !is_greenlet(object)) return false;
  uint64_t impl = 0;
  if (!memory_.read_value(object + kPimplOffset, impl) || !read_impl(impl, buf_, layout_.span) || buf_.size() < layout_.span)
    return false;
  const auto* cls = layout_.find(word(buf_, 0));
  if (!cls || word(buf_, cls->self) != object) return false;
  out.object = object;
  out.impl = impl;
  out.main = cls->main;
  uint64_t start = word(buf_, layout_.stack_start), stop = word(buf_, layout_.stack_start + 8);
  if (cls->main != (stop == kMainStackStop)) return false;
  if (!cls->main) {
    out.main_greenlet = word(buf_, cls->main_greenlet);
    if (cls->parent != kAbsent) out.parent = word(buf_, cls->parent);
  } else {
    out.main_greenlet = object;
  }
  out.top_frame_object = word(buf_, layout_.top_frame);
  // Walker::walk confirms a walk by reading the top frame's address again where it is kept.
  if (layout_.current_frame != kAbsent) {
    out.frames.top_frame = word(buf_, layout_.current_frame);
    out.frames.datastack_chunk = word(buf_, layout_.current_frame + 8);
    out.frames.datastack_top = word(buf_, layout_.current_frame + 16);
    out.frames.top_source = impl + layout_.current_frame;
  } else {
    out.frames.top_frame = out.top_frame_object;
    out.frames.top_source = impl + layout_.top_frame;
  }
  if (stop == 0) {
    out.status = GreenletStatus::kNotStarted;
    return true;
  }
  if (start == 0) {
    out.status = GreenletStatus::kDead;
    return true;
  }
  // Running or parked: the thread's current greenlet says (main -> ThreadState.current_greenlet).
  out.status = GreenletStatus::kParked;
  uint64_t main_impl = impl;
  if (!cls->main && (!plausible_pointer(out.main_greenlet) || !memory_.read_value(out.main_greenlet + kPimplOffset, main_impl)))
    return true;
  uint64_t main_vtable = 0, thread_state = 0, head[2] = {};
  if (!memory_.read_value(main_impl, main_vtable)) return true;
  const auto* main_cls = layout_.find(main_vtable);
  if (!main_cls || !main_cls->main || main_cls->thread_state == kAbsent ||
      !memory_.read_value(main_impl + main_cls->thread_state, thread_state) || !plausible_pointer(thread_state) ||
      !memory_.read(thread_state, head, sizeof head) || head[0] != out.main_greenlet)
    return true;
  out.running_known = true;
  if (head[1] == object) out.status = GreenletStatus::kRunning;
  return true;
}

bool GreenletReader::parked_frames(const GreenletState& state, Walker& walker, std::vector<RawFrame>& out) {
  out.clear();
  // Not told from running (its thread's current greenlet unread): a running greenlet's saved
  // frame pointers are stale, and its live frames there would pass every check below.
  if (state.status != GreenletStatus::kParked || !state.running_known || !state.frames.top_frame) return false;
  if (walker.walk(state.frames, out) != WalkError::kNone || out.empty()) return false;
  const Layout& l = interp_.layout;
  // The frame object greenlet made at switch-out is the innermost frame's (3.11+).
  if (l.frame_model == FrameModel::kInterpreterFrame && state.top_frame_object) {
    uint64_t iframe = 0;
    if (!memory_.read_value(state.top_frame_object + l.frame_object_f_frame, iframe) || iframe != out.front().address)
      return false;
  }
  // Still parked the same way after the walk: otherwise the frames may mix two moments.
  GreenletState again;
  if (!read(state.object, again) || !again.parked_as(state)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------

void SwitchDecoder::decode(std::span<const target::UprobeHit> hits, std::vector<GreenletSwitch>& out) {
  for (const auto& hit : hits) {
    if (hit.site >= entries_.size()) continue;
    const SwitchEntry& entry = entries_[hit.site];
    ThreadView& tv = threads_[hit.tid];
    if (!hit.args_valid) {
      ++unresolved_;
      continue;
    }
    uint64_t value = hit.args[entry.target_arg];
    if (entry.kind == SwitchEntry::Kind::kCreate) {  // a greenlet is born: its impl and PyGreenlet
      uint64_t object = hit.args[entry.object_arg];
      if (impl_objects_.size() >= (1u << 20)) impl_objects_.clear();  // bounded: lookups refill it
      impl_objects_[value] = object;
      Generation& g = generations_[object];
      ++g.number;
      g.unstarted = true;
      continue;
    }
    if (entry.kind == SwitchEntry::Kind::kStart) {
      tv.pending_start = value;
      continue;
    }
    uint64_t target = value, impl = 0;
    bool starts = false;
    if (entry.target_is_impl) {
      impl = value;
      starts = entry.kind == SwitchEntry::Kind::kStackSwitch && tv.pending_start == impl;
      auto it = impl_objects_.find(impl);
      if (it != impl_objects_.end() && !(starts && !generations_[it->second].unstarted)) {
        target = it->second;
      } else {  // not seen being made (before the probes): ask the target's memory
        target = object_of_impl_(impl);
        if (target) impl_objects_[impl] = target;
      }
    }
    tv.pending_start = 0;
    // PyGreenlet_Switch hands over to greenlet.switch's function: one call, two hits.
    bool method_after_capi = entry.kind == SwitchEntry::Kind::kSwitchMethod && tv.capi_switch_target == target;
    tv.capi_switch_target = entry.kind == SwitchEntry::Kind::kCapiSwitch ? target : 0;
    if (method_after_capi) continue;
    if (!target) ++unresolved_;
    if (!starts && target && target == tv.current) continue;  // switching to itself: nothing happens
    Generation* generation = target ? &generations_[target] : nullptr;
    if (starts && generation) {
      if (!generation->unstarted) ++generation->number;  // born before the probes, or unprobed constructor
      generation->unstarted = false;
    }
    GreenletSwitch s;
    s.time_ns = hit.time_ns;
    s.tid = hit.tid;
    s.target = target;
    s.target_impl = impl;
    s.generation = generation ? generation->number : 0;
    s.starts = starts;
    s.is_throw = entry.kind == SwitchEntry::Kind::kThrowMethod || entry.kind == SwitchEntry::Kind::kCapiThrow;
    s.origin = tv.current;
    s.origin_generation = tv.current_generation;
    tv.current = target;
    tv.current_generation = s.generation;
    out.push_back(s);
  }
}

uint64_t SwitchDecoder::current(pid_t tid) const {
  auto it = threads_.find(tid);
  return it == threads_.end() ? 0 : it->second.current;
}

uint32_t SwitchDecoder::generation(uint64_t object) const {
  auto it = generations_.find(object);
  return it == generations_.end() ? 0 : it->second.number;
}

}  // namespace swprof::python

#include "record/greenlets.h"

#include "live/gc_walk.h"

#include <algorithm>

#include <fmt/format.h>

#include "swprof/common.h"

namespace swprof::record {

namespace {

constexpr size_t kMaxGreenlets = 10000;  // read each tick at most this many (the rest wait their turn)
constexpr size_t kMaxSeedObjects = 2000000;  // GC objects looked at for greenlets made before the probes
constexpr int64_t kMaxSeedUs = 300000;       // ... and for how long at most (one pause of the recorder)
constexpr size_t kCalibrationBatch = 64;

}  // namespace

GreenletTracker::GreenletTracker(const target::Memory& memory, const python::Interpreter& interp)
    : memory_(memory), interp_(interp), walker_(memory, interp) {
  walker_.set_locals_wanted(64);  // an entry call's identity compares its locals (≤3.10 frame objects)
}

GreenletTracker::~GreenletTracker() = default;

uint64_t GreenletTracker::probe_hits() const { return session_ ? session_->hits() : 0; }
uint64_t GreenletTracker::probe_lost() const { return session_ ? session_->lost() : 0; }

void GreenletTracker::tick(int64_t now_us, int64_t epoch_us) {
  epoch_us_ = epoch_us;
  alive_.clear();
  running_.clear();
  if (gave_up_) return;
  if (!module_) {
    // Until the program imports greenlet: a few reads of sys.modules every 10 ms (a server that
    // handles requests before the probes are on loses their greenlets to sampling alone).
    if (now_us < next_search_us_) return;
    next_search_us_ = now_us + 10000;
    try {
      module_ = python::find_greenlet(interp_, memory_);
    } catch (const UserError& e) {
      note_ = fmt::format("greenlets found only when sampled running: {}", e.what());
      gave_up_ = true;
      return;
    }
    if (!module_) return;
    attach_began_us_ = now_us;
    attach();
    if (gave_up_) return;
  }
  if (attaching_.valid()) {
    if (attaching_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
    attached();
    probes_on_us_ = now_us;
    if (gave_up_) return;
  }
  if (!session_) return;
  try {
    session_->follow_threads_beside();  // threads started since the last tick
  } catch (const target::UprobeUnavailable&) {
    // A thread whose events cannot be opened keeps its greenlets to sampling alone.
  }
  take_hits();
  read_states();
}

// The probes: UserGreenlet's constructor (a greenlet is made) and g_initialstub (it starts).
void GreenletTracker::attach() {
  for (const auto& e : module_->entries)
    if (e.kind == python::SwitchEntry::Kind::kCreate || e.kind == python::SwitchEntry::Kind::kStart)
      entries_.push_back(e);
  bool has_start = std::any_of(entries_.begin(), entries_.end(),
                               [](const auto& e) { return e.kind == python::SwitchEntry::Kind::kStart; });
  if (!has_start) {
    note_ = fmt::format("greenlets found only when sampled running: greenlet {} does not export "
                        "UserGreenlet::g_initialstub to probe",
                        module_->version);
    gave_up_ = true;
    return;
  }
  std::vector<std::string> problems;
  auto sites = python::probe_sites(memory_.pid(), entries_, problems);
  if (sites.size() != entries_.size()) {
    note_ = fmt::format("greenlets found only when sampled running: {}",
                        problems.empty() ? "greenlet's functions could not be located" : problems.front());
    gave_up_ = true;
    return;
  }
  // Opening the probes takes the kernel 13–35 ms (71 ms under ASan) — it plants them in every
  // mapping of greenlet's library — which, done on the sampling thread, held up a tick just as a
  // server took its first requests. It is done beside it; greenlets that start meanwhile are found
  // on the GC's lists once it is done (seed_existing).
  // So is the search of the GC's lists for greenlets made before the probes were on (10–14 ms
  // for gevent's objects), with memory and a reader of its own.
  attaching_ = std::async(std::launch::async, [this, sites = std::move(sites), module = *module_] {
    Attached done;
    done.session = std::make_unique<target::UprobeSession>(memory_.pid(), sites);
    done.session->follow_threads();
    const target::Memory memory(memory_.pid());
    python::GreenletReader reader(memory, interp_, module);
    done.existing = existing_greenlets(memory, reader);
    return done;
  });
}

// The probes are on (or could not be had).
void GreenletTracker::attached() {
  std::vector<uint64_t> existing;
  try {
    Attached done = attaching_.get();
    session_ = std::move(done.session);
    existing = std::move(done.existing);
  } catch (const target::UprobeUnavailable& e) {
    session_.reset();
    note_ = fmt::format("greenlets found only when sampled running: uprobes unavailable: {}", e.what());
    gave_up_ = true;
    return;
  } catch (const std::exception& e) {
    session_.reset();
    note_ = fmt::format("greenlets found only when sampled running: {}", e.what());
    gave_up_ = true;
    return;
  }
  reader_ = std::make_unique<python::GreenletReader>(memory_, interp_, *module_);
  note_ = fmt::format("greenlets followed from their start (greenlet {}, uprobes on its constructor and "
                      "g_initialstub)",
                      module_->version);
  seed_existing(existing);
}

// Greenlets made before the probes were on (swprof attached to a running server, or requests came
// in before greenlet's import was seen) never hit them: they are found once, as the probes go on,
// on the GC's lists (greenlets are GC-tracked objects; read beside the sampling thread), and
// followed from then on (seed_existing); when each began is not known. Threads' main greenlets
// are left out, as the probes never report them either.
std::vector<uint64_t> GreenletTracker::existing_greenlets(const target::Memory& memory,
                                                          python::GreenletReader& reader) const {
  std::vector<uint64_t> found;
  uint64_t interp_state = 0;
  if (!memory.read_value(interp_.runtime + interp_.layout.runtime.interpreters_head, interp_state) || !interp_state)
    return found;
  std::unordered_map<uint64_t, bool> greenlet_types;
  live::walk_gc_objects(memory, interp_, interp_state, kMaxSeedObjects, kMaxSeedUs, [&](uint64_t object, uint64_t type) {
    auto [it, inserted] = greenlet_types.try_emplace(type, false);
    if (inserted) it->second = reader.is_greenlet_type(type);
    if (it->second && found.size() < kMaxGreenlets) found.push_back(object);
  });
  return found;
}

void GreenletTracker::seed_existing(const std::vector<uint64_t>& found) {
  for (size_t i = 0; i < found.size() && !reader_->calibrated(); i += kCalibrationBatch)
    reader_->calibrate(std::span<const uint64_t>(found).subspan(i, std::min(kCalibrationBatch, found.size() - i)), false);
  if (!reader_->calibrated()) return;  // the hits will teach it; these stay unknown
  size_t seeded = 0;
  for (uint64_t object : found) {
    python::GreenletState state;
    if (!reader_->read(object, state) || state.main || state.status == python::GreenletStatus::kDead ||
        state.status == python::GreenletStatus::kNotStarted)
      continue;
    if (known_.emplace(object, Known{next_serial_++, 0, true, {}, attach_began_us_}).second) ++seeded;
  }
  if (seeded) note_ += fmt::format("; {} greenlets that existed before were found on the GC's lists", seeded);
}

// Greenlets made or started since the last tick become known; their C++ objects teach the reader
// greenlet's private layout first.
void GreenletTracker::take_hits() {
  hits_.clear();
  session_->drain(hits_);
  pending_.insert(pending_.end(), hits_.begin(), hits_.end());
  if (!reader_->calibrated()) {
    targets_.clear();
    for (const auto& h : pending_)
      if (h.args_valid) targets_.push_back(h.args[entries_[h.site].target_arg]);
    reader_->calibrate(targets_, true);
    if (!reader_->calibrated()) {
      if (!reader_->calibration_problem().empty()) {
        note_ = fmt::format("greenlets found only when sampled running: {}", reader_->calibration_problem());
        session_.reset();  // the probes are of no use: remove them
        gave_up_ = true;
      }
      if (pending_.size() > (1u << 16)) pending_.erase(pending_.begin(), pending_.end() - (1u << 15));
      return;
    }
  }
  // In time order (each thread's hits come in order, threads one after another).
  std::stable_sort(pending_.begin(), pending_.end(), [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  for (const auto& h : pending_) {
    if (!h.args_valid) continue;
    const auto& e = entries_[h.site];
    bool made = e.kind == python::SwitchEntry::Kind::kCreate;
    uint64_t object = made ? h.args[e.object_arg] : reader_->object_of_impl(h.args[e.target_arg]);
    if (!object) continue;
    auto it = known_.find(object);
    // Made again, or started again, at a known address: the earlier greenlet there is gone.
    if (it != known_.end() && (made || it->second.started)) {
      known_.erase(it);
      it = known_.end();
    }
    const int64_t at_us = h.time_ns / 1000 - epoch_us_;
    if (it == known_.end()) {
      if (known_.size() >= kMaxGreenlets) continue;
      it = known_.emplace(object, Known{next_serial_++, at_us, false, {}}).first;
    }
    // Its calls begin once it starts (or, not seen starting, once it was made).
    if (!made) {
      it->second.born_us = at_us;
      it->second.started = true;
    }
  }
  pending_.clear();
}

// Which greenlets live, which are parked and which run, read once per tick before the threads.
void GreenletTracker::read_states() {
  if (!reader_ || !reader_->calibrated()) return;
  // A greenlet that is starting reads as finished: greenlet gives it its stack's end in
  // g_initialstub and marks it running (its stack's start) only once on its new stack, in
  // inner_bootstrap. Read in between (a target preempted there on a busy machine), a greenlet
  // just started was forgotten: its waiting went unsampled and its call began when it next ran
  // (one suite run's gevent server: a segment of 10 ms for a handler's 166 ms; the window is a
  // few microseconds, and 12 runs of 1000 starts beside three busy loops did not hit it again).
  // So a finished greenlet is forgotten only once it has read so on several ticks in a row;
  // meanwhile it is not alive (its calls end).
  constexpr int kDeadReadsToForget = 3;
  for (auto it = known_.begin(); it != known_.end();) {
    Known& k = it->second;
    if (!reader_->read(it->first, k.state)) {
      it = known_.erase(it);  // its memory went (a freed greenlet)
      continue;
    }
    if (k.state.status == python::GreenletStatus::kDead) {
      if (++k.dead_reads >= kDeadReadsToForget) it = known_.erase(it);
      else ++it;
      continue;
    }
    k.dead_reads = 0;
    alive_.insert(k.serial);
    if (k.state.status == python::GreenletStatus::kRunning && k.state.running_known) running_.push_back(&k);
    ++it;
  }
}

bool GreenletTracker::parked_since_tick(uint64_t serial) {
  if (!reader_ || !reader_->calibrated() || !alive(serial)) return false;
  for (const auto& [object, k] : known_) {
    if (k.serial != serial) continue;
    python::GreenletState now;
    return reader_->read(object, now) && now.parked_as(k.state);
  }
  return false;
}

void GreenletTracker::parked(const std::function<void(const Parked&)>& visit) {
  if (!reader_ || !reader_->calibrated()) return;
  for (auto& [object, k] : known_) {
    if (!alive(k.serial) || k.state.status != python::GreenletStatus::kParked) continue;
    // Read at the tick's start; parked_frames checks it is still parked.
    if (reader_->parked_frames(k.state, walker_, frames_) && !frames_.empty())
      visit({k, frames_, frames_.back().address, frames_.back().code});
  }
}

}  // namespace swprof::record

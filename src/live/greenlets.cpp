// Parked greenlets for a dump: candidates from the GC's lists (gc_walk.h), checked and read by
// GreenletReader, which learns greenlet's private layout from them as record does from switch
// targets. A greenlet's thread: gevent's Hub remembers it (Hub.thread_ident) and every greenlet
// of that thread shares the hub's main greenlet; with one Python thread there is no question.
#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

#include "live/gc_walk.h"
#include "live/reading.h"
#include "swprof/common.h"
#include "swprof/greenlet.h"

namespace swprof::live {

namespace {

constexpr size_t kMaxParkedRead = 1000;  // parked greenlets whose frames a dump reads
constexpr size_t kCalibrationBatch = 64;

}  // namespace

void find_parked_greenlets(Reading& r, std::span<const python::PyThread> threads, const DumpOptions& options,
                           std::vector<FoundGreenlet>& out) {
  std::optional<python::GreenletModule> module;
  try {
    module = python::find_greenlet(r.interp, r.memory);
  } catch (const UserError& e) {
    r.notes.push_back(fmt::format("greenlets not listed: {}", e.what()));
    return;
  }
  if (!module) return;  // greenlet is not imported: nothing to look for
  python::GreenletReader reader(r.memory, r.interp, *module);
  python::ObjectReader objects(r.memory, r.interp.layout);

  std::vector<uint64_t> candidates;
  std::unordered_map<uint64_t, bool> greenlet_types;
  uint64_t interp_state = threads.empty() ? 0 : threads.front().interp;
  if (!interp_state) r.memory.read_value(r.interp.runtime + r.interp.layout.runtime.interpreters_head, interp_state);
  GcWalkStats walk = walk_gc_objects(r.memory, r.interp, interp_state, options.max_objects, options.max_search_us,
                                     [&](uint64_t object, uint64_t type) {
                                       auto [it, inserted] = greenlet_types.try_emplace(type, false);
                                       if (inserted) it->second = reader.is_greenlet_type(type);
                                       if (it->second) candidates.push_back(object);
                                     });
  for (size_t i = 0; i < candidates.size() && !reader.calibrated(); i += kCalibrationBatch) {
    auto batch = std::span<const uint64_t>(candidates).subspan(i, std::min(kCalibrationBatch, candidates.size() - i));
    reader.calibrate(batch, false);
  }
  std::string reach = fmt::format("searched {} objects the GC tracks in {}{}", walk.objects,
                                  format_duration_us(walk.elapsed_us),
                                  walk.complete ? "" : fmt::format(" ({}: some may be missing)", walk.stopped));
  if (!reader.calibrated()) {
    r.notes.push_back(fmt::format("greenlet {}: {} greenlets found, their states not readable ({}); {}", module->version,
                                  candidates.size(),
                                  reader.calibration_problem().empty() ? "too few greenlets to learn their layout from"
                                                                       : reader.calibration_problem(),
                                  reach));
    return;
  }

  // Whose thread: a hub's thread_ident, for every greenlet under the hub's main greenlet.
  std::unordered_map<uint64_t, uint64_t> thread_of_main;
  std::vector<std::pair<uint64_t, python::GreenletState>> states;
  for (uint64_t object : candidates) {
    python::GreenletState state;
    if (!reader.read(object, state)) continue;
    std::string type = objects.type_name(objects.type_of(object));
    if (type == "Hub" || type.ends_with(".Hub")) {
      int64_t ident = 0;
      uint64_t attr = objects.instance_attr(object, "thread_ident");
      if (attr && objects.read_int(attr, ident) && state.main_greenlet) thread_of_main[state.main_greenlet] = ident;
    }
    states.emplace_back(object, state);
  }
  size_t parked = 0, unread = 0;
  std::vector<python::RawFrame> raw;
  for (const auto& [object, state] : states) {
    if (state.status != python::GreenletStatus::kParked) continue;
    if (++parked > kMaxParkedRead) continue;
    FoundGreenlet found;
    found.greenlet.address = object;
    found.greenlet.type = objects.type_name(objects.type_of(object));
    found.greenlet.main = state.main;
    found.greenlet.frames_read =
        reader.parked_frames(state, *r.walker, raw) && r.name_frames(raw, true, found.greenlet.frames);
    if (!found.greenlet.frames_read) ++unread;
    auto it = thread_of_main.find(state.main_greenlet);
    if (it != thread_of_main.end()) found.thread_ident = it->second;
    else if (threads.size() == 1) found.thread_ident = threads.front().thread_id;
    out.push_back(std::move(found));
  }
  // A thread's main greenlet first (its frames are the thread's outer ones), then in GC order.
  std::stable_partition(out.begin(), out.end(), [](const FoundGreenlet& g) { return g.greenlet.main; });
  std::string note = fmt::format("greenlet {}: {} greenlets, {} parked", module->version, states.size(), parked);
  if (parked > kMaxParkedRead) note += fmt::format(" (the first {} listed)", kMaxParkedRead);
  if (unread) note += fmt::format(", {} of them changed while read (no frames shown)", unread);
  r.notes.push_back(note + "; " + reach);
}

}  // namespace swprof::live

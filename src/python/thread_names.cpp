#include "swprof/python.h"

namespace swprof::python {

bool ThreadNames::find_active_dict() {
  // threading._active: a handful of reads, done rarely.
  active_ = objects_.module_global(interp_.runtime, "threading", "_active");
  return active_ != 0;
}

std::optional<std::string> ThreadNames::lookup(uint64_t ident, int64_t native_id, int64_t now_us) {
  // Until threading is imported there is nothing to find: search sys.modules at most every 50 ms.
  if (!active_) {
    if (now_us - last_search_us_ < 50000) return std::nullopt;
    last_search_us_ = now_us;
    if (!find_active_dict()) return std::nullopt;
  }
  std::vector<std::pair<uint64_t, uint64_t>> items;
  if (!objects_.dict_items(active_, items)) {
    // Torn (the dict grew as threads started) or rebound: look the dict up again next time, at
    // once: a short-lived thread is gone in a few ticks.
    active_ = 0;
    last_search_us_ = now_us - 50000;
    return std::nullopt;
  }
  for (auto [key, thread] : items) {
    int64_t value = 0;
    if (!objects_.read_int(key, value) || static_cast<uint64_t>(value) != ident) continue;
    const Named holder{{}, native_id_of(thread)};
    if (!holder.same_thread(native_id)) return std::nullopt;  // another thread's now: this one ended
    return name_of(thread);
  }
  return std::nullopt;
}

std::optional<std::string> ThreadNames::name_of(uint64_t thread) const {
  std::string name;
  uint64_t name_obj = objects_.instance_attr(thread, "_name");
  if (name_obj && objects_.read_str(name_obj, name, 256)) return name;
  return std::nullopt;
}

// Thread._native_id is set before the thread enters _active (3.8+ on Linux).
int64_t ThreadNames::native_id_of(uint64_t thread) const {
  int64_t id = 0;
  const uint64_t obj = objects_.instance_attr(thread, "_native_id");
  return obj && objects_.read_int(obj, id) ? id : 0;
}

void ThreadNames::all(std::unordered_map<uint64_t, Named>& out) {
  out.clear();
  std::vector<std::pair<uint64_t, uint64_t>> items;
  if ((!active_ && !find_active_dict()) || !objects_.dict_items(active_, items)) return;
  for (auto [key, thread] : items) {
    int64_t ident = 0;
    if (!objects_.read_int(key, ident)) continue;
    if (auto name = name_of(thread)) out.emplace(static_cast<uint64_t>(ident), Named{std::move(*name), native_id_of(thread)});
  }
}

}  // namespace swprof::python

#include "live/top_model.h"

#include <algorithm>

#include <fmt/format.h>

#include "swprof/common.h"

namespace swprof::live {

namespace {

constexpr const char* kNotSampled = "<not sampled>";  // a late sample's gap: its leaf is not known

}  // namespace

const char* sort_key_name(SortKey key) {
  switch (key) {
    case SortKey::kOwn: return "OWN%";
    case SortKey::kTotal: return "TOTAL%";
    case SortKey::kCpu: return "CPU%";
    case SortKey::kGil: return "GIL%";
    case SortKey::kOwnSinceStart: return "OWN s";
    case SortKey::kTotalSinceStart: return "TOTAL s";
  }
  return "?";
}

uint32_t TopModel::marker(std::string_view text, bool lines) {
  auto [it, inserted] = entity_ids_[lines].try_emplace(std::string(text), static_cast<uint32_t>(entities_[lines].size()));
  if (inserted) entities_[lines].push_back({std::string(text), "", 0});
  return it->second;
}

uint32_t TopModel::entity_of(uint32_t frame, bool lines, const snapshot::Writer& names) {
  auto& known = frame_entities_[lines];
  if (frame < known.size() && known[frame]) return known[frame] - 1;
  const snapshot::Frame& f = names.frame(frame);
  Entity e{terminal_text(names.string(f.function)), terminal_text(names.string(f.file)), lines ? f.line : f.first_line};
  std::string key = fmt::format("{}\n{}\n{}", e.function, e.file, e.line);
  auto [it, inserted] = entity_ids_[lines].try_emplace(key, static_cast<uint32_t>(entities_[lines].size()));
  if (inserted) entities_[lines].push_back(std::move(e));
  if (known.size() <= frame) known.resize(frame + 1, 0);
  known[frame] = it->second + 1;
  return it->second;
}

void TopModel::add(const snapshot::Sample& s, std::span<const uint32_t> stack, int64_t tid,
                   std::string_view thread_name, const snapshot::Writer& names) {
  PerThread& t = threads_[tid];
  if (!thread_name.empty()) t.name = terminal_text(thread_name);
  ++samples_;
  ++t.window_samples;
  const bool gap = s.flags & snapshot::kGap;
  const int idle = s.cpu_us == 0 && !(s.flags & snapshot::kOnCpu) ? 1 : 0;
  const int64_t gil = (s.flags & snapshot::kGilHeld) ? s.wall_us : 0;
  for (int v = 0; v < 2; ++v) {
    const bool lines = v == 1;
    auto& stamp = stamp_[v];
    uint32_t leaf = gap || stack.empty() ? marker(kNotSampled, lines) : 0;
    auto& ids = scratch_;
    ids.clear();
    for (uint32_t frame : stack) ids.push_back(entity_of(frame, lines, names));
    if (!gap && !ids.empty()) leaf = ids.back();
    const size_t n = entities_[v].size();
    auto& window = t.window[v][idle];
    auto& since_start = t.since_start[v][idle];
    for (auto* times : {&window, &since_start})
      if (times->size() < n) times->resize(n);
    if (stamp.size() < n) stamp.resize(n, 0);
    for (uint32_t id : ids) {
      if (stamp[id] == samples_) continue;  // recursion: a function counts once per sample
      stamp[id] = samples_;
      window[id].total += s.wall_us;
      since_start[id].total += s.wall_us;
    }
    for (auto* times : {&window[leaf], &since_start[leaf]}) {
      times->own += s.wall_us;
      times->own_cpu += s.cpu_us;
      times->own_gil += gil;
    }
    if (gap) {  // the gap's leaf counts in its total too
      window[leaf].total += s.wall_us;
      since_start[leaf].total += s.wall_us;
    }
  }
}

void TopModel::close_window(int64_t elapsed_us) {
  last_elapsed_us_ = elapsed_us;
  for (auto& [tid, t] : threads_) {
    for (int v = 0; v < 2; ++v)
      for (int idle = 0; idle < 2; ++idle) {
        t.last[v][idle] = t.window[v][idle];
        std::fill(t.window[v][idle].begin(), t.window[v][idle].end(), Times{});
      }
    t.last_samples = t.window_samples;
    t.window_samples = 0;
  }
}

uint64_t TopModel::window_samples(int64_t thread) const {
  uint64_t n = 0;
  for (const auto& [tid, t] : threads_)
    if (!thread || tid == thread) n += t.last_samples;
  return n;
}

std::vector<TopThread> TopModel::threads() const {
  std::vector<TopThread> out;
  for (const auto& [tid, t] : threads_) out.push_back({tid, t.name});
  std::sort(out.begin(), out.end(), [](const TopThread& a, const TopThread& b) { return a.tid < b.tid; });
  return out;
}

std::vector<TopRow> TopModel::rows(bool lines, bool idle, int64_t thread, SortKey key, size_t limit) const {
  const int v = lines ? 1 : 0;
  const size_t n = entities_[v].size();
  std::vector<Times> last(n), since(n);
  int64_t wall = 0;  // the window's shown time: its samples' weights are their leaves' own time
  for (const auto& [tid, t] : threads_) {
    if (thread && tid != thread) continue;
    for (int i = 0; i <= (idle ? 1 : 0); ++i) {
      for (size_t e = 0; e < t.last[v][i].size(); ++e) {
        const Times& x = t.last[v][i][e];
        last[e].own += x.own;
        last[e].total += x.total;
        last[e].own_cpu += x.own_cpu;
        last[e].own_gil += x.own_gil;
        wall += x.own;
      }
      for (size_t e = 0; e < t.since_start[v][i].size(); ++e) {
        since[e].own += t.since_start[v][i][e].own;
        since[e].total += t.since_start[v][i][e].total;
      }
    }
  }
  auto pct = [](int64_t part, int64_t whole) { return whole > 0 ? 100.0 * double(part) / double(whole) : 0.0; };
  std::vector<TopRow> out;
  for (size_t i = 0; i < n; ++i) {
    if (since[i].total <= 0 && since[i].own <= 0) continue;
    const Entity& e = entities_[v][i];
    out.push_back({e.function, e.file, e.line, pct(last[i].own, wall), pct(last[i].total, wall),
                   pct(last[i].own_cpu, last_elapsed_us_), pct(last[i].own_gil, last_elapsed_us_),
                   double(since[i].own) / 1e6, double(since[i].total) / 1e6});
  }
  auto value = [key](const TopRow& r) {
    switch (key) {
      case SortKey::kOwn: return r.own_pct;
      case SortKey::kTotal: return r.total_pct;
      case SortKey::kCpu: return r.cpu_pct;
      case SortKey::kGil: return r.gil_pct;
      case SortKey::kOwnSinceStart: return r.own_s;
      case SortKey::kTotalSinceStart: return r.total_s;
    }
    return 0.0;
  };
  std::sort(out.begin(), out.end(), [&](const TopRow& a, const TopRow& b) {
    if (value(a) != value(b)) return value(a) > value(b);
    if (a.total_s != b.total_s) return a.total_s > b.total_s;
    return std::tie(a.function, a.file, a.line) < std::tie(b.function, b.file, b.line);
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace swprof::live

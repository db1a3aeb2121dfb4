// export --format pprof: the gzip-compressed perftools.profiles.Profile that `go tool pprof`,
// Pyroscope, Grafana and Cloud Profiler read (schema: proto/pprof_profile.proto).
//
// Sample types: samples (count), wall, cpu, when the recording knows who held the GIL gil, and
// when it has run-queue times runqueue (the time runnable but waiting for a CPU) (nanoseconds);
// wall is the default. One pprof sample per distinct (stack, thread, segment, greenlet, off-CPU
// reason, time not sampled): the values add up, so nothing is lost by merging. A function is a code object
// (qualified name, file, def line); a location is one executing line of it. Labels carry the
// execution context: thread id and name, segment id, greenlet, and why the thread was off the CPU
// (offcpu_reason: "futex", "recvfrom socket 127.0.0.1:5432").
#include <zlib.h>

#include <cstdint>
#include <unordered_map>

#include <fmt/format.h>

#include "export/frame_table.h"
#include "pprof_profile.pb.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

namespace pp = perftools::profiles;

// pprof refers to every string by its index in one table; index 0 is "". Strings are sanitised
// (valid UTF-8, control characters replaced): protobuf strings must be UTF-8, and pprof prints
// names one per line.
class StringTable {
 public:
  explicit StringTable(pp::Profile& profile) : profile_(profile) { index(""); }
  int64_t index(std::string_view raw) {
    std::string text = sanitize_text(raw);
    auto [it, inserted] = ids_.try_emplace(text, static_cast<int64_t>(ids_.size()));
    if (inserted) profile_.add_string_table(text);
    return it->second;
  }

 private:
  pp::Profile& profile_;
  std::unordered_map<std::string, int64_t> ids_;
};

// What one pprof sample aggregates: samples with the same stack in the same context.
struct ContextKey {
  uint32_t stack, thread, segment, greenlet;
  bool switched_out;
  uint32_t offcpu_reason;
  bool gap;
  bool operator==(const ContextKey&) const = default;
};
struct ContextHash {
  size_t operator()(const ContextKey& k) const {
    uint64_t h = (uint64_t(k.stack) << 32 | k.thread) * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t(k.segment) << 32 | k.greenlet) * 0xC2B2AE3D27D4EB4Full + k.switched_out;
    h ^= uint64_t(k.offcpu_reason) * 0x165667B19E3779F9ull + k.gap;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

enum Value { kSamples, kWall, kCpu, kGil };

void add_labels(pp::Sample& out, const snapshot::Recording& rec, const ContextKey& key, StringTable& strings) {
  auto num = [&](std::string_view name, int64_t value) {
    auto* label = out.add_label();
    label->set_key(strings.index(name));
    label->set_num(value);
  };
  auto str = [&](std::string_view name, std::string_view value) {
    auto* label = out.add_label();
    label->set_key(strings.index(name));
    label->set_str(strings.index(value));
  };
  const auto& thread = rec.threads[key.thread];
  num("thread_id", thread.tid);
  if (!thread.name.empty()) str("thread_name", thread.name);
  if (key.segment) num("segment_id", key.segment);
  if (key.greenlet) num("greenlet", key.greenlet);
  if (key.offcpu_reason) str("offcpu_reason", rec.str(key.offcpu_reason - 1));
  // Asyncio tasks: when samples carry a task (execution context) id, it becomes a "task" label
  // here, next to the greenlet, and joins ContextKey so that samples of different tasks stay apart.
}

std::string gzip(const std::string& data) {
  z_stream z{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw UserError("cannot start gzip compression (zlib)");
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int status = deflate(&z, Z_FINISH);
  deflateEnd(&z);
  if (status != Z_STREAM_END) throw UserError("gzip compression failed (zlib)");
  out.resize(z.total_out);
  return out;
}

}  // namespace

std::string pprof_profile(const snapshot::Recording& rec, const ExportView& view) {
  std::vector<uint32_t> selected = analyze::select_samples(rec, view.selection);

  pp::Profile profile;
  StringTable strings(profile);
  bool gil_known = false, runqueue_known = false;
  for (uint32_t i : selected) {
    gil_known |= (rec.samples[i].flags & snapshot::kGilKnown) != 0;
    runqueue_known |= rec.samples[i].runqueue_us != 0;
  }
  auto value_type = [&](pp::ValueType* type, std::string_view name, std::string_view unit) {
    type->set_type(strings.index(name));
    type->set_unit(strings.index(unit));
  };
  value_type(profile.add_sample_type(), "samples", "count");
  value_type(profile.add_sample_type(), "wall", "nanoseconds");
  value_type(profile.add_sample_type(), "cpu", "nanoseconds");
  if (gil_known) value_type(profile.add_sample_type(), "gil", "nanoseconds");
  const int runqueue_value = runqueue_known ? profile.sample_type_size() : -1;
  if (runqueue_known) value_type(profile.add_sample_type(), "runqueue", "nanoseconds");
  profile.set_default_sample_type(strings.index("wall"));
  value_type(profile.mutable_period_type(), "wall", "nanoseconds");
  // (Saturating: a hostile file's header times and the duration its samples span are not bounded
  // — the fuzzer found a duration of 2^54 µs.)
  auto ns_of = [](int64_t us) {
    int64_t ns;
    return __builtin_mul_overflow(us, int64_t(1000), &ns) ? (us < 0 ? INT64_MIN : INT64_MAX) : ns;
  };
  profile.set_period(ns_of(rec.header.interval_us()));
  profile.set_time_nanos(ns_of(rec.header.start_unix_us()));
  profile.set_duration_nanos(ns_of(analyze::recording_duration_us(rec)));
  profile.add_comment(strings.index(fmt::format("swprof {}", SWPROF_VERSION)));
  profile.add_comment(strings.index(analyze::command_line(rec)));
  if (!rec.header.python_version().empty())
    profile.add_comment(strings.index(fmt::format("Python {}", rec.header.python_version())));

  // Functions by code object, locations by executing line, both numbered from 1 as first used.
  FrameTable functions(rec, view.selection, false);
  std::vector<uint64_t> function_id;             // table entry -> pprof function id (0: none yet)
  std::vector<uint64_t> location_of(rec.frames.size(), 0);
  std::unordered_map<uint32_t, uint64_t> synthetic_location;  // table entry -> location id
  auto function_for = [&](uint32_t entry_index) {
    if (function_id.size() <= entry_index) function_id.resize(entry_index + 1, 0);
    if (!function_id[entry_index]) {
      const auto& e = functions.entries()[entry_index];
      auto* f = profile.add_function();
      f->set_id(static_cast<uint64_t>(profile.function_size()));
      f->set_name(strings.index(e.function));
      // pprof "demangles" a function whose system name equals its name, and its C++ heuristics
      // then cut "<...>" out ("<module>" becomes ""). A system name that differs (the code's
      // file and qualified name; none for a synthetic frame) keeps the name as written.
      f->set_system_name(strings.index(e.synthetic ? "" : fmt::format("{}:{}", e.file, e.function)));
      f->set_filename(strings.index(e.file));
      f->set_start_line(e.first_line);
      function_id[entry_index] = f->id();
    }
    return function_id[entry_index];
  };
  // One mapping, the interpreter, whose symbols are all resolved: pprof then neither looks for
  // the binary nor tries to symbolize.
  auto* mapping = profile.add_mapping();
  mapping->set_id(1);
  mapping->set_filename(strings.index(rec.header.python_binary().empty() ? "python" : rec.header.python_binary()));
  mapping->set_has_functions(true);
  mapping->set_has_filenames(true);
  mapping->set_has_line_numbers(true);
  auto add_location = [&](uint64_t function, int64_t line) {
    auto* loc = profile.add_location();
    loc->set_id(static_cast<uint64_t>(profile.location_size()));
    loc->set_mapping_id(1);
    auto* l = loc->add_line();
    l->set_function_id(function);
    l->set_line(line);
    return loc->id();
  };

  std::unordered_map<ContextKey, int, ContextHash> sample_of;  // -> index in profile.sample
  std::vector<uint32_t> entries;
  for (uint32_t i : selected) {
    const auto& s = rec.samples[i];
    ContextKey key{s.stack, s.thread, s.segment, analyze::sample_context(rec, s), (s.flags & snapshot::kSwitchedOut) != 0,
                   s.offcpu_reason, (s.flags & snapshot::kGap) != 0};
    auto [it, inserted] = sample_of.try_emplace(key, profile.sample_size());
    if (inserted) {
      auto* out = profile.add_sample();
      out->mutable_value()->Resize(profile.sample_type_size(), 0);
      functions.stack_of(s, entries);
      auto frames = analyze::sample_frames(rec, s, view.selection);
      // pprof lists the leaf first: the table's own leaves (<switched out>, <not sampled>) below
      // the frames.
      for (size_t k = entries.size(); k-- > frames.size();) {
        uint64_t& location = synthetic_location[entries[k]];
        if (!location) location = add_location(function_for(entries[k]), 0);
        out->add_location_id(location);
      }
      for (size_t k = frames.size(); k-- > 0;) {
        uint32_t frame = frames[k];
        if (!location_of[frame]) location_of[frame] = add_location(function_for(entries[k]), rec.frames[frame].line);
        out->add_location_id(location_of[frame]);
      }
      add_labels(*out, rec, key, strings);
    }
    auto* values = profile.mutable_sample(it->second)->mutable_value();
    // Nanoseconds summed over samples: a file's times are bounded (2^50 µs each), not their sum,
    // so a hostile file's totals saturate rather than overflow.
    auto add_ns = [&](int index, int64_t us) {
      int64_t ns, sum;
      if (__builtin_mul_overflow(us, int64_t(1000), &ns) || __builtin_add_overflow((*values)[index], ns, &sum))
        sum = INT64_MAX;  // (weights are never negative)
      (*values)[index] = sum;
    };
    (*values)[kSamples] += s.count;
    add_ns(kWall, s.wall_us);
    add_ns(kCpu, s.cpu_us);
    if (gil_known && (s.flags & snapshot::kGilHeld)) add_ns(kGil, s.wall_us);
    if (runqueue_value >= 0) add_ns(runqueue_value, s.runqueue_us);
  }

  std::string serialized;
  if (!profile.SerializeToString(&serialized)) throw UserError("cannot encode the pprof profile");
  if (serialized.size() > UINT32_MAX)  // one deflate call takes at most 4 GiB
    throw UserError("the pprof profile would exceed 4 GiB: export fewer segments or one --thread");
  return gzip(serialized);
}

}  // namespace swprof::exporter

// Native and Python frames as one stack (see native_merge.h).
#include "swprof/native_merge.h"

#include <cstdint>

namespace swprof::native {

namespace {

struct Batch {
  uint32_t first, last;  // Python frames [first, last], innermost first
  uint64_t entry;        // 3.12+: the entry frame's address; 0 otherwise
};

// The Python frames cut into the batches each evaluation call ran, innermost first. False when
// the outermost frame does not start a batch (a torn or partial walk).
bool cut_batches(std::span<const python::RawFrame> python, const EvalBatches& b, std::vector<Batch>& out) {
  out.clear();
  if (b.starts.size() != python.size() || b.entries.size() != python.size()) return false;
  uint32_t first = 0;
  for (uint32_t i = 0; i < python.size(); ++i) {
    if (!b.starts[i]) continue;
    out.push_back({first, i, b.entries[i]});
    first = i + 1;
  }
  return first == python.size();
}

// The native frame each batch replaces (an index into `native`), in the same order; false when
// none fits.
bool match_by_entry(std::span<const Frame> native, const std::vector<Batch>& batches, uint64_t stack_limit,
                    std::vector<uint32_t>& targets) {
  targets.clear();
  // Physical frames: the last of each inlined chain. Each one's locals lie between its own stack
  // pointer and its caller's.
  std::vector<uint32_t> physical;
  for (uint32_t i = 0; i < native.size(); ++i)
    if (!native[i].inlined) physical.push_back(i);
  size_t g = 0;
  for (const Batch& batch : batches) {
    bool found = false;
    while (g < physical.size() && !found) {
      const uint32_t i = physical[g];
      const uint32_t chain_start = g ? physical[g - 1] + 1 : 0;
      const uint64_t low = native[i].sp;
      const uint64_t high = g + 1 < physical.size() ? native[physical[g + 1]].sp : stack_limit;
      ++g;
      if (low == 0 || high < low) return false;
      if (batch.entry < low || batch.entry >= high) continue;
      // The evaluation loop itself (or inlined into this frame), or a nameless part of it.
      uint32_t target = UINT32_MAX;
      for (uint32_t k = chain_start; k <= i; ++k)
        if (native[k].eval) target = k;
      if (target == UINT32_MAX && !native[i].named) target = i;
      if (target == UINT32_MAX) return false;
      targets.push_back(target);
      found = true;
    }
    if (!found) return false;
  }
  // Every evaluation call on the native stack ran some of the Python frames.
  std::vector<bool> is_target(native.size(), false);
  for (uint32_t t : targets) is_target[t] = true;
  for (size_t i = 0; i < native.size(); ++i)
    if (native[i].eval && !is_target[i]) return false;
  return true;
}

bool match_by_name(std::span<const Frame> native, const std::vector<Batch>& batches, std::vector<uint32_t>& targets) {
  targets.clear();
  for (size_t i = 0; i < native.size(); ++i)
    if (native[i].eval) targets.push_back(static_cast<uint32_t>(i));
  return targets.size() == batches.size();
}

}  // namespace

const char* merge_result_name(MergeResult r) {
  switch (r) {
    case MergeResult::kMerged: return "merged";
    case MergeResult::kNativeOnly: return "native-only";
    case MergeResult::kPythonOnly: return "python-only";
    case MergeResult::kMismatch: return "mismatch";
  }
  return "?";
}

bool read_eval_batches(const target::Memory& memory, const python::Layout& layout,
                       std::span<const python::RawFrame> frames, uint64_t stack_start, uint64_t stack_limit,
                       EvalBatches& out) {
  out.starts.assign(frames.size(), 0);
  out.entries.assign(frames.size(), 0);
  out.stack_limit = stack_limit;
  if (frames.empty()) return true;
  if (layout.frame_model == python::FrameModel::kFrameObject) {
    out.starts.assign(frames.size(), 1);  // one evaluation call per frame object
    return true;
  }
  const bool flag = layout.frame.is_entry != python::kAbsent;  // 3.11
  const uint32_t field = flag ? layout.frame.is_entry : layout.frame.previous;
  const size_t size = flag ? 1 : 8;
  std::vector<uint64_t> values(frames.size(), 0);
  std::vector<target::Memory::Request> reads(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) reads[i] = {frames[i].address + field, &values[i], size, false};
  if (memory.read_batch(reads) != reads.size()) return false;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (flag) {
      out.starts[i] = (values[i] & 0xff) != 0;
    } else if (values[i] >= stack_start && values[i] < stack_limit) {
      // The entry frame each evaluation call (3.12+) keeps as a local: `previous` of the first
      // frame it runs.
      out.starts[i] = 1;
      out.entries[i] = values[i];
    }
  }
  return true;
}

MergeResult merge_stacks(std::span<const Frame> native, std::span<const python::RawFrame> python,
                         const EvalBatches& batches, std::vector<MergedFrame>& out) {
  out.clear();
  auto python_only = [&](MergeResult r) {
    out.clear();
    for (uint32_t i = 0; i < python.size(); ++i) out.push_back({MergedFrame::Kind::kPython, i});
    return r;
  };
  if (native.empty()) return python_only(MergeResult::kPythonOnly);
  if (python.empty()) {
    for (uint32_t i = 0; i < native.size(); ++i) out.push_back({MergedFrame::Kind::kNative, i});
    return MergeResult::kNativeOnly;
  }
  std::vector<Batch> cut;
  if (!cut_batches(python, batches, cut)) return python_only(MergeResult::kMismatch);
  bool by_entry = true;
  for (const Batch& b : cut) by_entry &= b.entry != 0;
  std::vector<uint32_t> targets;
  bool matched = by_entry ? match_by_entry(native, cut, batches.stack_limit, targets) : match_by_name(native, cut, targets);
  if (!matched) return python_only(MergeResult::kMismatch);
  size_t next = 0;
  for (uint32_t i = 0; i < native.size(); ++i) {
    if (next < targets.size() && targets[next] == i) {
      for (uint32_t p = cut[next].first; p <= cut[next].last; ++p) out.push_back({MergedFrame::Kind::kPython, p});
      ++next;
      continue;
    }
    out.push_back({MergedFrame::Kind::kNative, i});
  }
  return MergeResult::kMerged;
}

}  // namespace swprof::native

// The frame table the sample-based exports share (frame_table.h).
#include "export/frame_table.h"

#include <fmt/format.h>

#include "swprof/common.h"

namespace swprof::exporter {

FrameTable::FrameTable(const snapshot::Recording& rec, const analyze::Selection& selection, bool lines)
    : rec_(rec), selection_(selection), lines_(lines), by_frame_(rec.frames.size(), 0) {}

uint32_t FrameTable::of_frame(uint32_t frame_id) {
  if (uint32_t known = by_frame_[frame_id]) return known - 1;
  const auto& f = rec_.frames[frame_id];
  // Frames differing only in the executing line are one function, as in the call tree.
  Key key{f.function, f.file, lines_ ? f.line : f.first_line};
  auto [it, inserted] = by_key_.try_emplace(key, static_cast<uint32_t>(entries_.size()));
  if (inserted) entries_.push_back({rec_.str(f.function), rec_.str(f.file), key.line, f.first_line, false});
  by_frame_[frame_id] = it->second + 1;
  return it->second;
}

void FrameTable::stack_of(const snapshot::Sample& sample, std::vector<uint32_t>& out, analyze::OffCpuLeaf offcpu) {
  out.clear();
  for (uint32_t frame : analyze::sample_frames(rec_, sample, selection_)) out.push_back(of_frame(frame));
  // Time the recorder was held up for, charged to the frames common to the samples around it (as
  // the call tree shows it; a thread's first sample may have none in common). A parked greenlet's
  // gap is its time, but whether it was switched out then is not known.
  if (sample.flags & snapshot::kGap) out.push_back(synthetic("<not sampled>"));
  else if (sample.flags & snapshot::kSwitchedOut) {
    // (A suspended task's stack ends in the `<awaiting ...>` frame that says so, as in the tree.)
    const auto* context = rec_.context(sample.greenlet);
    if (!(context && context->kind == snapshot::ContextKind::kTask)) out.push_back(synthetic("<switched out>"));
  }
  if (offcpu == analyze::OffCpuLeaf::kWaitingForCpu) out.push_back(synthetic(std::string(analyze::kWaitingForCpuLabel)));
  if (offcpu == analyze::OffCpuLeaf::kReason && sample.offcpu_reason)
    out.push_back(synthetic(analyze::offcpu_reason_label(rec_, sample.offcpu_reason)));
}

uint32_t FrameTable::synthetic(std::string text) {
  if (auto it = synthetic_.find(text); it != synthetic_.end()) return it->second;
  auto id = static_cast<uint32_t>(entries_.size());
  const std::string& kept = labels_.emplace_back(std::move(text));
  entries_.push_back({kept, "", 0, 0, true});
  synthetic_.emplace(kept, id);
  return id;
}

ChunkedOutput::ChunkedOutput(const snapshot::Recording& rec, const std::function<void(std::string_view)>& sink,
                             uint64_t allowance)
    : sink_(sink), max_bytes_(rec.memory_limit ? allowance * rec.memory_limit : UINT64_MAX) {
  text_.reserve(kChunk + (kChunk >> 2));
}

void ChunkedOutput::flush() {
  written_ += text_.size();
  if (written_ > max_bytes_)
    throw UserError(fmt::format("this recording would export to more than {}: a corrupt or hostile file",
                                format_bytes(max_bytes_)));
  if (!text_.empty()) sink_(text_);
  text_.clear();
}

std::string thread_title(const snapshot::Thread& t) {
  return t.name.empty() ? fmt::format("thread {}", t.tid) : fmt::format("thread {} ({})", t.tid, t.name);
}

std::string_view entry_function(const snapshot::Recording& rec, const snapshot::Segment& seg,
                                const snapshot::Sample& first) {
  auto frames = rec.stack(first.stack);
  if (seg.root_depth < frames.size()) return rec.str(rec.frames[frames[seg.root_depth]].function);
  return seg.name;
}

}  // namespace swprof::exporter

#include "record/native_frames.h"

#include <algorithm>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/offcpu.h"

namespace swprof::record {

namespace {
bool stop_interrupts(int syscall) { return syscall >= 0 && native::stopping_interrupts(target::syscall_name(syscall)); }
}  // namespace

bool NativeFrames::may_stop(int syscall) {
  if (!stop_interrupts(syscall)) return true;
  ++left_running;
  return false;
}

std::unique_ptr<NativeFrames> NativeFrames::primed(pid_t pid) {
  auto native = std::make_unique<NativeFrames>(pid);
  native->prime();
  return native;
}

void NativeFrames::prime() {
  const pid_t main_thread = unwinder.pid();
  if (stop_interrupts(target::OffCpuReasons(main_thread).read(main_thread).syscall)) return;
  const int64_t start = monotonic_ns();
  if (unwinder.capture(main_thread, capture) == native::Error::kNone && unwinder.unwind(capture, frames_).error == native::Error::kNone)
    primed_ns_ = monotonic_ns() - start;
}

uint32_t NativeFrames::frame_id(const native::Frame& f, snapshot::Writer& writer) {
  native::Symbol& s = unwinder.symbol(f.symbol);
  if (s.user) return s.user - 1;
  // The function as the file names it; where the source is known (DWARF), its file and line,
  // else the module it is in.
  snapshot::Frame fr;
  fr.function = writer.intern_string(s.function);
  fr.file = writer.intern_string(s.source.empty() ? s.module : s.source);
  fr.line = s.source.empty() ? 0 : s.line;
  uint32_t id = writer.intern_frame(fr);
  s.user = id + 1;
  return id;
}

bool NativeFrames::merge(std::span<const python::RawFrame> raw, std::span<const int64_t> resolved, bool batches_ok,
                         snapshot::Writer& writer, std::vector<uint32_t>& stack) {
  ++stops_;
  if (pauses_ns_.size() < 100000) pauses_ns_.push_back(capture.held_ns);
  native::UnwindResult u = unwinder.unwind(capture, frames_);
  if (u.error != native::Error::kNone || frames_.empty()) {
    ++unwind_errors_;
    return false;
  }
  static const native::EvalBatches kNoBatches;
  native::MergeResult r = native::merge_stacks(frames_, batches_ok ? raw : std::span<const python::RawFrame>(),
                                               batches_ok ? batches : kNoBatches, merged_);
  if (r != native::MergeResult::kMerged) {
    ++mismatches_;
    return false;
  }
  ++merged_count_;
  stack.clear();
  for (size_t k = merged_.size(); k-- > 0;) {
    const native::MergedFrame& m = merged_[k];
    if (m.kind == native::MergedFrame::Kind::kPython) {
      if (m.index < resolved.size() && resolved[m.index] >= 0) stack.push_back(static_cast<uint32_t>(resolved[m.index]));
    } else {
      stack.push_back(frame_id(frames_[m.index], writer));
    }
  }
  return true;
}

std::string NativeFrames::summary() const {
  std::vector<int64_t> p = pauses_ns_;
  auto pct = [&](double q) {
    if (p.empty()) return 0.0;
    size_t i = std::min(p.size() - 1, static_cast<size_t>(q * static_cast<double>(p.size())));
    std::nth_element(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(i), p.end());
    return static_cast<double>(p[i]) / 1000.0;
  };
  std::string text = fmt::format("{} threads stopped, {} merged with their Python frames; pause {:.0f} µs median, "
                                 "{:.0f} µs p99", stops_, merged_count_, pct(0.5), pct(0.99));
  if (primed_ns_ >= 0)
    text += fmt::format("; symbols and unwind tables loaded in {:.0f} ms before the start", static_cast<double>(primed_ns_) / 1e6);
  uint64_t failed = 0;
  for (int i = 1; i < 8; ++i) failed += stop_errors[i];
  if (failed) {
    text += fmt::format("; {} not stopped (", failed);
    bool first = true;
    for (int i = 1; i < 8; ++i)
      if (stop_errors[i]) {
        text += fmt::format("{}{} {}", first ? "" : ", ", stop_errors[i], native::error_name(static_cast<native::Error>(i)));
        first = false;
      }
    text += ")";
  }
  if (unwind_errors_ || mismatches_)
    text += fmt::format("; {} kept only their Python frames (native stack not unwound or not matching)",
                        unwind_errors_ + mismatches_);
  if (left_running)
    text += fmt::format("; {} samples of threads in a call a stop would interrupt (epoll_wait and the like) "
                        "were read without stopping them", left_running);
  return text;
}

}  // namespace swprof::record

// What the sample-based exports (pprof, speedscope, Chrome trace) share: the recording's frames
// numbered as one table, one entry per function (or per executing line with `lines`), and each
// sample's stack in those numbers, root first, cut at its segment's entry frame as the call tree
// does, with a `<switched out>` leaf for a parked greenlet, a `<not sampled>` one for time the
// recorder was held up for and, for off-CPU time, the leaf saying why (analyze::OffCpuLeaf).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/snapshot.h"

namespace swprof::exporter {

class FrameTable {
 public:
  struct Entry {
    std::string_view function, file;  // raw, as recorded: each format sanitises and escapes
    int32_t line = 0;                 // the def line, or the executing line with `lines`
    int32_t first_line = 0;           // the def line
    bool synthetic = false;           // <switched out>, <not sampled>, <off-CPU: ...>: no file, no line
  };

  FrameTable(const snapshot::Recording& rec, const analyze::Selection& selection, bool lines);

  // Entries of one sample, root first; appends to `out` after clearing it.
  void stack_of(const snapshot::Sample& sample, std::vector<uint32_t>& out,
                analyze::OffCpuLeaf offcpu = analyze::OffCpuLeaf::kNone);
  const std::vector<Entry>& entries() const { return entries_; }
  // The entry a recorded frame id maps to.
  uint32_t of_frame(uint32_t frame_id);

 private:
  struct Key {
    uint32_t function, file;
    int32_t line;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return (size_t(k.function) * 0x9E3779B97F4A7C15ull) ^ (size_t(k.file) << 21) ^ size_t(uint32_t(k.line));
    }
  };

  const snapshot::Recording& rec_;
  const analyze::Selection& selection_;
  bool lines_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> by_frame_;  // frame id -> entry + 1 (0: not yet seen)
  std::unordered_map<Key, uint32_t, KeyHash> by_key_;
  // A leaf that is no frame, one entry per text.
  uint32_t synthetic(std::string text);
  std::unordered_map<std::string_view, uint32_t> synthetic_;
  std::deque<std::string> labels_;
};

// Text an export writes, handed to `sink` a megabyte at a time: a timeline export (one entry per
// sample) can be far larger than its snapshot file, so it is never held whole. A small file can
// still stand for an enormous export (one deep stack repeated in millions of samples): past a few
// times (`allowance`) what the file may make swprof hold (Recording::memory_limit), it is refused
// as hostile.
class ChunkedOutput {
 public:
  // Refuses more than `allowance` times what the file justifies holding (Recording::memory_limit).
  ChunkedOutput(const snapshot::Recording& rec, const std::function<void(std::string_view)>& sink,
                uint64_t allowance = 4);
  std::string& text() { return text_; }  // append here (fmt::format_to(std::back_inserter(text()), ...))
  void piece_done() {
    if (text_.size() >= kChunk) flush();
  }
  void flush();  // at the end, and whenever a piece is done

 private:
  static constexpr size_t kChunk = 1 << 20;
  const std::function<void(std::string_view)>& sink_;
  uint64_t max_bytes_, written_ = 0;
  std::string text_;
};

// A number appended as JSON writes it, without a format string's parsing (the timeline exports
// write hundreds of millions of them).
inline void append_number(std::string& out, int64_t n) {
  fmt::format_int text(n);
  out.append(text.data(), text.size());
}

// "thread 1234 (MainThread)", as the exports title a thread.
std::string thread_title(const snapshot::Thread& thread);
// The function a segment is a call of: its first sample's frame at the entry depth (imported
// segments without one: the segment's name).
std::string_view entry_function(const snapshot::Recording& rec, const snapshot::Segment& segment,
                                const snapshot::Sample& first);

}  // namespace swprof::exporter

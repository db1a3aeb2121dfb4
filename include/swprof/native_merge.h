// One stack of native and Python frames, the way py-spy --native shows it: the native stack
// with each call of CPython's evaluation loop replaced by the Python frames that call ran, in call
// order. 3.8–3.10 run one Python frame per evaluation call; 3.11+ run a batch (Python-to-Python
// calls stay in the same evaluation call) and mark where each batch begins.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swprof/native.h"
#include "swprof/python.h"

namespace swprof::native {

// Where each evaluation-loop call begins in a thread's Python stack.
struct EvalBatches {
  // Per Python frame (the walker's order, innermost first): 1 when it is the outermost frame of
  // the frames one evaluation call ran.
  std::vector<uint8_t> starts;
  // Per Python frame that starts a batch, 3.12+: the address of its evaluation call's entry
  // frame, a local of that call on the C stack (so the native frame holding it is that call). 0
  // before 3.12.
  std::vector<uint64_t> entries;
  uint64_t stack_limit = 0;  // the end of the thread's stack mapping
};

// Reads where each evaluation call begins for the Python frames the walker returned (all of them,
// before any filtering): 3.8–3.10 every frame has its own call; 3.11 a frame's is_entry flag;
// 3.12+ a frame whose `previous` is on the C stack (its call's entry frame), inside
// [stack_start, stack_limit) of the capture. Reads the frames again: call it while the thread is
// stopped (in Unwinder::capture's while_stopped). False when a frame could not be read.
bool read_eval_batches(const target::Memory& memory, const python::Layout& layout,
                       std::span<const python::RawFrame> frames, uint64_t stack_start, uint64_t stack_limit,
                       EvalBatches& out);

struct MergedFrame {
  enum class Kind : uint8_t { kPython, kNative };
  Kind kind = Kind::kNative;
  uint32_t index = 0;  // into the Python frames or the native frames given to merge_stacks
};

enum class MergeResult : uint8_t {
  kMerged,      // native frames, each evaluation call replaced by the Python frames it ran
  kNativeOnly,  // no Python frames: the native ones as they are
  kPythonOnly,  // no native frames: the Python ones
  kMismatch,    // they do not fit together (count it as a native-unwind error): the Python ones
};
const char* merge_result_name(MergeResult r);

// Merges, innermost first. The native frames are Unwinder::unwind's; Python frames and batches
// as the walker and read_eval_batches gave them at the same stop. 3.12+ matches each batch to the
// native frame that holds its entry frame, which must be the evaluation loop (by name) or a
// function without a name (a stripped build's split-off part of it), and every evaluation-loop
// frame must get a batch; before 3.12 the evaluation-loop frames, by name, are matched to the
// batches in order and their counts must agree.
MergeResult merge_stacks(std::span<const Frame> native, std::span<const python::RawFrame> python,
                         const EvalBatches& batches, std::vector<MergedFrame>& out);

}  // namespace swprof::native

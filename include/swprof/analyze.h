// swprof analyze: selects samples from a recording, builds the call tree with one of the
// estimators (DESIGN.md "Time attribution") and prints it as text, JSON or collapsed stacks.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "swprof/snapshot.h"

namespace swprof::analyze {

enum class Mode { kWall, kCpu, kOffCpu };
enum class Estimator { kDefault, kSkyWalking };
enum class Format { kText, kJson, kCollapsed };

// Which samples: a thread, segments (explicit ids or the N slowest), frames above the entry.
struct Selection {
  std::optional<int64_t> thread;       // OS thread id
  std::optional<int64_t> process;      // pid (record --subprocesses)
  std::vector<uint32_t> segments;      // segment ids; empty: all
  uint32_t slowest = 0;                // the N longest segments
  bool full_stack = false;             // keep the frames above a segment's entry frame
  bool by_context = false;             // stacks per greenlet / asyncio task: suspended tasks too,
                                       // a running task's stack from its coroutine
  // Per-segment averages: leave out the segments the recording cut (begun before it, or still
  // running at its end), whose time is only part of a call's, unless no other is left (or ids
  // were given).
  bool whole_segments = false;
};

struct TreeOptions {
  Mode mode = Mode::kWall;
  Estimator estimator = Estimator::kDefault;
  bool lines = false;        // one node per executing line instead of per function
  bool by_process = false;   // processes at the root (record --subprocesses), above threads if both
  bool by_thread = false;    // threads at the root
  bool by_greenlet = false;  // greenlets and asyncio tasks at the root (--by-greenlet, --by-task)
};

enum class NodeKind : uint8_t { kRoot, kFrame, kThread, kGreenlet, kSwitchedOut, kGap, kOffCpuReason, kWaitingForCpu, kProcess };

// Off-CPU time (--mode offcpu: wall - CPU) is split by why. The part the thread was runnable but
// waiting for a CPU (schedstat's run-queue delay) is neither work nor blocking and goes to a
// `<waiting for a CPU>` leaf; the rest, blocked, goes to an `<off-CPU: REASON>` leaf when the
// sample names why the thread was not running, else to the stack itself.
enum class OffCpuLeaf : uint8_t { kNone, kReason, kWaitingForCpu };
inline int64_t blocked_us(const snapshot::Sample& s) { return s.wall_us - s.cpu_us - s.runqueue_us; }
inline constexpr std::string_view kWaitingForCpuLabel = "<waiting for a CPU>";
// "<off-CPU: futex>" for a sample's reason (snapshot::Sample::offcpu_reason, not 0).
std::string offcpu_reason_label(const snapshot::Recording& rec, uint32_t reason);

struct Node {
  std::string_view function, file;  // into the recording's strings or Tree::labels
  int32_t line = 0;                 // executing line (--lines) or the def line
  NodeKind kind = NodeKind::kFrame;
  double total = 0, self = 0;       // µs in the tree's mode/estimator
  double wall = 0, cpu = 0, gil = 0;  // µs: every sample through the node
  uint64_t samples = 0;             // samples (SkyWalking: dumps) containing the node
  uint32_t parent = 0;
  std::vector<uint32_t> children;
};

struct Tree {
  std::vector<Node> nodes;  // nodes[0] is the root: all selected time
  std::deque<std::string> labels;
  TreeOptions options;
  bool imports_collapsed = false;
  const Node& root() const { return nodes[0]; }
};

// The frames of one sample as the call tree sees them, root first: from its segment's entry frame
// unless the selection keeps the full stack. Exports walk samples through this too.
// The context a sample is shown under (--by-greenlet/--by-task, exports' greenlet label): its
// greenlet or asyncio task, or 0 for its thread's own stack. (The recorder writes 0 for the
// threads of a program that has not imported greenlet when it follows greenlets and tasks.)
uint32_t sample_context(const snapshot::Recording& rec, const snapshot::Sample& sample);
// A thread's process (snapshot::Thread::process) by pid, and as a root label: "process PID: COMMAND".
int64_t process_pid(const snapshot::Recording& rec, uint32_t process);
std::string process_label(const snapshot::Recording& rec, uint32_t process);

std::span<const uint32_t> sample_frames(const snapshot::Recording& rec, const snapshot::Sample& sample,
                                        const Selection& selection);

// The recording's length: the footer's duration, or up to the last sample when the recorder was
// killed before writing one.
int64_t recording_duration_us(const snapshot::Recording& rec);
// The profiled command line, its arguments joined by spaces (not sanitised).
std::string command_line(const snapshot::Recording& rec);

// Whether a sample is in a selection, for samples met one by one (an export reading its file's
// samples without holding them); throws UserError for an unknown thread/segment.
class SampleFilter {
 public:
  SampleFilter(const snapshot::Recording& rec, const Selection& selection);
  bool accepts(const snapshot::Sample& sample) const;

 private:
  bool some_threads_, segmented_, by_context_;
  std::vector<bool> thread_on_, segment_on_;
};
// Sample indices selected from the recording; throws UserError for an unknown thread/segment.
std::vector<uint32_t> select_samples(const snapshot::Recording& rec, const Selection& selection);
// The segments a selection covers (for headers and --segments).
std::vector<uint32_t> selected_segments(const snapshot::Recording& rec, const Selection& selection);

// The order of one segment's (or, outside segments, one thread's) SkyWalking dumps: imported ones
// carry their own sequence numbers (gaps included); recorded ones are numbered in time order.
inline bool dump_comes_before(int64_t sequence, int64_t time_us, int64_t other_sequence, int64_t other_time_us) {
  if (sequence >= 0 && other_sequence >= 0) return sequence < other_sequence;
  return time_us < other_time_us;
}

// Builds the tree. The default estimator adds each sample's weight to every node on its path; the
// SkyWalking one reproduces the OAP server's count / duration / durationChildExcluded.
Tree build_tree(const snapshot::Recording& rec, const std::vector<uint32_t>& samples, const Selection& selection,
                const TreeOptions& options);

// How to read the file at `path` for a tree: alike samples merged (memory by distinct stacks, not
// by samples). The SkyWalking estimator, which needs each sample's time, then reads the file's
// samples again one by one (snapshot::samples_in_file); from a pipe, which cannot be read again,
// it reads them unmerged, once.
snapshot::ReadOptions read_options_for(const TreeOptions& options, const std::string& path);

// Turns each chain of import-machinery frames into one node (text and flame graph views).
void collapse_import_machinery(Tree& tree);

// Per-segment facts for --segments.
// The call ended while recorded (not still running when the recording stopped, nor cut off by a
// recorder that was killed).
inline bool segment_ended(const snapshot::Segment& s) { return s.end_us >= 0 && !s.still_running; }
// The recording saw the call begin and end.
inline bool segment_is_whole(const snapshot::Segment& s) { return !s.began_before_recording && segment_ended(s); }

struct SegmentRow {
  uint32_t id = 0;
  int64_t tid = 0;
  std::string thread_name;
  double start_ms = 0, duration_ms = 0;
  // What sampling allows the call's duration to have been: it began between two samples of its
  // thread and ended between two others (equal to duration_ms when not known).
  double duration_min_ms = 0, duration_max_ms = 0;
  uint64_t samples = 0;
  bool complete = true;
  bool began_before_recording = false;  // its duration is a lower bound
};
std::vector<SegmentRow> segment_rows(const snapshot::Recording& rec, const std::vector<uint32_t>& ids);

// "function (file:line)" as the reports print a frame.
std::string frame_label(const Node& node, bool short_file);
// A Python-aware short form of a path: site-packages/…, stdlib python3.11/…, or cwd-relative.
std::string short_path(std::string_view file);
// Which kind of code a file holds, for colors: 0 the user's code, 1 standard library,
// 2 site-packages, 3 synthetic (threads, <switched out>, <frozen ...>).
int code_origin(std::string_view file);

struct Options {
  std::string path;
  Format format = Format::kText;
  Selection selection;
  TreeOptions tree;
  double min_percent = 0.5;
  bool list_segments = false;
  bool flat = false;             // json: the nodes as one list with parent ids instead of nested
  bool collapse_imports = true;  // text: a chain of importlib frames is one row
  std::optional<bool> color;  // default: stdout is a TTY
};
int run(const Options& options);

// Report writers, one small file each.
std::string text_report(const snapshot::Recording& rec, const Tree& tree, const std::vector<uint32_t>& segments,
                        double min_percent, bool color);
// Nested ("roots" with "children") or flat ("nodes", each with "id", "parent" and "depth").
std::string json_report(const snapshot::Recording& rec, const Tree& tree, bool flat = false);
// Frames on the tree's longest path (the root excluded).
size_t tree_depth(const Tree& tree);
std::string collapsed_report(const Tree& tree);
std::string segments_text(const std::vector<SegmentRow>& rows);
std::string segments_json(const std::vector<SegmentRow>& rows);

}  // namespace swprof::analyze

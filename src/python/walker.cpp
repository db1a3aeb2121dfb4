// The frame walker: one for every version, driven by the Layout. The target keeps running while we
// read, so every pointer is checked before use, every loop is bounded, and a bad read ends the
// walk with an error the recorder counts.
#include <algorithm>
#include <cstring>

#include "python/raw.h"
#include "swprof/common.h"
#include "swprof/python.h"

namespace swprof::python {

namespace {

constexpr size_t kMaxInterpreters = 64;
constexpr size_t kMaxThreads = 8192;
constexpr uint64_t kMaxChunkBytes = 8u << 20;
constexpr size_t kMaxChunks = 64;
constexpr size_t kMaxWindows = 1024;
constexpr uint64_t kFrameWindow = 16384;  // ≤3.10: frame objects are read this many bytes at a time
constexpr int64_t kGlibcTidOffset = 0x2d0;  // struct pthread.tid on x86-64 glibc 2.x


// Where a read of a data stack past its top `top` ends: at least `least` bytes past it (frames
// pushed since fall there), and on to the end of that page when that is within `most`. The kernel
// pins every page a read touches, one by one: a margin that spills a few hundred bytes into the
// next page costs a pin (a 24-frame 3.11 stack: one page per read instead of two, 3–6 % less CPU
// per sample in tests/bench/vs_austin.py).
uint64_t read_end_past_top(uint64_t top, uint64_t least, uint64_t most) {
  constexpr uint64_t kPage = 4096;
  const uint64_t page_end = (top + least + kPage - 1) & ~(kPage - 1);
  return std::min(page_end, top + most);
}

uint32_t max_offset(std::initializer_list<uint32_t> offsets) {
  uint32_t m = 0;
  for (uint32_t o : offsets)
    if (o != kAbsent) m = std::max(m, o + 8);
  return m;
}

}  // namespace

const char* walk_error_name(WalkError e) {
  switch (e) {
    case WalkError::kNone: return "none";
    case WalkError::kThreadState: return "unreadable thread state";
    case WalkError::kFrame: return "unreadable frame";
    case WalkError::kCycle: return "frame chain loops";
    case WalkError::kCode: return "frame without a code object";
    case WalkError::kTooDeep: return "stack deeper than 65536 frames";
    case WalkError::kTorn: return "torn (frames changed while read)";
    case WalkError::kThreadGone: return "thread ended";
  }
  return "unknown";
}

Walker::Walker(const target::Memory& memory, const Interpreter& interp)
    : memory_(memory), interp_(interp), layout_(interp.layout), thread_ids_(memory.pid()),
      spans_(listing_spans(interp.layout)) {
  const auto& t = layout_.tstate;
  tstate_buf_.resize(max_offset({t.next, t.interp, t.frame, t.thread_id, t.native_thread_id, t.datastack_chunk,
                                 t.datastack_top}));
  frame_buf_.resize(layout_.frame.size + 64);
}

// The fields of a thread state read into `b`; the top frame is filled only when the thread state
// holds it directly (≤3.10, 3.13+), not through a CFrame.
bool Walker::parse_thread(const uint8_t* b, uint64_t tstate, uint64_t interp, PyThread& t) const {
  const auto& l = layout_;
  t = PyThread{};
  t.tstate = tstate;
  t.interp = load<uint64_t>(b + l.tstate.interp);
  if (t.interp != interp) return false;  // torn or not a thread state of this interpreter
  t.thread_id = load<uint64_t>(b + l.tstate.thread_id);
  t.unbound = t.thread_id == 0;
  if (l.tstate.native_thread_id != kAbsent) {
    t.native_id = load<int64_t>(b + l.tstate.native_thread_id);
    t.unbound |= t.native_id == 0;
  }
  t.next = load<uint64_t>(b + l.tstate.next);
  uint64_t frame_ref = load<uint64_t>(b + l.tstate.frame);
  if (l.has_cframe) t.cframe = frame_ref;  // 3.11–3.12: tstate->cframe->current_frame
  else t.top_frame = frame_ref;
  if (l.tstate.datastack_chunk != kAbsent) {
    t.datastack_chunk = load<uint64_t>(b + l.tstate.datastack_chunk);
    t.datastack_top = load<uint64_t>(b + l.tstate.datastack_top);
  }
  return true;
}

bool Walker::read_thread(uint64_t tstate, uint64_t interp, PyThread& t) {
  const auto& l = layout_;
  if (!plausible_pointer(tstate) || !memory_.read(tstate, tstate_buf_.data(), tstate_buf_.size())) return false;
  if (!parse_thread(tstate_buf_.data(), tstate, interp, t)) return false;
  // cframe lives on the thread's C stack.
  if (l.has_cframe && t.cframe) memory_.read_value(t.cframe + l.cframe_current_frame, t.top_frame);
  if (l.tstate.native_thread_id == kAbsent) native_ids_from_pthreads(std::span<PyThread>(&t, 1));
  return true;
}

Walker::ListingSpans Walker::listing_spans(const Layout& l) {
  ListingSpans s;
  // The runtime's fields: the interpreter list and, up to 3.11, the GIL.
  s.lo = l.runtime.interpreters_head;
  s.hi = s.lo + 8;
  s.runtime_gil = l.gil_model == GilModel::kRuntime && l.runtime.gil_locked != kAbsent;
  if (s.runtime_gil) {
    s.lo = std::min({s.lo, l.runtime.gil_locked, l.runtime.gil_last_holder});
    s.hi = std::max({s.hi, l.runtime.gil_locked + 8, l.runtime.gil_last_holder + 8});
    if (l.runtime.gil_switch_number != kAbsent) {
      s.lo = std::min(s.lo, l.runtime.gil_switch_number);
      s.hi = std::max(s.hi, l.runtime.gil_switch_number + 8);
    }
  }
  // An interpreter's fields: its threads, the next interpreter, its GIL (3.12+).
  s.ilo = std::min(l.interp.threads_head, l.interp.next);
  s.ihi = std::max(l.interp.threads_head, l.interp.next) + 8;
  s.own_gil = l.gil_model == GilModel::kInterpreterPointer && l.interp.ceval_gil != kAbsent;
  if (s.own_gil) {
    s.ilo = std::min(s.ilo, l.interp.ceval_gil);
    s.ihi = std::max(s.ihi, l.interp.ceval_gil + 8);
  }
  s.gil_need = std::max(l.gil.locked, l.gil.last_holder) + 8;
  if (l.gil.switch_number != kAbsent) s.gil_need = std::max(s.gil_need, l.gil.switch_number + 8);
  return s;
}

Walker::GilSeen Walker::runtime_gil_seen(const uint8_t* runtime_bytes) const {
  const auto& l = layout_;
  GilSeen g;
  if (!spans_.runtime_gil) return g;
  g.last_holder = load<uint64_t>(runtime_bytes + l.runtime.gil_last_holder - spans_.lo);
  g.holder = load<int32_t>(runtime_bytes + l.runtime.gil_locked - spans_.lo) ? g.last_holder : 0;
  g.valid = l.runtime.gil_switch_number != kAbsent;
  if (g.valid) g.switches = load<uint64_t>(runtime_bytes + l.runtime.gil_switch_number - spans_.lo);
  return g;
}

Walker::GilSeen Walker::own_gil_seen(const uint8_t* gil_bytes) const {
  const auto& l = layout_;
  GilSeen g;
  g.last_holder = load<uint64_t>(gil_bytes + l.gil.last_holder);
  g.holder = load<int32_t>(gil_bytes + l.gil.locked) ? g.last_holder : 0;
  g.valid = l.gil.switch_number != kAbsent;
  if (g.valid) g.switches = load<uint64_t>(gil_bytes + l.gil.switch_number);
  return g;
}

// The thread list of the last tick, read again in one system call (the runtime's fields, the
// interpreter's, its GIL, every thread state), and taken only when every link reads as it did:
// the same interpreter, the same thread states in the same order, nothing after the last. Any
// change is left to the link-by-link read.
bool Walker::read_listing_again(std::vector<PyThread>& out, std::span<target::Memory::Request> extra) {
  const ListingGuess& g = listing_guess_;
  const auto& l = layout_;
  const ListingSpans& s = spans_;
  if (!g.valid || (s.own_gil && !g.gil)) return false;
  const size_t tstate_size = tstate_buf_.size(), runtime_size = s.hi - s.lo, interp_size = s.ihi - s.ilo;
  listing_buf_.resize(runtime_size + interp_size + s.gil_need + g.threads.size() * tstate_size);
  uint8_t* runtime_bytes = listing_buf_.data();
  uint8_t* interp_bytes = runtime_bytes + runtime_size;
  uint8_t* gil_bytes = interp_bytes + interp_size;
  uint8_t* tstate_bytes = gil_bytes + s.gil_need;
  listing_reads_.clear();
  listing_reads_.push_back({interp_.runtime + s.lo, runtime_bytes, runtime_size, false});
  listing_reads_.push_back({g.interp + s.ilo, interp_bytes, interp_size, false});
  if (s.own_gil) listing_reads_.push_back({g.gil, gil_bytes, s.gil_need, false});
  uint64_t generation = 0;
  const bool generation_kept = l.interp.code_object_generation != kAbsent;
  if (generation_kept) listing_reads_.push_back({g.interp + l.interp.code_object_generation, &generation, 8, false});
  const size_t listing_fields = listing_reads_.size();
  // Each thread's snapshot (see snapshot()), whose first read is its thread state: its walk then
  // needs no read of its own when the listing holds. A thread not walked yet gets its thread
  // state read alone.
  for (auto& p : prefetched_) p.planned = false;
  if (prefetched_.size() < g.threads.size()) prefetched_.resize(g.threads.size());
  tstate_reads_.assign(g.threads.size(), SIZE_MAX);
  for (size_t i = 0; i < g.threads.size(); ++i) {
    auto guess = guesses_.find(g.threads[i].tstate);
    tstate_reads_[i] = listing_reads_.size();
    if (guess == guesses_.end() || !stacks_with_listing_ ||
        std::binary_search(skipped_stacks_.begin(), skipped_stacks_.end(), g.threads[i].tstate)) {
      listing_reads_.push_back({g.threads[i].tstate, tstate_bytes + i * tstate_size, tstate_size, false});
      continue;
    }
    prefetch_snapshot(i, g.threads[i], guess->second);
  }
  const size_t extra_reads = listing_reads_.size();
  listing_reads_.insert(listing_reads_.end(), extra.begin(), extra.end());
  timed_batch(listing_reads_, batch_read_at_);
  for (size_t k = 0; k < extra.size(); ++k) extra[k].ok = listing_reads_[extra_reads + k].ok;
  for (size_t i = 0; i < g.threads.size(); ++i) {
    if (!listing_reads_[tstate_reads_[i]].ok) return drop_prefetched();
    if (prefetched_[i].planned) take_prefetched(i);
  }
  for (size_t i = 0; i < listing_fields; ++i)
    if (!listing_reads_[i].ok) return drop_prefetched();
  if (load<uint64_t>(runtime_bytes + l.runtime.interpreters_head - s.lo) != g.interp ||
      load<uint64_t>(interp_bytes + l.interp.next - s.ilo) != 0)
    return drop_prefetched();
  GilSeen seen = runtime_gil_seen(runtime_bytes);
  if (s.own_gil) {
    if (load<uint64_t>(interp_bytes + l.interp.ceval_gil - s.ilo) != g.gil) return drop_prefetched();
    seen = own_gil_seen(gil_bytes);
  }
  uint64_t ts = load<uint64_t>(interp_bytes + l.interp.threads_head - s.ilo);
  out.clear();
  for (size_t i = 0; i < g.threads.size(); ++i) {
    PyThread t;
    const uint8_t* bytes = prefetched_[i].planned ? prefetched_[i].tstate.data() : tstate_bytes + i * tstate_size;
    if (ts != g.threads[i].tstate || !parse_thread(bytes, ts, g.interp, t)) return drop_prefetched();
    t.holds_gil = seen.holder != 0 && seen.holder == t.tstate;
    out.push_back(t);
    ts = t.next;
  }
  if (ts != 0) return drop_prefetched();  // a thread more than last time
  threads_complete_ = true;
  gil_seen_ = seen;
  if (l.tstate.native_thread_id == kAbsent) native_ids_from_pthreads(out);
  listing_guess_.threads = out;  // a thread state reused by a new thread: its ids now
  if (generation_kept) generation_ = generation;
  // The snapshots were planned for the threads as listed last time (≤3.10: with the native ids
  // found then); a walk uses its thread's only if the thread is still that one (see snapshot()).
  return true;
}

void Walker::read_stacks(std::span<const PyThread> listed, std::span<const uint64_t> tstates) {
  if (!stacks_with_listing_ || tstates.empty()) return;
  // (Sized before any is planned: a snapshot's reads point into it.)
  if (prefetched_.size() < listed.size()) prefetched_.resize(listed.size());
  listing_reads_.clear();
  tstate_reads_.assign(listed.size(), SIZE_MAX);
  for (size_t i = 0; i < listed.size(); ++i) {
    if (prefetched_[i].planned || !std::binary_search(tstates.begin(), tstates.end(), listed[i].tstate)) continue;
    auto guess = guesses_.find(listed[i].tstate);
    if (guess == guesses_.end()) continue;
    prefetch_snapshot(i, listed[i], guess->second);
  }
  if (listing_reads_.empty()) return;
  timed_batch(listing_reads_, batch_read_at_);
  for (size_t i = 0; i < listed.size(); ++i)
    if (tstate_reads_[i] != SIZE_MAX) take_prefetched(i);
}

// The snapshot of the thread at position `i` of the list, planned into prefetched_[i], its reads
// added to listing_reads_ (one system call with others'), from tstate_reads_[i] on.
void Walker::prefetch_snapshot(size_t i, const PyThread& listed, const Guess& guess) {
  tstate_reads_[i] = listing_reads_.size();
  plan_snapshot(listed, guess, prefetched_[i]);
  listing_reads_.insert(listing_reads_.end(), prefetched_[i].reads.begin(), prefetched_[i].reads.end());
}

// One system call's reads, and when it was made (see stack_read_at()).
void Walker::timed_batch(std::span<target::Memory::Request> reads, std::pair<int64_t, int64_t>& at) {
  at.first = monotonic_us();
  memory_.read_batch(reads);
  at.second = monotonic_us();
}

// ...and which of them that call made.
void Walker::take_prefetched(size_t i) {
  prefetched_[i].read_at = batch_read_at_;
  for (size_t k = 0; k < prefetched_[i].reads.size(); ++k)
    prefetched_[i].reads[k].ok = listing_reads_[tstate_reads_[i] + k].ok;
}

bool Walker::drop_prefetched() {
  for (auto& p : prefetched_) p.planned = false;
  return false;
}

bool Walker::read_threads(std::vector<PyThread>& out, std::span<target::Memory::Request> extra) {
  if (read_listing_again(out, extra)) return true;
  // Read before the walks that will follow, the extra reads would not come after the frames.
  for (auto& r : extra) r.ok = false;
  drop_prefetched();
  out.clear();
  gil_seen_ = GilSeen{};
  threads_complete_ = true;
  listing_guess_.valid = false;
  const auto& l = layout_;
  const ListingSpans& s = spans_;
  uint8_t block[2048];
  if (s.hi - s.lo > sizeof block || !memory_.read(interp_.runtime + s.lo, block, s.hi - s.lo)) return false;
  uint64_t interp = load<uint64_t>(block + l.runtime.interpreters_head - s.lo);
  GilSeen seen = runtime_gil_seen(block);  // (3.12+: each interpreter's own, below)
  generation_.reset();
  uint64_t generation = 0;
  if (l.interp.code_object_generation != kAbsent && plausible_pointer(interp) &&
      memory_.read_value(interp + l.interp.code_object_generation, generation))
    generation_ = generation;
  ListingGuess guess;
  size_t interpreters = 0;
  listed_tstates_.clear();

  std::vector<uint8_t>& interp_buf = interp_buf_;
  for (size_t ni = 0; interp && ni < kMaxInterpreters; ++ni, ++interpreters) {
    if (!plausible_pointer(interp)) return false;
    interp_buf.resize(std::max<size_t>(interp_buf.size(), s.ihi - s.ilo));
    if (s.ihi - s.ilo > 65536 || !memory_.read(interp + s.ilo, interp_buf.data(), s.ihi - s.ilo)) return false;
    uint64_t ts = load<uint64_t>(interp_buf.data() + l.interp.threads_head - s.ilo);
    uint64_t next = load<uint64_t>(interp_buf.data() + l.interp.next - s.ilo);
    guess.interp = interp;
    if (s.own_gil) {
      uint64_t gil = load<uint64_t>(interp_buf.data() + l.interp.ceval_gil - s.ilo);
      uint8_t g[64];
      guess.gil = gil;
      seen = GilSeen{};
      if (plausible_pointer(gil) && s.gil_need <= sizeof g && memory_.read(gil, g, s.gil_need)) seen = own_gil_seen(g);
      else guess.gil = 0;
    }
    // The list itself: the walk re-reads each thread state with its frames, so only what links
    // and names the threads is needed here.
    for (size_t n = 0; ts && n < kMaxThreads; ++n) {
      PyThread t;
      // A thread state freed as we followed the list; or one met again: a freed one's memory
      // given to a new thread, put at the list's head, led back to threads already listed (a
      // thread listed twice was sampled twice in one tick: two calls where one ran).
      if (!plausible_pointer(ts) || !listed_tstates_.insert(ts).second ||
          !memory_.read(ts, tstate_buf_.data(), tstate_buf_.size()) || !parse_thread(tstate_buf_.data(), ts, interp, t)) {
        threads_complete_ = false;
        break;
      }
      t.holds_gil = seen.holder != 0 && seen.holder == t.tstate;
      out.push_back(t);
      guess.threads.push_back(t);
      ts = t.next;
    }
    interp = next;
  }
  // One interpreter, listed whole: the next tick reads it again in one call.
  if (l.tstate.native_thread_id == kAbsent) native_ids_from_pthreads(out);
  if (interpreters == 1 && threads_complete_) gil_seen_ = seen;
  if (interpreters == 1 && threads_complete_ && s.gil_need <= 64) {
    guess.valid = true;
    guess.threads = out;  // with their native ids
    listing_guess_ = std::move(guess);
  }
  return true;
}

// ≤3.10 keeps only the pthread_t. glibc stores the kernel tid inside struct pthread (which
// pthread_t points to); find that offset once, checking that it holds a live tid of the process
// (as the process knows it: in a container, its namespace's ids).
bool Walker::find_pthread_tid_offset(uint64_t pthread_id) {
  if (pthread_tid_offset_ >= 0) return true;
  if (!plausible_pointer(pthread_id) || pthread_tid_probes_ >= 16) return false;
  ++pthread_tid_probes_;
  auto tids = thread_ids_.target_ids();
  auto is_tid = [&](int32_t v) { return v > 0 && std::find(tids.begin(), tids.end(), v) != tids.end(); };
  std::vector<int32_t> block(512);
  if (memory_.read(pthread_id, block.data(), block.size() * 4)) {
    if (is_tid(block[kGlibcTidOffset / 4])) {
      pthread_tid_offset_ = kGlibcTidOffset;
    } else {
      for (size_t i = 0; i < block.size() && pthread_tid_offset_ < 0; ++i)
        if (is_tid(block[i])) pthread_tid_offset_ = static_cast<int64_t>(i * 4);
    }
  }
  return pthread_tid_offset_ >= 0;
}

// ≤3.10: each thread's OS tid, from its pthread, in one read. A tid read as 0 is a thread that
// exited: the kernel clears it then (glibc's CLONE_CHILD_CLEARTID).
void Walker::native_ids_from_pthreads(std::span<PyThread> threads) {
  if (threads.empty() || !find_pthread_tid_offset(threads.front().thread_id)) return;
  std::vector<int32_t> tids(threads.size(), -1);
  std::vector<target::Memory::Request> reads;
  for (size_t i = 0; i < threads.size(); ++i)
    if (plausible_pointer(threads[i].thread_id))
      reads.push_back({threads[i].thread_id + static_cast<uint64_t>(pthread_tid_offset_), &tids[i], 4, false});
  memory_.read_batch(reads);
  for (const auto& r : reads)
    if (!r.ok) *static_cast<int32_t*>(r.out) = -1;
  for (size_t i = 0; i < threads.size(); ++i) {
    threads[i].native_id = tids[i] > 0 ? tids[i] : 0;
    threads[i].unbound |= tids[i] == 0;
  }
}

std::optional<uint64_t> Walker::code_generation() const { return generation_; }

// Bytes the last walk already read: its data-stack chunks (3.11+) or frame windows (≤3.10).
// hit_block_ says which: chunk i is block i, window j is block kMaxChunks + j.
const uint8_t* Walker::cached(uint64_t address, size_t size) const {
  // Frames walked one after another sit in the same chunk or window: try the last hit first.
  auto in = [&](uint64_t base, uint64_t end) { return address >= base && address + size <= end && address + size > address; };
  auto chunk_hit = [&](size_t i) {
    last_hit_ = i;
    hit_block_ = static_cast<int32_t>(i);
    return chunks_[i].bytes.data() + (address - chunks_[i].base);
  };
  auto window_hit = [&](size_t i) {
    last_window_ = i;
    hit_block_ = static_cast<int32_t>(kMaxChunks + i);
    return windows_[i].bytes.data() + (address - windows_[i].base);
  };
  hit_block_ = -1;
  if (last_hit_ < chunks_used_ && in(chunks_[last_hit_].base, chunks_[last_hit_].end)) return chunk_hit(last_hit_);
  for (size_t i = 0; i < chunks_used_; ++i)
    if (in(chunks_[i].base, chunks_[i].end)) return chunk_hit(i);
  auto in_window = [&](size_t i) { return in(windows_[i].base, windows_[i].base + windows_[i].bytes.size()); };
  if (last_window_ < windows_used_ && in_window(last_window_)) return window_hit(last_window_);
  // The guessed frame objects (each its own small window), then the aligned windows by base.
  for (size_t i = 0; i < guessed_windows_ && i < windows_used_; ++i)
    if (in_window(i)) return window_hit(i);
  auto it = window_at_.find(address & ~(kFrameWindow - 1));
  if (it != window_at_.end() && it->second < windows_used_ && in_window(it->second)) return window_hit(it->second);
  return nullptr;
}

uint64_t Walker::load_chunk(uint64_t chunk, uint64_t used_end) {
  // _PyStackChunk: {previous, size, top (in words, saved when a newer chunk was pushed), data[]}.
  // The current chunk's end is known (tstate->datastack_top): one read. An older chunk's end is
  // in its header: two.
  if (!plausible_pointer(chunk) || chunks_used_ >= kMaxChunks) return 0;
  uint64_t header[3];
  if (used_end == 0) {
    if (!memory_.read(chunk, header, sizeof header) || header[2] > kMaxChunkBytes / 8) return 0;
    used_end = chunk + layout_.chunk.data + header[2] * 8;
  }
  if (used_end <= chunk + sizeof header || used_end - chunk > kMaxChunkBytes) return 0;
  if (chunks_.size() <= chunks_used_) chunks_.emplace_back();
  CachedChunk& c = chunks_[chunks_used_];
  c.bytes.resize(used_end - chunk);
  if (!memory_.read(chunk, c.bytes.data(), c.bytes.size())) return 0;
  std::memcpy(header, c.bytes.data(), sizeof header);
  if (header[1] > kMaxChunkBytes || used_end - chunk > header[1]) return 0;  // not a chunk after all
  c.base = chunk;
  c.end = used_end;
  ++chunks_used_;
  return header[0];
}

const uint8_t* Walker::frame_bytes(uint64_t address, size_t size) {
  if (const uint8_t* p = cached(address, size)) return p;
  // Deep stacks continue in older chunks: load them in order until one holds the frame.
  // (Generator and frame-object frames live elsewhere and are read one by one below.)
  while (next_chunk_ && !cached(address, size)) {
    ++late_reads_;
    next_chunk_ = load_chunk(next_chunk_, 0);
  }
  if (const uint8_t* p = cached(address, size)) return p;
  if (frame_buf_.size() < size) frame_buf_.resize(size);
  ++late_reads_;
  hit_block_ = -1;  // read alone
  if (!memory_.read(address, frame_buf_.data(), size)) return nullptr;
  return frame_buf_.data();
}

const uint8_t* Walker::windowed_frame_bytes(uint64_t address, size_t size) {
  constexpr uint64_t kWindow = kFrameWindow;
  if (const uint8_t* p = cached(address, size)) return p;
  uint64_t base = address & ~(kWindow - 1);
  if (address + size <= base + kWindow && windows_used_ < kMaxWindows) {
    if (windows_.size() <= windows_used_) windows_.emplace_back();
    Window& w = windows_[windows_used_];
    w.bytes.resize(kWindow);
    ++late_reads_;
    if (memory_.read(base, w.bytes.data(), kWindow)) {
      w.base = base;
      window_at_[base] = static_cast<uint32_t>(windows_used_);
      hit_block_ = static_cast<int32_t>(kMaxChunks + windows_used_);
      ++windows_used_;
      return w.bytes.data() + (address - base);
    }
  }
  return frame_bytes(address, size);  // the window is not all mapped, or the frame straddles it
}

// The bytes of a frame that identify it: what it runs (code), who called it (previous), where it
// is (instruction) and, for interpreter frames, who owns it; for frame objects also the
// reference count, which is 0 once the frame is dead.
// A frame's bytes in `buf`, given that its bytes [lo, hi) are at `slice_at`: only those are read
// through the pointer, and the frame itself may begin before the buffer (integer arithmetic, not
// a pointer outside it). nullptr when they are not all in the buffer: a slice that does not hold
// them (UBSan saw a pointer computed 139 TB away in a threaded server's walk on 3.13, and a
// recorder died without a word in CI on the same program) is no bytes at all.
static const uint8_t* frame_in(const std::vector<uint8_t>& buf, uint64_t slice_at, uint32_t lo, uint32_t hi) {
  if (hi < lo || slice_at > buf.size() || buf.size() - slice_at < hi - lo) return nullptr;
  return reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(buf.data() + slice_at) - lo);
}

static std::pair<uint32_t, uint32_t> identity_slice(const Layout& l) {
  const auto& f = l.frame;
  if (l.frame_model == FrameModel::kFrameObject)
    return {0, std::max({f.previous + 8, f.code + 8, f.instr + 4})};
  return {std::min({f.code, f.previous, f.instr, f.owner}), std::max({f.code + 8, f.previous + 8, f.instr + 8, f.owner + 1})};
}

// Reads a listed thread afresh. With a guess of where its stack is (where it was at the last
// walk: the current data-stack chunk on 3.11+, the frame objects on ≤3.10), one system call reads
// the thread state, the top, the stack, the top again and the stack again: the walk and its
// confirmation (see confirm()) then need no other read when the guess holds, and the shorter the
// reads, the less the program moves under them. What the guess got wrong is read the usual way.
// When the tick's listing was read again whole (read_listing_again), these reads were made in
// its system call, after it: the snapshot is taken from there.
bool Walker::snapshot(const PyThread& listed, PyThread& t) {
  chunks_used_ = windows_used_ = guessed_windows_ = 0;
  window_at_.clear();
  next_chunk_ = 0;
  last_hit_ = last_window_ = 0;
  late_reads_ = 0;
  recheck_.valid = false;
  snapshot_gone_ = false;
  if (!listed.tstate) {
    // A stack kept outside any thread state: as given.
    t = listed;
    if (!plausible_pointer(t.top_source)) return false;
    if (layout_.frame_model == FrameModel::kInterpreterFrame) {
      uint64_t chunk = t.datastack_chunk, top = t.datastack_top;
      if (plausible_pointer(chunk) && top > chunk && top - chunk <= kMaxChunkBytes) next_chunk_ = load_chunk(chunk, top);
    }
    return true;
  }
  if (!plausible_pointer(listed.tstate)) return false;
  Guess& guess = guesses_[listed.tstate];
  guess.last_walk = ++walks_;
  SnapshotRead* sr = nullptr;
  for (auto& p : prefetched_)
    if (p.planned && p.listed.tstate == listed.tstate) {
      p.planned = false;  // once: a retry reads afresh
      if (p.listed.thread_id == listed.thread_id && p.listed.native_id == listed.native_id) sr = &p;
      break;
    }
  if (!sr) {
    sr = &own_snapshot_;
    plan_snapshot(listed, guess, *sr);
    timed_batch(sr->reads, sr->read_at);
  }
  snapshot_read_at_ = sr->read_at;
  return use_snapshot(listed, guess, *sr, t);
}

// The reads of a snapshot (see snapshot()), into `sr`'s own buffers.
void Walker::plan_snapshot(const PyThread& listed, const Guess& guess, SnapshotRead& sr) {
  const auto& l = layout_;
  const bool objects = l.frame_model == FrameModel::kFrameObject;
  const auto [lo, hi] = identity_slice(l);
  sr.listed = listed;
  sr.planned = true;
  sr.reads.clear();
  // 1. The thread state, and the top through the guessed CFrame (3.11–3.12).
  sr.tstate.resize(tstate_buf_.size());
  sr.reads.push_back({listed.tstate, sr.tstate.data(), sr.tstate.size(), false});
  // ≤3.10: the thread's tid, from its struct pthread, read again with it.
  sr.pthread_tid = 0;
  sr.pthread_read = sr.reads.size();
  sr.pthread_checked = l.tstate.native_thread_id == kAbsent && pthread_tid_offset_ >= 0 &&
                       plausible_pointer(listed.thread_id) && listed.native_id > 0;
  if (sr.pthread_checked)
    sr.reads.push_back({listed.thread_id + static_cast<uint64_t>(pthread_tid_offset_), &sr.pthread_tid, 4, false});
  // A thread whose Python code is entered from C (a generator driven by sum(), a callback)
  // switches between a few CFrames: the top through each recent one.
  sr.cframe_reads = sr.reads.size();
  sr.n_cframes = 0;
  if (l.has_cframe)
    for (; sr.n_cframes < Guess::kCFrames && guess.cframes[sr.n_cframes]; ++sr.n_cframes) {
      sr.cframes[sr.n_cframes] = guess.cframes[sr.n_cframes];
      sr.top[sr.n_cframes] = sr.top2[sr.n_cframes] = 0;
      sr.reads.push_back({sr.cframes[sr.n_cframes] + l.cframe_current_frame, &sr.top[sr.n_cframes], 8, false});
    }
  // 2. The stack where it was.
  sr.stack_reads = sr.reads.size();
  sr.chunk_base = sr.chunk_end = 0;
  if (!objects && guess.chunk_end > guess.chunk) {
    sr.chunk_base = guess.chunk;
    sr.chunk_end = guess.chunk_end;
    sr.chunk.resize(guess.chunk_end - guess.chunk);
    sr.reads.push_back({guess.chunk, sr.chunk.data(), sr.chunk.size(), false});
  }
  // A frame object up to its locals, and the locals the entry identity reads (--entry).
  const size_t frame_slice = l.frame.size + 8 * locals_wanted_;
  sr.window_reads = sr.reads.size();
  sr.n_windows = 0;
  for (uint64_t f : guess.frames) {
    if (sr.windows.size() <= sr.n_windows) sr.windows.emplace_back();
    Window& w = sr.windows[sr.n_windows++];
    w.base = f;
    w.bytes.resize(frame_slice);
    sr.reads.push_back({f, w.bytes.data(), frame_slice, false});
  }
  // 3. The top again, then the stack's identifying bytes again.
  Recheck& rc = sr.rc;
  rc.valid = false;
  rc.top_ref = rc.top = 0;
  sr.top_again = sr.reads.size();
  sr.guessed = sr.top_again > sr.stack_reads;
  if (!sr.guessed) return;
  sr.reads.push_back({listed.tstate + l.tstate.frame, &rc.top_ref, 8, false});
  for (size_t i = 0; i < sr.n_cframes; ++i)
    sr.reads.push_back({sr.cframes[i] + l.cframe_current_frame, &sr.top2[i], 8, false});
  rc.slices.clear();
  size_t bytes = 0;
  if (sr.chunk_end > sr.chunk_base) {
    // The copy reads beyond the last top, where frames called meanwhile would be; the second
    // reads need only the frames the walk follows, which a steady stack keeps below that top. A
    // stack that grew further is confirmed by a second system call (confirm()).
    const uint64_t end =
        guess.top > sr.chunk_base ? std::min(sr.chunk_end, read_end_past_top(guess.top, 256, 1024)) : sr.chunk_end;
    rc.slices.push_back({sr.chunk_base, end, 0});
    bytes = end - sr.chunk_base;
  }
  for (uint64_t f : guess.frames) {
    rc.slices.push_back({f + lo, f + hi, bytes});
    bytes += hi - lo;
  }
  // Twice: a torn copy can be matched by one more read torn the same way, rarely by two: where a
  // page ends (one memory copy waits there) and, for calls that return and repeat in step with the
  // copy, inside one page too (one re-read: 0.06 % impossible stacks in samples/two_chains.py).
  rc.bytes.resize(2 * bytes);
  rc.second = bytes;
  for (size_t pass = 0; pass < 2; ++pass)
    for (const Range& r : rc.slices)
      sr.reads.push_back({r.start, rc.bytes.data() + pass * bytes + r.buffer_offset, r.end - r.start, false});
}

// The snapshot's reads made: the thread state, the stack where the guess held, the second reads.
bool Walker::use_snapshot(const PyThread& listed, Guess& guess, SnapshotRead& sr, PyThread& t) {
  const auto& l = layout_;
  const bool objects = l.frame_model == FrameModel::kFrameObject;
  const auto& reads = sr.reads;
  // Unreadable, or no longer this interpreter's: the thread state was freed (its thread ended).
  snapshot_gone_ = true;
  if (!reads[0].ok || !parse_thread(sr.tstate.data(), listed.tstate, listed.interp, t)) return false;
  // The thread state must still be the listed thread's: one that ended between the listing and
  // now can have left its memory (and struct pthread) to a new thread, whose stack this would be.
  if (t.thread_id != listed.thread_id) return false;
  if (l.tstate.native_thread_id != kAbsent && t.native_id != listed.native_id) return false;
  if (sr.pthread_checked && !(reads[sr.pthread_read].ok && sr.pthread_tid == listed.native_id)) return false;
  snapshot_gone_ = false;
  t.native_id = listed.native_id;
  t.holds_gil = listed.holds_gil;
  bool cframe_hit = false;
  if (l.has_cframe) {
    for (size_t i = 0; i < sr.n_cframes && !cframe_hit; ++i)
      if (t.cframe == sr.cframes[i] && reads[sr.cframe_reads + i].ok) {
        t.top_frame = sr.top[i];
        cframe_hit = true;
      }
    if (!cframe_hit && t.cframe) memory_.read_value(t.cframe + l.cframe_current_frame, t.top_frame);
  }
  bool stack_hit = sr.guessed;
  if (chunks_.empty()) chunks_.emplace_back();
  if (sr.chunk_end > sr.chunk_base) {
    chunks_[0].bytes.swap(sr.chunk);
    uint64_t header[3];
    std::memcpy(header, chunks_[0].bytes.data(), sizeof header);
    if (reads[sr.stack_reads].ok && t.datastack_chunk == sr.chunk_base && t.datastack_top > sr.chunk_base &&
        t.datastack_top <= sr.chunk_end && header[1] <= kMaxChunkBytes && t.datastack_top - sr.chunk_base <= header[1]) {
      // Every byte copied, not only up to the top the thread state gave: a frame pushed since is
      // then read in the same copy as its callers, not alone and later.
      chunks_[0].base = sr.chunk_base;
      chunks_[0].end = std::min(sr.chunk_end, sr.chunk_base + header[1]);
      chunks_used_ = 1;
      next_chunk_ = header[0];
    } else {
      stack_hit = false;
    }
  }
  // Frame objects guessed wrong (freed, or not read) are dropped from the windows.
  size_t kept = 0;
  for (size_t i = 0; i < sr.n_windows; ++i) {
    if (!reads[sr.window_reads + i].ok) continue;
    if (windows_.size() <= kept) windows_.emplace_back();
    std::swap(windows_[kept++], sr.windows[i]);
  }
  windows_used_ = guessed_windows_ = kept;
  if (chunks_used_ == 0 && !objects) {
    uint64_t chunk = t.datastack_chunk, top = t.datastack_top;
    if (plausible_pointer(chunk) && top > chunk && top - chunk <= kMaxChunkBytes) next_chunk_ = load_chunk(chunk, top);
  }
  // A deep stack's older chunks as the last walk read them, when the current one still leads to
  // them: not read now (confirm() reads them once, and tells whether they are still so).
  if (chunks_used_ == 1 && guess.older_count > 0 && guess.older.front().base == next_chunk_) {
    for (size_t k = 0; k < guess.older_count && chunks_used_ < kMaxChunks; ++k) {
      if (chunks_.size() <= chunks_used_) chunks_.emplace_back();
      CachedChunk& c = chunks_[chunks_used_++];
      c.base = guess.older[k].base;
      c.end = guess.older[k].end;
      c.bytes.swap(guess.older[k].bytes);  // lent: remember() gives them back if the walk stands
    }
    next_chunk_ = load<uint64_t>(chunks_[chunks_used_ - 1].bytes.data());  // the oldest one's previous
  }
  guess.older_count = 0;
  // The second reads are usable when the top could be read again, through a CFrame read then.
  Recheck& rc = sr.rc;
  bool top_again_known = stack_hit && reads[sr.top_again].ok;
  if (top_again_known && l.has_cframe) {
    top_again_known = false;
    for (size_t i = 0; i < sr.n_cframes && !top_again_known; ++i)
      if (rc.top_ref == sr.cframes[i] && reads[sr.top_again + 1 + i].ok) {
        rc.top = sr.top2[i];
        top_again_known = true;
      }
  }
  if (top_again_known) {
    rc.valid = true;
    size_t first_slice = sr.top_again + 1 + sr.n_cframes;
    rc.ok.assign(2 * rc.slices.size(), false);
    for (size_t i = 0; i < 2 * rc.slices.size(); ++i) rc.ok[i] = reads[first_slice + i].ok;
  }
  std::swap(recheck_, rc);
  return true;
}

// What the next walk of this thread should read with its thread state.
void Walker::remember(uint64_t tstate, const PyThread& t) {
  const auto& l = layout_;
  Guess& guess = guesses_[tstate];
  if (t.cframe && guess.cframes[0] != t.cframe) {
    // Most recent first, each once.
    uint64_t* end = guess.cframes + Guess::kCFrames;
    uint64_t* at = std::find(guess.cframes, end, t.cframe);
    if (at == end) at = end - 1;
    std::move_backward(guess.cframes, at, at + 1);
    guess.cframes[0] = t.cframe;
  }
  guess.chunk = guess.chunk_end = guess.top = 0;
  if (chunks_used_ > 0 && chunks_[0].base == t.datastack_chunk) {
    // The top moves as calls come and go: read a little beyond it, within the chunk.
    uint64_t size = load<uint64_t>(chunks_[0].bytes.data() + 8);
    guess.chunk = t.datastack_chunk;
    guess.chunk_end = std::min(read_end_past_top(t.datastack_top, 512, 2048), t.datastack_chunk + size);
    guess.top = t.datastack_top;
  }
  // The older chunks of a deep stack, for the next walk (see snapshot()).
  guess.older_count = chunks_used_ > 1 && chunks_[0].base == t.datastack_chunk ? chunks_used_ - 1 : 0;
  if (guess.older.size() < guess.older_count) guess.older.resize(guess.older_count);
  for (size_t k = 0; k < guess.older_count; ++k) {
    CachedChunk& c = chunks_[k + 1];
    guess.older[k].base = c.base;
    guess.older[k].end = c.end;
    guess.older[k].bytes.swap(c.bytes);
  }
  {
    // Frames that live outside the data stack: ≤3.10's frame objects, reused at the same
    // addresses (each code object keeps a spare frame), and 3.11+'s generator and coroutine
    // frames, inside their objects. The frames of this walk and of the last ones, innermost
    // first, at most a few dozen.
    constexpr size_t kMaxGuessedFrames = 32;
    const bool objects = l.frame_model == FrameModel::kFrameObject;
    guess_scratch_.clear();
    for (size_t i = 0; i < visited_.size() && guess_scratch_.size() < kMaxGuessedFrames; ++i) {
      bool in_chunk = visited_[i].block >= 0 && visited_[i].block < static_cast<int32_t>(kMaxChunks);
      if (objects || !in_chunk) guess_scratch_.push_back(visited_[i].address);
    }
    for (uint64_t f : guess.frames) {
      if (guess_scratch_.size() >= kMaxGuessedFrames) break;
      if (std::find(guess_scratch_.begin(), guess_scratch_.end(), f) == guess_scratch_.end()) guess_scratch_.push_back(f);
    }
    guess.frames.swap(guess_scratch_);
  }
  // Threads that stopped being walked are forgotten now and then.
  if (walks_ % 4096 == 0)
    std::erase_if(guesses_, [&](const auto& g) { return g.second.last_walk + 4096 < walks_; });
}

WalkError Walker::walk(const PyThread& listed, std::vector<RawFrame>& out) {
  out.clear();
  visited_.clear();
  stable_ = read_depth_ = 0;
  stack_read_at_ = {};
  snapshot_read_at_ = confirm_read_at_ = {0, 0};
  bottom_ = bottom_code_ = 0;
  PyThread thread;
  if (!snapshot(listed, thread)) return snapshot_gone_ ? WalkError::kThreadGone : WalkError::kThreadState;
  WalkError e = layout_.frame_model == FrameModel::kFrameObject ? walk_frame_objects(thread, out)
                                                                 : walk_interpreter_frames(thread, out);
  if (e == WalkError::kTooDeep) {
    // A chain that never ends is a loop (torn read), not a deep stack.
    seen_.clear();
    for (const auto& v : visited_) seen_.push_back(v.address);
    std::sort(seen_.begin(), seen_.end());
    if (std::adjacent_find(seen_.begin(), seen_.end()) != seen_.end()) return WalkError::kCycle;
  }
  // (≤3.10: with the finished frames the top led to; they were the stack when the top was read.)
  read_depth_ = out.size();
  if (layout_.frame_model == FrameModel::kFrameObject)
    for (size_t i = 0; i < visited_.size() && visited_[i].out_index < 0; ++i) ++read_depth_;
  if (e != WalkError::kNone && e != WalkError::kTooDeep) return e;
  // Everything the walk used came with the snapshot: its second reads confirm it. Otherwise read
  // again now.
  const bool by_snapshot = recheck_.valid && late_reads_ == 0;
  WalkError confirmed = by_snapshot ? confirm_from_snapshot(thread, out) : confirm(thread, out);
  const auto& confirming = by_snapshot ? snapshot_read_at_ : confirm_read_at_;
  if (confirming.second > 0) stack_read_at_ = {snapshot_read_at_.first, confirming.first, confirming.second};
  if (confirmed == WalkError::kNone && listed.tstate) remember(listed.tstate, thread);
  return confirmed == WalkError::kNone ? e : confirmed;
}

// The program runs while we copy its frames, and CPython rewrites frames in place: a copy can
// hold the outer frames of one moment and the inner frames of another (p1→p2 then q3→q4, a
// stack that never happened), or start from a top that was popped and pushed again meanwhile.
// So after the copy, read again where the top is and what identifies every frame followed. From
// the top now, follow the chain through what was read until it meets a frame the walk followed;
// the walk stands when it does and that frame and every frame below it read as they did (the
// callers' instructions included):
//  - it is the frame the walk started from: the stack is the one that exists now;
//  - it is a caller: the inner frames returned meanwhile, the stack is the caller's;
//  - newer frames lead to it: they were called meanwhile, the stack is the one the walk began.
// Anything else is torn: the caller retries with a fresh thread state. stable_frames() then
// says how many outer frames read the same both times.
//
// `copy` gives a frame's bytes where newer frames may be found; `again` (and `again2`, when there
// is a second re-read) the identifying bytes as read after the top.
WalkError Walker::settle(uint64_t top_now, const BytesAt& copy, const BytesAt& again, const BytesAt* again2,
                         std::vector<RawFrame>& out, const std::vector<uint64_t>* verified) {
  const auto& l = layout_;
  const bool objects = l.frame_model == FrameModel::kFrameObject;
  const uint32_t identity_end = identity_slice(l).second;
  // Frames read again byte for byte as the walk read them need no comparing one by one.
  auto verified_frame = [&](const Visited& v) { return Walker::verified_frame(v, verified, identity_end); };
  auto matches = [&](const Visited& v, const uint8_t* b, bool compare_instr) {
    if (!b || load<uint64_t>(b + l.frame.code) != v.code || load<uint64_t>(b + l.frame.previous) != v.previous)
      return false;
    if (objects && load<int64_t>(b) <= 0) return false;  // the frame died
    uint64_t instr = objects ? uint64_t(load<uint32_t>(b + l.frame.instr)) : load<uint64_t>(b + l.frame.instr);
    return !compare_instr || instr == v.instr;  // a caller that moved is another call now
  };
  // From the top now, through frames pushed meanwhile, to a frame the walk followed.
  size_t first = visited_.size();
  bool newer_frames = false;
  uint64_t frame = top_now;
  for (size_t steps = 0; frame && steps < 256; ++steps) {
    auto known = std::find_if(visited_.begin(), visited_.end(), [&](const Visited& v) { return v.address == frame; });
    if (known != visited_.end()) {
      first = static_cast<size_t>(known - visited_.begin());
      break;
    }
    const uint8_t* b = again(frame);
    if (!b) b = copy(frame);
    if (!b) break;
    newer_frames = true;
    frame = load<uint64_t>(b + l.frame.previous);
  }
  // For a sample that stays torn: how many outer frames of `out`, down to the frame the top leads
  // to (frames above it may be stale ones the program left), read the same every time.
  // Only if the top now links down through the frames the walk followed, each caller where the
  // walk found it (their calls may have changed: a chain called again at the same addresses): a
  // frame object freed and taken by a call in another thread (≤3.10) links to that thread's
  // frames, whose outer ones read the same every time and are no part of this stack.
  auto linked_down = [&](size_t from) {
    for (size_t i = from; i + 1 < visited_.size(); ++i) {
      const Visited& v = visited_[i];
      if (verified_frame(v)) continue;
      const uint8_t* b = again(v.address);
      if (!b || load<uint64_t>(b + l.frame.previous) != v.previous) return false;
    }
    return true;
  };
  if (first < visited_.size() && linked_down(first))
    for (size_t i = visited_.size(); i-- > first;) {
      const Visited& v = visited_[i];
      if (verified_frame(v)) {
        stable_ += v.out_index >= 0;
        continue;
      }
      bool compare_instr = i != first;
      const uint8_t* b2 = again2 ? (*again2)(v.address) : nullptr;
      if (!matches(v, again(v.address), compare_instr) || (b2 && !matches(v, b2, compare_instr))) {
        // The same frame, moved on to another line (it called something else meanwhile): it was
        // there all along, at the line the copy read, with the frames above it changing.
        if (compare_instr && matches(v, again(v.address), false) && (!b2 || matches(v, b2, false)))
          stable_ += v.out_index >= 0;
        break;
      }
      stable_ += v.out_index >= 0;
    }
  if (first == visited_.size()) return WalkError::kTorn;
  // The frame met may have moved on (it is the top now, or it called the newer frames): its
  // instruction is not compared, everything else is.
  for (size_t i = first; i < visited_.size(); ++i) {
    const Visited& v = visited_[i];
    if (verified_frame(v)) continue;
    if (!matches(v, again(v.address), i != first)) return WalkError::kTorn;
    if (again2) {
      const uint8_t* b = (*again2)(v.address);
      if (b && !matches(v, b, i != first)) return WalkError::kTorn;
    }
  }
  if (newer_frames) first = 0;  // the walked stack is the one the walk began with
  // Dead frames skipped at the top of a ≤3.10 walk had returned: they are not in `out`.
  size_t keep_from = out.size();
  for (size_t i = first; i < visited_.size(); ++i)
    if (visited_[i].out_index >= 0) {
      keep_from = static_cast<size_t>(visited_[i].out_index);
      break;
    }
  if (keep_from > 0) {
    out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep_from));
    // The frame now on top runs on: its instruction as just read.
    const uint8_t* b = again(visited_[first].address);
    if (b && !out.empty() && out.front().address == visited_[first].address) {
      RawFrame& r = out.front();
      if (objects) {
        int32_t lasti = load<int32_t>(b + l.frame.instr);
        r.offset = lasti < 0 ? -1 : (l.lasti_in_code_units ? lasti * 2 : lasti);
      } else {
        uint64_t instr = load<uint64_t>(b + l.frame.instr), start = r.code + l.code.code_adaptive;
        r.offset = (instr >= start && instr - start < (1u << 26)) ? static_cast<int32_t>(instr - start) : -1;
      }
    }
  }
  return WalkError::kNone;
}

// The snapshot's own second reads (see snapshot()): the stack was copied between two reads of the
// top, then read again. A program that came back to the same top between the two (returned, then
// called its way back to the same depth) can leave the copy with callers of the new cycle under
// a stale frame of the old one; the read after the second top sees that frame replaced.
WalkError Walker::confirm_from_snapshot(const PyThread& thread, std::vector<RawFrame>& out) {
  const auto& l = layout_;
  const Recheck& rc = recheck_;
  if (visited_.empty()) return WalkError::kNone;
  const uint64_t top_now = l.has_cframe ? rc.top : rc.top_ref;
  const auto slice = identity_slice(l);
  const uint32_t lo = slice.first, hi = slice.second;  // (named: clang 14 cannot capture a structured binding)
  auto from_copy = [&](uint64_t a) { return cached(a, hi); };
  BytesAt copy = from_copy;
  // Frames walked one after another are in the same slice (the chunk): try the last one first.
  size_t last_slice[2] = {0, 0};
  auto read_pass = [&](size_t pass) {
    return [&, pass](uint64_t a) -> const uint8_t* {
      const size_t n = rc.slices.size();
      for (size_t k = 0; k < n; ++k) {
        size_t i = last_slice[pass] + k;  // (no division: this runs for every frame, twice)
        if (i >= n) i -= n;
        const Range& r = rc.slices[i];
        if (rc.ok[pass * n + i] && a + lo >= r.start && a + hi <= r.end) {
          last_slice[pass] = i;
          return frame_in(rc.bytes, pass * rc.second + r.buffer_offset + (a + lo - r.start), lo, hi);
        }
      }
      return nullptr;
    };
  };
  auto first_pass = read_pass(0), second_pass = read_pass(1);
  BytesAt again = first_pass, again2 = second_pass;
  // The current chunk read again, compared with the copy the walk used at once: its frames wholly
  // below the first 64 bytes that differ in either read (a running thread's innermost frame, as
  // a rule) read as the walk read them.
  verified_.assign(kMaxChunks, 0);
  const size_t n = rc.slices.size();
  if (n > 0 && chunks_used_ > 0 && rc.slices[0].start == chunks_[0].base && rc.ok[0] && rc.ok[n]) {
    const Range& r = rc.slices[0];
    const size_t len = std::min(r.end, chunks_[0].end) - r.start;
    const uint8_t* copied = chunks_[0].bytes.data();
    const uint8_t* first = rc.bytes.data() + r.buffer_offset;
    const uint8_t* second = first + rc.second;
    constexpr size_t kBlock = 64;
    size_t same = 0;
    while (same + kBlock <= len && std::memcmp(copied + same, first + same, kBlock) == 0 &&
           std::memcmp(copied + same, second + same, kBlock) == 0)
      same += kBlock;
    verified_[0] = r.start + same;
  }
  // A frame the walk found outside what the guess read again (in a neighbour's bytes) needs the
  // second system call.
  for (const auto& v : visited_)
    if (!verified_frame(v, &verified_, hi) && (!again(v.address) || !again2(v.address)))
      return confirm(thread, out);
  return settle(top_now, copy, again, &again2, out, &verified_);
}

// A second system call: the walked frames' identifying bytes and where newer frames may be, with
// the top read before, between two reads of the innermost frames, and after.
WalkError Walker::confirm(const PyThread& thread, std::vector<RawFrame>& out) {
  const auto& l = layout_;
  if (visited_.empty()) return WalkError::kNone;
  const bool objects = l.frame_model == FrameModel::kFrameObject;
  const auto slice = identity_slice(l);
  const uint32_t lo = slice.first, hi = slice.second;  // (named: clang 14 cannot capture a structured binding)
  // Slices of target memory to read again: the walked frames, and where newer frames would be.
  // Frames that came from one chunk or window make one slice from the lowest to the highest (a
  // data-stack chunk holds a stack's frames side by side; a window, frame objects made together).
  confirm_slices_.clear();
  block_span_.assign(kMaxChunks + kMaxWindows, Range{~uint64_t(0), 0, 0});
  for (const auto& v : visited_) {
    if (v.block < 0) {
      confirm_slices_.push_back({v.address + lo, v.address + hi, 0});
      continue;
    }
    Range& b = block_span_[static_cast<size_t>(v.block)];
    b.start = std::min(b.start, v.address + lo);
    b.end = std::max(b.end, v.address + hi);
  }
  for (const Range& b : block_span_)
    if (b.end > b.start) confirm_slices_.push_back(b);
  if (objects) {
    auto it = guesses_.find(thread.tstate);
    if (it != guesses_.end())
      for (uint64_t f : it->second.frames) confirm_slices_.push_back({f + lo, f + hi, 0});
  } else if (chunks_used_ > 0 && thread.datastack_top > chunks_[0].base && thread.datastack_top <= chunks_[0].end) {
    uint64_t size = load<uint64_t>(chunks_[0].bytes.data() + 8);
    uint64_t region_end = std::min(read_end_past_top(thread.datastack_top, 512, 2048), chunks_[0].base + size);
    if (region_end > thread.datastack_top) confirm_slices_.push_back({thread.datastack_top, region_end, 0});
  }
  // In as few ranges as possible: one memory copy is fast, and the shorter the read, the less
  // the program moves within it.
  std::sort(confirm_slices_.begin(), confirm_slices_.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  confirm_ranges_.clear();
  size_t bytes = 0;
  for (const Range& r : confirm_slices_) {
    if (!confirm_ranges_.empty() && r.start <= confirm_ranges_.back().end + 256 &&
        std::max(r.end, confirm_ranges_.back().end) - confirm_ranges_.back().start <= kMaxChunkBytes) {
      Range& c = confirm_ranges_.back();
      bytes += std::max(r.end, c.end) - c.end;
      c.end = std::max(r.end, c.end);
      continue;
    }
    confirm_ranges_.push_back({r.start, r.end, bytes});
    bytes += r.end - r.start;
  }
  size_t inner = 0;
  while (inner < confirm_ranges_.size() && confirm_ranges_[inner].end < visited_.front().address + hi) ++inner;
  const Range repeat = inner < confirm_ranges_.size() ? confirm_ranges_[inner] : Range{0, 0, 0};
  confirm_buf_.resize(bytes + (repeat.end - repeat.start) + 16);
  struct Top {
    uint64_t ref = 0, frame = 0;
  } tops[3];
  confirm_reads_.clear();
  const bool detached = thread.tstate == 0;  // the top is read again from top_source
  auto read_top = [&](Top& t) {
    if (detached) {
      confirm_reads_.push_back({thread.top_source, &t.ref, 8, false});
      return;
    }
    confirm_reads_.push_back({thread.tstate + l.tstate.frame, &t.ref, 8, false});
    if (l.has_cframe) confirm_reads_.push_back({thread.cframe + l.cframe_current_frame, &t.frame, 8, false});
  };
  read_top(tops[0]);
  const size_t first_range = confirm_reads_.size();
  for (const Range& r : confirm_ranges_)
    confirm_reads_.push_back({r.start, confirm_buf_.data() + r.buffer_offset, r.end - r.start, false});
  read_top(tops[1]);
  const size_t repeat_read = confirm_reads_.size();
  if (repeat.end > repeat.start)
    confirm_reads_.push_back({repeat.start, confirm_buf_.data() + bytes, repeat.end - repeat.start, false});
  read_top(tops[2]);
  timed_batch(confirm_reads_, confirm_read_at_);
  const size_t n_ranges = confirm_ranges_.size();
  for (size_t i = 0; i < confirm_reads_.size(); ++i) {
    bool frames_read = (i >= first_range && i < first_range + n_ranges) || i == repeat_read;
    if (!frames_read && !confirm_reads_[i].ok) return WalkError::kTorn;  // the thread state is gone
  }
  // In another C-level evaluation now, the top is not known: settle() finds it torn (and how
  // much of it was stable).
  bool same_cframe = true;
  for (const Top& t : tops) same_cframe &= detached || !l.has_cframe || t.ref == thread.cframe;
  const uint64_t top_now = !same_cframe ? 0 : (l.has_cframe && !detached) ? tops[2].frame : tops[2].ref;
  auto read_again = [&](uint64_t a) -> const uint8_t* {
    // The ranges are in address order: the last one starting at or before the slice.
    auto it = std::upper_bound(confirm_ranges_.begin(), confirm_ranges_.end(), a + lo,
                               [](uint64_t x, const Range& r) { return x < r.start; });
    if (it == confirm_ranges_.begin()) return nullptr;
    size_t i = static_cast<size_t>(it - confirm_ranges_.begin()) - 1;
    const Range& r = confirm_ranges_[i];
    if (!confirm_reads_[first_range + i].ok || a + hi > r.end) return nullptr;
    return frame_in(confirm_buf_, r.buffer_offset + (a + lo - r.start), lo, hi);
  };
  auto read_again2 = [&](uint64_t a) -> const uint8_t* {
    if (repeat_read >= confirm_reads_.size() || !confirm_reads_[repeat_read].ok || a + lo < repeat.start ||
        a + hi > repeat.end)
      return nullptr;
    return frame_in(confirm_buf_, bytes + (a + lo - repeat.start), lo, hi);
  };
  auto from_copy = [&](uint64_t a) { return cached(a, hi); };
  BytesAt again = read_again, again2 = read_again2, copy = from_copy;
  // Data-stack chunks whose frames read again exactly as the walk read them (a deep stack's outer
  // chunks, typically as the last walk left them).
  verified_.assign(kMaxChunks, 0);  // (no frame is below address 0)
  for (size_t b = 0; b < chunks_used_; ++b) {
    const Range& span = block_span_[b];
    if (span.end <= span.start || span.start < chunks_[b].base || span.end > chunks_[b].end) continue;
    const uint8_t* now = again(span.start - lo);
    const uint8_t* last = again(span.end - hi);
    if (now && last && last - now == static_cast<std::ptrdiff_t>(span.end - hi - (span.start - lo)) &&
        std::memcmp(now + lo, chunks_[b].bytes.data() + (span.start - chunks_[b].base), span.end - span.start) == 0)
      verified_[b] = ~uint64_t(0);
  }
  return settle(top_now, copy, again, &again2, out, &verified_);
}

// A frame chain that comes back to a frame it passed is no stack: a pointer read while it was
// being rewritten can lead into a static object whose "previous" field points at itself (3.15:
// PyType_Type, whose ob_type is itself), and the walk would go round until kMaxVisit (65,536 reads
// of one address: a 150 ms tick). Brent's method finds any cycle within twice its reach, keeping
// one address: it moves to the frame at each power-of-two step.
namespace {
class CycleGuard {
 public:
  bool revisits(uint64_t frame) {
    if (frame == anchor_) return true;
    if (++steps_ == next_) {
      anchor_ = frame;
      next_ *= 2;
    }
    return false;
  }

 private:
  uint64_t anchor_ = 0;
  size_t steps_ = 0, next_ = 1;
};
}  // namespace

WalkError Walker::walk_frame_objects(const PyThread& thread, std::vector<RawFrame>& out) {
  const auto& f = layout_.frame;
  uint64_t frame = thread.top_frame;
  CycleGuard cycle;
  while (frame) {
    if (visited_.size() >= kMaxVisit) return WalkError::kTooDeep;
    if (cycle.revisits(frame)) return WalkError::kCycle;
    if (!plausible_pointer(frame)) return WalkError::kFrame;
    const uint8_t* b = windowed_frame_bytes(frame, f.size);
    if (!b) return WalkError::kFrame;
    // A finished frame object lives on as its code's zombie frame or on a free list with its stale
    // f_back intact; only its reference count (0) tells it is dead. Innermost frames that died
    // since the thread state was read had returned: follow on to their callers (confirm() checks
    // the top is one of them now). A dead frame below a live one would splice frames of finished
    // calls into the stack.
    if (load<int64_t>(b) <= 0) {
      if (!out.empty() || visited_.size() >= 8) return WalkError::kFrame;
      visited_.push_back({frame, load<uint64_t>(b + f.code), load<uint64_t>(b + f.previous),
                          uint64_t(uint32_t(load<int32_t>(b + f.instr))), -1, hit_block_});
      frame = load<uint64_t>(b + f.previous);
      continue;
    }
    bottom_ = frame;
    RawFrame r;
    r.address = frame;
    r.code = load<uint64_t>(b + f.code);
    bottom_code_ = r.code;
    int32_t lasti = load<int32_t>(b + f.instr);
    r.offset = lasti < 0 ? -1 : (layout_.lasti_in_code_units ? lasti * 2 : lasti);
    if (!plausible_pointer(r.code)) return WalkError::kCode;
    uint64_t previous = load<uint64_t>(b + f.previous);
    visited_.push_back({frame, r.code, previous, uint64_t(uint32_t(lasti)), static_cast<int32_t>(out.size()), hit_block_});
    out.push_back(r);
    frame = previous;
  }
  return WalkError::kNone;
}

WalkError Walker::walk_interpreter_frames(const PyThread& thread, std::vector<RawFrame>& out) {
  const auto& l = layout_;
  const auto& f = l.frame;
  // The thread's frames mostly live in its current data-stack chunk, read whole by snapshot().
  uint64_t frame = thread.top_frame;
  CycleGuard cycle;
  while (frame) {
    if (visited_.size() >= kMaxVisit) return WalkError::kTooDeep;
    if (cycle.revisits(frame)) return WalkError::kCycle;
    if (!plausible_pointer(frame)) return WalkError::kFrame;
    const uint8_t* b = frame_bytes(frame, f.size);
    if (!b) return WalkError::kFrame;
    int8_t owner = load<int8_t>(b + f.owner);
    uint64_t previous = load<uint64_t>(b + f.previous);
    uint64_t code_ref = load<uint64_t>(b + f.code);
    uint64_t instr = load<uint64_t>(b + f.instr);
    bottom_ = frame;
    bottom_code_ = code_ref;
    visited_.push_back({frame, code_ref, previous, instr, -1, hit_block_});
    bool interpreter_owned = (l.owner_cstack >= 0 && owner == l.owner_cstack) ||
                             (l.owner_interpreter >= 0 && owner == l.owner_interpreter);
    if (!interpreter_owned) {
      RawFrame r;
      r.address = frame;
      r.owner = owner;
      r.code = code_ref;
      if (l.tagged_code_ref) r.code &= ~uint64_t(3);
      if (r.code == 0 && out.empty()) {
        // A NULL executable on the innermost frame: it is being pushed or popped right now
        // (3.14+ clears f_executable on pop). Like an incomplete frame, it is not there yet.
        frame = previous;
        continue;
      }
      if (!plausible_pointer(r.code)) return WalkError::kCode;
      uint64_t first = r.code + l.code.code_adaptive;
      r.offset = (instr >= first && instr - first < (1u << 26)) ? static_cast<int32_t>(instr - first) : -1;
      visited_.back().out_index = static_cast<int32_t>(out.size());
      out.push_back(r);
    }
    frame = previous;
  }
  return WalkError::kNone;
}

bool Walker::parked_frames(uint64_t entry, uint64_t code, std::span<const uint64_t> args, CodeCache& codes,
                           uint64_t tick, std::vector<RawFrame>& out) {
  out.clear();
  const auto& l = layout_;
  if (l.frame_model != FrameModel::kInterpreterFrame || !plausible_pointer(entry)) return false;
  // The call's frames follow the entry frame in its chunk: read up to 16 KiB past it (a chunk's
  // size), in pages so that the end of the mapping does not fail the whole read.
  constexpr size_t kPage = 4096, kPages = 4;
  parked_buf_.resize(kPage * kPages);
  target::Memory::Request requests[kPages];
  for (size_t i = 0; i < kPages; ++i) requests[i] = {entry + i * kPage, parked_buf_.data() + i * kPage, kPage, false};
  memory_.read_batch(requests);
  size_t usable = 0;
  while (usable < kPages && requests[usable].ok) ++usable;
  usable *= kPage;
  const size_t header = l.frame.size;
  auto frame_at = [&](size_t off, uint64_t expected_previous, RawFrame& r) -> bool {
    if (off + header + 8 * args.size() > usable) return false;
    const uint8_t* b = parked_buf_.data() + off;
    if (load<int8_t>(b + l.frame.owner) != 0) return false;  // a parked greenlet's frames are its own
    if (expected_previous && load<uint64_t>(b + l.frame.previous) != expected_previous) return false;
    r.address = entry + off;
    r.owner = 0;
    r.code = load<uint64_t>(b + l.frame.code) & (l.tagged_code_ref ? ~uint64_t(3) : ~uint64_t(0));
    uint64_t instr = load<uint64_t>(b + l.frame.instr), first = r.code + l.code.code_adaptive;
    r.offset = (instr >= first && instr - first < (1u << 26)) ? static_cast<int32_t>(instr - first) : -1;
    return plausible_pointer(r.code);
  };
  // Gone when unmapped, or when the slot now holds another code or other arguments.
  RawFrame e;
  if (usable == 0 || !frame_at(0, 0, e) || e.code != code) return false;
  const uint8_t* locals = parked_buf_.data() + l.frame.localsplus;
  for (size_t i = 0; i < args.size(); ++i) {
    uint64_t a = load<uint64_t>(locals + 8 * i);
    if (l.tagged_code_ref) a &= ~uint64_t(3);
    if (a != args[i]) return false;
  }
  out.push_back(e);
  // Callees sit right after their caller (caller + its frame size). Stale frames of finished
  // calls can follow too, so the chain is only a candidate list; see below.
  for (size_t off = 0; out.size() < kMaxVisit;) {
    CodeInfo* info = codes.get(out.back().code, tick);
    if (!info || info->frame_words == 0) break;
    size_t next = off + size_t(info->frame_words) * 8;
    RawFrame r;
    if (!frame_at(next, out.back().address, r) || !codes.get(r.code, tick)) break;
    out.push_back(r);
    off = next;
  }
  // The frame that yielded is the innermost one whose frame object points back at it: greenlet
  // materialises one for the top frame at every switch-out, while a finished call's frame object
  // was detached (or freed) when it returned.
  // Without such a frame object (the greenlet was resumed between our reads), the validated chain
  // is the best answer.
  size_t top = out.size() - 1;
  if (l.frame_object_f_frame != kAbsent) {
    // A stale frame's frame object may be freed and still point back (CI: a zope <module> frame
    // from import time, left in memory a greenlet's chunk reused, showed under gevent's
    // __send_chunk): only a live one counts, its reference count not 0.
    std::vector<uint64_t> back(out.size(), 0), refs(out.size(), 0);
    std::vector<target::Memory::Request> reads;
    for (size_t i = 0; i < out.size(); ++i) {
      uint64_t fo = load<uint64_t>(parked_buf_.data() + (out[i].address - entry) + l.frame.frame_obj);
      if (!plausible_pointer(fo)) continue;
      reads.push_back({fo + l.frame_object_f_frame, &back[i], 8, false});
      reads.push_back({fo, &refs[i], 8, false});
    }
    memory_.read_batch(reads);
    for (size_t i = out.size(); i-- > 0;)
      if (back[i] == out[i].address && uint32_t(refs[i]) != 0) {
        top = i;
        break;
      }
  }
  out.resize(top + 1);
  return true;
}

bool Walker::read_locals(uint64_t frame, size_t count, uint64_t* out) {
  uint64_t at = frame + layout_.frame.localsplus;
  size_t bytes = count * 8;
  // Only from what the walk read: a read now could find the call returned and its locals cleared.
  const uint8_t* p = cached(at, bytes);
  if (!p) return false;
  std::memcpy(out, p, bytes);
  if (layout_.tagged_code_ref)
    for (size_t i = 0; i < count; ++i) out[i] &= ~uint64_t(3);
  return true;
}

}  // namespace swprof::python

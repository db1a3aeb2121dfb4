// The frame walker: one for every version, driven by the Layout. The target keeps running while we
// read, so every pointer is checked before use, every loop is bounded, and a bad read ends the
// walk with an error the recorder counts.
#include <algorithm>
#include <cstring>

#include "python/raw.h"
#include "swprof/python.h"

namespace swprof::python {

namespace {

constexpr size_t kMaxInterpreters = 64;
constexpr size_t kMaxThreads = 8192;
constexpr uint64_t kMaxChunkBytes = 8u << 20;
constexpr size_t kMaxChunks = 64;
constexpr uint64_t kFrameWindow = 16384;  // ≤3.10: frame objects are read this many bytes at a time
constexpr int64_t kGlibcTidOffset = 0x2d0;  // struct pthread.tid on x86-64 glibc 2.x


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
    case WalkError::kTooDeep: return "stack deeper than the limit";
  }
  return "unknown";
}

Walker::Walker(const target::Memory& memory, const Interpreter& interp)
    : memory_(memory), interp_(interp), layout_(interp.layout) {
  const auto& t = layout_.tstate;
  tstate_buf_.resize(max_offset({t.next, t.interp, t.frame, t.thread_id, t.native_thread_id, t.datastack_chunk,
                                 t.datastack_top}));
  frame_buf_.resize(layout_.frame.size + 64);
}

bool Walker::read_thread(uint64_t tstate, uint64_t interp, PyThread& t) {
  const auto& l = layout_;
  if (!plausible_pointer(tstate) || !memory_.read(tstate, tstate_buf_.data(), tstate_buf_.size())) return false;
  const uint8_t* b = tstate_buf_.data();
  t = PyThread{};
  t.tstate = tstate;
  t.interp = load<uint64_t>(b + l.tstate.interp);
  if (t.interp != interp) return false;  // torn or not a thread state of this interpreter
  t.thread_id = load<uint64_t>(b + l.tstate.thread_id);
  if (l.tstate.native_thread_id != kAbsent) t.native_id = load<int64_t>(b + l.tstate.native_thread_id);
  t.next = load<uint64_t>(b + l.tstate.next);
  uint64_t frame_ref = load<uint64_t>(b + l.tstate.frame);
  if (l.has_cframe) {
    // 3.11–3.12: tstate->cframe->current_frame; cframe lives on the thread's C stack.
    if (frame_ref) memory_.read_value(frame_ref + l.cframe_current_frame, t.top_frame);
  } else {
    t.top_frame = frame_ref;
  }
  if (l.tstate.datastack_chunk != kAbsent) {
    t.datastack_chunk = load<uint64_t>(b + l.tstate.datastack_chunk);
    t.datastack_top = load<uint64_t>(b + l.tstate.datastack_top);
  }
  if (l.tstate.native_thread_id == kAbsent) t.native_id = native_id_from_pthread(t.thread_id);
  return true;
}

bool Walker::read_threads(std::vector<PyThread>& out) {
  out.clear();
  const auto& l = layout_;
  // One read for the runtime's fields: the interpreter list and, up to 3.11, the GIL.
  uint8_t block[2048];
  uint32_t lo = l.runtime.interpreters_head, hi = lo + 8;
  bool runtime_gil = l.gil_model == GilModel::kRuntime && l.runtime.gil_locked != kAbsent;
  if (runtime_gil) {
    lo = std::min({lo, l.runtime.gil_locked, l.runtime.gil_last_holder});
    hi = std::max({hi, l.runtime.gil_locked + 8, l.runtime.gil_last_holder + 8});
  }
  if (hi - lo > sizeof block || !memory_.read(interp_.runtime + lo, block, hi - lo)) return false;
  uint64_t interp = load<uint64_t>(block + l.runtime.interpreters_head - lo);
  uint64_t runtime_holder = 0;
  if (runtime_gil && load<int32_t>(block + l.runtime.gil_locked - lo))
    runtime_holder = load<uint64_t>(block + l.runtime.gil_last_holder - lo);

  std::vector<uint8_t>& interp_buf = interp_buf_;
  for (size_t ni = 0; interp && ni < kMaxInterpreters; ++ni) {
    if (!plausible_pointer(interp)) return false;
    // One read for the interpreter's fields: its threads, the next interpreter, its GIL (3.12+).
    uint32_t ilo = std::min(l.interp.threads_head, l.interp.next), ihi = std::max(l.interp.threads_head, l.interp.next) + 8;
    bool own_gil = l.gil_model == GilModel::kInterpreterPointer && l.interp.ceval_gil != kAbsent;
    if (own_gil) {
      ilo = std::min(ilo, l.interp.ceval_gil);
      ihi = std::max(ihi, l.interp.ceval_gil + 8);
    }
    interp_buf.resize(std::max<size_t>(interp_buf.size(), ihi - ilo));
    if (ihi - ilo > 65536 || !memory_.read(interp + ilo, interp_buf.data(), ihi - ilo)) return false;
    uint64_t ts = load<uint64_t>(interp_buf.data() + l.interp.threads_head - ilo);
    uint64_t next = load<uint64_t>(interp_buf.data() + l.interp.next - ilo);
    uint64_t holder = runtime_holder;
    if (own_gil) {
      uint64_t gil = load<uint64_t>(interp_buf.data() + l.interp.ceval_gil - ilo);
      uint8_t g[64];
      uint32_t need = std::max(l.gil.locked, l.gil.last_holder) + 8;
      holder = 0;
      if (plausible_pointer(gil) && need <= sizeof g && memory_.read(gil, g, need) && load<int32_t>(g + l.gil.locked))
        holder = load<uint64_t>(g + l.gil.last_holder);
    }
    for (size_t n = 0; ts && n < kMaxThreads; ++n) {
      PyThread t;
      if (!read_thread(ts, interp, t)) break;  // torn list: keep what we have
      t.holds_gil = holder != 0 && holder == t.tstate;
      out.push_back(t);
      ts = t.next;
    }
    interp = next;
  }
  return true;
}

// ≤3.10 keeps only the pthread_t. glibc stores the kernel tid inside struct pthread (which
// pthread_t points to); find that offset once, checking that it holds a live tid of the process.
int64_t Walker::native_id_from_pthread(uint64_t pthread_id) {
  if (!plausible_pointer(pthread_id)) return 0;
  if (pthread_tid_offset_ < 0 && pthread_tid_probes_ < 16) {
    ++pthread_tid_probes_;
    auto tids = target::list_threads(memory_.pid());
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
  }
  if (pthread_tid_offset_ < 0) return 0;
  int32_t tid = 0;
  memory_.read_value(pthread_id + static_cast<uint64_t>(pthread_tid_offset_), tid);
  return tid > 0 ? tid : 0;
}

std::optional<uint64_t> Walker::code_generation() {
  if (layout_.interp.code_object_generation == kAbsent) return std::nullopt;
  uint64_t interp = 0, generation = 0;
  if (!memory_.read_value(interp_.runtime + layout_.runtime.interpreters_head, interp) ||
      !memory_.read_value(interp + layout_.interp.code_object_generation, generation))
    return std::nullopt;
  return generation;
}

// Bytes the last walk already read: its data-stack chunks (3.11+) or frame windows (≤3.10).
const uint8_t* Walker::cached(uint64_t address, size_t size) const {
  for (size_t i = 0; i < chunks_used_; ++i) {
    const CachedChunk& c = chunks_[i];
    if (address >= c.base && address + size <= c.end && address + size > address)
      return c.bytes.data() + (address - c.base);
  }
  for (size_t i = 0; i < windows_used_; ++i) {
    const Window& w = windows_[i];
    if (address >= w.base && address + size <= w.base + w.bytes.size() && address + size > address)
      return w.bytes.data() + (address - w.base);
  }
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
  while (next_chunk_ && !cached(address, size)) next_chunk_ = load_chunk(next_chunk_, 0);
  if (const uint8_t* p = cached(address, size)) return p;
  if (frame_buf_.size() < size) frame_buf_.resize(size);
  if (!memory_.read(address, frame_buf_.data(), size)) return nullptr;
  return frame_buf_.data();
}

const uint8_t* Walker::windowed_frame_bytes(uint64_t address, size_t size) {
  constexpr uint64_t kWindow = kFrameWindow;
  if (const uint8_t* p = cached(address, size)) return p;
  uint64_t base = address & ~(kWindow - 1);
  if (address + size <= base + kWindow && windows_used_ < 256) {
    if (windows_.size() <= windows_used_) windows_.emplace_back();
    Window& w = windows_[windows_used_];
    w.bytes.resize(kWindow);
    if (memory_.read(base, w.bytes.data(), kWindow)) {
      w.base = base;
      ++windows_used_;
      return w.bytes.data() + (address - base);
    }
  }
  return frame_bytes(address, size);  // the window is not all mapped, or the frame straddles it
}

WalkError Walker::walk(const PyThread& thread, std::vector<RawFrame>& out) {
  out.clear();
  bottom_ = bottom_code_ = 0;
  WalkError e = layout_.frame_model == FrameModel::kFrameObject ? walk_frame_objects(thread, out)
                                                                 : walk_interpreter_frames(thread, out);
  if (e == WalkError::kTooDeep) {
    // A chain that never ends is a loop (torn read), not a deep stack.
    seen_.clear();
    for (const auto& f : out) seen_.push_back(f.address);
    std::sort(seen_.begin(), seen_.end());
    if (std::adjacent_find(seen_.begin(), seen_.end()) != seen_.end()) e = WalkError::kCycle;
  }
  return e;
}

WalkError Walker::walk_frame_objects(const PyThread& thread, std::vector<RawFrame>& out) {
  const auto& f = layout_.frame;
  chunks_used_ = 0;
  next_chunk_ = 0;
  windows_used_ = 0;
  uint64_t frame = thread.top_frame;
  while (frame) {
    if (out.size() >= kMaxDepth) return WalkError::kTooDeep;
    if (!plausible_pointer(frame)) return WalkError::kFrame;
    const uint8_t* b = windowed_frame_bytes(frame, f.size);
    if (!b) return WalkError::kFrame;
    // A finished frame object lives on as its code's zombie frame or on a free list with its stale
    // f_back intact; only its reference count (0) tells it is dead. Following it would splice
    // frames of finished calls into the stack.
    if (load<int64_t>(b) <= 0) return WalkError::kFrame;
    bottom_ = frame;
    RawFrame r;
    r.address = frame;
    r.code = load<uint64_t>(b + f.code);
    bottom_code_ = r.code;
    int32_t lasti = load<int32_t>(b + f.instr);
    r.offset = lasti < 0 ? -1 : (layout_.lasti_in_code_units ? lasti * 2 : lasti);
    if (!plausible_pointer(r.code)) return WalkError::kCode;
    out.push_back(r);
    frame = load<uint64_t>(b + f.previous);
  }
  return WalkError::kNone;
}

WalkError Walker::walk_interpreter_frames(const PyThread& thread, std::vector<RawFrame>& out) {
  const auto& l = layout_;
  const auto& f = l.frame;
  // The thread's frames mostly live in its current data-stack chunk: read it whole, once.
  chunks_used_ = 0;
  windows_used_ = 0;
  next_chunk_ = 0;
  uint64_t chunk = thread.datastack_chunk, top = thread.datastack_top;
  if (plausible_pointer(chunk) && top > chunk && top - chunk <= kMaxChunkBytes) next_chunk_ = load_chunk(chunk, top);
  uint64_t frame = thread.top_frame;
  size_t visited = 0;
  while (frame) {
    if (++visited > kMaxDepth * 2 || out.size() >= kMaxDepth) return WalkError::kTooDeep;
    if (!plausible_pointer(frame)) return WalkError::kFrame;
    const uint8_t* b = frame_bytes(frame, f.size);
    if (!b) return WalkError::kFrame;
    int8_t owner = load<int8_t>(b + f.owner);
    uint64_t previous = load<uint64_t>(b + f.previous);
    bottom_ = frame;
    bottom_code_ = load<uint64_t>(b + f.code);
    bool interpreter_owned = (l.owner_cstack >= 0 && owner == l.owner_cstack) ||
                             (l.owner_interpreter >= 0 && owner == l.owner_interpreter);
    if (!interpreter_owned) {
      RawFrame r;
      r.address = frame;
      r.owner = owner;
      r.code = load<uint64_t>(b + f.code);
      if (l.tagged_code_ref) r.code &= ~uint64_t(3);
      if (r.code == 0 && out.empty()) {
        // A NULL executable on the innermost frame: it is being pushed or popped right now
        // (3.14+ clears f_executable on pop). Like an incomplete frame, it is not there yet.
        frame = previous;
        continue;
      }
      if (!plausible_pointer(r.code)) return WalkError::kCode;
      uint64_t instr = load<uint64_t>(b + f.instr);
      uint64_t first = r.code + l.code.code_adaptive;
      r.offset = (instr >= first && instr - first < (1u << 26)) ? static_cast<int32_t>(instr - first) : -1;
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
  for (size_t off = 0; out.size() < kMaxDepth;) {
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
    std::vector<uint64_t> back(out.size(), 0);
    std::vector<target::Memory::Request> reads;
    for (size_t i = 0; i < out.size(); ++i) {
      uint64_t fo = load<uint64_t>(parked_buf_.data() + (out[i].address - entry) + l.frame.frame_obj);
      if (plausible_pointer(fo)) reads.push_back({fo + l.frame_object_f_frame, &back[i], 8, false});
    }
    memory_.read_batch(reads);
    for (size_t i = out.size(); i-- > 0;)
      if (back[i] == out[i].address) {
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

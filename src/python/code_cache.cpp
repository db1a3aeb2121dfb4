// Code objects resolved once (names, file, line table) and cached by address. An address can be
// freed and reused by another code object, so each entry keeps a fingerprint of the code object's
// immutable fields; validate() re-reads the fingerprints of a tick's code objects in one batched
// read and drops entries that changed.
#include <algorithm>
#include <cstring>

#include "python/raw.h"
#include "swprof/python.h"

namespace swprof::python {

namespace {

constexpr uint32_t kCoVarargs = 0x4, kCoVarkeywords = 0x8;
constexpr size_t kMaxIdentityLocals = 64;


}  // namespace

CodeCache::CodeCache(const target::Memory& memory, const Layout& layout)
    : memory_(memory), layout_(layout), objects_(memory, layout) {}

std::pair<uint32_t, uint32_t> CodeCache::fingerprint_span() const {
  const auto& c = layout_.code;
  uint32_t lo = c.firstlineno, hi = c.firstlineno + 4;
  for (uint32_t off : {c.filename, c.name, c.qualname, c.linetable}) {
    if (off == kAbsent) continue;
    lo = std::min(lo, off);
    hi = std::max(hi, off + 8);
  }
  return {lo, hi};
}

bool CodeCache::resolve(uint64_t address, CodeInfo& info) {
  const auto& c = layout_.code;
  uint8_t buf[256];
  uint32_t needed = 0;
  for (uint32_t off : {c.argcount, c.kwonlyargcount, c.flags, c.firstlineno, c.filename, c.name, c.qualname,
                       c.linetable, c.nlocalsplus, c.nlocals, c.framesize, c.stacksize, c.firsttraceable})
    if (off != kAbsent) needed = std::max(needed, off + 8);
  if (needed > sizeof buf || !memory_.read(address, buf, needed)) return false;
  uint64_t type = load<uint64_t>(buf + 8);
  if (code_type_ ? type != code_type_ : objects_.type_name(type) != "code") return false;
  code_type_ = type;

  info = CodeInfo{};
  info.address = address;
  uint64_t name_ptr = load<uint64_t>(buf + (c.qualname != kAbsent ? c.qualname : c.name));
  // Over-long names (generated code can make them) are clipped with a mark: the samples count.
  if (!objects_.read_str(name_ptr, info.qualname, 1024, /*clip=*/true)) return false;
  if (!objects_.read_str(load<uint64_t>(buf + c.filename), info.filename, 4096, /*clip=*/true)) return false;
  info.first_line = load<int32_t>(buf + c.firstlineno);
  int32_t argcount = load<int32_t>(buf + c.argcount);
  int32_t kwonly = load<int32_t>(buf + c.kwonlyargcount);
  uint32_t flags = load<uint32_t>(buf + c.flags);
  if (argcount < 0 || kwonly < 0 || argcount + kwonly > 4096) return false;
  info.arg_count = static_cast<uint16_t>(argcount + kwonly + ((flags & kCoVarargs) ? 1 : 0) +
                                         ((flags & kCoVarkeywords) ? 1 : 0));
  int32_t nlocals = load<int32_t>(buf + (c.nlocalsplus != kAbsent ? c.nlocalsplus : c.nlocals));
  if (nlocals < 0 || nlocals > 65535) return false;
  info.local_count = static_cast<uint16_t>(std::min<int32_t>(nlocals, kMaxIdentityLocals));
  if (c.framesize != kAbsent) {
    info.frame_words = load<uint32_t>(buf + c.framesize);
  } else if (c.stacksize != kAbsent) {
    info.frame_words = static_cast<uint32_t>(nlocals) + load<uint32_t>(buf + c.stacksize) + layout_.frame_specials;
  }
  if (c.firsttraceable != kAbsent) info.first_traceable = load<int32_t>(buf + c.firsttraceable) * 2;

  std::string table;
  if (!objects_.read_bytes(load<uint64_t>(buf + c.linetable), table, 1 << 20)) return false;
  info.lines = decode_line_table(layout_.line_table, table, info.first_line);

  auto [lo, hi] = fingerprint_span();
  info.fingerprint.assign(reinterpret_cast<const char*>(buf + lo), hi - lo);
  return true;
}

bool CodeCache::read_bytecode(uint64_t address, std::string& out) {
  const auto& c = layout_.code;
  if (c.code_adaptive == kAbsent) {
    uint64_t co_code = 0;
    return memory_.read_value(address + c.code, co_code) && objects_.read_bytes(co_code, out, 1 << 20);
  }
  int64_t units = 0;  // Py_SIZE of a code object: its number of code units
  if (!memory_.read_value(address + 16, units) || units <= 0 || units > (1 << 19)) return false;
  out.resize(static_cast<size_t>(units) * 2);
  return memory_.read(address + c.code_adaptive, out.data(), out.size());
}

CodeInfo* CodeCache::get(uint64_t address, uint64_t tick) {
  if (!address) return nullptr;
  auto it = entries_.find(address);
  if (it != entries_.end()) return &it->second;
  CodeInfo info;
  if (!resolve(address, info)) return nullptr;
  info.last_validated_tick = tick;
  return &entries_.emplace(address, std::move(info)).first->second;
}

std::span<target::Memory::Request> CodeCache::fingerprint_reads(uint64_t tick) {
  constexpr size_t kMaxAhead = 32;
  auto [lo, hi] = fingerprint_span();
  ahead_.clear();
  ahead_tick_ = tick;
  for (uint64_t a : validated_) {
    if (ahead_.size() >= kMaxAhead) break;
    if (ahead_buffers_.size() <= ahead_.size()) ahead_buffers_.emplace_back();
    std::string& b = ahead_buffers_[ahead_.size()];
    b.resize(hi - lo);
    ahead_.push_back({a + lo, b.data(), hi - lo, false});
  }
  return ahead_;
}

void CodeCache::validate(std::span<const uint64_t> addresses, uint64_t tick) {
  const auto span = fingerprint_span();
  const size_t lo = span.first, hi = span.second;  // (not a structured binding: clang 14 cannot capture one)
  if (ahead_tick_ != tick) ahead_.clear();  // made for another tick
  requests_.clear();
  size_t n = 0;
  for (uint64_t a : addresses) {
    auto it = entries_.find(a);
    if (it == entries_.end() || it->second.last_validated_tick == tick) continue;
    it->second.last_validated_tick = tick;  // also dedupes repeated addresses in one stack
    // Kept until a tick validates again: a spinning frame's code is validated when its line
    // moves, not every tick, and is read ahead in between (not alone, in a system call of its own).
    if (validated_tick_ != tick) {
      validated_.clear();
      validated_tick_ = tick;
    }
    validated_.push_back(a);
    // Read ahead this tick, after the frames that hold it (see fingerprint_reads).
    auto ahead = std::find_if(ahead_.begin(), ahead_.end(),
                              [&](const target::Memory::Request& r) { return r.ok && r.address == a + lo; });
    if (ahead != ahead_.end()) {
      if (it->second.fingerprint.size() != hi - lo || std::memcmp(ahead->out, it->second.fingerprint.data(), hi - lo) != 0)
        entries_.erase(it);
      continue;
    }
    if (buffers_.size() <= n) buffers_.emplace_back();
    buffers_[n].resize(hi - lo);
    requests_.push_back({a + lo, buffers_[n].data(), hi - lo, false});
    ++n;
  }
  if (requests_.empty()) return;
  memory_.read_batch(requests_);
  for (size_t i = 0; i < requests_.size(); ++i) {
    uint64_t a = requests_[i].address - lo;
    auto it = entries_.find(a);
    if (it == entries_.end()) continue;
    if (!requests_[i].ok || buffers_[i] != it->second.fingerprint) entries_.erase(it);
  }
}

}  // namespace swprof::python

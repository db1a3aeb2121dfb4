// Local variables of a frame, from outside (see locals.h). Where the slots are: ≤3.10 a frame
// object's f_localsplus holds co_varnames' values, then a cell per co_cellvars and per
// co_freevars name; 3.11+ an interpreter frame's localsplus holds one slot per
// co_localsplusnames entry, whose kind (co_localspluskinds) says local, cell or free (a cell
// slot holds its cell once the frame's MAKE_CELL ran); 3.14+ slots are tagged stack references.
#include "live/locals.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "python/raw.h"
#include "swprof/common.h"

namespace swprof::live {

namespace {

using python::kAbsent;
using python::load;

constexpr uint32_t kCoVarargs = 0x4, kCoVarkeywords = 0x8;
constexpr size_t kStrPrefix = 64, kBytesPrefix = 32, kNameChars = 256;
constexpr size_t kObjectHead = 64;  // bytes read of an object: enough for every simple value here

// Python's repr of a str (as UTF-8) or of bytes: quotes chosen as Python chooses them, escapes
// for the backslash, the quote, control characters and (bytes) everything not ASCII.
std::string python_quoted(std::string_view text, bool bytes) {
  bool double_quote = text.find('\'') != std::string_view::npos && text.find('"') == std::string_view::npos;
  char quote = double_quote ? '"' : '\'';
  std::string out = bytes ? "b" : "";
  out += quote;
  for (unsigned char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == quote) out += fmt::format("\\{}", static_cast<char>(c));
    else if (c < 0x20 || c == 0x7f || (bytes && c > 0x7f)) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  out += quote;
  return out;
}

std::string items(std::string_view type, int64_t count, const char* unit = "item") {
  return fmt::format("<{}, {} {}{}>", type, count, unit, count == 1 ? "" : "s");
}

// Python's repr of a float: the shortest text that reads back the same, with ".0" on integers.
std::string float_repr(double v) {
  if (v != v) return "nan";
  if (v == 1.0 / 0.0) return "inf";
  if (v == -1.0 / 0.0) return "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string u128_text(unsigned __int128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v) {
    s += static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

}  // namespace

LocalsReader::LocalsReader(const target::Memory& memory, const python::Layout& layout)
    : memory_(memory), layout_(layout), objects_(memory, layout) {}

std::string LocalsReader::type_name(uint64_t type) {
  auto it = type_names_.find(type);
  if (it != type_names_.end()) return it->second;
  std::string name = objects_.type_name(type);
  if (type_names_.size() < 4096) type_names_.emplace(type, name);
  return name;
}

bool LocalsReader::tuple_strings(uint64_t tuple, std::vector<std::string>& out, size_t limit) {
  out.clear();
  int64_t size = 0;
  if (!python::plausible_pointer(tuple) || !memory_.read_value(tuple + layout_.tuple.size, size) || size < 0 ||
      static_cast<size_t>(size) > limit)
    return false;
  std::vector<uint64_t> items(static_cast<size_t>(size));
  if (size && !memory_.read(tuple + layout_.tuple.items, items.data(), items.size() * 8)) return false;
  for (uint64_t item : items) {
    std::string name;
    if (!objects_.read_str(item, name, kNameChars)) return false;
    out.push_back(std::move(name));
  }
  return true;
}

const LocalsReader::Names& LocalsReader::names_of(uint64_t code) {
  auto [it, inserted] = names_.try_emplace(code);
  Names& n = it->second;
  if (!inserted) return n;
  const auto& c = layout_.code;
  const auto& v = layout_.live;
  uint8_t buf[256];
  uint32_t needed = python::end_of_fields({c.argcount, c.kwonlyargcount, c.flags, c.nlocals, c.nlocalsplus,
                                           c.cellvars, c.freevars, v.code_varnames, v.code_localsplusnames,
                                           v.code_localspluskinds});
  if (needed > sizeof buf || !memory_.read(code, buf, needed)) return n;
  int32_t argcount = load<int32_t>(buf + c.argcount), kwonly = load<int32_t>(buf + c.kwonlyargcount);
  uint32_t flags = load<uint32_t>(buf + c.flags);
  if (argcount < 0 || kwonly < 0 || argcount + kwonly > 4096) return n;
  n.args = static_cast<size_t>(argcount + kwonly) + ((flags & kCoVarargs) ? 1 : 0) + ((flags & kCoVarkeywords) ? 1 : 0);
  if (v.code_localsplusnames != kAbsent) {
    std::string kinds;
    if (!tuple_strings(load<uint64_t>(buf + v.code_localsplusnames), n.names, kMaxLocals) ||
        !objects_.read_bytes(load<uint64_t>(buf + v.code_localspluskinds), kinds, kMaxLocals) ||
        kinds.size() != n.names.size())
      return n;
    for (unsigned char k : kinds)
      n.kinds.push_back(static_cast<uint8_t>(((k & v.kind_hidden) && v.kind_hidden ? kHidden : 0) |
                                             ((k & v.kind_cell) ? kCell : 0) | ((k & v.kind_free) ? kFree : 0) |
                                             ((k & v.kind_local) ? kLocal : 0)));
  } else {
    std::vector<std::string> cells, frees;
    if (!tuple_strings(load<uint64_t>(buf + v.code_varnames), n.names, kMaxLocals) ||
        !tuple_strings(load<uint64_t>(buf + c.cellvars), cells, kMaxLocals) ||
        !tuple_strings(load<uint64_t>(buf + c.freevars), frees, kMaxLocals))
      return n;
    n.kinds.assign(n.names.size(), kLocal);
    for (auto* group : {&cells, &frees})
      for (auto& name : *group) {
        n.names.push_back(std::move(name));
        n.kinds.push_back(group == &cells ? kCell : kFree);
      }
  }
  n.ok = true;
  return n;
}

size_t LocalsReader::slots(uint64_t code) { return std::min(names_of(code).names.size(), kMaxLocals); }

std::string LocalsReader::int_repr(const uint8_t* object, size_t size, bool as_bool) {
  int64_t ndigits;
  bool negative;
  objects_.int_size(object, ndigits, negative);
  const uint32_t at = layout_.live.long_digits;
  if (as_bool) return ndigits > 0 && at + 4 <= size && load<uint32_t>(object + at) ? "True" : "False";
  if (ndigits < 0 || ndigits > (int64_t(1) << 40)) return "<int>";
  if (ndigits > 4 || at + 4 * static_cast<size_t>(ndigits) > size)
    return fmt::format("<int of about {} digits>", ndigits * 30 * 30103 / 100000 + 1);
  unsigned __int128 value = 0;
  for (int64_t i = ndigits - 1; i >= 0; --i) value = (value << 30) | (load<uint32_t>(object + at + 4 * i) & 0x3fffffff);
  return (negative ? "-" : "") + u128_text(value);
}

std::string LocalsReader::repr(uint64_t object, std::string& type) {
  type.clear();
  uint8_t head[kObjectHead];
  size_t size = sizeof head;
  if (!python::plausible_pointer(object)) return "<unreadable>";
  // A small object may end its mapping: read less then.
  if (!memory_.read(object, head, size)) {
    size = 32;
    if (!memory_.read(object, head, size)) return "<unreadable>";
  }
  type = type_name(load<uint64_t>(head + 8));
  if (type.empty()) return "<unreadable>";
  if (type == "NoneType") return "None";
  if (type == "bool" || type == "int") return int_repr(head, size, type == "bool");
  if (type == "float" && layout_.live.float_value + 8 <= size) {
    double v;
    std::memcpy(&v, head + layout_.live.float_value, 8);
    return float_repr(v);
  }
  if (type == "str") {
    std::string text;
    if (!objects_.read_str(object, text, kStrPrefix, /*clip=*/true)) return "<str, unreadable>";
    // A cut str ends with read_str's "…[+N chars]": shown as Python's repr and the whole length.
    int64_t length = layout_.unicode.length + 8 <= size ? load<int64_t>(head + layout_.unicode.length) : 0;
    if (size_t cut = text.rfind("…[+"); static_cast<size_t>(length) > kStrPrefix && cut != std::string::npos)
      text.resize(cut);
    std::string shown = python_quoted(text, false);
    return static_cast<size_t>(length) > kStrPrefix ? fmt::format("{}... ({} characters)", shown, length) : shown;
  }
  auto var_size = [&](uint32_t offset) { return offset + 8 <= size ? load<int64_t>(head + offset) : int64_t(-1); };
  if (type == "bytes") {
    int64_t length = var_size(layout_.bytes.size);
    if (length < 0) return "<bytes, unreadable>";
    std::string data(static_cast<size_t>(std::min<int64_t>(length, kBytesPrefix)), '\0');
    if (!data.empty() && !memory_.read(object + layout_.bytes.data, data.data(), data.size())) return "<bytes, unreadable>";
    std::string shown = python_quoted(data, true);
    return length > static_cast<int64_t>(kBytesPrefix) ? fmt::format("{}... ({} bytes)", shown, length) : shown;
  }
  int64_t count = -1;
  const char* unit = "item";
  if (type == "list") count = var_size(layout_.asyncio.list_size);
  else if (type == "tuple") count = var_size(layout_.tuple.size);
  else if (type == "dict") count = var_size(layout_.dict.used);
  else if (type == "set" || type == "frozenset") count = var_size(layout_.live.set_used);
  else if (type == "bytearray") count = var_size(16), unit = "byte";
  if (count >= 0) return items(type, count, unit);
  return fmt::format("<{}>", type);
}

void LocalsReader::read(uint64_t frame_address, uint64_t code, const uint64_t* slot_values, size_t slot_count,
                        Frame& frame) {
  const Names& n = names_of(code);
  if (!n.ok) {
    frame.locals_unreadable = true;
    return;
  }
  size_t count = std::min(n.names.size(), kMaxLocals);
  uint64_t values[kMaxLocals] = {};
  if (slot_values && slot_count >= count) {
    std::copy(slot_values, slot_values + count, values);
  } else if (count && !memory_.read(frame_address + layout_.frame.localsplus, values, count * 8)) {
    frame.locals_unreadable = true;
    return;
  }
  if (layout_.tagged_code_ref)  // 3.14+: the low bits tag a stack reference (NULL is tagged too)
    for (size_t i = 0; i < count; ++i) values[i] &= ~uint64_t(3);
  for (size_t i = 0; i < count; ++i) {
    uint64_t value = values[i];
    if (!value || (n.kinds[i] & kHidden)) continue;
    const std::string& name = n.names[i];
    // ≤3.10: an argument captured by an inner function is moved into its cell; its name comes
    // twice, once unbound. Show each name once.
    if (std::any_of(frame.locals.begin(), frame.locals.end(), [&](const Local& l) { return l.name == name; }))
      continue;
    Local local;
    local.name = name;
    // (≤3.10 keeps an argument that is a cell under its cell's name too, after the locals.)
    auto args_end = n.names.begin() + static_cast<std::ptrdiff_t>(std::min(n.args, n.names.size()));
    bool arg = i < n.args || ((n.kinds[i] & kCell) && std::find(n.names.begin(), args_end, name) != args_end);
    local.kind = arg ? "arg" : (n.kinds[i] & kFree) ? "free" : (n.kinds[i] & kCell) ? "cell" : "local";
    if (n.kinds[i] & (kCell | kFree)) {
      // The slot holds a cell (once MAKE_CELL / COPY_FREE_VARS ran): show what it holds.
      uint64_t type = 0, content = 0;
      if (memory_.read_value(value + 8, type) && type_name(type) == "cell") {
        if (!memory_.read_value(value + layout_.live.cell_ref, content) || !content) continue;  // empty: unbound
        value = content;
      }
    }
    if (frame.locals.size() >= kMaxShown) {
      ++frame.locals_omitted;
      continue;
    }
    local.value = repr(value, local.type);
    frame.locals.push_back(std::move(local));
  }
}

}  // namespace swprof::live

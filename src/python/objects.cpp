// Reading a few kinds of Python objects out of the target: str, bytes, small int, dict, and an
// instance attribute. Each read checks the object's type (by tp_name, remembered per type address)
// and bounds every size before trusting it.
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "python/raw.h"
#include "swprof/common.h"
#include "swprof/python.h"

namespace swprof::python {

namespace {

constexpr uint32_t kObTypeOffset = 8;
constexpr uint64_t kTpFlagsManagedDict = 1u << 4;   // 3.11+
constexpr uint64_t kTpFlagsInlineValues = 1u << 2;  // 3.13+


}  // namespace

uint64_t ObjectReader::type_of(uint64_t object) const {
  uint64_t type = 0;
  if (!memory_.read_value(object + kObTypeOffset, type)) return 0;
  return type;
}

std::string ObjectReader::type_name(uint64_t type_address) const {
  uint64_t name_ptr = 0;
  if (!type_address || !memory_.read_value(type_address + layout_.type.name, name_ptr)) return {};
  char buf[64] = {};
  if (!memory_.read(name_ptr, buf, sizeof buf - 1)) {
    // The name may sit near the end of a mapping: retry shorter.
    if (!memory_.read(name_ptr, buf, 16)) return {};
    buf[16] = 0;
  }
  return std::string(buf, strnlen(buf, sizeof buf - 1));
}

bool ObjectReader::is_type(uint64_t object, std::string_view name, uint64_t& cache) const {
  uint64_t type = type_of(object);
  if (!type) return false;
  if (cache) return type == cache;
  if (type_name(type) != name) return false;
  cache = type;
  return true;
}

bool ObjectReader::read_str(uint64_t address, std::string& out, size_t max_chars, bool clip) const {
  out.clear();
  const auto& u = layout_.unicode;
  uint8_t header[128];
  size_t header_size = std::max(u.compact_size, u.ascii_size) + 8;
  if (header_size > sizeof header || !memory_.read(address, header, header_size)) return false;
  if (decode_str(address, {header, header_size}, out, max_chars)) return true;
  uint64_t type = load<uint64_t>(header + kObTypeOffset);
  if (str_type_ ? type != str_type_ : !is_type(address, "str", str_type_)) return false;
  int64_t length = load<int64_t>(header + u.length);
  uint32_t state = load<uint32_t>(header + u.state);
  unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
  if (length < 0 || (static_cast<size_t>(length) > max_chars && !clip)) return false;
  if (kind != 1 && kind != 2 && kind != 4) return false;
  size_t chars = std::min(static_cast<size_t>(length), max_chars);
  if (ascii && kind != 1) return false;
  uint64_t data;
  if (compact) data = address + (ascii ? u.ascii_size : u.compact_size);
  else data = load<uint64_t>(header + u.compact_size);  // legacy string: PyUnicodeObject.data
  size_t bytes = chars * kind;
  if (bytes == 0) return true;
  std::array<uint8_t, 16384> buf;
  if (bytes > buf.size() || !memory_.read(data, buf.data(), bytes)) return false;
  out.reserve(bytes);
  for (size_t i = 0; i < chars; ++i) {
    uint32_t cp = kind == 1 ? buf[i] : kind == 2 ? load<uint16_t>(&buf[i * 2]) : load<uint32_t>(&buf[i * 4]);
    if (ascii && cp >= 0x80) return false;
    // Python decodes a file name's undecodable bytes to U+DC80..U+DCFF (surrogateescape, as
    // os.fsdecode does): they become those bytes again, so the file's real name round-trips.
    if (cp >= 0xDC80 && cp <= 0xDCFF) out.push_back(static_cast<char>(cp - 0xDC00));
    else append_utf8(out, cp);
  }
  // A name too long to keep stays recognisable and says so, rather than losing its samples.
  if (chars < static_cast<size_t>(length)) out += fmt::format("…[+{} chars]", static_cast<size_t>(length) - chars);
  return true;
}

bool ObjectReader::decode_str(uint64_t address, std::span<const uint8_t> bytes, std::string& out,
                              size_t max_chars) const {
  out.clear();
  const auto& u = layout_.unicode;
  if (bytes.size() < u.ascii_size) return false;
  uint64_t type = load<uint64_t>(bytes.data() + kObTypeOffset);
  if (str_type_ ? type != str_type_ : !is_type(address, "str", str_type_)) return false;
  int64_t length = load<int64_t>(bytes.data() + u.length);
  uint32_t state = load<uint32_t>(bytes.data() + u.state);
  unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
  if (length < 0 || static_cast<size_t>(length) > max_chars || !compact || (kind != 1 && kind != 2 && kind != 4) ||
      (ascii && kind != 1))
    return false;
  size_t start = ascii ? u.ascii_size : u.compact_size;
  if (start + static_cast<size_t>(length) * kind > bytes.size()) return false;
  const uint8_t* data = bytes.data() + start;
  for (size_t i = 0; i < static_cast<size_t>(length); ++i) {
    uint32_t cp = kind == 1 ? data[i] : kind == 2 ? load<uint16_t>(data + i * 2) : load<uint32_t>(data + i * 4);
    if (ascii && cp >= 0x80) return false;
    append_utf8(out, cp);
  }
  return true;
}

bool ObjectReader::read_bytes(uint64_t address, std::string& out, size_t max_size) const {
  out.clear();
  uint8_t header[48];
  if (!memory_.read(address, header, layout_.bytes.data)) return false;
  uint64_t type = load<uint64_t>(header + kObTypeOffset);
  if (bytes_type_ ? type != bytes_type_ : !is_type(address, "bytes", bytes_type_)) return false;
  int64_t size = load<int64_t>(header + layout_.bytes.size);
  if (size < 0 || static_cast<size_t>(size) > max_size) return false;
  out.resize(static_cast<size_t>(size));
  return size == 0 || memory_.read(address + layout_.bytes.data, out.data(), out.size());
}

bool ObjectReader::read_int(uint64_t address, int64_t& out) const {
  uint8_t buf[24 + 4 * 3];
  size_t size = sizeof buf;
  if (!memory_.read(address, buf, size)) {
    size = 28;  // a one-digit int may end the block
    if (!memory_.read(address, buf, size)) return false;
  }
  return decode_int(address, {buf, size}, out);
}

bool ObjectReader::decode_int(uint64_t address, std::span<const uint8_t> bytes, int64_t& out) const {
  if (bytes.size() < 24) return false;
  const uint8_t* buf = bytes.data();
  uint64_t type = load<uint64_t>(buf + kObTypeOffset);
  if (int_type_ ? type != int_type_ : !is_type(address, "int", int_type_)) return false;
  int64_t ndigits;
  bool negative;
  if (layout_.version.minor >= 12) {
    uint64_t tag = load<uint64_t>(buf + 16);
    ndigits = static_cast<int64_t>(tag >> 3);
    negative = (tag & 3) == 2;
  } else {
    int64_t size = load<int64_t>(buf + 16);
    negative = size < 0;
    ndigits = negative ? -size : size;
  }
  if (ndigits > 3 || 24 + 4 * static_cast<size_t>(ndigits) > bytes.size()) return false;
  uint64_t value = 0;
  for (int64_t i = ndigits - 1; i >= 0; --i) value = (value << 30) | load<uint32_t>(buf + 24 + 4 * i);
  out = negative ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
  return true;
}

// Dict layouts: 3.8–3.10 keys {refcnt, size, lookup, usable, nentries, indices}; 3.11+
// {refcnt, log2_size, log2_index_bytes, kind, version, usable, nentries, indices}. Entries follow
// the index table: (hash, key, value) for general keys, (key, value) for unicode/split keys.
bool ObjectReader::dict_items(uint64_t dict, std::vector<std::pair<uint64_t, uint64_t>>& out,
                              size_t max_items) const {
  out.clear();
  uint8_t d[48];
  if (!memory_.read(dict, d, sizeof d)) return false;
  if (dict_type_ ? load<uint64_t>(d + kObTypeOffset) != dict_type_ : !is_type(dict, "dict", dict_type_))
    return false;
  uint64_t keys = load<uint64_t>(d + layout_.dict.keys);
  uint64_t values = load<uint64_t>(d + layout_.dict.values);
  uint8_t k[40];
  if (!memory_.read(keys, k, sizeof k)) return false;
  uint64_t entries_at, nentries;
  size_t entry_size;
  bool general;
  if (layout_.version.minor <= 10) {
    uint64_t size = load<uint64_t>(k + 8);
    nentries = load<uint64_t>(k + 32);
    if (size == 0 || size > (1u << 20) || (size & (size - 1))) return false;
    size_t index_bytes = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
    entries_at = keys + 40 + size * index_bytes;
    entry_size = 24;
    general = true;
  } else {
    uint8_t log2_size = k[8], log2_index_bytes = k[9], kind = k[10];
    nentries = load<uint64_t>(k + 24);
    if (log2_size > 20 || log2_index_bytes > 23) return false;
    entries_at = keys + 32 + (uint64_t(1) << log2_index_bytes);
    general = kind == 0;
    entry_size = general ? 24 : 16;
  }
  if (nentries > max_items) return false;
  std::vector<uint8_t> raw(nentries * entry_size);
  if (nentries && !memory_.read(entries_at, raw.data(), raw.size())) return false;
  std::vector<uint64_t> split_values;
  if (values) {
    split_values.resize(nentries);
    // 3.13+ PyDictValues starts with four bytes of bookkeeping before the array.
    uint64_t at = values + (layout_.version.minor >= 13 ? 8 : 0);
    if (nentries && !memory_.read(at, split_values.data(), nentries * 8)) return false;
  }
  for (size_t i = 0; i < nentries; ++i) {
    const uint8_t* e = raw.data() + i * entry_size;
    uint64_t key = load<uint64_t>(e + (general ? 8 : 0));
    uint64_t value = values ? split_values[i] : load<uint64_t>(e + (general ? 16 : 8));
    if (key && value) out.emplace_back(key, value);
  }
  return true;
}

uint64_t ObjectReader::dict_get(uint64_t dict, std::string_view key) const {
  std::vector<std::pair<uint64_t, uint64_t>> items;
  if (!dict_items(dict, items) || items.empty()) return 0;
  // Compare every key at once: one batched read of each key's header and first characters, so a
  // lookup in sys.modules costs a few system calls, not one per module.
  const auto& u = layout_.unicode;
  size_t span = u.ascii_size + key.size();
  std::vector<uint8_t> heads(items.size() * span);
  std::vector<target::Memory::Request> requests(items.size());
  for (size_t i = 0; i < items.size(); ++i) requests[i] = {items[i].first, heads.data() + i * span, span, false};
  memory_.read_batch(requests);
  for (size_t i = 0; i < items.size(); ++i) {
    if (!requests[i].ok) continue;
    const uint8_t* h = heads.data() + i * span;
    uint32_t state = load<uint32_t>(h + u.state);
    bool compact_ascii = ((state >> 5) & 1) && ((state >> 6) & 1);
    if (load<int64_t>(h + u.length) != static_cast<int64_t>(key.size())) continue;
    if (compact_ascii) {
      if (std::memcmp(h + u.ascii_size, key.data(), key.size()) == 0 && is_type(items[i].first, "str", str_type_))
        return items[i].second;
    } else {
      std::string name;
      if (read_str(items[i].first, name, 256) && name == key) return items[i].second;
    }
  }
  return 0;
}

uint64_t ObjectReader::instance_attr(uint64_t object, std::string_view name) const {
  uint64_t type = type_of(object);
  if (!type) return 0;
  uint64_t flags = 0;
  int64_t dictoffset = 0, basicsize = 0;
  if (!memory_.read_value(type + layout_.type.flags, flags) ||
      !memory_.read_value(type + layout_.type.dictoffset, dictoffset) ||
      !memory_.read_value(type + layout_.type.basicsize, basicsize))
    return 0;
  int minor = layout_.version.minor;
  uint64_t dict = 0;
  if (minor >= 11 && (flags & kTpFlagsManagedDict)) {
    // Values stored apart from a dict: keys shared through the heap type's cached keys.
    uint64_t values = 0;
    if (minor == 11) {
      memory_.read_value(object - 32, values);
      memory_.read_value(object - 24, dict);
    } else if (minor == 12) {
      uint64_t dict_or_values = 0;
      memory_.read_value(object - 24, dict_or_values);
      // 3.12 stores the values pointer minus one, so the low bit tags it.
      if (dict_or_values & 1) values = dict_or_values + 1;
      else dict = dict_or_values;
    } else {
      memory_.read_value(object - 24, dict);
      if (!dict && (flags & kTpFlagsInlineValues) && basicsize > 0 && basicsize < 4096) {
        uint8_t valid = 0;
        uint64_t inline_values = object + static_cast<uint64_t>(basicsize);
        if (memory_.read_value(inline_values + 3, valid) && valid) values = inline_values;
      }
    }
    if (!dict && values) {
      uint64_t keys = 0;
      if (layout_.type.heap_cached_keys == kAbsent ||
          !memory_.read_value(type + layout_.type.heap_cached_keys, keys) || !keys)
        return 0;
      uint8_t k[40];
      if (!memory_.read(keys, k, sizeof k)) return 0;
      uint8_t log2_index_bytes = k[9];
      uint64_t nentries = load<uint64_t>(k + 24);
      if (log2_index_bytes > 23 || nentries > 1024) return 0;
      uint64_t entries_at = keys + 32 + (uint64_t(1) << log2_index_bytes);
      std::vector<uint64_t> entries(nentries * 2), vals(nentries);
      uint64_t values_at = values + (minor >= 13 ? 8 : 0);
      if (nentries == 0 || !memory_.read(entries_at, entries.data(), entries.size() * 8) ||
          !memory_.read(values_at, vals.data(), vals.size() * 8))
        return 0;
      std::string key;
      for (size_t i = 0; i < nentries; ++i)
        if (vals[i] && read_str(entries[2 * i], key, 256) && key == name) return vals[i];
      return 0;
    }
  } else if (dictoffset > 0 && dictoffset < 4096) {
    memory_.read_value(object + static_cast<uint64_t>(dictoffset), dict);
  }
  return dict ? dict_get(dict, name) : 0;
}

uint64_t ObjectReader::module_global(uint64_t runtime, std::string_view module, std::string_view name) const {
  uint64_t interp = 0, modules = 0, module_dict = 0;
  if (!memory_.read_value(runtime + layout_.runtime.interpreters_head, interp) ||
      !memory_.read_value(interp + layout_.interp.modules, modules) || !modules)
    return 0;
  uint64_t found = dict_get(modules, module);
  if (!found || !memory_.read_value(found + layout_.module_dict, module_dict) || !module_dict) return 0;
  return dict_get(module_dict, name);
}

}  // namespace swprof::python

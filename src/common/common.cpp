#include "swprof/common.h"

#include <fmt/format.h>
#include <time.h>

#include <cctype>
#include <charconv>
#include <cmath>

namespace swprof {

std::optional<int64_t> parse_duration_us(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.'))
    ++pos;
  std::string_view number = text.substr(0, pos);
  std::string_view unit = text.substr(pos);
  if (number.empty() || number == "." || number.find('.') != number.rfind('.')) return std::nullopt;
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(std::string(number), &used);
    if (used != number.size()) return std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
  double scale;
  if (unit.empty() || unit == "s") scale = 1e6;
  else if (unit == "us" || unit == "µs") scale = 1;
  else if (unit == "ms") scale = 1e3;
  else if (unit == "m" || unit == "min") scale = 60e6;
  else if (unit == "h") scale = 3600e6;
  else return std::nullopt;
  double us = value * scale;
  if (!std::isfinite(us) || us < 0 || us > 9.0e15) return std::nullopt;
  return static_cast<int64_t>(std::llround(us));
}

std::string format_duration_us(int64_t us) {
  double v = static_cast<double>(us);
  if (us < 1000) return fmt::format("{}µs", us);
  if (us < 1000000) return fmt::format("{:.2f}ms", v / 1e3);
  if (us < 600000000) return fmt::format("{:.2f}s", v / 1e6);
  return fmt::format("{:.1f}min", v / 60e6);
}

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < 1024 * 1024) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  if (bytes < 1024ull * 1024 * 1024) return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024));
  return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024 * 1024));
}

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t monotonic_us() { return monotonic_ns() / 1000; }

void append_utf8(std::string& out, uint32_t cp) {
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Decodes one UTF-8 sequence at text[i]; returns its length, or 0 when invalid.
size_t decode_utf8(std::string_view text, size_t i, uint32_t& cp) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = byte(i);
  size_t len;
  uint32_t min;
  if (c < 0x80) { cp = c; return 1; }
  if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
  else return 0;
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool is_control(uint32_t cp) { return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0); }

// Characters a terminal or a text viewer acts on: bidirectional marks, embeddings, overrides and
// isolates reorder what follows; the line and paragraph separators break lines.
bool is_layout_control(uint32_t cp) {
  return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

// Walks text as UTF-8: on_char(code point, its bytes) for each valid character, on_byte(byte) for
// each byte that does not start one.
template <class OnChar, class OnByte>
void each_utf8(std::string_view text, OnChar on_char, OnByte on_byte) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t len = decode_utf8(text, i, cp);
    if (len == 0) {
      on_byte(static_cast<unsigned char>(text[i]));
      ++i;
    } else {
      on_char(cp, text.substr(i, len));
      i += len;
    }
  }
}

}  // namespace

std::string sanitize_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  each_utf8(
      text,
      [&](uint32_t cp, std::string_view bytes) {
        if (is_control(cp)) append_utf8(out, 0xFFFD);
        else out.append(bytes);
      },
      [&](unsigned char) { append_utf8(out, 0xFFFD); });
  return out;
}

std::string xml_escape(std::string_view text) {
  std::string clean = sanitize_text(text);
  std::string out;
  out.reserve(clean.size() + 8);
  for (char c : clean) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  bool valid = true;
  each_utf8(text, [](uint32_t, std::string_view) {}, [&](unsigned char) { valid = false; });
  return valid;
}

std::string terminal_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  each_utf8(
      text,
      [&](uint32_t cp, std::string_view bytes) {
        if (cp < 0x20 || cp == 0x7F) out += fmt::format("\\x{:02x}", cp);
        else if (is_control(cp) || is_layout_control(cp)) out += fmt::format("\\u{:04x}", cp);
        else out.append(bytes);
      },
      [&](unsigned char byte) { out += fmt::format("\\x{:02x}", byte); });
  return out;
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  each_utf8(
      text,
      [&](uint32_t cp, std::string_view bytes) {
        if (cp == '"') out += "\\\"";
        else if (cp == '\\') out += "\\\\";
        // U+2028/U+2029 are valid JSON but end a JavaScript string literal that embeds it.
        else if (is_control(cp) || cp == 0x2028 || cp == 0x2029) out += fmt::format("\\u{:04x}", cp);
        else out.append(bytes);
      },
      [&](unsigned char) { append_utf8(out, 0xFFFD); });
  return out;
}

std::string base64(std::string_view bytes) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 2]);
    out += kDigits[(n >> 18) & 63];
    out += kDigits[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kDigits[n & 63] : '=';
  }
  return out;
}

std::string json_quoted(std::string_view text) { return "\"" + json_escape(text) + "\""; }

std::string json_text(std::string_view key, std::string_view value) {
  std::string out = fmt::format("\"{}\": \"{}\"", key, json_escape(value));
  if (!is_valid_utf8(value)) out += fmt::format(", \"{}_base64\": \"{}\"", key, base64(value));
  return out;
}

std::string clip_text(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return fmt::format("{}…[+{} bytes]", text.substr(0, cut), text.size() - cut);
}

}  // namespace swprof

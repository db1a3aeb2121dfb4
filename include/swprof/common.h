// Small shared pieces: the user-facing error type, durations, text sanitising and escaping.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace swprof {

// An error the user can act on: printed as one line "swprof: <message>", exit code `exit_code`.
class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message, int exit_code = 1)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// "500us", "5ms", "0.01s", "2m", "1h"; a bare number means seconds. nullopt when malformed.
std::optional<int64_t> parse_duration_us(std::string_view text);

// 1234 -> "1.23ms", 2500000 -> "2.50s": compact, for summaries and status lines.
std::string format_duration_us(int64_t us);

// Bytes as "12.3 KiB".
std::string format_bytes(uint64_t bytes);

// Monotonic clock in microseconds.
int64_t monotonic_us();
int64_t monotonic_ns();

// Valid UTF-8 with no control characters: invalid sequences and C0/C1 controls become U+FFFD.
std::string sanitize_text(std::string_view text);

// A command line from its arguments, joined by spaces; with `max_chars`, cut after the argument
// that passes it, with " ..." (any range of strings: argv, a protobuf repeated field).
template <class Args>
std::string join_arguments(const Args& args, size_t max_chars = 0) {
  std::string out;
  for (const auto& a : args) {
    if (max_chars && out.size() > max_chars) return out + " ...";
    out += (out.empty() ? "" : " ") + std::string(a);
  }
  return out;
}

// A callable borrowed, not owned (C++26's std::function_ref): calling through it allocates
// nothing, where a std::function holding a lambda with more than two captures does (the walker
// makes these for every stack). Bound to a named callable only, which must outlive it.
template <class Signature>
class FunctionRef;
template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
  FunctionRef(F& f)  // NOLINT(google-explicit-constructor): stands where a std::function did
      : callable_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* c, Args... args) -> R { return (*static_cast<F*>(c))(std::forward<Args>(args)...); }) {}
  R operator()(Args... args) const { return call_(callable_, std::forward<Args>(args)...); }

 private:
  void* callable_;
  R (*call_)(void*, Args...);
};

// For a terminal: valid UTF-8 is kept, and every byte or character that could move the cursor,
// change colors, retitle the window, forge a line or reorder text (C0 and C1 controls, DEL,
// bidirectional overrides and isolates, line/paragraph separators) and every byte that is not
// valid UTF-8 becomes a visible escape: "\x1b", "\xff", "\u202e". A backslash is kept as is.
std::string terminal_text(std::string_view text);

// Whether text is valid UTF-8 (no overlongs, no surrogates).
bool is_valid_utf8(std::string_view text);

// Escaping for the output formats.
std::string xml_escape(std::string_view text);  // sanitises first (U+FFFD)
// JSON string contents without the quotes: control characters escaped (\u001b, lossless), and
// U+2028/U+2029 too (JavaScript); bytes that are not valid UTF-8 become U+FFFD, so the result is
// valid JSON for every reader (see json_text for keeping such bytes).
std::string json_escape(std::string_view text);
std::string json_quoted(std::string_view text);  // json_escape with the surrounding quotes
// `"key": "value"`, and when value is not valid UTF-8 also `, "key_base64": "..."` with its exact
// bytes, so JSON output stays valid for every reader and loses nothing.
std::string json_text(std::string_view key, std::string_view value);
std::string base64(std::string_view bytes);

// `text` cut to at most `max_bytes` at a character boundary, with a visible mark saying how much
// was left out: "name…[+1234 bytes]". Unchanged when it fits.
std::string clip_text(std::string_view text, size_t max_bytes);

// Latin-1 (UCS-1), UCS-2 or UCS-4 code units to UTF-8; code points that are not valid scalar
// values (lone surrogates, > 0x10FFFF) become U+FFFD.
void append_utf8(std::string& out, uint32_t code_point);

}  // namespace swprof

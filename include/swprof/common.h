// Small shared pieces: the user-facing error type, durations, text sanitising and escaping.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

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

// Escaping for the output formats. Both sanitise first.
std::string xml_escape(std::string_view text);
std::string json_escape(std::string_view text);  // without the surrounding quotes
std::string json_quoted(std::string_view text);  // with them

// Latin-1 (UCS-1), UCS-2 or UCS-4 code units to UTF-8; code points that are not valid scalar
// values (lone surrogates, > 0x10FFFF) become U+FFFD.
void append_utf8(std::string& out, uint32_t code_point);

}  // namespace swprof

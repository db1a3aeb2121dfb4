#include <catch2/catch.hpp>

#include "swprof/common.h"

using namespace swprof;

TEST_CASE("durations accept us, ms, s, m, h and bare seconds", "[common]") {
  CHECK(parse_duration_us("500us") == 500);
  CHECK(parse_duration_us("5ms") == 5000);
  CHECK(parse_duration_us("0.01s") == 10000);
  CHECK(parse_duration_us("2") == 2000000);
  CHECK(parse_duration_us("1.5m") == 90000000);
  CHECK(parse_duration_us("1h") == 3600000000LL);
  CHECK_FALSE(parse_duration_us(""));
  CHECK_FALSE(parse_duration_us("ms"));
  CHECK_FALSE(parse_duration_us("10 ms"));
  CHECK_FALSE(parse_duration_us("-5ms"));
  CHECK_FALSE(parse_duration_us("1.2.3s"));
  CHECK_FALSE(parse_duration_us("5parsecs"));
}

TEST_CASE("text is made valid UTF-8 without control characters", "[common]") {
  CHECK(sanitize_text("plain") == "plain");
  CHECK(sanitize_text("функция_💥") == "функция_💥");
  CHECK(sanitize_text("a\x01z") == "a\xEF\xBF\xBDz");
  CHECK(sanitize_text("bad\xC3") == "bad\xEF\xBF\xBD");
  CHECK(sanitize_text("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a UTF-16 surrogate
  CHECK(sanitize_text("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");                 // overlong '/'
}

TEST_CASE("names are escaped for XML and JSON", "[common]") {
  CHECK(xml_escape("<a href=\"x\">&'") == "&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
  CHECK(xml_escape("]]>") == "]]&gt;");
  CHECK(json_escape("say \"hi\" \\ now") == "say \\\"hi\\\" \\\\ now");
  CHECK(json_escape("tab\there") == "tab\\u0009here");          // controls: escaped, not lost
  CHECK(json_escape("\x1b[2J") == "\\u001b[2J");
  CHECK(json_escape("bad\xff") == "bad\xEF\xBF\xBD");            // not UTF-8: U+FFFD
  CHECK(json_escape("\xE2\x80\xA8") == "\\u2028");                // ends a JavaScript string
}

TEST_CASE("JSON keeps bytes that are not UTF-8 beside the text, base64-encoded", "[common]") {
  CHECK(json_text("file", "/app/ok.py") == "\"file\": \"/app/ok.py\"");
  CHECK(json_text("file", "/tmp/\xff.py") == "\"file\": \"/tmp/\xEF\xBF\xBD.py\", \"file_base64\": \"L3RtcC//LnB5\"");
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64("foob") == "Zm9vYg==");
}

TEST_CASE("text for a terminal shows control characters and stray bytes as visible escapes", "[common]") {
  CHECK(terminal_text("plain функция_💥 \\") == "plain функция_💥 \\");
  CHECK(terminal_text("\x1b]0;owned\x07") == "\\x1b]0;owned\\x07");  // retitle the terminal
  CHECK(terminal_text("a\nb\rc\td\x7f") == "a\\x0ab\\x0dc\\x09d\\x7f");  // forge rows
  CHECK(terminal_text("\xC2\x9B" "31m") == "\\u009b31m");             // C1 CSI
  CHECK(terminal_text("evil\xE2\x80\xAEtxt.py") == "evil\\u202etxt.py");  // right-to-left override
  CHECK(terminal_text("\xff\xfe") == "\\xff\\xfe");
  CHECK(is_valid_utf8("функция"));
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));
}

TEST_CASE("clipped text says how much was cut and never splits a character", "[common]") {
  CHECK(clip_text("short", 10) == "short");
  CHECK(clip_text("abcdef", 3) == "abc…[+3 bytes]");
  CHECK(clip_text("aé", 2) == "a…[+2 bytes]");  // é is two bytes: not cut in half
}

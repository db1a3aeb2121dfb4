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
  CHECK(json_escape("tab\there") == "tab\xEF\xBF\xBDhere");
}

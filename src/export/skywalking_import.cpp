// swprof import --from skywalking: ThreadSnapshot JSON (protobuf's JSON mapping of SkyWalking's
// Profile.proto) into a snapshot file: one segment per traceSegmentId, one sample per record,
// signatures kept verbatim as function names; times, sequences and task ids are kept so that
// exporting an import gives the same records back.
//
// The JSON is read by a small pull parser of its own rather than protobuf's JSON mapping: an
// error then names its byte offset in one line of swprof's own (protobuf's quotes the input and
// logs on its own), nesting costs no recursion, and what is read is bounded as it is read. It
// accepts what the mapping accepts for these fields: camelCase or original field names, integers
// as numbers or strings, null for a default, unknown fields ignored.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/export.h"
#include "swprof/output_file.h"

namespace swprof::exporter {

namespace {

constexpr size_t kMaxImportBytes = 2ull << 30;
constexpr int64_t kMaxUnixMs = 253402300799999;             // 9999-12-31T23:59:59.999Z
constexpr int64_t kMaxSpanMs = int64_t(366) * 24 * 3600 * 1000;  // one import: at most a year
constexpr size_t kMaxSignatureBytes = 16 << 10;             // a name longer than this is clipped

class JsonError : public std::runtime_error {
 public:
  JsonError(size_t offset, const std::string& what) : std::runtime_error(what), offset(offset) {}
  size_t offset;
};

// A JSON pull parser over the whole text. Every method skips leading white space.
class Json {
 public:
  explicit Json(std::string_view text) : t_(text) {}

  size_t offset() const { return at_; }
  [[noreturn]] void fail(const std::string& what) const { throw JsonError(at_, what); }
  [[noreturn]] void fail_at(size_t offset, const std::string& what) const { throw JsonError(offset, what); }

  char peek() {
    while (at_ < t_.size() && (t_[at_] == ' ' || t_[at_] == '\t' || t_[at_] == '\n' || t_[at_] == '\r')) ++at_;
    return at_ < t_.size() ? t_[at_] : '\0';
  }
  bool consume(char c) {
    if (peek() != c) return false;
    ++at_;
    return true;
  }
  void expect(char c, const char* what) {
    if (!consume(c)) fail(peek() ? fmt::format("expected {}", what) : fmt::format("the text ends where {} was expected", what));
  }
  bool at_end() { return peek() == '\0'; }

  // Object members: calls member(key) with the parser at the value, which it must consume.
  template <class Member>
  void object(Member member) {
    expect('{', "an object");
    if (consume('}')) return;
    do {
      std::string key = string();
      expect(':', "':' after a key");
      member(key);
    } while (consume(','));
    expect('}', "',' or '}'");
  }
  // Array elements: calls element() with the parser at each element, which it must consume.
  template <class Element>
  void array(Element element) {
    expect('[', "an array");
    if (consume(']')) return;
    do element();
    while (consume(','));
    expect(']', "',' or ']'");
  }
  bool null() {
    if (peek() != 'n') return false;
    literal("null");
    return true;
  }

  // A JSON string as bytes (UTF-8; an escaped lone surrogate becomes U+FFFD).
  std::string string() {
    if (peek() != '"') fail("expected a string");
    ++at_;
    std::string out;
    for (;;) {
      if (at_ >= t_.size()) fail("the text ends inside a string");
      unsigned char c = static_cast<unsigned char>(t_[at_]);
      if (c == '"') {
        ++at_;
        return out;
      }
      if (c < 0x20) fail("a control character inside a string (it must be escaped)");
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++at_;
        continue;
      }
      if (++at_ >= t_.size()) fail("the text ends inside a string");
      char e = t_[at_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && t_.substr(at_, 2) == "\\u") {
            size_t mark = at_;
            at_ += 2;
            uint32_t low = hex4();
            if (low >= 0xDC00 && low <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            else at_ = mark;  // not a pair: the high surrogate alone becomes U+FFFD
          }
          append_utf8(out, cp);
          break;
        }
        default: at_ -= 1; fail("an unknown escape in a string");
      }
    }
  }

  // An integer: a number (integral, possibly written 1.7e12) or a string holding one.
  int64_t integer(const char* field) {
    peek();
    size_t start = at_;
    std::string text;
    if (peek() == '"') text = string();
    else text = std::string(number());
    int64_t v = 0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, v);
    if (ec == std::errc() && p == end) return v;
    // Integral numbers in exponent or decimal form, within what a double holds exactly.
    double d = 0;
    auto [q, ec2] = std::from_chars(text.data(), end, d);
    if (ec2 == std::errc() && q == end && std::isfinite(d) && d == std::floor(d) && std::fabs(d) <= 9007199254740992.0)
      return static_cast<int64_t>(d);
    fail_at(start, fmt::format("\"{}\" is not an integer", field));
  }

  // Any value, without recursion: containers are tracked on a stack of their kinds.
  void skip_value() {
    std::vector<char> open;
    for (;;) {
      char c = peek();
      if (c == '{' || c == '[') {
        ++at_;
        if (!consume(c == '{' ? '}' : ']')) {
          open.push_back(c);
          if (c == '{') member_key();
          continue;
        }
      } else if (c == '"') {
        string();
      } else if (c == 't') {
        literal("true");
      } else if (c == 'f') {
        literal("false");
      } else if (c == 'n') {
        literal("null");
      } else {
        number();
      }
      // A value ended: next element, or close containers.
      for (;;) {
        if (open.empty()) return;
        if (consume(',')) {
          if (open.back() == '{') member_key();
          break;
        }
        expect(open.back() == '{' ? '}' : ']', open.back() == '{' ? "',' or '}'" : "',' or ']'");
        open.pop_back();
      }
    }
  }

 private:
  void member_key() {
    string();
    expect(':', "':' after a key");
  }
  void literal(std::string_view word) {
    if (t_.substr(at_, word.size()) != word) fail("expected a value");
    at_ += word.size();
  }
  uint32_t hex4() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i, ++at_) {
      char c = at_ < t_.size() ? t_[at_] : '\0';
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail("expected four hex digits after \\u");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  }
  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  std::string_view number() {
    peek();
    size_t start = at_;
    auto digits = [&] {
      size_t from = at_;
      while (at_ < t_.size() && t_[at_] >= '0' && t_[at_] <= '9') ++at_;
      return at_ > from;
    };
    if (at_ < t_.size() && t_[at_] == '-') ++at_;
    if (at_ < t_.size() && t_[at_] == '0') ++at_;
    else if (!digits()) fail_at(start, "expected a value");
    if (at_ < t_.size() && t_[at_] == '.') {
      ++at_;
      if (!digits()) fail("expected digits after '.'");
    }
    if (at_ < t_.size() && (t_[at_] == 'e' || t_[at_] == 'E')) {
      ++at_;
      if (at_ < t_.size() && (t_[at_] == '+' || t_[at_] == '-')) ++at_;
      if (!digits()) fail("expected digits in an exponent");
    }
    return t_.substr(start, at_ - start);
  }

  std::string_view t_;
  size_t at_ = 0;
};

struct Snapshot {
  std::string task_id, segment;
  int64_t time = 0, sequence = 0;
  std::vector<uint32_t> stack;  // signature ids, root first
  size_t offset = 0;            // where its object starts
};

// Reads the records; signatures are interned into `signatures` as they are read.
std::vector<Snapshot> read_snapshots(Json& json, std::vector<std::string>& signatures) {
  std::unordered_map<std::string, uint32_t> ids;
  std::vector<Snapshot> out;
  auto intern = [&](std::string s) {
    if (s.size() > kMaxSignatureBytes) s = clip_text(s, kMaxSignatureBytes);
    auto [it, inserted] = ids.try_emplace(s, static_cast<uint32_t>(signatures.size()));
    if (inserted) signatures.push_back(std::move(s));
    return it->second;
  };
  auto read_one = [&] {
    Snapshot s;
    json.peek();
    s.offset = json.offset();
    json.object([&](const std::string& key) {
      if (json.null()) return;
      if (key == "taskId" || key == "task_id") s.task_id = clip_text(json.string(), kMaxSignatureBytes);
      else if (key == "traceSegmentId" || key == "trace_segment_id") s.segment = clip_text(json.string(), kMaxSignatureBytes);
      else if (key == "time") s.time = json.integer("time");
      else if (key == "sequence") s.sequence = json.integer("sequence");
      else if (key == "stack")
        json.object([&](const std::string& stack_key) {
          if (json.null()) return;
          if (stack_key != "codeSignatures" && stack_key != "code_signatures") return json.skip_value();
          json.array([&] {
            if (s.stack.size() >= snapshot::kMaxStackDepth)
              json.fail(fmt::format("a stack deeper than {} frames", snapshot::kMaxStackDepth));
            s.stack.push_back(intern(json.string()));
          });
        });
      else json.skip_value();
    });
    out.push_back(std::move(s));
  };
  // An array of snapshots, or an object shaped {"snapshots": [...]}.
  if (json.peek() == '[') {
    json.array(read_one);
  } else {
    json.object([&](const std::string& key) {
      if (key == "snapshots") json.array(read_one);
      else json.skip_value();
    });
  }
  if (!json.at_end()) json.fail("more text after the JSON value");
  return out;
}

int64_t median_gap_us(std::vector<int64_t> gaps, int64_t fallback) {
  if (gaps.empty()) return fallback;
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  return gaps[gaps.size() / 2];
}

std::string shown(const std::string& name) { return terminal_text(clip_text(name, 80)); }

}  // namespace

size_t skywalking_import(const std::string& json_path, const std::string& out_path) {
  std::ifstream in(json_path, std::ios::binary);
  if (!in) throw UserError(fmt::format("cannot open {}: {}", json_path, std::strerror(errno)));
  std::string text;
  {
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
  }
  if (text.size() > kMaxImportBytes) throw UserError(fmt::format("{} is larger than 2 GiB", json_path));
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos || (text[start] != '[' && text[start] != '{'))
    throw UserError(fmt::format("{} is not SkyWalking ThreadSnapshot JSON: expected an array of "
                                "{{\"taskId\", \"traceSegmentId\", \"time\", \"sequence\", \"stack\"}} records",
                                json_path));
  Json json(text);
  std::vector<std::string> signatures;
  std::vector<Snapshot> snaps;
  try {
    snaps = read_snapshots(json, signatures);
  } catch (const JsonError& e) {
    throw UserError(fmt::format("{} is not SkyWalking ThreadSnapshot JSON: at byte {}: {}", json_path, e.offset, e.what()));
  }
  if (snaps.empty()) throw UserError(fmt::format("{} holds no snapshots", json_path));

  // Check every record, then group them: segments in order of first appearance, each one's
  // dumps by sequence.
  std::vector<std::string> order;
  std::map<std::string, std::vector<Snapshot*>> segments;
  Snapshot *earliest = &snaps[0], *latest = &snaps[0];
  for (size_t i = 0; i < snaps.size(); ++i) {
    Snapshot& s = snaps[i];
    auto bad = [&](const std::string& what) {
      return UserError(fmt::format("{}: snapshot {} (at byte {}) {}", json_path, i, s.offset, what));
    };
    if (s.segment.empty()) throw bad("has no traceSegmentId");
    if (s.time <= 0 || s.time > kMaxUnixMs)
      throw bad(fmt::format("has time {}: SkyWalking times are milliseconds since 1970", s.time));
    if (s.sequence < 0 || s.sequence > INT32_MAX) throw bad(fmt::format("has sequence {}", s.sequence));
    auto [it, inserted] = segments.try_emplace(s.segment);
    if (inserted) order.push_back(s.segment);
    it->second.push_back(&s);
    if (s.time < earliest->time) earliest = &s;
    if (s.time > latest->time) latest = &s;
  }
  if (latest->time - earliest->time > kMaxSpanMs)
    throw UserError(fmt::format("{}: its times span {:.1f} days (byte {} to byte {}): one import covers at most a "
                                "year, and SkyWalking times are milliseconds since 1970",
                                json_path, static_cast<double>(latest->time - earliest->time) / 86400000.0,
                                earliest->offset, latest->offset));
  const int64_t min_time = earliest->time, max_time = latest->time;

  // Within a segment, dumps in sequence order should not go back in time (a clock stepped back):
  // such a dump is taken as simultaneous with the one before, weighing nothing.
  size_t backwards = 0;
  std::vector<int64_t> all_gaps;
  for (auto& [name, list] : segments) {
    std::stable_sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->sequence < b->sequence; });
    for (size_t i = 1; i < list.size(); ++i) {
      if (list[i]->sequence == list[i - 1]->sequence)
        throw UserError(fmt::format("{}: segment {} has two snapshots with sequence {} (at bytes {} and {})",
                                    json_path, shown(name), list[i]->sequence, list[i - 1]->offset, list[i]->offset));
      if (list[i]->time < list[i - 1]->time) {
        list[i]->time = list[i - 1]->time;
        ++backwards;
      }
      all_gaps.push_back((list[i]->time - list[i - 1]->time) * 1000);
    }
  }
  int64_t interval_us = median_gap_us(all_gaps, 10000);

  pb::Header header;
  header.set_format_version(snapshot::kFormatVersion);
  header.set_swprof_version(SWPROF_VERSION);
  header.add_command("swprof");
  header.add_command("import");
  header.add_command(json_path);
  header.set_interval_us(interval_us);
  header.set_start_unix_us(min_time * 1000);
  header.set_source("import:skywalking");
  snapshot::Writer writer(out_path, header, OutputFile::Mode::kReplace);
  uint32_t file = writer.intern_string("");
  std::vector<uint32_t> frame_of(signatures.size(), UINT32_MAX);
  std::vector<uint32_t> frames;
  uint32_t next_id = 1;
  for (const auto& name : order) {
    const auto& list = segments[name];
    uint32_t thread = writer.add_thread(0, name);
    std::vector<int64_t> gaps;
    for (size_t i = 1; i < list.size(); ++i) gaps.push_back((list[i]->time - list[i - 1]->time) * 1000);
    int64_t first_weight = median_gap_us(gaps, interval_us);
    snapshot::Segment seg;
    seg.id = next_id++;
    seg.thread = thread;
    seg.start_us = (list.front()->time - min_time) * 1000 - first_weight;
    seg.name = name;
    seg.task_id = list.front()->task_id;
    writer.add_segment(seg);
    for (size_t i = 0; i < list.size(); ++i) {
      const Snapshot& s = *list[i];
      frames.clear();
      for (uint32_t sig : s.stack) {
        if (frame_of[sig] == UINT32_MAX) frame_of[sig] = writer.intern_frame({writer.intern_string(signatures[sig]), file, 0, 0});
        frames.push_back(frame_of[sig]);
      }
      snapshot::Sample sample;
      sample.time_us = (s.time - min_time) * 1000;
      sample.wall_us = i ? (s.time - list[i - 1]->time) * 1000 : first_weight;
      sample.thread = thread;
      sample.stack = writer.intern_stack(frames);
      sample.segment = seg.id;
      sample.sequence = s.sequence;
      writer.add_sample(sample);
    }
    writer.end_segment(seg.id, (list.back()->time - min_time) * 1000);
    writer.maybe_flush();
  }
  pb::Footer footer;
  footer.set_duration_us((max_time - min_time) * 1000 + interval_us);
  footer.set_samples(writer.samples_written());
  footer.set_segments_seen(segments.size());
  footer.set_segments_kept(segments.size());
  footer.set_stop_reason("imported");
  // What import writes, analyze must read: the file is read back before it replaces anything.
  bool written = writer.finish(footer, [&](const std::string& path) {
    try {
      snapshot::read_file(path);
    } catch (const UserError& e) {
      throw UserError(fmt::format("{}: the imported data makes a snapshot file swprof would refuse to read: {}",
                                  json_path, e.what()));
    }
  });
  if (!written) throw UserError(writer.error_message());
  if (backwards)
    std::fprintf(stderr, "swprof: note: %zu snapshot%s went back in time from the previous dump of their segment; "
                 "taken as simultaneous with it\n", backwards, backwards == 1 ? "" : "s");
  return snaps.size();
}

}  // namespace swprof::exporter

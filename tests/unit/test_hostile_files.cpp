// Snapshot files made to hurt: decompression bombs, times at the edge of int64, names that are
// not UTF-8, too long or too deep; and a disk that fills up under the writer. Each is built here,
// byte by byte, and must give one clear error (or read exactly), never a crash or gigabytes.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "crafted_file.h"
#include "swprof/common.h"
#include "swprof/output_file.h"
#include "swprof/snapshot.h"

using namespace swprof;
using test::CraftedFile;
using namespace std::string_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Files may not grow past `bytes` while this lives (the process gets EFBIG, as a full disk gives
// ENOSPC, at a chosen size).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, SIG_IGN);
    rlimit r = saved_;
    r.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &r);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &saved_); }

 private:
  rlimit saved_;
};

std::string error_of(const CraftedFile& f) {
  try {
    f.read();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(read without error)";
}

}  // namespace

TEST_CASE("a chunk that decompresses to far more than its size justifies is refused in one line", "[hostile]") {
  // 64 MiB of zeros compress to a few kilobytes: over 1024x.
  CraftedFile f;
  f.header(CraftedFile::plain_header()).raw(2, test::zero_frame(64ull << 20));
  std::string e = error_of(f);
  CHECK_THAT(e, Catch::Contains("larger than its size justifies") && Catch::Contains("crafted.swp"));
  CHECK(e.find('\n') == std::string::npos);
  // The same bomb spread over many small chunks: the total is bounded, not just each chunk.
  CraftedFile many;
  many.header(CraftedFile::plain_header());
  std::string frame = test::zero_frame(2 << 20);
  for (int i = 0; i < 40; ++i) many.raw(2, frame);
  CHECK_THAT(error_of(many), Catch::Contains("larger than its size justifies"));
}

TEST_CASE("a chunk whose items would take far more memory than its size justifies is refused", "[hostile]") {
  // 1.5 million samples whose only entropy is one random bit each: compresses ~50x, within the
  // decompression bound, but would take ~170 MB to parse and hold from a file of ~200 KB.
  pb::Chunk c = CraftedFile::one_stack_chunk();
  auto* s = c.mutable_samples();
  std::mt19937 rng(3);
  for (int i = 0; i < 1500000; ++i) {
    s->add_time_delta_us(0);
    s->add_thread(0);
    s->add_stack(0);
    s->add_wall_us(10000);
    s->add_cpu_us(0);
    s->add_flags(rng() & 1);
    s->add_segment(0);
  }
  CraftedFile f;
  f.header(CraftedFile::plain_header()).chunk(c);
  INFO("file of " << f.bytes().size() << " bytes");
  CHECK_THAT(error_of(f), Catch::Contains("larger than its size justifies") && Catch::Contains("memory"));
}

TEST_CASE("times near the ends of int64 are refused where they are read", "[hostile]") {
  auto with_samples = [](std::initializer_list<std::pair<int64_t, uint64_t>> samples) {
    pb::Chunk c = CraftedFile::one_stack_chunk();
    for (auto [delta, wall] : samples) CraftedFile::add_sample(c, delta, wall);
    CraftedFile f;
    f.header(CraftedFile::plain_header()).chunk(c);
    return error_of(f);
  };
  CHECK_THAT(with_samples({{INT64_MAX, 10}}), Catch::Contains("sample time out of range"));
  CHECK_THAT(with_samples({{INT64_MAX / 2, 10}, {INT64_MAX / 2 + 10, 10}}), Catch::Contains("sample time out of range"));
  CHECK_THAT(with_samples({{INT64_MIN, 10}}), Catch::Contains("sample time out of range"));
  CHECK_THAT(with_samples({{10, uint64_t(INT64_MAX)}}), Catch::Contains("sample weight out of range"));
  CHECK_THAT(with_samples({{10, UINT64_MAX}}), Catch::Contains("sample weight out of range"));
  CHECK(with_samples({{snapshot::kMaxTimeUs, snapshot::kMaxTimeUs}}) == "(read without error)");

  pb::Chunk c = CraftedFile::one_stack_chunk();
  auto* seg = c.add_segments();
  seg->set_id(1);
  seg->set_start_us(INT64_MIN);
  CraftedFile f1;
  f1.header(CraftedFile::plain_header()).chunk(c);
  CHECK_THAT(error_of(f1), Catch::Contains("segment start out of range"));
  seg->set_start_us(5000);
  auto* end = c.add_segment_ends();
  end->set_id(1);
  end->set_end_us(1000);
  CraftedFile f2;
  f2.header(CraftedFile::plain_header()).chunk(c);
  CHECK_THAT(error_of(f2), Catch::Contains("segment ends before it starts"));

  auto h = CraftedFile::plain_header();
  h.set_interval_us(-1);
  CraftedFile f3;
  f3.header(h);
  CHECK_THAT(error_of(f3), Catch::Contains("interval out of range"));
  h = CraftedFile::plain_header();
  h.set_start_unix_us(INT64_MAX);
  CraftedFile f4;
  f4.header(h);
  CHECK_THAT(error_of(f4), Catch::Contains("start time out of range"));
  pb::Footer footer;
  footer.set_cost_mean_us(std::numeric_limits<double>::quiet_NaN());
  CraftedFile f5;
  f5.header(CraftedFile::plain_header()).footer(footer);
  CHECK_THAT(error_of(f5), Catch::Contains("not a number"));
}

TEST_CASE("names longer or stacks deeper than swprof writes are refused", "[hostile]") {
  pb::Chunk c = CraftedFile::one_stack_chunk();
  c.add_strings(std::string(snapshot::kMaxStringBytes + 1, 'x'));
  CraftedFile f1;
  f1.header(CraftedFile::plain_header()).chunk(c);
  CHECK_THAT(error_of(f1), Catch::Contains("a name longer than any swprof writes"));
  c = CraftedFile::one_stack_chunk();
  auto* deep = c.add_stacks();
  for (size_t i = 0; i <= snapshot::kMaxStackDepth; ++i) deep->add_frames(0);
  CraftedFile f2;
  f2.header(CraftedFile::plain_header()).chunk(c);
  CHECK_THAT(error_of(f2), Catch::Contains("a stack deeper than any swprof writes"));
}

TEST_CASE("every byte of argv, paths and names round-trips, UTF-8 or not", "[hostile]") {
  const std::string path = "/tmp/swprof-unit-bytes.swp";
  const std::string arg = "caf\xe9 \xff\xfe", file = "/srv/\xff\xc3(.py", name = "\x1b]0;x\x07\n", thread = "w\xed\xa0\x80";
  {
    pb::Header h = CraftedFile::plain_header();
    h.add_command(arg);
    h.set_python_binary(file);
    snapshot::Writer w(path, h);
    uint32_t t = w.add_thread(7, thread);
    uint32_t f = w.intern_frame({w.intern_string(name), w.intern_string(file), 1, 1});
    snapshot::Sample s;
    s.thread = t;
    s.stack = w.intern_stack(std::span<const uint32_t>(&f, 1));
    w.add_sample(s);
    REQUIRE(w.finish({}));
  }
  auto r = snapshot::read_file(path);
  CHECK(r.header.command(1) == arg);
  CHECK(r.header.python_binary() == file);
  CHECK(r.threads[0].name == thread);
  CHECK(r.str(r.frames[0].function) == name);
  CHECK(r.str(r.frames[0].file) == file);
  std::remove(path.c_str());
}

TEST_CASE("a disk that fills up stops the writer at once, with the real reason, keeping whole records",
          "[hostile]") {
  const std::string path = "/tmp/swprof-unit-full.swp";
  uint64_t in_file = 0, added = 0;
  std::string message;
  {
    FileSizeLimit limit(6000);
    snapshot::Writer w(path, CraftedFile::plain_header());
    uint32_t t = w.add_thread(1, "main");
    for (int chunk = 0; chunk < 200 && !w.failed(); ++chunk) {
      for (int i = 0; i < 50; ++i) {
        uint32_t f = w.intern_frame({w.intern_string("f" + std::to_string(chunk * 50 + i)), 0, i, i});
        snapshot::Sample s;
        s.time_us = chunk * 1000000 + i;
        s.thread = t;
        s.stack = w.intern_stack(std::span<const uint32_t>(&f, 1));
        w.add_sample(s);
      }
      w.maybe_flush(true);
    }
    REQUIRE(w.failed());
    CHECK_FALSE(w.finish({}));
    message = w.error_message();
    in_file = w.samples_in_file();
    added = w.samples_written();
    CHECK(w.bytes_written() <= 6000);
    CHECK(slurp(path).size() == w.bytes_written());  // the record cut short was removed
  }
  CHECK_THAT(message, Catch::Contains("writing " + path + " failed: File too large"));
  CHECK(in_file > 0);
  CHECK(in_file < added);
  auto r = snapshot::read_file(path);  // the prefix reads, every sample written before is there
  CHECK(r.truncated);
  CHECK(r.samples.size() == in_file);
  std::remove(path.c_str());
}

TEST_CASE("an output file is replaced by a whole new one or not at all", "[hostile]") {
  const std::string path = "/tmp/swprof-unit-replace.txt";
  { std::ofstream(path) << "old content"; }
  {
    FileSizeLimit limit(1000);
    CHECK_THROWS_WITH(write_whole_file(path, std::string(5000, 'x')),
                      Catch::Contains("writing " + path + " failed: File too large"));
  }
  CHECK(slurp(path) == "old content");
  write_whole_file(path, "new content");
  CHECK(slurp(path) == "new content");
  CHECK_THROWS_WITH(write_whole_file("/nonexistent-dir/x.svg", "x"), Catch::Contains("cannot write /nonexistent-dir/x.svg"));
  CHECK_THROWS_WITH(write_whole_file("/tmp", "x"), Catch::Contains("cannot write /tmp"));
  // A device is written to, not replaced by a regular file.
  write_whole_file("/dev/null", "discarded");
  struct stat st;
  REQUIRE(stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  std::remove(path.c_str());
  // No temporary is left behind by either attempt.
  for (const auto& entry : std::filesystem::directory_iterator("/tmp"))
    CHECK(entry.path().filename().string().rfind(".swprof-unit-replace.txt.swprof-", 0) == std::string::npos);
}

TEST_CASE("/dev/full refuses the header: the writer says why", "[hostile]") {
  CHECK_THROWS_WITH(snapshot::Writer("/dev/full", CraftedFile::plain_header()),
                    Catch::Contains("writing /dev/full failed: No space left on device"));
}

TEST_CASE("a header of millions of empty arguments is refused before it is parsed", "[hostile]") {
  // 8 million empty argv entries: 16 MB of wire format, 400 MB as protobuf strings.
  std::string argv;
  for (int i = 0; i < 8000000; ++i) argv += "\x1a\x00"s;
  pb::Header h = CraftedFile::plain_header();
  CraftedFile f;
  f.record(1, h.SerializeAsString() + argv);
  CHECK_THAT(error_of(f), Catch::Contains("larger than its size justifies"));
}

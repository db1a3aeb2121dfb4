// Uprobes on this test's own code: every call of a probed function is one hit with its arguments,
// in order, timed with CLOCK_MONOTONIC; a full ring buffer counts what it lost; new threads are
// followed once follow_threads() sees them; and closing the session removes the breakpoint.
// They need root or CAP_PERFMON: without, each test says so and checks only the refusal.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "swprof/common.h"
#include "swprof/uprobe.h"

using swprof::target::ProbeSite;
using swprof::target::UprobeHit;
using swprof::target::UprobeSession;
using swprof::target::UprobeUnavailable;

extern "C" __attribute__((noinline)) uint64_t swprof_probe_target(uint64_t a, uint64_t b, uint64_t c) {
  asm volatile("" ::: "memory");
  return a + b * c;
}

#if defined(__x86_64__)
// A function as compiled with -fcf-protection: it starts with endbr64.
extern "C" __attribute__((noinline, naked)) uint64_t swprof_probe_target_endbr(uint64_t, uint64_t) {
  asm volatile("endbr64\n push %rbx\n lea (%rdi,%rsi), %rax\n pop %rbx\n ret");
}
#endif

namespace {

ProbeSite own_site(const void* function = reinterpret_cast<const void*>(&swprof_probe_target), bool entry = false) {
  std::string error;
  auto site = swprof::target::locate_probe_site(getpid(), swprof::target::read_maps(getpid()),
                                                reinterpret_cast<uint64_t>(function), "swprof_probe_target", error, entry);
  INFO(error);
  REQUIRE(site);
  return *site;
}

uint8_t first_code_byte() { return *reinterpret_cast<volatile const uint8_t*>(&swprof_probe_target); }

// A session on this process, or nullptr after saying why uprobes cannot be had here.
std::unique_ptr<UprobeSession> open_session(std::vector<ProbeSite> sites, UprobeSession::Options options = {}) {
  try {
    auto s = std::make_unique<UprobeSession>(getpid(), std::move(sites), options);
    s->follow_threads();
    return s;
  } catch (const UprobeUnavailable& e) {
    if (e.reason() == UprobeUnavailable::Reason::kPrivilege || e.reason() == UprobeUnavailable::Reason::kNoPmu) {
      WARN("uprobes unavailable, only the refusal is checked: " << e.what());
      CHECK(std::string(e.what()).find("uprobe") != std::string::npos);
      return nullptr;
    }
    throw;
  }
}

}  // namespace

TEST_CASE("a probe site is the mapped file and the offset holding the same bytes", "[uprobe]") {
  ProbeSite site = own_site();
  int fd = open(site.path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  uint8_t in_file[16], in_memory[16];
  REQUIRE(pread(fd, in_file, sizeof in_file, static_cast<off_t>(site.file_offset)) == 16);
  close(fd);
  std::memcpy(in_memory, reinterpret_cast<const void*>(&swprof_probe_target), sizeof in_memory);
  CHECK(std::memcmp(in_file, in_memory, sizeof in_file) == 0);

  std::string error;
  int on_stack = 0;
  CHECK_FALSE(swprof::target::locate_probe_site(getpid(), swprof::target::read_maps(getpid()),
                                                reinterpret_cast<uint64_t>(&on_stack), "a local", error));
  CHECK(error.find("not in an executable file mapping") != std::string::npos);
}

TEST_CASE("every call of a probed function is a hit with its arguments, in order, and closing undoes the probe", "[uprobe]") {
  const uint8_t original = first_code_byte();
  {
    auto session = open_session({own_site()});
    if (!session) return;
    CHECK(session->threads() >= 1);
    const int64_t before = swprof::monotonic_ns();
    constexpr uint64_t kCalls = 5000;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < kCalls; ++i) sum += swprof_probe_target(i, 2 * i, 7);
    const int64_t after = swprof::monotonic_ns();
    CHECK(sum > 0);
    std::vector<UprobeHit> hits;
    session->drain(hits);
    REQUIRE(hits.size() == kCalls);
    CHECK(session->lost() == 0);
    const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
    for (uint64_t i = 0; i < kCalls; ++i) {
      INFO("hit " << i);
      REQUIRE(hits[i].args_valid);
      CHECK(hits[i].site == 0);
      CHECK(hits[i].tid == tid);
      CHECK(hits[i].args[0] == i);
      CHECK(hits[i].args[1] == 2 * i);
      CHECK(hits[i].args[2] == 7);
      CHECK(hits[i].time_ns >= before);
      CHECK(hits[i].time_ns <= after);
      if (i) CHECK(hits[i].time_ns >= hits[i - 1].time_ns);
    }
    CHECK(first_code_byte() != original);  // the kernel's breakpoint, while the session lasts
    hits.clear();
    CHECK(session->drain(hits) == 0);
  }
  CHECK(first_code_byte() == original);
}

#if defined(__x86_64__)
TEST_CASE("a probe at a function's entry steps over endbr64 and still sees the arguments", "[uprobe]") {
  const void* f = reinterpret_cast<const void*>(&swprof_probe_target_endbr);
  ProbeSite site = own_site(f, true);
  CHECK(site.address == reinterpret_cast<uint64_t>(f) + 4);
  CHECK(own_site(f, false).address == reinterpret_cast<uint64_t>(f));
  const uint8_t endbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};
  const void* plain = reinterpret_cast<const void*>(&swprof_probe_target);
  uint64_t step = std::memcmp(plain, endbr64, 4) == 0 ? 4 : 0;  // 4 when built with -fcf-protection
  CHECK(own_site(plain, true).address == reinterpret_cast<uint64_t>(plain) + step);
  auto session = open_session({site});
  if (!session) return;
  CHECK(swprof_probe_target_endbr(40, 2) == 42);
  std::vector<UprobeHit> hits;
  session->drain(hits);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].args[0] == 40);
  CHECK(hits[0].args[1] == 2);
}
#endif

TEST_CASE("a full ring buffer counts what it lost", "[uprobe]") {
  UprobeSession::Options small;
  small.buffer_bytes = 4096;  // one page: room for about 70 hits
  auto session = open_session({own_site()}, small);
  if (!session) return;
  constexpr uint64_t kCalls = 2000;
  for (uint64_t i = 0; i < kCalls; ++i) swprof_probe_target(i, 0, 0);
  std::vector<UprobeHit> hits;
  session->drain(hits);
  CHECK(hits.size() < kCalls);
  CHECK(session->lost() > 0);
  CHECK(hits.size() + session->lost() == kCalls);
  for (size_t i = 0; i < hits.size(); ++i) CHECK(hits[i].args[0] == i);  // the first ones, in order
}

// A thread started after the session: once running it calls the probed function with `before`
// (0: not at all) and is ready; after go_and_join() lets it on, it calls it with `after` and ends.
struct LateThread {
  LateThread(uint64_t before, uint64_t after)
      : thread([this, before, after] {
          tid = static_cast<pid_t>(syscall(SYS_gettid));
          if (before) swprof_probe_target(before, 0, 0);
          phase = 1;
          while (phase != 2) std::this_thread::yield();
          swprof_probe_target(after, 0, 0);
        }) {
    while (phase != 1) std::this_thread::yield();
  }
  void go_and_join() {
    phase = 2;
    thread.join();
  }
  std::atomic<int> phase{0};
  std::atomic<pid_t> tid{0};
  std::thread thread;  // (last: started once the others are)
};

TEST_CASE("a thread started later is followed once follow_threads sees it; an ended one is closed", "[uprobe]") {
  auto session = open_session({own_site()});
  if (!session) return;
  const size_t threads_before = session->threads();
  LateThread worker(1, 2);  // 1: not followed yet; 2: followed
  CHECK(session->follow_threads() == 1);
  CHECK(session->threads() == threads_before + 1);
  worker.go_and_join();
  // The thread is gone: its hit is still drained, then its events are closed.
  session->follow_threads();
  std::vector<UprobeHit> hits;
  session->drain(hits);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].tid == worker.tid.load());
  CHECK(hits[0].args[0] == 2);
  CHECK(session->threads() == threads_before);
}

TEST_CASE("follow_threads_beside opens a new thread's probes without holding up its caller", "[uprobe]") {
  auto session = open_session({own_site()});
  if (!session) return;
  const size_t threads_before = session->threads();
  LateThread worker(0, 3);  // 3: followed, its probes opened beside the caller
  CHECK(session->follow_threads_beside() == 0);  // opening begins; nothing added yet
  size_t added = 0;
  for (int i = 0; i < 5000 && added == 0; ++i) {  // up to 5 s: the opening is the kernel's
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    added = session->follow_threads_beside();
  }
  CHECK(added == 1);
  CHECK(session->threads() == threads_before + 1);
  worker.go_and_join();
  std::vector<UprobeHit> hits;
  session->drain(hits);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].tid == worker.tid.load());
  CHECK(hits[0].args[0] == 3);
}

TEST_CASE("a site the kernel cannot probe is refused with the site named", "[uprobe]") {
  ProbeSite site = own_site();
  site.name = "beyond the end";
  site.file_offset = uint64_t(1) << 40;
  try {
    auto session = std::make_unique<UprobeSession>(getpid(), std::vector<ProbeSite>{site});
    session->follow_threads();
    FAIL("a probe beyond the end of the file was accepted");
  } catch (const UprobeUnavailable& e) {
    if (e.reason() == UprobeUnavailable::Reason::kPrivilege) {
      WARN("uprobes unavailable: " << e.what());
      return;
    }
    CHECK(e.reason() == UprobeUnavailable::Reason::kBadSite);
    CHECK(std::string(e.what()).find("beyond the end") != std::string::npos);
  }
}

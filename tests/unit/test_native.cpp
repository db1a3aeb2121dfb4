// Native stacks: a forked child of this test, spinning at the end of a known chain of C calls, is
// stopped, copied, resumed and unwound (it runs on between captures); and the merging of native
// and Python frames, on stacks made up here, reads as the rule it implements.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include <atomic>
#include <string>
#include <vector>

#include "swprof/native.h"
#include "swprof/native_merge.h"
#include "target/native_internal.h"

using swprof::native::Error;
using swprof::native::Frame;
using swprof::native::MergedFrame;
using swprof::native::MergeResult;

namespace {

std::atomic<uint64_t>* g_counter = nullptr;  // shared with the child: it counts while it runs

extern "C" __attribute__((noinline)) void swprof_native_leaf() {
  for (;;) g_counter->fetch_add(1, std::memory_order_relaxed);
}
extern "C" __attribute__((noinline)) void swprof_native_middle() {
  swprof_native_leaf();
  asm volatile("" ::: "memory");  // not a tail call
}
extern "C" __attribute__((noinline)) void swprof_native_outer() {
  swprof_native_middle();
  asm volatile("" ::: "memory");
}

struct Child {
  pid_t pid = -1;
  Child() {
    void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED);
    g_counter = new (shared) std::atomic<uint64_t>(0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      swprof_native_outer();
      _exit(0);
    }
    while (g_counter->load() == 0) usleep(1000);
  }
  ~Child() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

std::vector<std::string> names(const swprof::native::Unwinder& u, const std::vector<Frame>& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.push_back(u.symbol(f.symbol).function);
  return out;
}

}  // namespace

TEST_CASE("a child spinning in a chain of C calls unwinds in call order, and runs on after each stop") {
  Child child;
  swprof::native::Unwinder unwinder(child.pid);
  swprof::native::Capture capture;
  std::vector<Frame> frames;
  for (int round = 0; round < 5; ++round) {
    uint64_t while_stopped_counter = 0, after = 0;
    bool ran = false;
    Error e = unwinder.capture(child.pid, capture, [&]() {
      ran = true;
      while_stopped_counter = g_counter->load();
      usleep(2000);
      after = g_counter->load();
    });
    if (e == Error::kPermission) {
      WARN("cannot trace a child here (ptrace refused): only the refusal is checked");
      CHECK(ran);
      return;
    }
    REQUIRE(e == Error::kNone);
    CHECK(ran);
    CHECK(after == while_stopped_counter);  // it was stopped while we looked
    CHECK(capture.held_ns >= 2000 * 1000);
    CHECK(!capture.stack.empty());
    // And it runs again once we let go: at once on an idle machine, after other work's time
    // slices on a busy one.
    uint64_t before_resume = g_counter->load();
    for (int waited_ms = 0; g_counter->load() == before_resume && waited_ms < 5000; waited_ms += 5) usleep(5000);
    CHECK(g_counter->load() > before_resume);

    auto result = unwinder.unwind(capture, frames);
    REQUIRE(result.error == Error::kNone);
    auto n = names(unwinder, frames);
    auto at = [&](const std::string& name) { return std::find(n.begin(), n.end(), name) - n.begin(); };
    REQUIRE(at("swprof_native_leaf") < static_cast<long>(n.size()));
    CHECK(at("swprof_native_leaf") < at("swprof_native_middle"));
    CHECK(at("swprof_native_middle") < at("swprof_native_outer"));
    CHECK(at("swprof_native_outer") < static_cast<long>(n.size()));
    CHECK(result.complete);  // down to _start
    for (size_t i = 1; i < frames.size(); ++i) CHECK(frames[i].sp >= frames[i - 1].sp);
  }
  CHECK(unwinder.stats().captures == 5);
}

TEST_CASE("a thread that is gone is an error, and while_stopped still runs once") {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  swprof::native::Unwinder unwinder(getpid());
  swprof::native::Capture capture;
  int runs = 0;
  CHECK(unwinder.capture(pid, capture, [&]() { ++runs; }) == Error::kGone);
  CHECK(runs == 1);
  CHECK(swprof::native::release_stopped_threads() == 0);
}

TEST_CASE("stopping a thread in epoll_wait makes the call fail with EINTR; one in read carries on") {
  struct Shared {
    std::atomic<pid_t> epoll_tid{0}, read_tid{0};
    std::atomic<int> epoll_eintr{0}, read_eintr{0};
  };
  void* memory = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(memory != MAP_FAILED);
  auto* shared = new (memory) Shared;
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::thread reader([&] {
      shared->read_tid = gettid();
      char c;
      for (;;)
        if (::read(fds[0], &c, 1) < 0 && errno == EINTR) ++shared->read_eintr;
    });
    int ep = epoll_create1(0);
    epoll_event e{};
    e.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &e);
    shared->epoll_tid = gettid();
    for (;;) {
      epoll_event out;
      if (epoll_wait(ep, &out, 1, -1) < 0 && errno == EINTR) ++shared->epoll_eintr;
    }
  }
  while (!shared->epoll_tid || !shared->read_tid) usleep(1000);
  usleep(50000);
  swprof::native::Unwinder unwinder(pid);
  swprof::native::Capture capture;
  Error e = Error::kNone;
  for (int i = 0; i < 3 && e == Error::kNone; ++i) {
    e = unwinder.capture(shared->epoll_tid, capture);
    if (e == Error::kNone) e = unwinder.capture(shared->read_tid, capture);
    usleep(20000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  if (e == Error::kPermission) {
    WARN("cannot trace a child here (ptrace refused)");
    return;
  }
  REQUIRE(e == Error::kNone);
  CHECK(shared->epoll_eintr > 0);
  CHECK(swprof::native::stopping_interrupts("epoll_wait"));
  CHECK(shared->read_eintr == 0);
  CHECK_FALSE(swprof::native::stopping_interrupts("read"));
  close(fds[0]);
  close(fds[1]);
}

// ---- merging, on made-up stacks -------------------------------------------------------------

namespace {

Frame native(uint64_t sp, bool eval = false, bool named = true, bool inlined = false) {
  Frame f;
  f.sp = sp;
  f.eval = eval;
  f.named = named;
  f.inlined = inlined;
  return f;
}

std::vector<swprof::python::RawFrame> python(size_t n) {
  std::vector<swprof::python::RawFrame> out(n);
  for (size_t i = 0; i < n; ++i) out[i].address = 0x1000 + i;
  return out;
}

// "p0 n1 ..." for the merged order: p = Python frame index, n = native frame index.
std::string order(const std::vector<MergedFrame>& merged) {
  std::string s;
  for (const auto& m : merged)
    s += (s.empty() ? "" : " ") + std::string(m.kind == MergedFrame::Kind::kPython ? "p" : "n") + std::to_string(m.index);
  return s;
}

}  // namespace

TEST_CASE("3.12+: each batch of Python frames replaces the native frame that holds its entry frame") {
  // Native, innermost first: leaf C (0), eval (1, stack 0x100..0x200), C call (2), eval (3), main (4).
  std::vector<Frame> n = {native(0x80), native(0x100, true), native(0x200), native(0x300, true), native(0x400)};
  auto py = python(3);  // frames 0,1 ran in the inner evaluation call, frame 2 in the outer one
  swprof::native::EvalBatches b;
  b.starts = {0, 1, 1};
  b.entries = {0, 0x180, 0x350};
  b.stack_limit = 0x1000;
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, py, b, out) == MergeResult::kMerged);
  CHECK(order(out) == "n0 p0 p1 n2 p2 n4");
}

TEST_CASE("3.12+: a nameless frame holding an entry frame is the evaluation loop (a stripped build's part of it)") {
  std::vector<Frame> n = {native(0x80), native(0x100, false, false), native(0x200)};
  auto py = python(1);
  swprof::native::EvalBatches b{{1}, {0x150}, 0x1000};
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, py, b, out) == MergeResult::kMerged);
  CHECK(order(out) == "n0 p0 n2");
}

TEST_CASE("3.12+: an entry frame inside a named function that is not the evaluation loop does not merge") {
  std::vector<Frame> n = {native(0x80), native(0x100), native(0x200, true)};
  auto py = python(1);
  swprof::native::EvalBatches b{{1}, {0x150}, 0x1000};
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, py, b, out) == MergeResult::kMismatch);
  CHECK(order(out) == "p0");  // the Python frames are kept
}

TEST_CASE("3.12+: an evaluation frame that ran none of the Python frames does not merge") {
  std::vector<Frame> n = {native(0x100, true), native(0x200, true), native(0x300)};
  auto py = python(1);
  swprof::native::EvalBatches b{{1}, {0x150}, 0x1000};
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, py, b, out) == MergeResult::kMismatch);
}

TEST_CASE("before 3.12: evaluation frames by name, matched to the batches in order; counts must agree") {
  std::vector<Frame> n = {native(0x80), native(0x100, true), native(0x200), native(0x300, true), native(0x400)};
  swprof::native::EvalBatches b{{1, 1}, {0, 0}, 0x1000};  // 3.8-3.10: one frame per evaluation call
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, python(2), b, out) == MergeResult::kMerged);
  CHECK(order(out) == "n0 p0 n2 p1 n4");
  swprof::native::EvalBatches three{{1, 1, 1}, {0, 0, 0}, 0x1000};
  CHECK(merge_stacks(n, python(3), three, out) == MergeResult::kMismatch);
  CHECK(order(out) == "p0 p1 p2");
}

TEST_CASE("calls inlined into the evaluation loop stay, inner to the Python frames it ran") {
  // Frame 1 is a helper inlined into the evaluation loop (frame 2): same stack pointer.
  std::vector<Frame> n = {native(0x80), native(0x100, false, true, true), native(0x100, true), native(0x400)};
  swprof::native::EvalBatches b{{1}, {0x120}, 0x1000};
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, python(1), b, out) == MergeResult::kMerged);
  CHECK(order(out) == "n0 n1 p0 n3");
}

TEST_CASE("a walk whose outermost frame starts no batch does not merge") {
  std::vector<Frame> n = {native(0x100, true), native(0x200)};
  swprof::native::EvalBatches b{{1, 0}, {0x150, 0}, 0x1000};
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, python(2), b, out) == MergeResult::kMismatch);
}

TEST_CASE("without Python frames the native ones stand; without native frames the Python ones") {
  std::vector<Frame> n = {native(0x100), native(0x200)};
  std::vector<MergedFrame> out;
  CHECK(merge_stacks(n, {}, {}, out) == MergeResult::kNativeOnly);
  CHECK(order(out) == "n0 n1");
  swprof::native::EvalBatches b{{1}, {0}, 0};
  CHECK(merge_stacks({}, python(1), b, out) == MergeResult::kPythonOnly);
  CHECK(order(out) == "p0");
}

// libdwfl (elfutils 0.188) looks an address in the gap after a module up as that module when the
// module was reported right at the end of the one before it (no end boundary is kept for it). A
// Python extension loaded into such a gap after the maps were read was named and unwound as the
// library below it (liblzma under 3.14's _zstd), every one of its frames lost for good: the gap
// is no module's, and naming an address there reads the maps again.
TEST_CASE("an address in the gap after two adjacent modules is no module's until the maps show one there") {
  const long page = sysconf(_SC_PAGESIZE);
  char dir_template[] = "/tmp/swprof-native-gap-XXXXXX";
  REQUIRE(mkdtemp(dir_template));
  const std::string dir = dir_template;
  auto make_file = [&](const char* name) {
    std::string path = dir + "/" + name;
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 2 * page) == 0);
    return std::pair{path, fd};
  };
  auto [path_a, fd_a] = make_file("lower.so");
  auto [path_b, fd_b] = make_file("upper.so");
  // Sixteen pages: the two files side by side in the first four, the rest a gap (unmapped).
  auto* base = static_cast<char*>(mmap(nullptr, 16 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(base != MAP_FAILED);
  REQUIRE(mmap(base, 2 * page, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd_a, 0) == base);
  REQUIRE(mmap(base + 2 * page, 2 * page, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd_b, 0) == base + 2 * page);
  REQUIRE(munmap(base + 4 * page, 12 * page) == 0);
  const uint64_t gap = reinterpret_cast<uint64_t>(base) + 8 * page;

  swprof::native::Options options;
  swprof::native::Stats stats;
  swprof::native::detail::Symbolizer symbols(getpid(), options, stats);
  const uint64_t in_upper = reinterpret_cast<uint64_t>(base) + 3 * page;
  REQUIRE(symbols.module_at(in_upper) != nullptr);
  CHECK(symbols.module_at(gap) == nullptr);
  std::vector<uint32_t> chain;
  symbols.name(gap, chain);
  REQUIRE(chain.size() == 1);
  CHECK(symbols.symbol(chain[0]).function == "[unknown]");
  CHECK(symbols.symbol(chain[0]).module.empty());
  chain.clear();
  symbols.name(in_upper, chain);
  REQUIRE(chain.size() == 1);
  CHECK(symbols.symbol(chain[0]).module == path_b);

  munmap(base, 4 * page);
  close(fd_a);
  close(fd_b);
  unlink(path_a.c_str());
  unlink(path_b.c_str());
  rmdir(dir.c_str());
}

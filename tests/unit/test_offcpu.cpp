// Off-CPU reasons: the /proc formats as the kernel writes them, and this test's own threads
// waiting on known things, named.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "swprof/offcpu.h"
#include "swprof/target.h"
#include "target/offcpu_parse.h"

using namespace swprof::target;

TEST_CASE("a syscall file: the call and its arguments, outside a call, or running") {
  offcpu::SyscallLine s;
  REQUIRE(offcpu::parse_syscall_line("45 0x5 0x7f00 0x10 0x0 0x0 0x0 0x7ffd1000 0x7f2000\n", s));
  CHECK(s.number == 45);
  CHECK(s.args[0] == 5);
  CHECK(s.args[1] == 0x7f00);
  REQUIRE(offcpu::parse_syscall_line("-1 0x7ffd1000 0x7f2000\n", s));
  CHECK(s.number == -1);
  REQUIRE(offcpu::parse_syscall_line("running\n", s));
  CHECK(s.running);
  CHECK_FALSE(offcpu::parse_syscall_line("45 0x5\n", s));
  CHECK_FALSE(offcpu::parse_syscall_line("x 0x5 0 0 0 0 0 0 0", s));
}

TEST_CASE("net/tcp lines: addresses in the kernel's byte order, the state, the inode") {
  offcpu::InetSocket s;
  CHECK_FALSE(offcpu::parse_inet_line("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
                                      "timeout inode", false, s));
  REQUIRE(offcpu::parse_inet_line("   0: 0100007F:1538 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000  "
                                  "      0 424242 1 0000000000000000 20 4 30 10 -1", false, s));
  CHECK(s.inode == 424242);
  CHECK(s.state == 1);
  CHECK(offcpu::format_endpoint(s.local, false, s.local_port) == "127.0.0.1:5432");
  CHECK(offcpu::format_endpoint(s.remote, false, s.remote_port) == "127.0.0.1:54321");
  REQUIRE(offcpu::parse_inet_line("   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A "
                                  "00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0",
                                  true, s));
  CHECK(s.state == 0x0A);
  CHECK(offcpu::format_endpoint(s.local, true, s.local_port) == "[::1]:8080");
  // An IPv4 client seen by an IPv6 listener: ::ffff:127.0.0.1.
  REQUIRE(offcpu::parse_inet_line("   2: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 01 "
                                  "00000000:00000000 00:00000000 00000000     0        0 78 1", true, s));
  CHECK(offcpu::format_endpoint(s.remote, true, s.remote_port) == "127.0.0.1:50000");
  CHECK(offcpu::format_endpoint(s.remote, true, 0, false) == "127.0.0.1");
}

TEST_CASE("net/unix lines: the inode and the path, abstract names with @") {
  offcpu::UnixSocket u;
  CHECK_FALSE(offcpu::parse_unix_line("Num       RefCount Protocol Flags    Type St Inode Path", u));
  REQUIRE(offcpu::parse_unix_line("0000000000000000: 00000002 00000000 00010000 0001 01 31337 /run/app.sock", u));
  CHECK(u.inode == 31337);
  CHECK(u.path == "/run/app.sock");
  REQUIRE(offcpu::parse_unix_line("0000000000000000: 00000003 00000000 00000000 0001 03 5", u));
  CHECK(u.path.empty());
}

TEST_CASE("descriptor links and epoll's watched descriptors") {
  CHECK(offcpu::classify_fd_link("socket:[123]").kind == "socket");
  CHECK(offcpu::classify_fd_link("socket:[123]").inode == 123);
  CHECK(offcpu::classify_fd_link("pipe:[9]").kind == "pipe");
  CHECK(offcpu::classify_fd_link("anon_inode:[eventfd]").kind == "eventfd");
  CHECK(offcpu::classify_fd_link("anon_inode:[eventpoll]").kind == "epoll");
  CHECK(offcpu::classify_fd_link("anon_inode:inotify").kind == "inotify");
  CHECK(offcpu::classify_fd_link("/var/log/app.log").path == "/var/log/app.log");
  auto fds = offcpu::parse_epoll_targets("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n"
                                         "tfd:        5 events:       19 data:                5  pos:0 ino:2a sdev:8\n"
                                         "tfd:        7 events:       19 data:                7  pos:0 ino:2b sdev:8\n", 16);
  CHECK(fds == std::vector<int>{5, 7});
  CHECK(offcpu::count_kinds({"socket", "pipe", "socket", "socket"}) == "3 sockets, 1 pipe");
}

TEST_CASE("system call names come from the kernel's table") {
#if defined(__x86_64__)
  CHECK(syscall_name(0) == "read");
  CHECK(syscall_name(202) == "futex");
  CHECK(syscall_name(232) == "epoll_wait");
#endif
  CHECK(syscall_name(-1).empty());
  CHECK(syscall_name(1 << 20).empty());
}

TEST_CASE("this process's own threads, each waiting on one thing, are named (reading /proc/self)") {
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  std::atomic<pid_t> reader{0}, piper{0}, spinner{0};
  std::atomic<bool> stop{false};
  std::thread t3([&] {
    spinner = gettid();
    while (!stop) {
    }
  });
  std::thread t1([&] {
    reader = gettid();
    char c;
    (void)::read(pair[0], &c, 1);
  });
  std::thread t2([&] {
    piper = gettid();
    char c;
    (void)::read(pipe_fds[0], &c, 1);
  });
  while (!reader || !piper || !spinner) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  OffCpuReasons reasons(getpid());
  auto socket_reason = reasons.read(reader);
  auto pipe_reason = reasons.read(piper);
  CHECK(reasons.text(socket_reason.id) == "read unix socket");
  CHECK(reasons.text(pipe_reason.id) == "read pipe");
  CHECK(socket_reason.syscall == pipe_reason.syscall);
  // Still in the same call: the same reason, without looking again.
  auto again = reasons.read(reader);
  CHECK(again.id == socket_reason.id);
  CHECK(reasons.stats().same_call == 1);
  CHECK(reasons.read(spinner).running);  // on a CPU, or waiting for one: no reason
  stop = true;
  t3.join();
  (void)::write(pair[1], "x", 1);
  (void)::write(pipe_fds[1], "x", 1);
  t1.join();
  t2.join();
  for (int fd : {pair[0], pair[1], pipe_fds[0], pipe_fds[1]}) close(fd);
}

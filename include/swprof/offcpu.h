// Why a thread is off the CPU, from outside: the system call it is blocked in
// (/proc/PID/task/TID/syscall, numbers named from the kernel's table), for calls on file
// descriptors what the descriptor is (/proc/PID/fd: a socket and its addresses, a pipe, a file, an
// eventfd, an epoll instance and what it watches from /proc/PID/fdinfo; poll and select sets are
// read from the target's memory), and the kernel function it sleeps in (wchan) when it is not in
// a system call. A socket's addresses come from a duplicate of the target's descriptor
// (pidfd_getfd, then getsockname/getpeername, closed at once: the target's descriptor table is
// untouched), else from /proc/PID/net/{tcp,tcp6,udp,udp6,unix}. As a short text:
//
//   recvfrom socket 127.0.0.1:5432     a client's connection: the peer
//   recvfrom socket 127.0.0.1:8080 from 127.0.0.1   a server's: where it listens, the client's host
//   accept4 socket listening 0.0.0.0:8080
//   futex   clock_nanosleep   read pipe   epoll_wait (3 sockets, 1 pipe)   poll unix socket /run/x.sock
//
// Meant to be read only for samples of threads that are not running. Costs little: the files a
// thread needs stay open, a thread still blocked in the same call keeps its reason without
// looking again, and descriptors and sockets are looked up in bounded caches.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace swprof::target {

// The name of a system call of this architecture ("read"), or "" when the number is unknown.
std::string_view syscall_name(int number);

struct OffCpuReason {
  uint32_t id = 0;      // OffCpuReasons::text(id); the same text is always the same id; 0: none
  int syscall = -1;     // the system call it is blocked in; -1 when it is in none
  bool running = false; // it runs (or ran again before we looked): no reason
  // Its system call was read: the kernel reads it only from a thread off every CPU and off the
  // run queue, still in the state it was found in (it has been switched out, if it ran).
  bool inactive = false;
};

class OffCpuReasons {
 public:
  explicit OffCpuReasons(pid_t pid);
  ~OffCpuReasons();
  OffCpuReasons(const OffCpuReasons&) = delete;
  OffCpuReasons& operator=(const OffCpuReasons&) = delete;

  // Why thread `tid` is not running. `state` is its scheduler state (ThreadStats::Reading): T/t
  // (stopped) needs no look at the system call.
  OffCpuReason read(pid_t tid, char state = 'S', bool as_looked = false);
  // Whether thread `tid` runs, from its system-call file alone (the kernel formats a line, where
  // /proc/…/stat costs it fifty fields): 'R' running or runnable; 'S' blocked in a system call, or
  // stopped in one (the file does not tell a stop); '?' in none (stopped in user space, a page
  // fault) or unreadable. A read() right after with `as_looked` takes its reason from the same
  // line, at no second read.
  char look(pid_t tid);
  const std::string& text(uint32_t id) const;
  void forget(pid_t tid);  // the thread ended

  struct Stats {
    uint64_t reads = 0;
    uint64_t same_call = 0;     // still blocked in the call it was in last time: nothing else read
    uint64_t fd_lookups = 0;    // descriptors looked at (readlink)
    uint64_t duplicates = 0;    // sockets looked at through a duplicate of the target's descriptor
    uint64_t table_loads = 0;   // /proc/PID/net tables read (only when sockets cannot be duplicated)
    uint64_t memory_reads = 0;  // poll/select descriptor sets read from the target
    int64_t ns = 0;             // time spent in read()
  };
  const Stats& stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace swprof::target

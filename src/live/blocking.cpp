// What a thread waits for, from /proc: /proc/PID/task/TID/syscall names the system call and its
// arguments ("running" while on a CPU), wchan the kernel function it sleeps in, /proc/PID/fd the
// kind of an fd, /proc/PID/net/{tcp,tcp6,udp,udp6,unix} a socket's addresses by inode (the
// target's own network namespace), /proc/PID/fdinfo/EPFD the fds an epoll instance watches.
#include "live/blocking.h"

#include <arpa/inet.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "swprof/common.h"

namespace swprof::live {

namespace {

// System calls a thread is found blocked in, by this architecture's numbers (<sys/syscall.h>).
struct SyscallName {
  long number;
  const char* name;
};
#define SWPROF_SYSCALL(n) {SYS_##n, #n},
constexpr SyscallName kSyscalls[] = {
    SWPROF_SYSCALL(read) SWPROF_SYSCALL(write) SWPROF_SYSCALL(readv) SWPROF_SYSCALL(writev)
    SWPROF_SYSCALL(pread64) SWPROF_SYSCALL(pwrite64) SWPROF_SYSCALL(openat) SWPROF_SYSCALL(close)
    SWPROF_SYSCALL(ioctl) SWPROF_SYSCALL(fcntl) SWPROF_SYSCALL(flock) SWPROF_SYSCALL(fsync)
    SWPROF_SYSCALL(fdatasync) SWPROF_SYSCALL(futex) SWPROF_SYSCALL(nanosleep) SWPROF_SYSCALL(clock_nanosleep)
    SWPROF_SYSCALL(wait4) SWPROF_SYSCALL(waitid) SWPROF_SYSCALL(accept) SWPROF_SYSCALL(accept4)
    SWPROF_SYSCALL(connect) SWPROF_SYSCALL(recvfrom) SWPROF_SYSCALL(recvmsg) SWPROF_SYSCALL(recvmmsg)
    SWPROF_SYSCALL(sendto) SWPROF_SYSCALL(sendmsg) SWPROF_SYSCALL(sendmmsg) SWPROF_SYSCALL(ppoll)
    SWPROF_SYSCALL(pselect6) SWPROF_SYSCALL(epoll_pwait) SWPROF_SYSCALL(sched_yield)
    SWPROF_SYSCALL(rt_sigtimedwait) SWPROF_SYSCALL(rt_sigsuspend) SWPROF_SYSCALL(semtimedop)
    SWPROF_SYSCALL(msgrcv) SWPROF_SYSCALL(msgsnd) SWPROF_SYSCALL(io_getevents) SWPROF_SYSCALL(mmap)
    SWPROF_SYSCALL(munmap) SWPROF_SYSCALL(madvise) SWPROF_SYSCALL(getrandom) SWPROF_SYSCALL(splice)
    SWPROF_SYSCALL(sendfile) SWPROF_SYSCALL(copy_file_range) SWPROF_SYSCALL(exit_group) SWPROF_SYSCALL(exit)
#ifdef SYS_poll
    SWPROF_SYSCALL(poll)
#endif
#ifdef SYS_select
    SWPROF_SYSCALL(select)
#endif
#ifdef SYS_epoll_wait
    SWPROF_SYSCALL(epoll_wait)
#endif
#ifdef SYS_epoll_pwait2
    SWPROF_SYSCALL(epoll_pwait2)
#endif
#ifdef SYS_futex_waitv
    SWPROF_SYSCALL(futex_waitv)
#endif
#ifdef SYS_pause
    SWPROF_SYSCALL(pause)
#endif
#ifdef SYS_open
    SWPROF_SYSCALL(open)
#endif
#ifdef SYS_semop
    SWPROF_SYSCALL(semop)
#endif
#ifdef SYS_io_uring_enter
    SWPROF_SYSCALL(io_uring_enter)
#endif
};
#undef SWPROF_SYSCALL

// System calls whose first argument is the fd they wait on.
bool waits_on_first_fd(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "read", "write", "readv", "writev", "pread64", "pwrite64", "ioctl", "fcntl", "flock", "fsync", "fdatasync",
      "accept", "accept4", "connect", "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "sendfile",
      "splice"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

const char* tcp_state(unsigned state) {
  static constexpr const char* kStates[] = {"",          "established", "syn-sent",   "syn-recv",
                                            "fin-wait1", "fin-wait2",   "time-wait",  "close",
                                            "close-wait", "last-ack",   "listening",  "closing"};
  return state < std::size(kStates) ? kStates[state] : "?";
}

// "0100007F:1F90" (IPv4) or 32 hex digits and a port (IPv6), as /proc/net prints them: each
// 32-bit word in the kernel's (host) byte order.
std::string address_of(const std::string& text) {
  size_t colon = text.find(':');
  if (colon == std::string::npos) return "?";
  std::string hex = text.substr(0, colon);
  unsigned port = static_cast<unsigned>(std::strtoul(text.c_str() + colon + 1, nullptr, 16));
  uint8_t bytes[16] = {};
  size_t words = hex.size() / 8;
  if (words != 1 && words != 4) return "?";
  for (size_t w = 0; w < words; ++w) {
    uint32_t v = static_cast<uint32_t>(std::strtoul(hex.substr(w * 8, 8).c_str(), nullptr, 16));
    std::memcpy(bytes + 4 * w, &v, 4);
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(words == 1 ? AF_INET : AF_INET6, bytes, buf, sizeof buf)) return "?";
  return words == 1 ? fmt::format("{}:{}", buf, port) : fmt::format("[{}]:{}", buf, port);
}

std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

}  // namespace

std::string syscall_name(int64_t number) {
  for (const auto& s : kSyscalls)
    if (s.number == number) return s.name;
  return {};
}

char BlockingReader::state(pid_t tid) const {
  std::string stat = target::read_small_file(fmt::format("/proc/{}/task/{}/stat", pid_, tid));
  // "tid (comm) S ...": the comm may hold spaces and parentheses; the state follows the last ')'.
  size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
}

void BlockingReader::load_sockets() {
  sockets_loaded_ = true;
  for (const char* proto : {"tcp", "tcp6", "udp", "udp6"}) {
    std::istringstream in(target::read_small_file(fmt::format("/proc/{}/net/{}", pid_, proto)));
    std::string line;
    std::getline(in, line);  // the header
    bool tcp = proto[0] == 't';
    while (std::getline(in, line)) {
      auto f = fields_of(line);
      if (f.size() < 10) continue;
      uint64_t inode = std::strtoull(f[9].c_str(), nullptr, 10);
      if (!inode) continue;
      unsigned st = static_cast<unsigned>(std::strtoul(f[3].c_str(), nullptr, 16));
      std::string local = address_of(f[1]), remote = address_of(f[2]);
      const char* kind = tcp ? "TCP" : "UDP";
      if (tcp && st == 10) sockets_[inode] = fmt::format("{} socket listening on {}", kind, local);
      else if (!tcp && (remote.rfind("0.0.0.0:0", 0) == 0 || remote.rfind("[::]:0", 0) == 0))
        sockets_[inode] = fmt::format("{} socket {}", kind, local);
      else
        sockets_[inode] = fmt::format("{} socket {} -> {}{}", kind, local, remote,
                                      tcp ? fmt::format(" ({})", tcp_state(st)) : "");
    }
  }
  std::istringstream in(target::read_small_file(fmt::format("/proc/{}/net/unix", pid_)));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    auto f = fields_of(line);
    if (f.size() < 7) continue;
    uint64_t inode = std::strtoull(f[6].c_str(), nullptr, 10);
    if (inode) sockets_[inode] = f.size() > 7 ? "unix socket " + f[7] : "unix socket";
  }
}

std::string BlockingReader::describe_fd(int64_t fd) {
  if (fd < 0 || fd > (1 << 24)) return fmt::format("fd {}", fd);
  char target[512];
  ssize_t n = readlink(fmt::format("/proc/{}/fd/{}", pid_, fd).c_str(), target, sizeof target - 1);
  if (n <= 0) return fmt::format("fd {}", fd);
  std::string link(target, static_cast<size_t>(n));
  std::string what;
  if (link.rfind("socket:[", 0) == 0) {
    if (!sockets_loaded_) load_sockets();
    auto it = sockets_.find(std::strtoull(link.c_str() + 8, nullptr, 10));
    what = it != sockets_.end() ? it->second : "socket";
  } else if (link.rfind("pipe:[", 0) == 0) {
    what = "pipe";
  } else if (link.rfind("anon_inode:", 0) == 0) {
    what = link.substr(11);
    what.erase(std::remove_if(what.begin(), what.end(), [](char c) { return c == '[' || c == ']'; }), what.end());
  } else if (link.rfind("/dev/pts/", 0) == 0 || link.rfind("/dev/tty", 0) == 0) {
    what = "terminal " + link;
  } else {
    what = "file " + link;
  }
  return fmt::format("fd {} ({})", fd, what);
}

std::string BlockingReader::describe_fds(const std::vector<int64_t>& fds, size_t limit) {
  if (fds.empty()) return "no fds";
  std::string out;
  for (size_t i = 0; i < fds.size() && i < limit; ++i) out += (i ? ", " : "") + describe_fd(fds[i]);
  if (fds.size() > limit) out += fmt::format(" and {} more", fds.size() - limit);
  return out;
}

// poll(fds, nfds, timeout): the pollfd array is in the target's memory.
std::string BlockingReader::poll_detail(uint64_t fds, uint64_t count) {
  struct PollFd {
    int32_t fd;
    int16_t events, revents;
  };
  PollFd entries[64];
  size_t n = static_cast<size_t>(std::min<uint64_t>(count, std::size(entries)));
  if (n == 0) return "on no fds";
  if (!memory_.read(fds, entries, n * sizeof(PollFd))) return fmt::format("on {} fds", count);
  std::vector<int64_t> list;
  for (size_t i = 0; i < n; ++i)
    if (entries[i].fd >= 0) list.push_back(entries[i].fd);
  return "on " + describe_fds(list, 4);
}

// select(nfds, readfds, writefds, ...): fd_set bitmaps in the target's memory.
std::string BlockingReader::select_detail(uint64_t nfds, uint64_t readfds, uint64_t writefds) {
  std::vector<int64_t> list;
  size_t bits = static_cast<size_t>(std::min<uint64_t>(nfds, 1024));
  for (uint64_t set : {readfds, writefds}) {
    uint64_t words[16] = {};
    if (!set || !bits || !memory_.read(set, words, (bits + 63) / 64 * 8)) continue;
    for (size_t fd = 0; fd < bits; ++fd)
      if ((words[fd / 64] >> (fd % 64)) & 1 && std::find(list.begin(), list.end(), int64_t(fd)) == list.end())
        list.push_back(static_cast<int64_t>(fd));
  }
  return "on " + describe_fds(list, 4);
}

// The fds an epoll instance watches: "tfd: N events: ..." lines of its fdinfo.
std::string BlockingReader::epoll_detail(int64_t epfd) {
  std::istringstream in(target::read_small_file(fmt::format("/proc/{}/fdinfo/{}", pid_, epfd)));
  std::vector<int64_t> list;
  for (std::string line; std::getline(in, line) && list.size() < 4096;)
    if (line.rfind("tfd:", 0) == 0) list.push_back(std::strtoll(line.c_str() + 4, nullptr, 10));
  return fmt::format("on epoll fd {} watching {}", epfd, describe_fds(list, 4));
}

Blocking BlockingReader::read(pid_t tid) {
  Blocking b;
  std::string wchan = target::read_small_file(fmt::format("/proc/{}/task/{}/wchan", pid_, tid));
  if (wchan != "0") b.wchan = wchan;
  // "NR arg1 ... arg6 sp pc" while in a system call; "-1 sp pc" when blocked outside one (a page
  // fault, a stop); "running" on a CPU. Empty when the kernel refuses (no ptrace access).
  auto f = fields_of(target::read_small_file(fmt::format("/proc/{}/task/{}/syscall", pid_, tid)));
  if (f.empty()) return b;
  if (f[0] == "running") {
    b.running = true;
    return b;
  }
  b.number = std::strtoll(f[0].c_str(), nullptr, 10);
  if (b.number < 0 || f.size() < 7) {
    b.number = -1;
    return b;
  }
  uint64_t arg[6];
  for (int i = 0; i < 6; ++i) arg[i] = std::strtoull(f[1 + i].c_str(), nullptr, 16);
  b.syscall = syscall_name(b.number);
  if (b.syscall.empty()) {
    b.syscall = fmt::format("syscall {}", b.number);
    return b;
  }
  const std::string& name = b.syscall;
  if (name == "futex") {
    unsigned op = static_cast<unsigned>(arg[1]) & 127;  // without FUTEX_PRIVATE_FLAG / CLOCK_REALTIME
    bool wait = op == 0 || op == 9;                     // FUTEX_WAIT, FUTEX_WAIT_BITSET
    b.detail = wait ? (arg[3] ? "wait, with a timeout" : "wait") : fmt::format("op {}", op);
  } else if (name == "futex_waitv") {
    b.detail = "wait";
  } else if (name == "poll" || name == "ppoll") {
    b.detail = poll_detail(arg[0], arg[1]);
  } else if (name == "select" || name == "pselect6") {
    b.detail = select_detail(arg[0], arg[1], arg[2]);
  } else if (name == "epoll_wait" || name == "epoll_pwait" || name == "epoll_pwait2") {
    b.detail = epoll_detail(static_cast<int64_t>(arg[0]));
  } else if (name == "wait4" || name == "waitid") {
    int64_t who = name == "wait4" ? static_cast<int32_t>(arg[0]) : static_cast<int32_t>(arg[1]);
    b.detail = who > 0 ? fmt::format("for child {}", who) : "for a child";
  } else if (waits_on_first_fd(name)) {
    b.detail = "on " + describe_fd(static_cast<int32_t>(arg[0]));
  }
  return b;
}

}  // namespace swprof::live

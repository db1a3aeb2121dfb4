// Off-CPU reasons (see offcpu.h).
#include "swprof/offcpu.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <tuple>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/target.h"
#include "target/offcpu_parse.h"

namespace swprof::target {

namespace {

const std::pair<int, const char*> kSyscalls[] = {
#include "syscall_names.inc"
    {-1, ""},
};

// What a system call's arguments say about what it waits for.
enum class Waits : uint8_t {
  kNothing,  // its name says it all (futex, clock_nanosleep, wait4...)
  kFd,       // the descriptor in its first argument
  kEpoll,    // what the epoll instance in its first argument watches
  kPoll,     // the descriptors of a struct pollfd array (first argument, count in the second)
  kSelect,   // the descriptors set in fd_sets (count in the first argument, sets in the next three)
};

Waits waits_of(std::string_view name) {
  static const std::unordered_set<std::string_view> fd_first = {
      "read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
      "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "accept", "accept4", "connect",
      "shutdown", "flock", "fsync", "fdatasync", "fcntl", "ioctl", "splice", "tee", "sendfile", "copy_file_range",
      "getdents64", "ftruncate", "fallocate", "sync_file_range", "io_uring_enter"};
  if (name == "epoll_wait" || name == "epoll_pwait" || name == "epoll_pwait2") return Waits::kEpoll;
  if (name == "poll" || name == "ppoll") return Waits::kPoll;
  if (name == "select" || name == "pselect6") return Waits::kSelect;
  return fd_first.count(name) ? Waits::kFd : Waits::kNothing;
}

std::string read_whole(const std::string& path, size_t limit) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[16384];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string read_open(int fd) {
  char buf[512];
  ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

template <class F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

bool parse_hex(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 16) return false;
  out = 0;
  for (char c : s) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0) return false;
    out = out * 16 + static_cast<uint64_t>(v);
  }
  return true;
}

std::vector<std::string_view> split_spaces(std::string_view line, size_t max_fields) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size() && out.size() < max_fields) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i >= line.size()) break;
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos || out.size() + 1 == max_fields) j = line.size();
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

constexpr size_t kMaxReasonLength = 200;
constexpr size_t kMaxWatched = 1024;          // descriptors of one epoll/poll/select looked at
constexpr size_t kMaxTableBytes = 8 << 20;    // of one /proc/PID/net table
constexpr size_t kMaxSockets = 1 << 16;       // sockets remembered
constexpr size_t kMaxTexts = 1 << 16;         // distinct reasons before they are all forgotten
constexpr int64_t kTableReloadNs = 50 * 1000 * 1000;
constexpr int64_t kListeningReloadNs = 1000 * 1000 * 1000;
constexpr int64_t kSameCallNs = 1000 * 1000 * 1000;  // a long block looks again this often

}  // namespace

std::string_view syscall_name(int number) {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const auto& [n, name] : kSyscalls) {
      if (n < 0 || n > 4096) continue;
      if (v.size() <= static_cast<size_t>(n)) v.resize(static_cast<size_t>(n) + 1);
      v[static_cast<size_t>(n)] = name;
    }
    return v;
  }();
  return number >= 0 && static_cast<size_t>(number) < names.size() ? names[static_cast<size_t>(number)] : std::string_view();
}

namespace offcpu {

bool parse_syscall_line(std::string_view text, SyscallLine& out) {
  out = {};
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text == "running") {
    out.running = true;
    return true;
  }
  auto fields = split_spaces(text, 10);
  if (fields.empty()) return false;
  char* end = nullptr;
  std::string first(fields[0]);
  long nr = std::strtol(first.c_str(), &end, 10);
  if (!end || *end) return false;
  out.number = nr < 0 ? -1 : static_cast<int>(nr);
  if (out.number < 0) return true;
  if (fields.size() < 7) return false;
  for (size_t i = 0; i < 6; ++i) {
    std::string_view a = fields[i + 1];
    if (a.substr(0, 2) == "0x") a.remove_prefix(2);
    if (!parse_hex(a, out.args[i])) return false;
  }
  return true;
}

bool parse_inet_line(std::string_view line, bool v6, InetSocket& out) {
  out = {};
  out.v6 = v6;
  auto f = split_spaces(line, 11);
  if (f.size() < 10 || f[0].empty() || f[0].back() != ':') return false;  // the header line has "sl"
  auto endpoint = [&](std::string_view text, std::array<uint8_t, 16>& address, uint16_t& port) {
    size_t colon = text.find(':');
    const size_t hex_chars = v6 ? 32 : 8;
    if (colon != hex_chars) return false;
    // Each 32-bit word as the kernel holds it (network order), printed as a host-order number.
    for (size_t w = 0; w < hex_chars / 8; ++w) {
      uint64_t word = 0;
      if (!parse_hex(text.substr(w * 8, 8), word)) return false;
      uint32_t host = static_cast<uint32_t>(word);
      std::memcpy(address.data() + w * 4, &host, 4);
    }
    uint64_t p = 0;
    if (!parse_hex(text.substr(colon + 1), p) || p > 0xffff) return false;
    port = static_cast<uint16_t>(p);
    return true;
  };
  uint64_t state = 0;
  if (!endpoint(f[1], out.local, out.local_port) || !endpoint(f[2], out.remote, out.remote_port) ||
      !parse_hex(f[3], state))
    return false;
  out.state = static_cast<uint8_t>(state);
  char* end = nullptr;
  std::string inode(f[9]);
  out.inode = std::strtoull(inode.c_str(), &end, 10);
  return end && *end == 0;
}

bool parse_unix_line(std::string_view line, UnixSocket& out) {
  out = {};
  auto f = split_spaces(line, 8);
  if (f.size() < 7 || f[0].empty() || f[0].back() != ':') return false;  // "Num RefCount ..." header
  char* end = nullptr;
  std::string inode(f[6]);
  out.inode = std::strtoull(inode.c_str(), &end, 10);
  if (!end || *end) return false;
  if (f.size() > 7) out.path = std::string(f[7]).substr(0, 256);
  return true;
}

std::string format_endpoint(const std::array<uint8_t, 16>& address, bool v6, uint16_t port, bool with_port) {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char text[INET6_ADDRSTRLEN] = {};
  bool as_v4 = !v6 || std::memcmp(address.data(), kMapped, 12) == 0;
  if (as_v4) inet_ntop(AF_INET, address.data() + (v6 ? 12 : 0), text, sizeof text);
  else inet_ntop(AF_INET6, address.data(), text, sizeof text);
  if (!with_port) return text;
  return as_v4 ? fmt::format("{}:{}", text, port) : fmt::format("[{}]:{}", text, port);
}

std::vector<int> parse_epoll_targets(std::string_view fdinfo, size_t limit) {
  std::vector<int> out;
  for_each_line(fdinfo, [&](std::string_view line) {
    if (out.size() >= limit || line.substr(0, 4) != "tfd:") return;
    auto f = split_spaces(line.substr(4), 2);
    if (f.empty()) return;
    std::string n(f[0]);
    char* end = nullptr;
    long fd = std::strtol(n.c_str(), &end, 10);
    if (end && *end == 0 && fd >= 0 && fd < (1 << 30)) out.push_back(static_cast<int>(fd));
  });
  return out;
}

FdLink classify_fd_link(std::string_view link) {
  FdLink out;
  auto inode_in = [&](std::string_view prefix) -> bool {
    if (link.substr(0, prefix.size()) != prefix || link.back() != ']') return false;
    std::string digits(link.substr(prefix.size(), link.size() - prefix.size() - 1));
    char* end = nullptr;
    out.inode = std::strtoull(digits.c_str(), &end, 10);
    return end && *end == 0;
  };
  if (link.empty()) {
    out.kind = "unknown";
  } else if (inode_in("socket:[")) {
    out.kind = "socket";
  } else if (inode_in("pipe:[")) {
    out.kind = "pipe";
  } else if (link.substr(0, 11) == "anon_inode:") {
    std::string_view what = link.substr(11);
    if (!what.empty() && what.front() == '[' && what.back() == ']') what = what.substr(1, what.size() - 2);
    out.kind = what == "eventpoll" ? "epoll" : std::string(what.substr(0, 32));
  } else if (link.front() == '/') {
    out.kind = "file";
    out.path = std::string(link.substr(0, 256));
  } else {
    out.kind = std::string(link.substr(0, link.find(':')).substr(0, 32));
  }
  return out;
}

std::string count_kinds(const std::vector<std::string>& kinds) {
  std::vector<std::pair<std::string, size_t>> counts;
  for (const auto& k : kinds) {
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == k; });
    if (it == counts.end()) counts.push_back({k, 1});
    else ++it->second;
  }
  std::string out;
  for (const auto& [kind, n] : counts) out += fmt::format("{}{} {}{}", out.empty() ? "" : ", ", n, kind, n == 1 ? "" : "s");
  return out;
}

}  // namespace offcpu

// ---------------------------------------------------------------------------------------------

struct OffCpuReasons::Impl {
  explicit Impl(pid_t pid) : pid(pid), memory(pid) {
    fd_dir = open(fmt::format("/proc/{}/fd", pid).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    texts.push_back("");
  }
  ~Impl() {
    for (auto& [tid, t] : threads) close_thread(t);
    if (fd_dir >= 0) close(fd_dir);
    if (pidfd >= 0) close(pidfd);
  }

  struct Thread {
    int syscall_fd = -1, wchan_fd = -1;
    std::string last_line;  // the syscall file as last read: the same text is the same blocking call
    OffCpuReason last;
    int64_t last_ns = 0;
  };
  Thread& thread(pid_t tid) {
    auto [it, inserted] = threads.try_emplace(tid);
    if (inserted)
      it->second.syscall_fd = open(fmt::format("/proc/{}/task/{}/syscall", pid, tid).c_str(), O_RDONLY | O_CLOEXEC);
    return it->second;
  }
  pid_t looked_tid = 0;  // look()'s last thread, and its line
  std::string looked_line;
  static void close_thread(Thread& t) {
    if (t.syscall_fd >= 0) close(t.syscall_fd);
    if (t.wchan_fd >= 0) close(t.wchan_fd);
  }

  uint32_t intern(std::string text) {
    if (text.size() > kMaxReasonLength) text = text.substr(0, kMaxReasonLength) + "...";
    auto it = ids.find(text);
    if (it != ids.end()) return it->second;
    if (texts.size() >= kMaxTexts) {
      // Bounded: a target with unbounded distinct reasons (files by the thousand) starts over;
      // ids handed out before stay valid texts only until then.
      texts.resize(1);
      ids.clear();
      for (auto& [tid, t] : threads) t.last_line.clear();
    }
    uint32_t id = static_cast<uint32_t>(texts.size());
    ids.emplace(text, id);
    texts.push_back(std::move(text));
    return id;
  }

  offcpu::FdLink link_of(int fd) {
    ++stats.fd_lookups;
    char buf[512];
    ssize_t n = fd_dir >= 0 ? readlinkat(fd_dir, std::to_string(fd).c_str(), buf, sizeof buf - 1) : -1;
    return offcpu::classify_fd_link(n > 0 ? std::string_view(buf, static_cast<size_t>(n)) : std::string_view());
  }

  struct Socket {
    std::string text;
    bool unix_domain = false;
  };

  // A socket seen through a duplicate of the target's descriptor (pidfd_getfd, Linux 5.6+): its
  // addresses from getsockname/getpeername, whatever network namespace the target is in, in a few
  // microseconds. (The /proc/PID/net tables say the same, but reading /proc/net/tcp walks the
  // whole connection hash table: milliseconds even when it lists nothing.)
  bool socket_from_duplicate(int fd, Socket& out) {
    if (pidfd < 0) return false;
    int dup = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
    if (dup < 0) {
      if (errno == ENOSYS || errno == EPERM) {
        close(pidfd);  // not on this kernel, or not allowed: the tables from now on
        pidfd = -1;
      }
      return false;
    }
    ++stats.duplicates;
    int domain = 0, type = 0, listening = 0;
    socklen_t len = sizeof(int);
    getsockopt(dup, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    len = sizeof(int);
    getsockopt(dup, SOL_SOCKET, SO_TYPE, &type, &len);
    len = sizeof(int);
    getsockopt(dup, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    bool has_local = getsockname(dup, reinterpret_cast<sockaddr*>(&local), &local_len) == 0;
    bool has_peer = getpeername(dup, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0;
    close(dup);
    if (domain == AF_UNIX) {
      out.unix_domain = true;
      std::string path = has_local ? unix_path(local, local_len) : "";
      if (path.empty() && has_peer) path = unix_path(peer, peer_len);  // a client: where it connected
      out.text = path.empty() ? "unix socket" : "unix socket " + path;
    } else if (domain == AF_INET || domain == AF_INET6) {
      if (type == SOCK_DGRAM) {
        out.text = "udp socket " + endpoint(has_peer ? peer : local);
      } else if (listening) {
        out.text = "socket listening " + endpoint(local);
      } else if (has_peer && has_local && listening_ports().count(port_of(local))) {
        // A server's connection: where it was accepted, and from which host (clients' ports
        // differ per connection; the host does not).
        out.text = "socket " + endpoint(local) + " from " + endpoint(peer, false);
      } else {
        out.text = "socket " + (has_peer ? endpoint(peer) : endpoint(local));
      }
    } else {
      out.text = domain == AF_NETLINK ? "netlink socket" : "socket";
    }
    return true;
  }

  static std::string unix_path(const sockaddr_storage& a, socklen_t len) {
    const auto& un = reinterpret_cast<const sockaddr_un&>(a);
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    n = std::min(n, sizeof un.sun_path);
    if (n == 0) return {};
    if (un.sun_path[0] == 0) return "@" + std::string(un.sun_path + 1, n - 1);  // abstract
    return std::string(un.sun_path, strnlen(un.sun_path, n));
  }

  static uint16_t port_of(const sockaddr_storage& a) {
    return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(a).sin6_port
                                         : reinterpret_cast<const sockaddr_in&>(a).sin_port);
  }

  static std::string endpoint(const sockaddr_storage& a, bool with_port = true) {
    std::array<uint8_t, 16> bytes{};
    bool v6 = a.ss_family == AF_INET6;
    if (v6) std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, 16);
    else std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in&>(a).sin_addr, 4);
    return offcpu::format_endpoint(bytes, v6, port_of(a), with_port);
  }

  // The ports the target listens on (TCP): its own listening sockets, found among its descriptors,
  // looked for again at most once a second.
  const std::unordered_set<uint16_t>& listening_ports() {
    const int64_t now = monotonic_ns();
    if (now - listening_read_ns < kListeningReloadNs) return listening;
    listening_read_ns = now;
    listening.clear();
    DIR* d = fdopendir(openat(fd_dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) return listening;
    size_t looked = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.' || ++looked > kMaxWatched * 4) continue;
      int fd = std::atoi(e->d_name);
      if (link_of(fd).kind != "socket") continue;
      int dup = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
      if (dup < 0) continue;
      int accepting = 0;
      socklen_t len = sizeof accepting;
      sockaddr_storage local{};
      socklen_t local_len = sizeof local;
      if (getsockopt(dup, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting &&
          getsockname(dup, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
          (local.ss_family == AF_INET || local.ss_family == AF_INET6))
        listening.insert(port_of(local));
      close(dup);
    }
    closedir(d);
    return listening;
  }

  // Without pidfd_getfd: the target's /proc/PID/net tables (throttled; see above for their cost).
  void load_socket_tables() {
    sockets.clear();
    struct Inet {
      offcpu::InetSocket s;
      bool tcp;
    };
    std::vector<Inet> inet;
    std::unordered_set<uint32_t> listening_table;
    struct Table {
      const char* name;
      bool v6, tcp;
    };
    for (const Table& t : {Table{"tcp", false, true}, Table{"tcp6", true, true}, Table{"udp", false, false}, Table{"udp6", true, false}}) {
      const char* name = t.name;
      const bool v6 = t.v6, tcp = t.tcp;
      ++stats.table_loads;
      std::string table = read_whole(fmt::format("/proc/{}/net/{}", pid, name), kMaxTableBytes);
      for_each_line(table, [&](std::string_view line) {
        offcpu::InetSocket s;
        if (inet.size() >= kMaxSockets || !offcpu::parse_inet_line(line, v6, s) || s.inode == 0) return;
        if (tcp && s.state == 0x0A) listening_table.insert(s.local_port);
        inet.push_back({s, tcp});
      });
    }
    for (const auto& [s, tcp] : inet) {
      std::string text;
      if (tcp && s.state == 0x0A) {
        text = "socket listening " + offcpu::format_endpoint(s.local, s.v6, s.local_port);
      } else if (!tcp) {
        text = "udp socket " + (s.remote_port ? offcpu::format_endpoint(s.remote, s.v6, s.remote_port)
                                              : offcpu::format_endpoint(s.local, s.v6, s.local_port));
      } else if (listening_table.count(s.local_port)) {
        text = "socket " + offcpu::format_endpoint(s.local, s.v6, s.local_port) + " from " +
               offcpu::format_endpoint(s.remote, s.v6, 0, false);
      } else {
        text = "socket " + offcpu::format_endpoint(s.remote, s.v6, s.remote_port);
      }
      sockets[s.inode] = {std::move(text), false};
    }
    ++stats.table_loads;
    std::string table = read_whole(fmt::format("/proc/{}/net/unix", pid), kMaxTableBytes);
    for_each_line(table, [&](std::string_view line) {
      offcpu::UnixSocket u;
      if (sockets.size() >= kMaxSockets || !offcpu::parse_unix_line(line, u) || u.inode == 0) return;
      sockets[u.inode] = {u.path.empty() ? std::string("unix socket") : "unix socket " + u.path, true};
    });
  }

  const Socket& socket(int fd, uint64_t inode) {
    auto it = sockets.find(inode);
    if (it != sockets.end()) return it->second;
    if (sockets.size() >= kMaxSockets) sockets.clear();
    Socket s;
    if (socket_from_duplicate(fd, s)) return sockets[inode] = std::move(s);
    if (monotonic_ns() - sockets_loaded_ns >= kTableReloadNs) {
      load_socket_tables();
      sockets_loaded_ns = monotonic_ns();
      it = sockets.find(inode);
      if (it != sockets.end()) return it->second;
    }
    static const Socket unknown{"socket", false};
    return unknown;
  }

  std::string describe(int fd, const offcpu::FdLink& link) {
    if (link.kind == "socket") return socket(fd, link.inode).text;
    if (link.kind == "file") return link.path;
    return link.kind;
  }

  // The kind a watched descriptor is counted as: inet sockets and unix sockets apart.
  std::string kind_of(int fd, const offcpu::FdLink& link) {
    if (link.kind == "socket") return socket(fd, link.inode).unix_domain ? "unix socket" : "socket";
    return link.kind;
  }

  // "<one descriptor's description>" or "(3 sockets, 1 pipe)" for what a call waits on.
  std::string watched(const std::vector<int>& fds) {
    if (fds.empty()) return {};
    if (fds.size() == 1) return describe(fds[0], link_of(fds[0]));
    std::vector<std::string> kinds;
    for (int fd : fds) kinds.push_back(kind_of(fd, link_of(fd)));
    return "(" + offcpu::count_kinds(kinds) + ")";
  }

  std::vector<int> poll_fds(uint64_t address, uint64_t count) {
    std::vector<int> out;
    count = std::min<uint64_t>(count, kMaxWatched);
    if (!address || !count) return out;
    struct PollFd {
      int32_t fd;
      int16_t events, revents;
    };
    std::vector<PollFd> fds(count);
    ++stats.memory_reads;
    if (!memory.read(address, fds.data(), fds.size() * sizeof(PollFd))) return out;
    for (const auto& p : fds)
      if (p.fd >= 0) out.push_back(p.fd);
    return out;
  }

  std::vector<int> select_fds(const offcpu::SyscallLine& call) {
    std::vector<int> out;
    const uint64_t nfds = std::min<uint64_t>(call.args[0], kMaxWatched);
    const size_t bytes = (nfds + 63) / 64 * 8;
    std::vector<uint8_t> set(bytes);
    for (int a = 1; a <= 3; ++a) {
      if (!call.args[a] || !bytes) continue;
      ++stats.memory_reads;
      if (!memory.read(call.args[a], set.data(), bytes)) continue;
      for (uint64_t fd = 0; fd < nfds; ++fd)
        if (set[fd / 8] & (1u << (fd % 8))) out.push_back(static_cast<int>(fd));
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  std::string reason_for(const offcpu::SyscallLine& call, Thread& t) {
    if (call.number < 0) {
      // Blocked outside a system call (a page fault waiting for I/O): where in the kernel.
      if (t.wchan_fd < 0) t.wchan_fd = open(fmt::format("/proc/{}/task/{}/wchan", pid, tid_now).c_str(), O_RDONLY | O_CLOEXEC);
      std::string wchan = read_open(t.wchan_fd);
      if (wchan.empty() || wchan == "0") return "blocked in the kernel";
      return "kernel " + wchan.substr(0, 64);
    }
    std::string_view name = syscall_name(call.number);
    std::string text = name.empty() ? fmt::format("syscall {}", call.number) : std::string(name);
    std::string what;
    switch (waits_of(name)) {
      case Waits::kNothing: break;
      case Waits::kFd:
        if (call.args[0] < (1u << 30)) what = watched({static_cast<int>(call.args[0])});
        break;
      case Waits::kEpoll:
        if (call.args[0] < (1u << 30)) {
          std::string fdinfo = read_whole(fmt::format("/proc/{}/fdinfo/{}", pid, call.args[0]), 1 << 20);
          what = watched(offcpu::parse_epoll_targets(fdinfo, kMaxWatched));
          if (what.empty()) what = "(nothing)";
        }
        break;
      case Waits::kPoll: what = watched(poll_fds(call.args[0], call.args[1])); break;
      case Waits::kSelect: what = watched(select_fds(call)); break;
    }
    return what.empty() ? text : text + " " + what;
  }

  pid_t pid;
  Memory memory;
  int fd_dir = -1;
  pid_t tid_now = 0;
  std::unordered_map<pid_t, Thread> threads;
  std::vector<std::string> texts;
  std::unordered_map<std::string, uint32_t> ids;
  int pidfd = -1;
  std::unordered_map<uint64_t, Socket> sockets;  // by inode
  int64_t sockets_loaded_ns = -kTableReloadNs;
  std::unordered_set<uint16_t> listening;
  int64_t listening_read_ns = -kListeningReloadNs;
  Stats stats;
};

OffCpuReasons::OffCpuReasons(pid_t pid) : impl_(std::make_unique<Impl>(pid)) {}
OffCpuReasons::~OffCpuReasons() = default;

const std::string& OffCpuReasons::text(uint32_t id) const {
  return id < impl_->texts.size() ? impl_->texts[id] : impl_->texts[0];
}

const OffCpuReasons::Stats& OffCpuReasons::stats() const { return impl_->stats; }

void OffCpuReasons::forget(pid_t tid) {
  auto it = impl_->threads.find(tid);
  if (it == impl_->threads.end()) return;
  Impl::close_thread(it->second);
  impl_->threads.erase(it);
}

char OffCpuReasons::look(pid_t tid) {
  Impl& s = *impl_;
  s.looked_tid = tid;
  s.looked_line = read_open(s.thread(tid).syscall_fd);
  offcpu::SyscallLine call;
  if (s.looked_line.empty() || !offcpu::parse_syscall_line(s.looked_line, call)) return '?';
  if (call.running) return 'R';
  return call.number >= 0 ? 'S' : '?';
}

OffCpuReason OffCpuReasons::read(pid_t tid, char state, bool as_looked) {
  Impl& s = *impl_;
  const int64_t start = monotonic_ns();
  ++s.stats.reads;
  OffCpuReason r;
  if (state == 'T' || state == 't') {
    r.id = s.intern(state == 'T' ? "stopped" : "stopped by a tracer");
    s.stats.ns += monotonic_ns() - start;
    return r;
  }
  Impl::Thread& t = s.thread(tid);
  std::string line = as_looked && s.looked_tid == tid ? std::move(s.looked_line) : read_open(t.syscall_fd);
  s.looked_tid = 0;
  offcpu::SyscallLine call;
  if (line.empty() || !offcpu::parse_syscall_line(line, call)) {
    r.id = s.intern("unknown");  // gone, or not allowed to look (ptrace access mode)
  } else if (call.running) {
    r.running = true;
  } else if (line == t.last_line && start - t.last_ns < kSameCallNs) {
    ++s.stats.same_call;  // still in the call it was blocked in last time
    r = t.last;
  } else {
    s.tid_now = tid;
    r.inactive = true;
    r.syscall = call.number;
    r.id = s.intern(s.reason_for(call, t));
    t.last_line = std::move(line);
    t.last = r;
    t.last_ns = start;
  }
  s.stats.ns += monotonic_ns() - start;
  return r;
}

}  // namespace swprof::target

// The /proc formats offcpu.cpp reads, parsed without touching /proc (the unit tests feed them).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace swprof::target::offcpu {

// /proc/PID/task/TID/syscall: "NR ARG0 .. ARG5 SP PC", "-1 SP PC" (blocked outside a system
// call), or "running".
struct SyscallLine {
  bool running = false;
  int number = -1;  // -1: not in a system call
  std::array<uint64_t, 6> args{};
};
bool parse_syscall_line(std::string_view text, SyscallLine& out);

// One line of /proc/PID/net/{tcp,tcp6,udp,udp6}.
struct InetSocket {
  uint64_t inode = 0;
  std::array<uint8_t, 16> local{}, remote{};  // IPv4 in the first 4 bytes
  uint16_t local_port = 0, remote_port = 0;
  uint8_t state = 0;  // TCP_* (0x0A: listening)
  bool v6 = false;
};
bool parse_inet_line(std::string_view line, bool v6, InetSocket& out);

// One line of /proc/PID/net/unix: the inode and the bound path ("@name" when abstract, "" none).
struct UnixSocket {
  uint64_t inode = 0;
  std::string path;
};
bool parse_unix_line(std::string_view line, UnixSocket& out);

// "127.0.0.1:5432", "[::1]:5432"; an IPv4-mapped IPv6 address as IPv4. Without the port: the host.
std::string format_endpoint(const std::array<uint8_t, 16>& address, bool v6, uint16_t port, bool with_port = true);

// The target descriptors ("tfd:") of an epoll instance's /proc/PID/fdinfo, at most `limit`.
std::vector<int> parse_epoll_targets(std::string_view fdinfo, size_t limit);

// What a descriptor is, from its /proc/PID/fd link: "socket:[123]" -> kind "socket", inode 123;
// "pipe:[5]" -> "pipe"; "anon_inode:[eventfd]" -> "eventfd"; "/path" -> "file".
struct FdLink {
  std::string kind;   // socket, pipe, eventfd, epoll, timerfd, signalfd, inotify, file, or the anon_inode's name
  uint64_t inode = 0; // sockets and pipes
  std::string path;   // files
};
FdLink classify_fd_link(std::string_view link);

// "3 sockets, 1 pipe" for the kinds of the watched descriptors (in order of first appearance).
std::string count_kinds(const std::vector<std::string>& kinds);

}  // namespace swprof::target::offcpu

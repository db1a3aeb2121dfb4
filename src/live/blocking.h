// What a thread waits for in the kernel: its state, the system call it is in and on what (an fd's
// kind, a socket's addresses, the fds a poll or epoll waits on), from /proc. Reading the target's
// memory for poll/select arguments goes through process_vm_readv: nothing is written.
#pragma once

#include <sys/types.h>

#include <string>
#include <unordered_map>

#include "swprof/live.h"
#include "swprof/target.h"

namespace swprof::live {

class BlockingReader {
 public:
  BlockingReader(pid_t pid, const target::Memory& memory) : pid_(pid), memory_(memory) {}
  // The scheduler state letter of /proc/PID/task/TID/stat ('?' when unreadable).
  char state(pid_t tid) const;
  Blocking read(pid_t tid);
  // An fd as a person knows it: "socket 127.0.0.1:8080 -> 127.0.0.1:51234 (established)",
  // "pipe", "epoll", "file /var/log/app.log".
  std::string describe_fd(int64_t fd);

 private:
  void load_sockets();
  std::string describe_fds(const std::vector<int64_t>& fds, size_t limit);
  std::string poll_detail(uint64_t fds, uint64_t count);
  std::string select_detail(uint64_t nfds, uint64_t readfds, uint64_t writefds);
  std::string epoll_detail(int64_t epfd);

  pid_t pid_;
  const target::Memory& memory_;
  bool sockets_loaded_ = false;
  std::unordered_map<uint64_t, std::string> sockets_;  // inode -> description
};

// The name of system call `number` on this architecture ("" when not in our table).
std::string syscall_name(int64_t number);

}  // namespace swprof::live

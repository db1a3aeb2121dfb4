// The profiled process, seen from outside: its memory (read only), /proc, its ELF files, and
// launching a command to profile.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace swprof::target {

// Reads the target's memory with process_vm_readv. Never writes it. A failed read returns false;
// callers treat that as a torn or stale pointer, never as fatal.
class Memory {
 public:
  explicit Memory(pid_t pid) : pid_(pid) {}
  pid_t pid() const { return pid_; }

  bool read(uint64_t address, void* out, size_t size) const;
  template <class T>
  bool read_value(uint64_t address, T& out) const {
    return read(address, &out, sizeof(T));
  }

  struct Request {
    uint64_t address;
    void* out;
    size_t size;
    bool ok;
  };
  // Many reads in as few system calls as possible; sets each request's `ok`. Returns how many
  // succeeded.
  size_t read_batch(std::span<Request> requests) const;

  uint64_t syscalls() const { return syscalls_; }

 private:
  pid_t pid_;
  mutable uint64_t syscalls_ = 0;
};

struct Mapping {
  uint64_t start = 0, end = 0, file_offset = 0;
  bool readable = false, writable = false, executable = false;
  uint64_t inode = 0;
  std::string path;      // as /proc/PID/maps prints it, without " (deleted)"
  bool deleted = false;
};

// /proc/PID/maps. Empty when the process is gone.
std::vector<Mapping> read_maps(pid_t pid);

// Paths under which we can open a file the target has mapped, best first:
// /proc/PID/map_files/<start>-<end> (the mapped file itself, whatever its name in our mount
// namespace, even deleted), /proc/PID/root/<path> (the target's root, as in a container), <path>.
std::vector<std::string> host_paths(pid_t pid, const Mapping& mapping);

// Thread ids of the process (/proc/PID/task).
std::vector<pid_t> list_threads(pid_t pid);

// The process's descendants, breadth first (children of every thread, /proc/PID/task/TID/children),
// at most `limit`.
std::vector<pid_t> descendants(pid_t pid, size_t limit = 256);

// A process in a PID namespace (a container seen from the host, `unshare -p`) knows its threads
// by namespace-local ids, and those are what the interpreter stores; /proc wants ours. The map
// comes from the NSpid line of /proc/PID/task/TID/status (ours first, the innermost last).
class ThreadIds {
 public:
  explicit ThreadIds(pid_t pid);
  // Our id of the thread the target calls `target_tid`; 0 when the target has no such thread.
  // An unknown id re-reads the map (a new thread), at most once per call.
  pid_t to_host(int64_t target_tid);
  // The ids the target uses for its threads now.
  std::vector<pid_t> target_ids();
  bool nested() const { return nested_; }  // the target is in another PID namespace

 private:
  void refresh();
  pid_t pid_;
  bool nested_ = false;
  std::vector<std::pair<pid_t, pid_t>> map_;  // (target's id, ours), sorted
};

// A small file (of /proc) read whole, at most about 1 MiB; empty when it cannot be read.
std::string read_small_file(const std::string& path);

bool process_exists(pid_t pid);
bool thread_exists(pid_t pid, pid_t tid);
std::string read_comm(pid_t pid, pid_t tid);              // /proc/PID/task/TID/comm, trimmed
std::vector<std::string> read_cmdline(pid_t pid);          // /proc/PID/cmdline
std::string read_exe(pid_t pid);                           // readlink /proc/PID/exe

// Per-thread CPU time and scheduler state, from /proc/PID/task/TID/{schedstat,stat}. Keeps the
// files open between reads: a sample costs two pread calls per thread.
class ThreadStats {
 public:
  explicit ThreadStats(pid_t pid) : pid_(pid) {}
  ~ThreadStats();
  ThreadStats(const ThreadStats&) = delete;
  ThreadStats& operator=(const ThreadStats&) = delete;

  struct Reading {
    uint64_t cpu_ns = 0;       // time spent on a CPU since the thread started
    uint64_t runqueue_ns = 0;  // time spent runnable, waiting for a CPU, since it started
    uint64_t timeslices = 0;   // times it was given a CPU
    char state = '?';          // R, S, D, T, Z, ...
    bool ok = false;
    // Neither switched in nor out between the two readings (see the recorder's use).
    bool same_counters(const Reading& o) const {
      return cpu_ns == o.cpu_ns && runqueue_ns == o.runqueue_ns && timeslices == o.timeslices;
    }
  };
  Reading read(pid_t tid);                 // schedstat and the state
  Reading read_cpu(pid_t tid);             // schedstat only (state '?')
  char read_state(pid_t tid);              // the state only ('?' when unreadable)
  void forget(pid_t tid);  // the thread ended

 private:
  struct Files {
    int schedstat = -1, stat = -1;
  };
  Files& files_of(pid_t tid);
  pid_t pid_;
  std::unordered_map<pid_t, Files> files_;
};

// A command launched for profiling: stdin/stdout/stderr are inherited.
class Child {
 public:
  // Forks and execs argv (PATH lookup). Throws UserError when the command cannot be run.
  static Child launch(const std::vector<std::string>& argv);
  pid_t pid() const { return pid_; }
  // Non-blocking: true once the child has exited; exit_status() is then valid.
  bool poll_exited();
  int wait();  // blocks; returns the exit status (128+N when killed by signal N)
  int exit_status() const { return exit_status_; }
  bool exited() const { return exited_; }
  // Its exit was collected by someone else's waitpid (a ptrace stop that met the exit: see
  // native::Unwinder::reaped_exit): `wait_status` as waitpid gave it.
  void exited_with(int wait_status);
  void signal(int sig) const;

 private:
  bool collect(bool block);

  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_status_ = 0;
};

}  // namespace swprof::target

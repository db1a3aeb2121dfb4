#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "swprof/target.h"

namespace swprof::target {

std::string read_small_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1u << 20)) break;  // bounded: nothing we read here is that large
  }
  close(fd);
  return out;
}

std::vector<Mapping> read_maps(pid_t pid) {
  std::vector<Mapping> maps;
  std::ifstream in(fmt::format("/proc/{}/maps", pid));
  std::string line;
  while (std::getline(in, line)) {
    Mapping m;
    char perms[8] = {};
    unsigned long long start, end, offset, inode;
    unsigned dev_major, dev_minor;
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &offset,
                    &dev_major, &dev_minor, &inode, &consumed) < 7)
      continue;
    m.start = start;
    m.end = end;
    m.file_offset = offset;
    m.inode = inode;
    m.readable = perms[0] == 'r';
    m.writable = perms[1] == 'w';
    m.executable = perms[2] == 'x';
    if (consumed > 0 && static_cast<size_t>(consumed) <= line.size()) m.path = line.substr(consumed);
    const std::string deleted = " (deleted)";
    if (m.path.size() > deleted.size() &&
        m.path.compare(m.path.size() - deleted.size(), deleted.size(), deleted) == 0) {
      m.path.resize(m.path.size() - deleted.size());
      m.deleted = true;
    }
    maps.push_back(std::move(m));
  }
  return maps;
}

std::vector<std::string> host_paths(pid_t pid, const Mapping& m) {
  return {fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, m.start, m.end), fmt::format("/proc/{}/root{}", pid, m.path),
          m.path};
}

std::vector<pid_t> list_threads(pid_t pid) {
  std::vector<pid_t> tids;
  std::string dir = fmt::format("/proc/{}/task", pid);
  DIR* d = opendir(dir.c_str());
  if (!d) return tids;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long tid = std::strtol(e->d_name, &end, 10);
    if (end && *end == 0 && tid > 0) tids.push_back(static_cast<pid_t>(tid));
  }
  closedir(d);
  return tids;
}

namespace {

// The NSpid line of a status file: the id in each PID namespace, ours first, the innermost last.
std::vector<pid_t> nspid_of(const std::string& status) {
  std::vector<pid_t> ids;
  size_t at = status.find("\nNSpid:");
  if (at == std::string::npos) return ids;
  const char* p = status.c_str() + at + 7;
  for (;;) {
    char* end = nullptr;
    long v = std::strtol(p, &end, 10);
    if (end == p || v <= 0 || ids.size() >= 32) break;
    ids.push_back(static_cast<pid_t>(v));
    p = end;
    if (*p != ' ' && *p != '\t') break;
  }
  return ids;
}

}  // namespace

ThreadIds::ThreadIds(pid_t pid) : pid_(pid) {
  nested_ = nspid_of(read_small_file(fmt::format("/proc/{}/status", pid))).size() > 1;
  if (nested_) refresh();
}

void ThreadIds::refresh() {
  map_.clear();
  for (pid_t tid : list_threads(pid_)) {
    auto ids = nspid_of(read_small_file(fmt::format("/proc/{}/task/{}/status", pid_, tid)));
    if (!ids.empty()) map_.emplace_back(ids.back(), ids.front());
  }
  std::sort(map_.begin(), map_.end());
}

pid_t ThreadIds::to_host(int64_t target_tid) {
  if (target_tid <= 0 || target_tid > INT32_MAX) return 0;
  if (!nested_) return static_cast<pid_t>(target_tid);
  auto find = [&]() -> pid_t {
    auto it = std::lower_bound(map_.begin(), map_.end(), std::make_pair(static_cast<pid_t>(target_tid), pid_t(0)));
    return it != map_.end() && it->first == target_tid ? it->second : 0;
  };
  if (pid_t host = find()) return host;
  refresh();
  return find();
}

std::vector<pid_t> ThreadIds::target_ids() {
  if (!nested_) return list_threads(pid_);
  refresh();
  std::vector<pid_t> ids;
  for (auto [inner, host] : map_) ids.push_back(inner);
  return ids;
}

std::vector<pid_t> descendants(pid_t pid, size_t limit) {
  std::vector<pid_t> out;
  for (size_t next = 0, parent = pid; out.size() < limit;) {
    for (pid_t tid : list_threads(static_cast<pid_t>(parent))) {
      std::string children = read_small_file(fmt::format("/proc/{}/task/{}/children", parent, tid));
      const char* p = children.c_str();
      for (char* end = nullptr;; p = end) {
        long child = std::strtol(p, &end, 10);
        if (end == p || child <= 0) break;
        if (out.size() < limit && std::find(out.begin(), out.end(), child) == out.end())
          out.push_back(static_cast<pid_t>(child));
      }
    }
    if (next >= out.size()) break;
    parent = static_cast<size_t>(out[next++]);
  }
  return out;
}

bool process_exists(pid_t pid) {
  std::string stat = read_small_file(fmt::format("/proc/{}/stat", pid));
  // Unreadable is not gone: only the kernel's "no such process" says that. (A recording of a
  // live 3.11 program once ended at 330 ms as if it had exited, its thread list and this file
  // unreadable at one tick; how the read failed is not known.)
  if (stat.empty()) return !(kill(pid, 0) != 0 && errno == ESRCH);
  // A zombie has exited: there is nothing left to profile.
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

bool thread_exists(pid_t pid, pid_t tid) {
  std::string stat = read_small_file(fmt::format("/proc/{}/task/{}/stat", pid, tid));
  size_t paren = stat.rfind(')');
  return !stat.empty() && (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z');
}

std::string read_comm(pid_t pid, pid_t tid) {
  std::string comm = read_small_file(fmt::format("/proc/{}/task/{}/comm", pid, tid));
  while (!comm.empty() && (comm.back() == '\n' || comm.back() == '\0')) comm.pop_back();
  return comm;
}

std::vector<std::string> read_cmdline(pid_t pid) {
  std::string raw = read_small_file(fmt::format("/proc/{}/cmdline", pid));
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\0') {
      args.push_back(raw.substr(start, i - start));
      start = i + 1;
    }
  }
  if (start < raw.size()) args.push_back(raw.substr(start));
  return args;
}

std::string read_exe(pid_t pid) {
  char buf[4096];
  ssize_t n = readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

ThreadStats::~ThreadStats() {
  for (auto& [tid, f] : files_) {
    if (f.schedstat >= 0) close(f.schedstat);
    if (f.stat >= 0) close(f.stat);
  }
}

void ThreadStats::forget(pid_t tid) {
  auto it = files_.find(tid);
  if (it == files_.end()) return;
  if (it->second.schedstat >= 0) close(it->second.schedstat);
  if (it->second.stat >= 0) close(it->second.stat);
  files_.erase(it);
}

ThreadStats::Files& ThreadStats::files_of(pid_t tid) {
  auto [it, inserted] = files_.try_emplace(tid);
  Files& f = it->second;
  if (inserted) {
    f.schedstat = open(fmt::format("/proc/{}/task/{}/schedstat", pid_, tid).c_str(), O_RDONLY | O_CLOEXEC);
    f.stat = open(fmt::format("/proc/{}/task/{}/stat", pid_, tid).c_str(), O_RDONLY | O_CLOEXEC);
  }
  return f;
}

ThreadStats::Reading ThreadStats::read(pid_t tid) {
  Reading r = read_cpu(tid);
  r.state = read_state(tid);
  return r;
}

ThreadStats::Reading ThreadStats::read_cpu(pid_t tid) {
  Reading r;
  Files& f = files_of(tid);
  char buf[512];
  if (f.schedstat >= 0) {
    ssize_t n = pread(f.schedstat, buf, sizeof buf - 1, 0);
    if (n > 0) {
      buf[n] = 0;
      // "<on CPU ns> <waiting on a run queue ns> <timeslices>"
      char* end = nullptr;
      r.cpu_ns = std::strtoull(buf, &end, 10);
      r.runqueue_ns = std::strtoull(end, &end, 10);
      r.timeslices = std::strtoull(end, nullptr, 10);
      r.ok = true;
    }
  }
  return r;
}

char ThreadStats::read_state(pid_t tid) {
  Files& f = files_of(tid);
  char buf[512];
  if (f.stat >= 0) {
    ssize_t n = pread(f.stat, buf, sizeof buf - 1, 0);
    if (n > 0) {
      buf[n] = 0;
      // "tid (comm) S ..." where comm may itself contain ") ".
      const char* paren = std::strrchr(buf, ')');
      if (paren && paren[1] == ' ' && paren[2]) return paren[2];
    }
  }
  return '?';
}

}  // namespace swprof::target

#include "record/process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace swprof::record {

namespace {

// The whole of a small /proc file (≤ 4 KiB; a longer one is cut there).
std::string read_small(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

ProcessTree::ProcessTree(pid_t root) {
  Known k;
  if (read_stat(root, k)) known_[root] = k;
}

bool ProcessTree::read_stat(pid_t pid, Known& out) {
  std::string stat = read_small(fmt::format("/proc/{}/stat", pid));
  // "pid (comm) S ppid ...": fields from 3 on follow the last ')' (comm may hold ") ").
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return false;
  const char* p = stat.c_str() + paren + 1;
  uint64_t fields[29] = {};
  for (int field = 3; field <= 28 && *p; ++field) {
    while (*p == ' ') ++p;
    if (field == 3) {
      ++p;  // the state letter
      continue;
    }
    char* end = nullptr;
    fields[field] = std::strtoull(p, &end, 10);
    if (end == p) return false;
    p = end;
  }
  out.start_time = fields[22];
  out.start_code = fields[26];
  out.start_stack = fields[28];
  return true;
}

ProcessTree::Scan ProcessTree::scan() {
  Scan result;
  std::vector<Found>& found = result.forked;
  // Forget the processes that are gone (or whose pid now holds another process); note the ones
  // whose image moved (exec).
  for (auto it = known_.begin(); it != known_.end();) {
    Known now;
    if (!read_stat(it->first, now) || now.start_time != it->second.start_time) {
      it = known_.erase(it);
      continue;
    }
    if (now.start_code != it->second.start_code || now.start_stack != it->second.start_stack)
      result.execed.push_back(it->first);
    it->second = now;
    ++it;
  }
  // Children of every known process, including the ones found in this scan (a map's iteration
  // reaches keys inserted past the current one only by chance: go round until nothing is new).
  std::vector<pid_t> parents;
  for (const auto& [pid, k] : known_) parents.push_back(pid);
  for (size_t i = 0; i < parents.size(); ++i) {
    const pid_t parent = parents[i];
    DIR* tasks = opendir(fmt::format("/proc/{}/task", parent).c_str());
    if (!tasks) continue;
    while (dirent* e = readdir(tasks)) {
      if (e->d_name[0] == '.') continue;
      std::string children = read_small(fmt::format("/proc/{}/task/{}/children", parent, e->d_name));
      const char* p = children.c_str();
      while (*p) {
        char* end = nullptr;
        long child = std::strtol(p, &end, 10);
        if (end == p) break;
        p = end;
        Known k;
        if (child <= 0 || known_.count(static_cast<pid_t>(child)) || !read_stat(static_cast<pid_t>(child), k)) continue;
        known_[static_cast<pid_t>(child)] = k;
        found.push_back({static_cast<pid_t>(child), parent});
        parents.push_back(static_cast<pid_t>(child));
      }
    }
    closedir(tasks);
  }
  return result;
}

}  // namespace swprof::record

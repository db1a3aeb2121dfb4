// How frames are named in the reports: Python-aware short paths and code origins.
#include <unistd.h>

#include <fmt/format.h>

#include "swprof/analyze.h"

namespace swprof::analyze {

namespace {

const std::string& current_directory() {
  static const std::string cwd = [] {
    char buf[4096];
    return getcwd(buf, sizeof buf) ? std::string(buf) : std::string();
  }();
  return cwd;
}

size_t find_packages(std::string_view file) {
  for (std::string_view marker : {"/site-packages/", "/dist-packages/"}) {
    size_t at = file.rfind(marker);
    if (at != std::string_view::npos) return at + 1;
  }
  return std::string_view::npos;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "/usr/lib/python3.11/json/decoder.py" -> position of "python3.11/": the first "python" that
// follows "/lib/" or "/lib64/" and is followed by "D.D+/". A hand-written scan, linear in the
// length of the name (file names come from the profiled program or from a file someone sent).
size_t find_stdlib(std::string_view file) {
  constexpr std::string_view kPython = "python";
  for (size_t at = file.find(kPython); at != std::string_view::npos; at = file.find(kPython, at + 1)) {
    std::string_view before = file.substr(0, at);
    if (!before.ends_with("/lib/") && !before.ends_with("/lib64/")) continue;
    size_t i = at + kPython.size();
    if (i + 1 >= file.size() || !is_digit(file[i]) || file[i + 1] != '.') continue;
    i += 2;
    size_t digits = i;
    while (i < file.size() && is_digit(file[i])) ++i;
    if (i > digits && i < file.size() && file[i] == '/') return at;
  }
  return std::string_view::npos;
}

}  // namespace

std::string short_path(std::string_view file) {
  if (size_t at = find_packages(file); at != std::string_view::npos) return std::string(file.substr(at));
  if (size_t at = find_stdlib(file); at != std::string_view::npos) return std::string(file.substr(at));
  const std::string& cwd = current_directory();
  if (!cwd.empty() && file.size() > cwd.size() + 1 && file.substr(0, cwd.size()) == cwd && file[cwd.size()] == '/')
    return std::string(file.substr(cwd.size() + 1));
  return std::string(file);
}

int code_origin(std::string_view file) {
  if (file.empty()) return 3;
  if (find_packages(file) != std::string_view::npos) return 2;
  if (file.rfind("<frozen", 0) == 0 || find_stdlib(file) != std::string_view::npos) return 1;
  return 0;
}

std::string frame_label(const Node& node, bool short_file) {
  // Synthetic nodes, and imported frames whose name is an opaque signature, have no location.
  if (node.kind != NodeKind::kFrame || node.file.empty()) return std::string(node.function);
  return fmt::format("{} ({}:{})", node.function, short_file ? short_path(node.file) : std::string(node.file),
                     node.line);
}

}  // namespace swprof::analyze

// How frames are named in the reports: Python-aware short paths and code origins.
#include <unistd.h>

#include <regex>

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

// "/usr/lib/python3.11/json/decoder.py" -> position of "python3.11/".
size_t find_stdlib(std::string_view file) {
  static const std::regex re(R"(/lib(64)?/python\d\.\d+/)");
  std::match_results<std::string_view::const_iterator> m;
  if (std::regex_search(file.begin(), file.end(), m, re)) return static_cast<size_t>(m.position(0)) + m.length(1) + 5;
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

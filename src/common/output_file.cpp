#include "swprof/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "swprof/common.h"

namespace swprof {

namespace {

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

mode_t current_umask() {
  mode_t mask = umask(0);
  umask(mask);
  return mask;
}

}  // namespace

OutputFile::OutputFile(const std::string& path, Mode mode) : path_(path), mode_(mode) {
  struct stat st;
  bool exists = stat(path.c_str(), &st) == 0;
  // A device, pipe or socket (/dev/null, /dev/stdout, a FIFO) is written to, never renamed over.
  if (exists && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) mode_ = mode = Mode::kStream;
  if (mode == Mode::kStream) {
    fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  } else {
    // Refuse a directory up front: the rename would fail only after all the work.
    if (exists && S_ISDIR(st.st_mode))
      throw UserError(fmt::format("cannot write {}: {}", path, std::strerror(EISDIR)));
    std::string dir = directory_of(path);
    temp_ = (dir == "/" ? "" : dir) + "/." + base_of(path) + ".swprof-XXXXXX";
    fd_ = mkostemp(temp_.data(), O_CLOEXEC);
    // mkstemp makes 0600; the result should look like any file the user creates.
    if (fd_ >= 0) fchmod(fd_, 0666 & ~current_umask());
  }
  if (fd_ < 0) throw UserError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_ && !temp_.empty()) unlink(temp_.c_str());
}

void OutputFile::fail(int error) {
  if (!error_) error_ = error ? error : EIO;
}

bool OutputFile::write(std::string_view data) {
  if (error_ || fd_ < 0) return false;
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fail(n < 0 ? errno : ENOSPC);  // a write of 0 bytes means the device has no room
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
    size_ += static_cast<uint64_t>(n);
  }
  return true;
}

void OutputFile::truncate(uint64_t size) {
  if (fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(size)) == 0 && lseek(fd_, static_cast<off_t>(size), SEEK_SET) >= 0)
    size_ = size;
}

std::string OutputFile::error_message() const {
  return fmt::format("writing {} failed: {}", path_, std::strerror(error_ ? error_ : EIO));
}

void OutputFile::commit(const std::function<void(const std::string& written)>& verify) {
  if (committed_) return;
  if (fd_ >= 0) {
    if (mode_ == Mode::kReplace && !error_ && fsync(fd_) != 0) fail(errno);
    if (close(fd_) != 0) fail(errno);
    fd_ = -1;
  }
  if (!error_ && verify) verify(mode_ == Mode::kReplace ? temp_ : path_);
  if (!error_ && mode_ == Mode::kReplace && rename(temp_.c_str(), path_.c_str()) != 0) fail(errno);
  if (error_) throw UserError(error_message());
  committed_ = true;
}

void write_whole_file(const std::string& path, std::string_view data) {
  OutputFile out(path, OutputFile::Mode::kReplace);
  out.write(data);
  out.commit();
}

}  // namespace swprof

// A file swprof writes, with the two behaviours a full disk calls for:
//   kReplace  (flamegraph, export, import): written to a temporary file in the same directory and
//             renamed over the target only when complete, so an existing file is replaced by a
//             whole one or not at all;
//   kStream   (record): written in place as it goes, so a killed or starved recorder leaves the
//             prefix it managed to write. A target that is not a regular file (/dev/null,
//             /dev/stdout, a FIFO) is always written this way: it cannot be renamed over.
// Either way the first failing write is remembered with its errno, and nothing is written after it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace swprof {

class OutputFile {
 public:
  enum class Mode { kReplace, kStream };

  // Opens (kStream: creates or truncates) the file. Throws UserError "cannot write PATH: why".
  OutputFile(const std::string& path, Mode mode);
  ~OutputFile();  // without commit(), a kReplace temporary is removed and the target left alone
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Appends all of `data`; false (and failed()) when the disk refuses.
  bool write(std::string_view data);
  // Cuts the file back to `size` bytes (a record that was only partly written).
  void truncate(uint64_t size);
  // kReplace: syncs, closes, lets `verify` read the complete temporary file (it throws to refuse
  // it) and renames it over the target; kStream: closes. Throws UserError "writing PATH failed:
  // why" when any write failed or the disk refuses now.
  void commit(const std::function<void(const std::string& written)>& verify = {});

  bool failed() const { return error_ != 0; }
  int error() const { return error_; }
  // "writing PATH failed: No space left on device"
  std::string error_message() const;
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }

 private:
  void fail(int error);
  std::string path_, temp_;
  Mode mode_;
  int fd_ = -1;
  int error_ = 0;
  uint64_t size_ = 0;
  bool committed_ = false;
};

// Writes a whole file at once (kReplace). Throws UserError when it cannot.
void write_whole_file(const std::string& path, std::string_view data);

}  // namespace swprof

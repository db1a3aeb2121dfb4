// What the recorder tells the user: a one-line status on stderr while recording (only on a TTY)
// and the summary at the end.
#pragma once

#include <cstdint>
#include <string>

#include "swprof.pb.h"

namespace swprof::record {

class Status {
 public:
  Status(bool wanted, int pid, std::string python);
  void update(int64_t elapsed_us, uint64_t samples, uint64_t errors, size_t threads);
  void clear();

 private:
  bool enabled_;
  int pid_;
  std::string python_;
  int64_t last_us_ = -1000000;
  bool shown_ = false;
};

void print_summary(const pb::Footer& footer, const pb::Header& header, const std::string& path, uint64_t bytes);

}  // namespace swprof::record

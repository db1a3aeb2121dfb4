// libFuzzer: swprof import --from skywalking on arbitrary JSON, then the reader on what it wrote
// and every analysis and export path on that.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "exercise.h"
#include "swprof/common.h"
#include "swprof/export.h"
#include "swprof/snapshot.h"

namespace {

// The input as a file (the importer reads a path) and a private directory for its output.
struct Scratch {
  Scratch() {
    input_fd = memfd_create("fuzz.json", MFD_CLOEXEC);
    input = "/proc/self/fd/" + std::to_string(input_fd);
    char dir[] = "/tmp/swprof-fuzz-XXXXXX";
    directory = mkdtemp(dir);
    output = directory + "/out.swp";
  }
  ~Scratch() {
    unlink(output.c_str());
    rmdir(directory.c_str());
  }
  int input_fd;
  std::string input, directory, output;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = (swprof::fuzz::quiet(), true);
  (void)quiet;
  static Scratch scratch;
  if (ftruncate(scratch.input_fd, 0) != 0 || pwrite(scratch.input_fd, data, size, 0) != static_cast<ssize_t>(size))
    abort();
  try {
    swprof::exporter::skywalking_import(scratch.input, scratch.output);
    auto rec = swprof::snapshot::read_file(scratch.output);
    swprof::fuzz::exercise(rec, size ? data[size - 1] : 0);
  } catch (const swprof::UserError&) {
  }
  return 0;
}

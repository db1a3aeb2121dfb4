// A main() for the fuzz targets in builds without libFuzzer (the normal and the sanitizer build):
// runs the target on every file given, or in the directories given, and reports the slowest
// input and the peak memory, so that regression files and corpora are checked by ctest.
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') inputs.push_back(e.path());
    } else {
      inputs.push_back(p);
    }
  }
  double slowest = 0;
  std::string slowest_name = "-";
  for (const auto& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    std::string data{std::istreambuf_iterator<char>(in), {}};
    auto start = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > slowest) {
      slowest = s;
      slowest_name = p.filename().string();
    }
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("%zu inputs replayed; slowest %.3f s (%s); peak memory %.0f MiB\n", inputs.size(), slowest,
              slowest_name.c_str(), usage.ru_maxrss / 1024.0);
  return 0;
}

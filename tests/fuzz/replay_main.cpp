// Runs a fuzz harness (tests/fuzz/fuzz_target.h) once on every file of the folders given, without
// libFuzzer: the committed seed corpus and the inputs that ever crashed, as a ctest under g++ (and
// under the sanitizer build of CI). Exits 1 when a folder is missing or empty.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/fuzz/fuzz_target.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    if (!fs::is_directory(argv[i])) {
      std::fprintf(stderr, "replay: '%s' is not a folder\n", argv[i]);
      return 1;
    }
    for (const auto& e : fs::recursive_directory_iterator(argv[i])) {
      if (!e.is_regular_file()) continue;
      std::ifstream f(e.path(), std::ios::binary);
      const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(f),
                                       std::istreambuf_iterator<char>()};
      std::printf("replay: %s (%zu bytes)\n", e.path().c_str(), bytes.size());
      std::fflush(stdout);
      farsee_fuzz_entry(bytes.data(), bytes.size());
      ++files;
    }
  }
  std::printf("replay: %d file(s), no crash\n", files);
  return files > 0 ? 0 : 1;
}

// One fuzz harness per parser of outside bytes (DESIGN.md section 8.1). A harness is a function
// `int NAME(const uint8_t* data, size_t size)` that feeds the bytes to the parser the programs
// use, accepting a farsee::Error (or another std::exception: the programs print it and exit 1)
// and nothing else: a sanitizer report, a crash, an abort or a huge allocation is a finding.
// FARSEE_FUZZ_TARGET(NAME) makes it libFuzzer's entry in the clang build (tools/scripts/fuzz.sh)
// and, in the normal build, the function replay_main.cpp runs over the committed corpus and every
// input that ever crashed (ctest fuzz_replay_NAME, no clang needed).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

namespace farsee::fuzz {

// Runs `parse`, swallowing the exceptions that are clean errors.
template <typename F>
int run_parser(F&& parse) {
  try {
    parse();
  } catch (const std::exception&) {
  }
  return 0;
}

// A path whose file holds `data`, for parsers that open a path (the safetensors reader maps
// it): a memfd, rewritten on every call, so no disk is touched. "" when the kernel refuses.
inline std::string file_of(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("farsee_fuzz", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0) return "";
  if (size > 0 && pwrite(fd, data, size, 0) != ssize_t(size)) return "";
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace farsee::fuzz

using FarseeFuzzFunction = int (*)(const uint8_t*, size_t);
extern FarseeFuzzFunction farsee_fuzz_entry;

#define FARSEE_FUZZ_TARGET(NAME)                                            \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    return NAME(data, size);                                                \
  }                                                                         \
  FarseeFuzzFunction farsee_fuzz_entry = NAME

// Command-line helpers shared by the FarSee programs and the API: the validators of flag values
// (comma lists, checked integers, the executor/precision choices) and the error handling of
// main(). Every malformed value throws farsee::Error naming the flag and the text. The flags
// themselves are parsed by CLI11 through tools/cli/flags.h.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "kernels/conv_bn_act.h"  // emu_impl::conv_bn_act_fwd, for emulator_linked()
#include "kernels/core/check.h"
#include "kernels/core/dtype.h"
#include "kernels/core/executor.h"

namespace farsee::tools {

inline std::vector<std::string> split_list(const std::string& text, const char* what) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    FARSEE_REQUIRE(!item.empty(), what << ": empty item in '" << text << "'");
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

inline int parse_int(const std::string& text, const char* what, int min_value) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  FARSEE_REQUIRE(!text.empty() && *end == '\0' && v >= min_value && v <= 1000000000L,
                 what << ": '" << text << "' is not an integer >= " << min_value);
  return int(v);
}

// --precision of farsee-infer, farsee-bench, farsee-train and the API (farsee::SegmenterOptions):
// fp32 (strict), tf32 (fp32 storage, convolutions in TF32 on tensor cores: cuda, emu and
// reference executors) or fp16.
inline Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::F32;
  if (text == "tf32") return Precision::TF32;
  if (text == "fp16") return Precision::F16;
  FARSEE_REQUIRE(false, "--precision: '" << text << "' is not one of fp32, tf32, fp16");
}

// What --executor accepts in the programs.
constexpr const char* kProgramExecutors = "auto, cuda, cpu, reference";

// Whether the emulated kernels (farsee_kernels_emu) are linked in: only the tests link them (their
// entry points are weak, kernels/core/dispatch.h), so in a program this is false.
inline bool emulator_linked() {
  return &::farsee::emu_impl::conv_bn_act_fwd != nullptr;
}

// "auto": cuda when this build has CUDA and a device is usable, else cpu (the fast host executor).
// "emu" is refused up front unless the emulator is linked (tests that run a program's code
// in-process), rather than failing at the first op.
inline Executor choose_executor(const std::string& text, std::string* note) {
  FARSEE_REQUIRE(text != "emu" || emulator_linked(),
                 "--executor emu: emu is a test-only executor (the CUDA kernels emulated on the "
                 "CPU, linked into the tests only); the programs offer "
                     << kProgramExecutors);
  FARSEE_REQUIRE(
      text == "auto" || text == "cuda" || text == "cpu" || text == "reference" || text == "emu",
      "--executor: '" << text << "' is not one of " << kProgramExecutors);
  if (text != "auto") {
    const Executor e = parse_executor(text, "--executor");
    if (e == Executor::Cuda) {
      const std::string why = cuda_unavailable_reason();
      FARSEE_REQUIRE(why.empty(), "--executor cuda: " << why);
    }
    return e;
  }
  const std::string why = cuda_unavailable_reason();
  if (why.empty()) return Executor::Cuda;
  if (note) *note = "executor auto: using cpu because " + why;
  return Executor::Cpu;
}

// main() of every program: runs `body`, turns any exception into "<program>: error: <what>" on
// stderr and exit status 1 (bad input never crashes a program or exits 0).
template <typename F>
int run_program(const char* program, F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory (an allocation outside the checked ones)\n",
                 program);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace farsee::tools

// Error type and checked-call macros shared by every part of FarSee.
//
// FARSEE_CUDA_CHECK(expr): runs a CUDA runtime call and throws farsee::Error naming the file, line,
// expression text and CUDA's error string when it fails. FARSEE_REQUIRE(cond, msg) is the argument
// check used at every public entry point: it throws with the message, so bad input never reaches a
// kernel. Nothing here aborts: programs catch farsee::Error at main() and exit non-zero.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace farsee {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_error(const char* file, int line, const std::string& what) {
  std::ostringstream s;
  s << file << ":" << line << ": " << what;
  throw Error(s.str());
}

}  // namespace farsee

#define FARSEE_REQUIRE(cond, msg)                                           \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::ostringstream farsee_require_msg_;                               \
      farsee_require_msg_ << msg;                                           \
      ::farsee::throw_error(__FILE__, __LINE__, farsee_require_msg_.str()); \
    }                                                                       \
  } while (0)

#if defined(__CUDACC__) || (defined(FARSEE_HAVE_CUDA) && FARSEE_HAVE_CUDA && !defined(FARSEE_EMU))
#include <cuda_runtime_api.h>
#define FARSEE_CUDA_CHECK(expr)                                                \
  do {                                                                         \
    cudaError_t farsee_status_ = (expr);                                       \
    if (farsee_status_ != cudaSuccess) {                                       \
      ::farsee::throw_error(__FILE__, __LINE__,                                \
                            std::string("CUDA call failed: ") + #expr + ": " + \
                                cudaGetErrorName(farsee_status_) + ": " +      \
                                cudaGetErrorString(farsee_status_));           \
    }                                                                          \
  } while (0)
#endif

// Shared GoogleTest main: prints GPU availability once, so a ctest log says under which
// conditions the suite ran.
#include <gtest/gtest.h>

#include <cstdio>

#include "kernels/core/executor.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const std::string why = farsee::cuda_unavailable_reason();
  std::printf("[farsee] GPU tests: %s\n", why.empty() ? "enabled" : ("skipped: " + why).c_str());
  return RUN_ALL_TESTS();
}

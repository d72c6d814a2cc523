// Helpers of the reference-op tests: the PyTorch fixtures (tests/fixtures/ops/, made by
// tools/pytorch/make_op_fixtures.py; case "<name>" is the set of files <name>.<tensor>.npy) and the
// check that a bad argument throws a farsee::Error whose message names it.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "kernels/core/check.h"
#include "tests/kernels/reference/npy.h"

namespace farsee::test {

// Runs f and expects a farsee::Error whose message contains `needle`.
template <typename F>
::testing::AssertionResult throws_error_mentioning(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    if (std::string(e.what()).find(needle) != std::string::npos)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "error \"" << e.what() << "\" does not mention \"" << needle << "\"";
  }
  return ::testing::AssertionFailure()
         << "no farsee::Error thrown (expected one mentioning \"" << needle << "\")";
}

class OpFixture {
 public:
  explicit OpFixture(std::string name) : name_(std::move(name)) {}

  std::string path(const std::string& tensor) const {
    return std::string(FARSEE_TEST_DATA_DIR) + "/ops/" + name_ + "." + tensor + ".npy";
  }
  NpyArray array(const std::string& tensor) const { return read_npy(path(tensor)); }
  std::vector<float> floats(const std::string& tensor) const { return array(tensor).floats(); }
  std::vector<int32_t> params() const { return array("params").ints(); }
  // An NCHW tensor as NHWC values and shape.
  std::vector<float> nhwc(const std::string& tensor, Shape4* shape) const {
    const NpyArray a = array(tensor);
    *shape = nchw_shape(a);
    return nchw_to_nhwc(a);
  }

 private:
  std::string name_;
};

}  // namespace farsee::test

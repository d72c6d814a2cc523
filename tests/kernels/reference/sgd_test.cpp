// Reference SGD step (kernels/sgd.h) against torch.optim.SGD(lr, momentum, dampening=0,
// weight_decay, nesterov=False) worked by hand for three steps (checked against torch 1.13's
// optimizer, which gives the same numbers), the first of which creates the momentum buffer as a
// copy of d (checked by starting from garbage in the buffer). All values are dyadic rationals:
// every FMA is exact, so the expected numbers are exact too.
#include "kernels/sgd.h"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "tests/kernels/reference/test_util.h"

namespace farsee::test {
namespace {

const Context kRef{Executor::Reference, nullptr};

// lr 0.5, momentum 0.5, weight_decay 0.25; two parameters p = (1, -2).
//   step 1: g = (0.5, 1):  d = g + 0.25 p = (0.75, 0.5);  buf = d = (0.75, 0.5)
//           p = p - 0.5 buf = (0.625, -2.25)
//   step 2: g = (-1, 0.25): d = (-1 + 0.15625, 0.25 - 0.5625) = (-0.84375, -0.3125)
//           buf = 0.5 buf + d = (0.375 - 0.84375, 0.25 - 0.3125) = (-0.46875, -0.0625)
//           p = (0.625 + 0.234375, -2.25 + 0.03125) = (0.859375, -2.21875)
//   step 3: g = (0, 2):  d = (0.21484375, 2 - 0.5546875) = (0.21484375, 1.4453125)
//           buf = (-0.234375 + 0.21484375, -0.03125 + 1.4453125) = (-0.01953125, 1.4140625)
//           p = (0.859375 + 0.009765625, -2.21875 - 0.70703125) = (0.869140625, -2.92578125)
TEST(Sgd, ThreeStepsAsPyTorch) {
  std::vector<float> p = {1.0f, -2.0f};
  // Garbage in the buffer before the first step: the first step must not read it.
  std::vector<float> buf = {std::numeric_limits<float>::quiet_NaN(), 123.0f};
  const float grads[3][2] = {{0.5f, 1.0f}, {-1.0f, 0.25f}, {0.0f, 2.0f}};
  const float want_p[3][2] = {
      {0.625f, -2.25f}, {0.859375f, -2.21875f}, {0.869140625f, -2.92578125f}};
  const float want_buf[3][2] = {{0.75f, 0.5f}, {-0.46875f, -0.0625f}, {-0.01953125f, 1.4140625f}};
  for (int step = 0; step < 3; ++step) {
    sgd_step(kRef, 2, p.data(), grads[step], buf.data(), 0.5f, 0.5f, 0.25f, step == 0);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(p[i], want_p[step][i]) << "step " << step + 1 << " p[" << i << "]";
      EXPECT_EQ(buf[i], want_buf[step][i]) << "step " << step + 1 << " buf[" << i << "]";
    }
  }
}

// momentum 0: no buffer (null is fine), p -= lr * (g + wd * p); weight_decay 0: d = g exactly,
// even next to an infinite parameter (PyTorch skips the weight-decay add when it is 0).
TEST(Sgd, NoMomentumNoBuffer) {
  std::vector<float> p = {1.0f, 4.0f};
  const float g[2] = {0.5f, -1.0f};
  sgd_step(kRef, 2, p.data(), g, nullptr, 0.25f, 0.0f, 0.5f, true);
  EXPECT_EQ(p[0], 1.0f - 0.25f * (0.5f + 0.5f));
  EXPECT_EQ(p[1], 4.0f - 0.25f * (-1.0f + 2.0f));
  std::vector<float> q = {std::numeric_limits<float>::infinity(), 2.0f};
  sgd_step(kRef, 2, q.data(), g, nullptr, 0.25f, 0.0f, 0.0f, false);
  EXPECT_EQ(q[0], std::numeric_limits<float>::infinity());
  EXPECT_EQ(q[1], 2.25f);
}

TEST(Sgd, BadArguments) {
  float p = 0, g = 0;
  EXPECT_TRUE(throws_error_mentioning(
      [&] { sgd_step(kRef, 1, &p, &g, nullptr, 0.1f, 0.9f, 0.0f, true); }, "momentum buffer"));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { sgd_step(kRef, -1, &p, &g, nullptr, 0.1f, 0.0f, 0.0f, true); }, "count"));
  sgd_step(kRef, 0, nullptr, nullptr, nullptr, 0.1f, 0.9f, 0.0f, true);  // empty arena: no-op
}

}  // namespace
}  // namespace farsee::test

// Core types: NHWC views and channel slices, argument checks, the host runtime, executor parsing,
// GPU detection without a driver, and the host fp16/bf16 conversions.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "kernels/core/check.h"
#include "kernels/core/executor.h"
#include "kernels/core/half_convert.h"
#include "kernels/core/runtime.h"
#include "kernels/core/tensor.h"

namespace farsee {
namespace {

TEST(TensorView, OffsetsFollowNhwcWithPixelStride) {
  std::vector<float> buf(2 * 3 * 4 * 10);
  TensorView v = make_view(buf.data(), DType::F32, Shape4{2, 3, 4, 10});
  EXPECT_EQ(v.offset(1, 2, 3, 9), ((1 * 3 + 2) * 4 + 3) * 10 + 9);
  TensorView s = channel_slice(v, 6, 3);
  EXPECT_EQ(s.c(), 3);
  EXPECT_EQ(s.pixel_stride, 10);
  EXPECT_EQ(static_cast<float*>(s.data), buf.data() + 6);
  EXPECT_EQ(s.offset(0, 0, 1, 2), 10 + 2);
  EXPECT_FALSE(s.contiguous());
}

TEST(TensorView, SliceOutOfRangeNamesTheRange) {
  std::vector<uint16_t> buf(8);
  TensorView v = make_view(buf.data(), DType::F16, Shape4{1, 1, 1, 8});
  try {
    channel_slice(v, 6, 3);
    FAIL() << "expected farsee::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[6, 9) out of range"), std::string::npos) << e.what();
  }
  EXPECT_EQ(static_cast<char*>(channel_slice(v, 2, 2).data) - static_cast<char*>(v.data), 4);
}

TEST(TensorView, RequireShapeNamesTensorAndBothShapes) {
  std::vector<float> buf(24);
  TensorView v = make_view(buf.data(), DType::F32, Shape4{1, 2, 3, 4});
  EXPECT_NO_THROW(require_shape(v, "x", Shape4{1, 2, 3, 4}));
  try {
    require_shape(v, "conv1 input", Shape4{1, 2, 3, 5});
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("conv1 input"), std::string::npos) << m;
    EXPECT_NE(m.find("C=4"), std::string::npos) << m;
    EXPECT_NE(m.find("C=5"), std::string::npos) << m;
  }
  EXPECT_THROW(require_dtype(v, "x", DType::F16), Error);
}

TEST(Executor, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_executor("cuda"), Executor::Cuda);
  EXPECT_EQ(parse_executor("emu"), Executor::Emu);
  EXPECT_EQ(parse_executor("reference"), Executor::Reference);
  EXPECT_EQ(parse_executor("cpu"), Executor::Cpu);
  EXPECT_STREQ(executor_name(Executor::Cpu), "cpu");
  try {
    parse_executor("gpu", "--executor");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--executor: 'gpu'"), std::string::npos) << e.what();
  }
}

TEST(Executor, GpuDetectionNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = cuda_device_count());
  EXPECT_GE(n, 0);
  std::string why;
  EXPECT_NO_THROW(why = cuda_unavailable_reason());
  EXPECT_EQ(why.empty(), n > 0) << why;
  if (!built_with_cuda()) {
    EXPECT_NE(why.find("without CUDA"), std::string::npos);
  }
}

TEST(Runtime, HostMemoryIsAlignedAndCopiesWork) {
  Context ctx{Executor::Emu, nullptr};
  rt::Buffer b(Executor::Emu, 1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % rt::kAlignment, 0u);
  std::vector<uint8_t> src(1000), dst(1000);
  for (int i = 0; i < 1000; ++i) src[i] = uint8_t(i * 7);
  rt::copy_to_device(ctx, b.data(), src.data(), 1000);
  rt::copy_to_host(ctx, dst.data(), b.data(), 1000);
  EXPECT_EQ(src, dst);
  rt::memset(ctx, b.data(), 0xFF, 10);
  rt::copy_to_host(ctx, dst.data(), b.data(), 10);
  EXPECT_EQ(dst[9], 0xFF);
  rt::Buffer moved = std::move(b);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_NE(moved.data(), nullptr);
}

TEST(Runtime, CudaExecutorFailsCleanlyWithoutGpu) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_THROW(rt::Buffer(Executor::Cuda, 64), Error);
}

TEST(Runtime, HostTimerMeasuresElapsedTime) {
  Context ctx{Executor::Reference, nullptr};
  rt::Timer t(Executor::Reference);
  // A known interval: 30 ms of sleep. The timer must read it (not 0, not seconds, not
  // microseconds taken for milliseconds); the upper bound leaves room for a loaded CI machine.
  t.record_start(ctx);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  t.record_stop(ctx);
  const float ms = t.elapsed_ms();
  EXPECT_GE(ms, 29.0f);
  EXPECT_LE(ms, 2000.0f);
  // Each start/stop pair is measured on its own: an immediate stop reads far less.
  t.record_start(ctx);
  t.record_stop(ctx);
  EXPECT_GE(t.elapsed_ms(), 0.0f);
  EXPECT_LT(t.elapsed_ms(), 25.0f);
}

TEST(HalfConvert, AllHalfValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = half_bits_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half_bits(f), h) << "half bits " << h;
  }
}

TEST(HalfConvert, RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(float_to_half_bits(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half_bits(65504.f), 0x7bff);
  EXPECT_EQ(float_to_half_bits(65520.f), 0x7c00);             // rounds up to inf
  EXPECT_EQ(float_to_half_bits(1.0f + 1.0f / 2048), 0x3c00);  // tie -> even
  EXPECT_EQ(float_to_half_bits(1.0f + 3.0f / 2048), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(float_to_half_bits(5.9604645e-8f), 0x0001);       // smallest subnormal
  EXPECT_EQ(float_to_half_bits(2.9802322e-8f), 0x0000);       // half of it: tie -> 0
  EXPECT_EQ(float_to_half_bits(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(NAN))));
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(3.140625f)), 3.140625f);
  EXPECT_EQ(float_to_bf16_bits(1.0f + 1.0f / 256), 0x3f80);  // tie -> even
}

}  // namespace
}  // namespace farsee

// Test tensors for the NHWC kernel tests: a tensor placed as a channel slice of a wider buffer (or
// dense), in fp32 or fp16 storage, in any executor's memory.
//
// The whole buffer starts poisoned with 0xFF bytes (NaN in fp32 and fp16). For an input, the
// channels outside the slice stay NaN, so a kernel that reads outside its slice produces NaN (or a
// wrong argmax) and fails; for an output, every element the kernel forgets to write stays NaN,
// and outside_untouched() checks that nothing outside the slice was written.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/core/half_convert.h"
#include "kernels/core/runtime.h"
#include "kernels/core/tensor.h"
#include "tests/support/executors.h"

namespace farsee::test {

// Channels [offset, offset + C) of pixels `pixel_stride` elements apart; pixel_stride 0 = dense.
struct Placement {
  int offset = 0;
  int pixel_stride = 0;
};

class NhwcTestTensor {
 public:
  NhwcTestTensor(const Context& ctx, DType dtype, Shape4 shape, Placement placement = {})
      : ctx_(ctx),
        dtype_(dtype),
        shape_(shape),
        offset_(placement.offset),
        pixel_stride_(placement.pixel_stride == 0 ? shape.c : placement.pixel_stride),
        host_(size_t(shape.pixels()) * pixel_stride_ * dtype_size(dtype), 0xFF),
        buffer_(poisoned_buffer(ctx, host_.size())) {
    EXPECT_GE(pixel_stride_, offset_ + shape.c) << "test placement does not fit the buffer";
  }

  // Writes dense NHWC values (fp16 storage rounds to nearest even) into the slice.
  void upload(const std::vector<float>& dense) {
    ASSERT_EQ(dense.size(), size_t(shape_.elements()));
    for (int64_t p = 0; p < shape_.pixels(); ++p) {
      for (int c = 0; c < shape_.c; ++c)
        set_host(p * pixel_stride_ + offset_ + c, dense[p * shape_.c + c]);
    }
    rt::copy_to_device(ctx_, buffer_.data(), host_.data(), host_.size());
  }

  TensorView view() const {
    TensorView v;
    v.data = static_cast<char*>(buffer_.data()) + size_t(offset_) * dtype_size(dtype_);
    v.dtype = dtype_;
    v.shape = shape_;
    v.pixel_stride = pixel_stride_;
    return v;
  }

  // The slice's values as dense NHWC fp32 (copies the buffer back first).
  std::vector<float> download() {
    fetch();
    std::vector<float> dense(size_t(shape_.elements()));
    for (int64_t p = 0; p < shape_.pixels(); ++p) {
      for (int c = 0; c < shape_.c; ++c)
        dense[p * shape_.c + c] = get_host(p * pixel_stride_ + offset_ + c);
    }
    return dense;
  }

  // True when every element outside the slice still holds the 0xFF poison (call after download()).
  // written_padding: channels [offset + C, offset + C + written_padding) must hold zeros instead
  // (the padding a sub-pixel packed conv stores, kernels/conv_bn_act.h).
  ::testing::AssertionResult outside_untouched(int written_padding = 0) const {
    const size_t esize = dtype_size(dtype_);
    for (int64_t p = 0; p < shape_.pixels(); ++p) {
      for (int c = 0; c < pixel_stride_; ++c) {
        if (c >= offset_ && c < offset_ + shape_.c) continue;
        if (c >= offset_ + shape_.c && c < offset_ + shape_.c + written_padding) {
          if (get_host(p * pixel_stride_ + c) != 0.0f) {
            return ::testing::AssertionFailure()
                   << "padding channel not zero: pixel " << p << ", buffer channel " << c;
          }
          continue;
        }
        const size_t byte = size_t(p * pixel_stride_ + c) * esize;
        for (size_t b = 0; b < esize; ++b) {
          if (host_[byte + b] != 0xFF) {
            return ::testing::AssertionFailure() << "element outside the slice was written: pixel "
                                                 << p << ", buffer channel " << c;
          }
        }
      }
    }
    return ::testing::AssertionSuccess();
  }

 private:
  void fetch() {
    rt::copy_to_host(ctx_, host_.data(), buffer_.data(), host_.size());
    rt::synchronize(ctx_);
  }
  void set_host(int64_t element, float value) {
    write_element(host_.data(), dtype_, element, value);
  }
  float get_host(int64_t element) const { return read_element(host_.data(), dtype_, element); }

  Context ctx_;
  DType dtype_;
  Shape4 shape_;
  int offset_;
  int pixel_stride_;
  std::vector<unsigned char> host_;
  rt::Buffer buffer_;
};

inline Context reference_context() {
  return Context{Executor::Reference, nullptr};
}
inline Context exec_context(const ExecCase& c) {
  return Context{c.executor, nullptr};
}

// Runs op(ctx, x_view, y_view) with x holding `data` (placed as xp) and a poisoned y (placed as
// yp), returns y densely, and expects that nothing outside y's slice was written. Tests run it
// once on the executor under test (awkward placements) and once on the reference (dense).
template <typename Op>
std::vector<float> run_nhwc_op(const Context& ctx, DType dtype, Shape4 x_shape, Placement xp,
                               const std::vector<float>& data, Shape4 y_shape, Placement yp,
                               Op&& op) {
  NhwcTestTensor x(ctx, dtype, x_shape, xp);
  x.upload(data);
  NhwcTestTensor y(ctx, dtype, y_shape, yp);
  op(ctx, x.view(), y.view());
  std::vector<float> out = y.download();
  EXPECT_TRUE(y.outside_untouched());
  return out;
}

}  // namespace farsee::test

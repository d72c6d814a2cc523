// Microbenchmark of pixel_unshuffle_fwd (the backward of the pixel shuffle after the paper
// preset's up1 BN in training) at its training shape: batch 8, 512x1024 input, the decoder
// concat's up1 slice gradient 8x64x128x256 (slice of 304 channels) -> 8x16x32x4096; fp32 and
// fp16 storage. Bytes: x read once, y written once.
#include <string>

#include "bench/kernels/bench_util.h"
#include "kernels/pixel_unshuffle.h"

namespace farsee::bench {
namespace {

const bool kRegistered = [] {
  for (DType dtype : {DType::F32, DType::F16}) {
    const Shape4 x_shape{8, 64, 128, 256};
    const std::string name =
        std::string("pixel_unshuffle/") + dtype_name(dtype) + "/" + shape_name(x_shape) + "/x4";
    register_gpu_benchmark(name, [=](benchmark::State& state) {
      const Context ctx = cuda_context();
      constexpr int kFactor = 4;
      DeviceTensor x(ctx, dtype, x_shape, 1);
      DeviceTensor y(ctx, dtype, pixel_unshuffle_output_shape(kFactor, x_shape), 2);
      time_launches(state, ctx, x.bytes() + y.bytes(),
                    [&] { pixel_unshuffle_fwd(ctx, kFactor, x.view, y.view); });
    });
  }
  return true;
}();

}  // namespace
}  // namespace farsee::bench

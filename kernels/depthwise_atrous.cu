// Depthwise atrous 3x3 convolution + folded BN + optional ReLU (forward), NHWC.
//
// Algorithm: direct convolution; one thread owns V consecutive channels (a "channel group") and
//   walks output pixels with a grid-stride loop. Its 9 x V weights and V (scale, bias) pairs are
//   loaded into registers once; per output pixel it reads up to 9 input vectors of V channels
//   (taps in the zero padding are skipped), accumulates in fp32 and applies the epilogue.
// Tiling / thread mapping: kernels/core/nhwc_index.h pixel_channel_launch(): threadIdx.x = channel
//   group, threadIdx.y = pixel, so a warp reads contiguous channels of adjacent pixels (coalesced
//   NHWC loads and stores for any C, any dilation).
// Layout: x, y NHWC, possibly channel slices of wider buffers (pixel_stride != C, offset data);
//   weight [C][3][3] fp32; scale, bias [C] fp32 (null = 1 / 0). padding = dilation.
// Precision: fp32 or fp16 storage (x and y alike), fp32 accumulation with fused multiply-adds in
//   tap order (r, s), fp16 output rounded once at the store. The fmas are explicit fmaf: the
//   file is compiled with --fmad=false (kernels/CMakeLists.txt), which leaves them as they are.
// Vectors: V = 4 floats or 8 halves (one 16-byte load/store) when C, both pixel strides and both
//   base addresses allow; otherwise V = 1 (e.g. C = 19, or a slice at an odd channel offset).
// Fused: BN scale/bias, ReLU, the concat (writing y as a slice of the concat buffer), and the
//   branches of an F-ASPP block: one launch runs up to kMaxDepthwiseBranches independent
//   depthwise convs of the same shape (blockIdx.z = branch, each with its own x / y slices,
//   dilation, weights, scale and bias; depthwise_atrous_branches_fwd). A single conv is the
//   one-branch case of the same kernel. V is the widest all the branches' views allow.
//
// Backward, data (depthwise_atrous_bwd_data): the same mapping over dx (one thread: V channels
//   of a dx pixel, its 9 x V weights in registers). Gather: tap (r, s) of output (oy, ox) reads
//   input (oy * stride - d + r * d, ...), so dx pixel (iy, ix) receives from tap r the output row
//   oy = (iy + d - r * d) / stride when that divides exactly and lies in [0, OH); at most 9 dy
//   reads per pixel, fp32 fused multiply-adds in tap order, dx written or (accumulate) added to,
//   rounded once to its dtype.
// Backward, weight (depthwise_atrous_bwd_weight): deterministic two-kernel reduction.
//   1. depthwise_atrous_bwd_weight_lanes() lanes (a function of the output size only): lane l
//      sums the output pixels l, l + lanes, ... ; a thread owns V channels of one lane, keeps
//      9 x V fp32 sums in registers (dy * x per tap) and writes them to workspace[l][c][9]. The
//      (channel group x lane) mapping is pixel_channel_launch()'s, so warps read contiguous
//      channels of a pixel (coalesced).
//   2. per (c, tap): 8 fixed lane slices summed in lane order, then the slices in slice order
//      (blocks of 32 (c, tap) x 8 slices: coalesced reads), added to dw.
//   No atomics: bitwise reproducible for a given shape. Workspace [lanes][C][9] fp32.
#include "kernels/core/epilogue.h"
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/pixel_channel_kernel.h"
#include "kernels/core/vec.h"
#include "kernels/depthwise_atrous.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kTaps = 3;
// Pixels per thread when the grid would otherwise be larger: amortises the register-resident
// weights over several pixels while still giving the GPU tens of thousands of threads.
constexpr int kPixelsPerThread = 4;

// The 3x3 weights of channels c0 .. c0 + V - 1, tap-major: w[r * 3 + s][i] (forward and dgrad).
template <int V>
FARSEE_DEVICE void load_tap_weights(const float* __restrict__ weight, int c0,
                                    float (&w)[kTaps * kTaps][V]) {
#pragma unroll
  for (int i = 0; i < V; ++i) {
#pragma unroll
    for (int t = 0; t < kTaps * kTaps; ++t) w[t][i] = __ldg(weight + (c0 + i) * kTaps * kTaps + t);
  }
}

// visit(tap, v) for every tap (r, s) of output pixel o's window that lies in the image (padding =
// dilation), tap = r * 3 + s in row-major order, v = input channels c0 .. c0 + V - 1 of that tap
// (forward and wgrad).
template <int V, typename T, typename Visit>
FARSEE_DEVICE void for_each_window_tap(const Nhwc<const T>& x, const PixelCoord& o, int stride,
                                       int dilation, int c0, Visit&& visit) {
  const WindowStart start = window_start(o, stride, dilation);
#pragma unroll
  for (int r = 0; r < kTaps; ++r) {
    const int iy = start.y + r * dilation;
    if (iy < 0 || iy >= x.h) continue;
#pragma unroll
    for (int s = 0; s < kTaps; ++s) {
      const int ix = start.x + s * dilation;
      if (ix < 0 || ix >= x.w) continue;
      float v[V];
      load_as_float<V>(x.pixel(o.n, iy, ix) + c0, v);
      visit(r * kTaps + s, v);
    }
  }
}

// One branch of a forward launch: depthwise_atrous_fwd's per-conv arguments.
template <typename T>
struct DepthwiseFwdBranch {
  Nhwc<const T> x;
  Nhwc<T> y;
  const float* weight;
  const float* scale;
  const float* bias;
  int dilation;
};
template <typename T>
struct DepthwiseFwdBranches {
  DepthwiseFwdBranch<T> branch[kMaxDepthwiseBranches];
};

// Forward; branch blockIdx.z of `branches`.
template <typename T, int V>
__global__ void __launch_bounds__(256)
    depthwise3x3_kernel(DepthwiseFwdBranches<T> branches, bool relu, int stride) {
  const DepthwiseFwdBranch<T> b = branches.branch[blockIdx.z];
  const Nhwc<const T> x = b.x;
  const Nhwc<T> y = b.y;
  const int dilation = b.dilation;
  const int c0 = thread_first_channel<V>(y.c);
  if (c0 < 0) return;

  float w[kTaps * kTaps][V];
  load_tap_weights<V>(b.weight, c0, w);
  ChannelAffine affine[V];
#pragma unroll
  for (int i = 0; i < V; ++i) affine[i] = load_channel_affine(b.scale, b.bias, c0 + i);

  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(y.pixels())) {
    const PixelCoord o = pixel_coord(p, y.h, y.w);
    float acc[V];
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = 0.0f;
    for_each_window_tap<V>(x, o, stride, dilation, c0, [&](int tap, const float(&v)[V]) {
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] = fmaf(v[i], w[tap][i], acc[i]);
    });
    float out[V];
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = relu_if(relu, apply_affine(acc[i], affine[i]));
    store_from_float<V>(y.pixel(p) + c0, out);
  }
}

template <typename T, int V>
__global__ void __launch_bounds__(256)
    depthwise3x3_bwd_data_kernel(Nhwc<const T> dy, Nhwc<T> dx, const float* __restrict__ weight,
                                 bool accumulate, int stride, int dilation) {
  const int c0 = thread_first_channel<V>(dx.c);
  if (c0 < 0) return;

  float w[kTaps * kTaps][V];
  load_tap_weights<V>(weight, c0, w);

  FARSEE_FOR_EACH_THREAD_PIXEL(p, int(dx.pixels())) {
    const PixelCoord in = pixel_coord(p, dx.h, dx.w);
    float acc[V];
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = 0.0f;
#pragma unroll
    for (int r = 0; r < kTaps; ++r) {
      const int ty = in.y + dilation - r * dilation;  // = oy * stride
      if (ty < 0 || ty % stride != 0 || ty / stride >= dy.h) continue;
#pragma unroll
      for (int s = 0; s < kTaps; ++s) {
        const int tx = in.x + dilation - s * dilation;
        if (tx < 0 || tx % stride != 0 || tx / stride >= dy.w) continue;
        float g[V];
        load_as_float<V>(dy.pixel(in.n, ty / stride, tx / stride) + c0, g);
#pragma unroll
        for (int i = 0; i < V; ++i) acc[i] = fmaf(g[i], w[r * kTaps + s][i], acc[i]);
      }
    }
    T* out = dx.pixel(p) + c0;
    if (accumulate) {
      float old[V];
      load_as_float<V>(out, old);
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] += old[i];
    }
    store_from_float<V>(out, acc);
  }
}

// Pass 1 of the weight gradient: per-lane partial sums (see the top of the file).
template <typename T, int V>
__global__ void __launch_bounds__(256)
    depthwise3x3_bwd_weight_lanes_kernel(Nhwc<const T> x, Nhwc<const T> dy,
                                         float* __restrict__ partials, int lanes, int stride,
                                         int dilation) {
  const int c0 = thread_first_channel<V>(dy.c);
  if (c0 < 0) return;
  const int pixels = int(dy.pixels());

  FARSEE_FOR_EACH_THREAD_PIXEL(lane, lanes) {
    float acc[kTaps * kTaps][V];
#pragma unroll
    for (int t = 0; t < kTaps * kTaps; ++t) {
#pragma unroll
      for (int i = 0; i < V; ++i) acc[t][i] = 0.0f;
    }
    for (int p = lane; p < pixels; p += lanes) {
      const PixelCoord o = pixel_coord(p, dy.h, dy.w);
      float g[V];
      load_as_float<V>(dy.pixel(p) + c0, g);
      for_each_window_tap<V>(x, o, stride, dilation, c0, [&](int tap, const float(&v)[V]) {
#pragma unroll
        for (int i = 0; i < V; ++i) acc[tap][i] = fmaf(g[i], v[i], acc[tap][i]);
      });
    }
    float* out = partials + (int64_t(lane) * dy.c + c0) * (kTaps * kTaps);
#pragma unroll
    for (int i = 0; i < V; ++i) {
#pragma unroll
      for (int t = 0; t < kTaps * kTaps; ++t) out[i * kTaps * kTaps + t] = acc[t][i];
    }
  }
}

// Pass 2: dw[k] += sum over lanes of partials[lane][k], k = c * 9 + tap. A block takes kSumK
// consecutive k (coalesced reads of one lane's row) times kSumSlices lane slices: slice s sums
// lanes s, s + kSumSlices, ... in order, then the slices are added in slice order. Fixed order:
// bitwise reproducible.
constexpr int kSumK = 32, kSumSlices = 8;
__global__ void __launch_bounds__(kSumK* kSumSlices)
    depthwise3x3_bwd_weight_sum_kernel(const float* __restrict__ partials, int lanes, int count,
                                       float* __restrict__ dw) {
  FARSEE_SHARED(float, slice_sum, [kSumSlices][kSumK]);
  const int kx = int(threadIdx.x), slice = int(threadIdx.y);
  const int k = int(blockIdx.x) * kSumK + kx;
  float sum = 0.0f;
  if (k < count) {
    for (int l = slice; l < lanes; l += kSumSlices) sum += partials[int64_t(l) * count + k];
  }
  slice_sum[slice][kx] = sum;
  __syncthreads();
  if (slice == 0 && k < count) {
    float total = slice_sum[0][kx];
    for (int s = 1; s < kSumSlices; ++s) total += slice_sum[s][kx];
    dw[k] += total;
  }
}

}  // namespace

namespace {

// One launch of depthwise3x3_kernel for the branches (grid.z = b.count).
void launch_depthwise_branches(const Context& ctx, const DepthwiseBranches& b) {
  const TensorView& x0 = b.branch[0].x;
  const TensorView& y0 = b.branch[0].y;
  const int vec = vector16_width(x0.dtype);
  bool vector16 = true;
  for (int i = 0; i < b.count; ++i) {
    require_int_pixels(b.branch[i].x.shape.pixels(), "depthwise_atrous_fwd: x");
    vector16 = vector16 && packs_fit(b.branch[i].x, vec) && packs_fit(b.branch[i].y, vec);
  }
  with_storage_vector(x0.dtype, vector16, [&](auto sv) {
    using T = typename decltype(sv)::type;
    constexpr int V = decltype(sv)::width;
    DepthwiseFwdBranches<T> args{};
    for (int i = 0; i < b.count; ++i) {
      const DepthwiseBranch& br = b.branch[i];
      args.branch[i] = DepthwiseFwdBranch<T>{
          nhwc<const T>(br.x), nhwc<T>(br.y), br.weight, br.scale, br.bias, br.dilation};
    }
    PixelChannelLaunch l = pixel_channel_launch(y0.shape.pixels(), y0.c() / V, kPixelsPerThread);
    l.grid.z = unsigned(b.count);
    auto kernel = depthwise3x3_kernel<T, V>;
    FARSEE_LAUNCH(kernel, l.grid, l.block, 0, ctx.stream, args, b.relu, b.stride);
  });
}

}  // namespace

void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS) {
  DepthwiseBranches b;
  b.stride = p.stride;
  b.relu = p.relu;
  b.count = 1;
  b.branch[0] = DepthwiseBranch{p.dilation, x, y, weight, scale, bias};
  launch_depthwise_branches(ctx, b);
}

void depthwise_atrous_branches_fwd(FARSEE_DEPTHWISE_ATROUS_BRANCHES_FWD_ARGS) {
  launch_depthwise_branches(ctx, b);
}

void depthwise_atrous_bwd_data(FARSEE_DEPTHWISE_ATROUS_BWD_DATA_ARGS) {
  launch_pixel_channel_kernel(ctx, dy, dx, kPixelsPerThread, "depthwise_atrous_bwd_data: dx",
                              FARSEE_PIXEL_KERNEL_FOR(depthwise3x3_bwd_data_kernel), weight,
                              accumulate, p.stride, p.dilation);
}

void depthwise_atrous_bwd_weight(FARSEE_DEPTHWISE_ATROUS_BWD_WEIGHT_ARGS) {
  (void)workspace_bytes;  // checked by the entry point
  require_int_pixels(x.shape.pixels(), "depthwise_atrous_bwd_weight: x");
  const int lanes = depthwise_bwd_weight_lanes(dy.shape.pixels());
  float* partials = static_cast<float*>(workspace);
  const int vec = vector16_width(x.dtype);
  with_storage_vector(x.dtype, packs_fit(x, vec) && packs_fit(dy, vec), [&](auto sv) {
    using T = typename decltype(sv)::type;
    constexpr int V = decltype(sv)::width;
    const PixelChannelLaunch l = pixel_channel_launch(lanes, dy.c() / V, 1);
    auto kernel = depthwise3x3_bwd_weight_lanes_kernel<T, V>;
    FARSEE_LAUNCH(kernel, l.grid, l.block, 0, ctx.stream, nhwc<const T>(x), nhwc<const T>(dy),
                  partials, lanes, p.stride, p.dilation);
  });
  const int count = dy.c() * kTaps * kTaps;
  FARSEE_LAUNCH(depthwise3x3_bwd_weight_sum_kernel, dim3(unsigned((count + kSumK - 1) / kSumK)),
                dim3(kSumK, kSumSlices), 0, ctx.stream, partials, lanes, count, dw);
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee

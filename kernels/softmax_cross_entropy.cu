// Softmax cross-entropy with ignore label 255, mean over counted pixels, at the label resolution,
// from low-resolution logits through the bilinear upsample (kernels/softmax_cross_entropy.h).
// The full-resolution logits are never materialised; the gradient lands on the low-res logits.
//
// Algorithm: three launches, no atomics, bitwise reproducible for a given shape. Built with
// --fmad=false (kernels/CMakeLists.txt), so every a * b + c not written as fmaf rounds twice as on
// the host: the bilinear samples are bitwise the resize forward's on the GPU too.
//   1. forward, one thread per label pixel (1-D grid; a block of 256 threads takes
//      kSoftmaxCePixelsPerPartial = 1024 consecutive pixels, thread t pixels t, t + 256, ...): taps
//      (kernels/core/bilinear.h), then for each channel the bilinear sample z_c of the 4 low-res
//      taps (fp32, bilinear_mix: bitwise the resize forward) and an online logsumexp (running max
//      and rescaled sum, one expf per channel). The logsumexp is stored in the workspace, the
//      pixel's loss w[label] * (lse - z_label) (0 if ignored; NaN for an invalid label), its count
//      (0/1) and its weight (w[label], 1 without class weights) are summed by the thread in pixel
//      order, then over the block by a fixed shared-memory tree into the block's partials.
//   2. finalise, one block: sums the partials in a fixed order (each thread a fixed strided
//      subset in double, then a fixed tree), writes loss = sum / S (S: the weight sum, = M without
//      class weights; NaN if S = 0), M, and the gradient factor grad_scale / S (0 if S = 0; the
//      scale read from memory when given: CUDA graphs) into the workspace.
//   3. gradient, gather form (kernels/core/bilinear_gather.h): a block owns a tile of up to 4 x 32
//      low-res pixels (smaller for many classes or extreme scale factors: the host picks the
//      largest tile whose staging fits 48 KiB) and walks the label rows whose taps read the tile,
//      in order. Per label row: (a) for every label pixel the tile's columns read (the union of
//      their ranges) and every channel, softmax - onehot = exp(z_c - lse) - [label == c] with z_c
//      re-interpolated exactly as in pass 1 (0 for ignored pixels), into shared memory, channel
//      fastest (coalesced logits reads), times w[label]; (b) each thread, for its (tile column,
//      channel) pairs, sums those values times the column tap weights (the horizontal transpose)
//      and adds the result times the row's vertical weight to the accumulator of each tile row it
//      reads (accumulators in shared memory, one owner each). Finally dlogits = acc * grad_scale /
//      M. Each label pixel's softmax is recomputed by the ~1.3 tiles that read it (halo), not by
//      all 4 low-res pixels it reads.
// Cost at the paper's shapes (logits 8x256x512x19, labels 8x1024x2048): pass 1 reads each label
//   once and the logits ~4x (L1/L2 hits), one expf per (label pixel, channel); pass 3 ~1.3x that
//   (tile halo); one float lse per label pixel (64 MiB) of workspace.
// Layout: logits NHWC fp32 or fp16 (channel slice ok), labels uint8 [N][H][W], dlogits NHWC fp32
//   or fp16 (slice ok; its own dtype); workspace as described in the header.
// Precision: fp32 interpolation, expf/logf, fp32 per-block loss sums, double across blocks; the
//   gradient in fp32, rounded once to dlogits' dtype at the store.
// Fused: the bilinear upsample (forward and its transpose), softmax, the loss, its mean and the
//   gradient scaling.
#include <cmath>

#include "kernels/core/bilinear.h"
#include "kernels/core/bilinear_gather.h"
#include "kernels/core/launch.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/vec.h"
#include "kernels/softmax_cross_entropy.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kPixelsPerThread = kSoftmaxCePixelsPerPartial / kThreads;
constexpr int kGradientSmemBytes = 48 * 1024;  // no opt-in needed
constexpr uint8_t kIgnore = 255;

// Workspace views (layout: kernels/softmax_cross_entropy.h).
struct CeWorkspace {
  float* scalars;      // [0]: gradient factor grad_scale / M
  float* loss_part;    // [partials]
  int* count_part;     // [partials]
  float* weight_part;  // [partials]
  float* lse;          // [label pixels]
};
inline CeWorkspace ce_workspace(void* base, int64_t partials) {
  float* f = static_cast<float*>(base);
  return CeWorkspace{f, f + 4, reinterpret_cast<int*>(f + 4 + partials), f + 4 + 2 * partials,
                     f + 4 + 3 * partials};
}

// A counted label's class weight: 1 without weights, NaN for an invalid label (>= C), which then
// poisons the loss as the unweighted path does (never an out-of-range read).
FARSEE_DEVICE float class_weight(const float* class_weights, int label, int channels) {
  if (label >= channels) return NAN;
  return class_weights ? class_weights[label] : 1.0f;
}

// The bilinear sample of channel c at the taps (fp32; the same expression in both passes).
template <typename T>
FARSEE_DEVICE float sample(const T* p00, const T* p01, const T* p10, const T* p11,
                           const BilinearTap& ty, const BilinearTap& tx, int c) {
  return bilinear_mix(ty, tx, to_float(p00[c]), to_float(p01[c]), to_float(p10[c]),
                      to_float(p11[c]));
}

// Sums the kThreads entries of sum_a, sum_b and sum_c into element 0 by a fixed binary tree
// (thread t absorbs t + half, half = kThreads / 2 .. 1): deterministic. Every thread of the block
// calls it after writing its entries.
template <typename A, typename B, typename C>
FARSEE_DEVICE void block_tree_sum3(A* sum_a, B* sum_b, C* sum_c, int t) {
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (t < half) {
      sum_a[t] += sum_a[t + half];
      sum_b[t] += sum_b[t + half];
      sum_c[t] += sum_c[t + half];
    }
    __syncthreads();
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    ce_forward_kernel(Nhwc<const T> logits, const uint8_t* __restrict__ labels, int label_h,
                      int label_w, float scale_h, float scale_w, bool align_corners,
                      const float* __restrict__ class_weights, CeWorkspace ws) {
  FARSEE_SHARED(float, loss_sum, [kThreads]);
  FARSEE_SHARED(int, count_sum, [kThreads]);
  FARSEE_SHARED(float, weight_sum, [kThreads]);
  const int t = int(threadIdx.x);
  const int64_t pixels = int64_t(logits.n) * label_h * label_w;
  float loss = 0.0f, weight = 0.0f;
  int counted = 0;
  for (int i = 0; i < kPixelsPerThread; ++i) {
    const int64_t q = int64_t(blockIdx.x) * kSoftmaxCePixelsPerPartial + i * kThreads + t;
    if (q >= pixels) break;
    const int label = labels[q];
    if (label == kIgnore) continue;
    const int64_t row = q / label_w;
    const int ox = int(q - row * label_w);
    const int oy = int(row % label_h);
    const int n = int(row / label_h);
    const BilinearTap ty = bilinear_tap(oy, scale_h, logits.h, align_corners);
    const BilinearTap tx = bilinear_tap(ox, scale_w, logits.w, align_corners);
    const T* p00 = logits.pixel(n, ty.i0, tx.i0);
    const T* p01 = logits.pixel(n, ty.i0, tx.i1);
    const T* p10 = logits.pixel(n, ty.i1, tx.i0);
    const T* p11 = logits.pixel(n, ty.i1, tx.i1);
    float m = -INFINITY, s = 0.0f, z_label = NAN;  // NaN stays for a label >= C
    for (int c = 0; c < logits.c; ++c) {
      const float z = sample(p00, p01, p10, p11, ty, tx, c);
      if (c == label) z_label = z;
      if (z > m) {
        s = s * expf(m - z) + 1.0f;
        m = z;
      } else {
        s += expf(z - m);  // NaN z: s becomes NaN (and so do lse and the loss)
      }
    }
    const float lse = m + logf(s);
    ws.lse[q] = lse;
    const float w = class_weight(class_weights, label, logits.c);
    loss += w * (lse - z_label);
    weight += w;
    ++counted;
  }
  loss_sum[t] = loss;
  count_sum[t] = counted;
  weight_sum[t] = weight;
  block_tree_sum3(loss_sum, count_sum, weight_sum, t);
  if (t == 0) {
    ws.loss_part[blockIdx.x] = loss_sum[0];
    ws.count_part[blockIdx.x] = count_sum[0];
    ws.weight_part[blockIdx.x] = weight_sum[0];
  }
}

__global__ void __launch_bounds__(kThreads)
    ce_finalize_kernel(CeWorkspace ws, int64_t partials, float grad_scale,
                       const float* grad_scale_in_memory, float* loss, int64_t* valid_count) {
  FARSEE_SHARED(double, loss_sum, [kThreads]);
  FARSEE_SHARED(long long, count_sum, [kThreads]);
  FARSEE_SHARED(double, weight_sum, [kThreads]);
  const int t = int(threadIdx.x);
  double l = 0.0, w = 0.0;
  long long m = 0;
  for (int64_t i = t; i < partials; i += kThreads) {
    l += double(ws.loss_part[i]);
    m += ws.count_part[i];
    w += double(ws.weight_part[i]);
  }
  loss_sum[t] = l;
  count_sum[t] = m;
  weight_sum[t] = w;
  block_tree_sum3(loss_sum, count_sum, weight_sum, t);
  if (t == 0) {
    const double s = weight_sum[0];  // = M exactly without class weights
    *loss = s > 0 ? float(loss_sum[0] / s) : NAN;
    if (valid_count) *valid_count = int64_t(count_sum[0]);
    const float scale = grad_scale_in_memory ? *grad_scale_in_memory : grad_scale;
    ws.scalars[0] = s > 0 ? float(double(scale) / s) : 0.0f;
  }
}

// Pass 3 (see the top of the file). Shared memory after the gather staging: g_row
// [max_cols][C] (softmax - onehot of one label row, 0 for ignored pixels) and acc
// [tile_h][tile_w][C] (each element owned by one thread).
template <typename T, typename D>
__global__ void __launch_bounds__(kThreads)
    ce_gradient_kernel(Nhwc<const T> logits, const uint8_t* __restrict__ labels, Nhwc<D> dz,
                       const float* __restrict__ class_weights, BilinearGatherGeometry g,
                       CeWorkspace ws) {
  const BilinearGatherTile t = bilinear_gather_stage(g);
  const int channels = logits.c;
  float* g_row =
      reinterpret_cast<float*>(dynamic_smem<unsigned char>() + bilinear_gather_smem_bytes(g));
  float* acc = g_row + g.max_cols * channels;
  const int thread = int(threadIdx.x);
  const int tile_items = g.tile_h * g.tile_w * channels;
  for (int k = thread; k < tile_items; k += kThreads) acc[k] = 0.0f;
  const int row_items = (t.col_end - t.col_begin) * channels;
  const int col_items = t.width * channels;

  for (int oy = t.row_begin; oy < t.row_end; ++oy) {
    const BilinearTap ty = t.row_tap[oy - t.row_begin];
    const int64_t label_row = (int64_t(t.n) * g.out_h + oy) * g.out_w;
    // a. softmax - onehot of this label row's pixels that the tile's columns read.
    for (int k = thread; k < row_items; k += kThreads) {
      const int u = k / channels;
      const int c = k - u * channels;
      const int ox = t.col_begin + u;
      const int label = labels[label_row + ox];
      float d = 0.0f;
      if (label != kIgnore) {
        const BilinearTap tx = t.col_tap[u];
        const float z =
            sample(logits.pixel(t.n, ty.i0, tx.i0), logits.pixel(t.n, ty.i0, tx.i1),
                   logits.pixel(t.n, ty.i1, tx.i0), logits.pixel(t.n, ty.i1, tx.i1), ty, tx, c);
        d = class_weight(class_weights, label, channels) *
            (expf(z - ws.lse[label_row + ox]) - (label == c ? 1.0f : 0.0f));
      }
      g_row[k] = d;
    }
    __syncthreads();
    // b. horizontal transpose into each tile column, then the vertical weight of each tile row.
    for (int k = thread; k < col_items; k += kThreads) {
      const int j = k / channels;
      const int c = k - j * channels;
      const int ix = t.ix0 + j;
      const BilinearRange cols = t.col_range[j];
      float h = 0.0f;
      for (int ox = cols.begin; ox < cols.end; ++ox) {
        const int u = ox - t.col_begin;
        h = fmaf(bilinear_tap_weight(t.col_tap[u], ix), g_row[u * channels + c], h);
      }
      for (int r = 0; r < t.height; ++r) {
        const float wy = bilinear_tap_weight(ty, t.iy0 + r);
        if (wy != 0.0f) {
          float& a = acc[(r * g.tile_w + j) * channels + c];
          a = fmaf(wy, h, a);
        }
      }
    }
    __syncthreads();  // g_row is rewritten for the next label row
  }

  const float factor = ws.scalars[0];
  for (int k = thread; k < t.height * col_items; k += kThreads) {
    const int r = k / col_items;
    const int rest = k - r * col_items;
    const int j = rest / channels;
    const int c = rest - j * channels;
    dz.pixel(t.n, t.iy0 + r, t.ix0 + j)[c] =
        from_float<D>(acc[(r * g.tile_w + j) * channels + c] * factor);
  }
}

// Shared memory of pass 3 for a tiling.
size_t gradient_smem_bytes(const BilinearGatherGeometry& g, int channels) {
  return bilinear_gather_smem_bytes(g) +
         size_t(g.max_cols + g.tile_h * g.tile_w) * size_t(channels) * sizeof(float);
}

// The largest tile whose staging fits kGradientSmemBytes (1 x 1 fits any C <= 255 unless the
// label/logit scale factor exceeds ~40).
BilinearGatherGeometry gradient_geometry(const TensorView& logits, int label_h, int label_w,
                                         bool align_corners) {
  static const int kTiles[][2] = {{4, 32}, {2, 32}, {2, 16}, {1, 16},
                                  {1, 8},  {1, 4},  {1, 2},  {1, 1}};
  BilinearGatherGeometry g{};
  for (const auto& tile : kTiles) {
    g = bilinear_gather_geometry(logits.h(), logits.w(), label_h, label_w, align_corners, tile[0],
                                 tile[1]);
    if (gradient_smem_bytes(g, logits.c()) <= size_t(kGradientSmemBytes)) return g;
  }
  FARSEE_REQUIRE(false, "softmax_ce_upsample: labels "
                            << label_h << "x" << label_w << " from logits " << logits.h() << "x"
                            << logits.w() << " with " << logits.c()
                            << " classes: too large a scale factor for the gradient's staging");
  return g;
}

template <typename T, typename D>
void launch_all(const Context& ctx, bool align_corners, const TensorView& logits,
                const uint8_t* labels, int label_h, int label_w, float* loss,
                const TensorView& dlogits, float grad_scale, const float* grad_scale_in_memory,
                const float* class_weights, const CeWorkspace& ws, int64_t partials,
                int64_t* valid_count) {
  FARSEE_REQUIRE(partials < (int64_t(1) << 31),
                 "softmax_ce_upsample: " << partials << " blocks exceed the grid limit");
  auto forward = ce_forward_kernel<T>;
  FARSEE_LAUNCH(
      forward, dim3(unsigned(partials)), dim3(kThreads), 0, ctx.stream, nhwc<const T>(logits),
      labels, label_h, label_w, bilinear_scale(logits.h(), label_h, align_corners),
      bilinear_scale(logits.w(), label_w, align_corners), align_corners, class_weights, ws);
  FARSEE_LAUNCH(ce_finalize_kernel, dim3(1), dim3(kThreads), 0, ctx.stream, ws, partials,
                grad_scale, grad_scale_in_memory, loss, valid_count);
  const BilinearGatherGeometry g = gradient_geometry(logits, label_h, label_w, align_corners);
  auto gradient = ce_gradient_kernel<T, D>;
  FARSEE_LAUNCH(gradient, bilinear_gather_grid(g, logits.n()), dim3(kThreads),
                gradient_smem_bytes(g, logits.c()), ctx.stream, nhwc<const T>(logits), labels,
                nhwc<D>(dlogits), class_weights, g, ws);
}

}  // namespace

void softmax_ce_upsample(FARSEE_SOFTMAX_CE_UPSAMPLE_ARGS) {
  (void)workspace_bytes;  // checked by the entry point
  require_int_pixels(logits.shape.pixels(), "softmax_ce_upsample: logits");
  const int64_t partials = softmax_ce_partials(logits.shape, label_h, label_w);
  const CeWorkspace ws = ce_workspace(workspace, partials);
  const bool f32_in = logits.dtype == DType::F32, f32_out = dlogits.dtype == DType::F32;
  auto launch = f32_in ? (f32_out ? launch_all<float, float> : launch_all<float, __half>)
                       : (f32_out ? launch_all<__half, float> : launch_all<__half, __half>);
  launch(ctx, align_corners, logits, labels, label_h, label_w, loss, dlogits, grad_scale,
         grad_scale_in_memory, class_weights, ws, partials, valid_count);
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee

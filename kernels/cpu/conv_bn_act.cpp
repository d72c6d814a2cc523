// cpu executor, conv_bn_act: NHWC convolutions as fp32 OpenBLAS SGEMMs over fixed tiles of
// pixels, OpenMP over the tiles (OpenBLAS single-threaded inside: kernels/cpu/gemm.h). fp32 only:
// fp16 storage goes to the reference implementation (correct, not fast).
//
// Forward: y[P x K] = patches[P x RSC] * W^T, W the KRSC weights [K][RSC] (the reference's
//   layout; refresh_conv_weights is the reference's copy). Work items: a tile of output pixels
//   times a block of output channels (conv_gemm_tiling: pixel tiles for the early layers, channel
//   blocks for the deep ones whose weights outweigh their patches, each SGEMM packing both).
//   1x1 stride-1 unpadded convs read the activation in place (NHWC is a [pixels x C] matrix with
//   leading dimension pixel_stride), the rest gather the tile's im2col rows (never the whole
//   image; with channel blocks the small map's rows once for all blocks); one SGEMM straight into
//   y's rows (plain stores, channel slices included: consecutive output pixels
//   are rows pixel_stride apart), or into a per-thread [rows x block] buffer for the pixel-shuffled
//   store (or a residual overlapping y); then the fused epilogue (scale, bias, residual, ReLU,
//   shuffled store) in one pass while the rows are in cache.
// Backward data (dgrad), the transposed geometry: dx[q][c] = sum over the taps (r, s) that reach
//   input pixel q and k of dy[o(q, r, s)][k] * w[k][r][s][c]. Input pixels are grouped by stride
//   phase (qy mod sh, qx mod sw): within a phase the same taps can reach every pixel, so each tile
//   is one SGEMM [rows x T*K] * [T*K x C] over just those T taps (no zero taps for strided convs),
//   with the weights re-laid per phase as [T][K][C] once per call; tiles of a phase's pixels
//   (stride 1: spanning the images) times blocks of input channels (conv_gemm_tiling: the deep
//   layers' phase weights outweigh their pixels). A's rows are dy's rows gathered through the
//   shuffle mapping (zeros outside the output), or dy itself (1x1, plain dy). No scatter: each dx
//   pixel is written once, by one tile (accumulate: added to dx); stride-1 convs write (beta = 1:
//   accumulate into) dx directly from the GEMM.
// Backward weight (wgrad + bias grad): dw[K][RSC] += dy^T[K x P] * patches[P x RSC] (1x1: x's
//   rows in place). The P output pixels are cut into `segments` contiguous ranges, the RSC
//   columns into tap blocks and the K rows into channel blocks (the small maps: 8 or more items, an
//   even count, for the two cores), all functions of the shape only; each (segment, tap block,
//   channel block) accumulates its tiles in pixel order into its segment's fp32 partial (SGEMM with
//   beta = 1); the partials are summed in segment order and added to dw once (one segment: the
//   SGEMMs accumulate into dw itself, each item its own block of dw). Fixed order, no atomics:
//   bitwise reproducible for any thread count. db sums dy in the same segment order.
// Precision: fp32 products and sums (OpenBLAS's order inside a tile); the reference sums in double.
#include "kernels/conv_bn_act.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "kernels/cpu/conv_tiles.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {
namespace {

bool is_pointwise(const ConvShape& c) {
  return c.kernel_h == 1 && c.kernel_w == 1 && c.stride_h == 1 && c.stride_w == 1 && c.pad_h == 0 &&
         c.pad_w == 0;
}

}  // namespace

void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS) {
  if (w.dtype != DType::F32) {
    reference::conv_bn_act_fwd(ctx, conv, x, w, epilogue, y, plan);  // fp16: not a fast path
    return;
  }
  const int K = w.K;
  const int oh = conv.out_h(x.h()), ow = conv.out_w(x.w());
  const int64_t P = int64_t(x.n()) * oh * ow;
  const int64_t rsc = int64_t(w.R) * w.S * w.C;
  const int taps = w.R * w.S;
  const bool direct = is_pointwise(conv);
  const int shuffle_group = epilogue.shuffle_factor * epilogue.shuffle_factor;
  const GemmTiling tiling = conv_gemm_tiling(P, K, rsc, std::lcm(16, shuffle_group),
                                             split_gemm_for_threads(P * K * rsc) ? 4 : 1);
  const bool threads = worth_threads_gemm(P * K * rsc);
  const int64_t tile = tiling.rows;
  const int64_t tiles = (P + tile - 1) / tile;
  const int kb = tiling.k_block, blocks = K / kb;
  const int64_t items = tiles * blocks;
  const float* wk = static_cast<const float*>(w.buffer.data());
  // With channel blocks every block of a tile reads the same patch rows: gathered once for all P
  // pixels first (conv_gemm_tiling bounds that buffer), instead of once per block.
  const std::unique_ptr<float[]> all_patches =
      scratch<float>(direct || blocks == 1 ? 0 : size_t(P * rsc));
  if (all_patches) {
#pragma omp parallel for schedule(dynamic) if (tiles > 1 && threads)
    for (int64_t ti = 0; ti < tiles; ++ti) {
      const int64_t p0 = ti * tile;
      gather_patches(conv, x, oh, ow, p0, int(std::min(tile, P - p0)), 0, taps,
                     all_patches.get() + p0 * rsc, rsc);
    }
  }
  // Plain stores: the GEMM writes y's rows itself (consecutive output pixels are rows
  // pixel_stride apart) and the epilogue runs on them in place, unless the residual overlaps y.
  bool in_y = epilogue.shuffle_factor == 1;
  if (in_y && epilogue.residual.data != nullptr) {
    const char* r0 = epilogue.residual.ptr<const char>();
    const char* r1 = r0 + sizeof(float) * size_t(epilogue.residual.shape.pixels() *
                                                 epilogue.residual.pixel_stride);
    const char* y0 = y.ptr<const char>();
    const char* y1 = y0 + sizeof(float) * size_t(y.shape.pixels() * y.pixel_stride);
    in_y = r1 <= y0 || y1 <= r0;
  }
#pragma omp parallel if (items > 1 && threads)
  {
    const std::unique_ptr<float[]> patches =
        scratch<float>(direct || blocks > 1 ? 0 : size_t(tile * rsc));
    const std::unique_ptr<float[]> acc = scratch<float>(in_y ? 0 : size_t(tile * kb));
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t p0 = (item / blocks) * tile;
      const int k0 = int(item % blocks) * kb;
      const int rows = int(std::min(tile, P - p0));
      const float* a;
      int64_t lda;
      if (direct) {
        a = x.ptr<const float>() + p0 * x.pixel_stride;
        lda = x.pixel_stride;
      } else if (blocks > 1) {
        a = all_patches.get() + p0 * rsc;
        lda = rsc;
      } else {
        gather_patches(conv, x, oh, ow, p0, rows, 0, taps, patches.get(), rsc);
        a = patches.get();
        lda = rsc;
      }
      const float* wb = wk + int64_t(k0) * rsc;
      if (in_y) {
        float* c = y.ptr<float>() + p0 * y.pixel_stride + k0;
        sgemm(false, true, rows, kb, int(rsc), 1.0f, a, lda, wb, rsc, 0.0f, c, y.pixel_stride);
        if (!has_epilogue(epilogue)) continue;
        for (int i = 0; i < rows; ++i) {
          const OutPixel o = out_pixel(p0 + i, oh, ow);
          epilogue_stored_row(epilogue, o.n, o.y, o.x, c + int64_t(i) * y.pixel_stride, k0, kb);
        }
        continue;
      }
      sgemm(false, true, rows, kb, int(rsc), 1.0f, a, lda, wb, rsc, 0.0f, acc.get(), kb);
      for (int i = 0; i < rows; ++i) {
        const OutPixel o = out_pixel(p0 + i, oh, ow);
        store_output_row(epilogue, y, o.n, o.y, o.x, acc.get() + int64_t(i) * kb, k0, kb);
      }
    }
  }
}

// Weights: fp32 KRSC is the master layout itself (one copy); fp16: the reference's loop.
void refresh_conv_weights(const Context& ctx, const float* master_krsc, ConvWeights& w) {
  if (w.dtype != DType::F32) {
    reference::refresh_conv_weights(ctx, master_krsc, w);
    return;
  }
  copy_bytes(w.buffer.data(), master_krsc, sizeof(float) * size_t(w.K) * w.R * w.S * w.C);
}

namespace {

// The taps (r, s) that can reach input pixels of stride phase (py, px) (py = qy mod sh), and the
// weights of those taps as [T][K][C] rows: the B operand of that phase's dgrad GEMMs.
struct DgradPhase {
  int py, px;
  std::vector<int> taps;  // r * S + s
  std::vector<float> weights;
};

int positive_mod(int a, int m) {
  const int r = a % m;
  return r < 0 ? r + m : r;
}

std::vector<DgradPhase> dgrad_phases(const ConvShape& conv, const float* wk, int K, int C) {
  const int R = conv.kernel_h, S = conv.kernel_w;
  const int64_t rsc = int64_t(R) * S * C;
  std::vector<DgradPhase> phases;
  for (int py = 0; py < conv.stride_h; ++py) {
    for (int px = 0; px < conv.stride_w; ++px) {
      DgradPhase ph{py, px, {}, {}};
      for (int r = 0; r < R; ++r) {
        // Output row oy with oy*sh - pad + r*dil = qy exists only if qy + pad - r*dil = 0 mod sh.
        if (positive_mod(py + conv.pad_h - r * conv.dilation_h, conv.stride_h) != 0) continue;
        for (int s = 0; s < S; ++s) {
          if (positive_mod(px + conv.pad_w - s * conv.dilation_w, conv.stride_w) != 0) continue;
          ph.taps.push_back(r * S + s);
        }
      }
      ph.weights.resize(ph.taps.size() * size_t(K) * C);
      const int64_t rows = int64_t(ph.taps.size()) * K;
#pragma omp parallel for schedule(dynamic, 64) if (worth_threads_elements(rows * C))
      for (int64_t row = 0; row < rows; ++row) {
        const int64_t ti = row / K, k = row % K;
        std::memcpy(ph.weights.data() + row * C, wk + k * rsc + int64_t(ph.taps[size_t(ti)]) * C,
                    sizeof(float) * size_t(C));
      }
      phases.push_back(std::move(ph));
    }
  }
  return phases;
}

// One dgrad work item: `rows` consecutive pixels (row-major) of phase `phase` of image n,
// starting at index `first` of that phase's pixel list, input channels [c0, c0 + block).
struct DgradTile {
  int n, phase;
  int64_t first;
  int rows;
  int c0;
};

}  // namespace

void conv_bwd_data(FARSEE_CONV_BWD_DATA_IMPL_ARGS) {
  if (w.dtype != DType::F32) {
    reference::conv_bwd_data(ctx, conv, dy, shuffle_factor, w, dx, accumulate, plan);
    return;
  }
  const int K = w.K, C = w.C, t = shuffle_factor;
  const int H = dx.h(), W = dx.w();
  const int oh = conv.out_h(H), ow = conv.out_w(W);
  const std::vector<DgradPhase> phases =
      dgrad_phases(conv, static_cast<const float*>(w.buffer.data()), K, C);
  int max_taps = 0;
  for (const DgradPhase& ph : phases) max_taps = std::max(max_taps, int(ph.taps.size()));

  // Work items: per image, per phase, tiles of that phase's pixels times blocks of input
  // channels (conv_gemm_tiling: the deep layers' phase weights outweigh their few pixels, so
  // they are cut by channel, packed once per block instead of once per pixel tile).
  const int64_t macs = int64_t(dx.n()) * H * W * C * max_taps * K;
  // Stride 1: one phase whose pixels are consecutive dx rows (across the images too: a tile may
  // span images, so the small maps' weights are packed once per block, not once per image), so
  // the GEMM writes (or, with beta = 1, accumulates into) dx in place; 1x1 unpadded with a plain
  // dy also reads dy in place. Strided: per image, per phase.
  const bool unit_stride = conv.stride_h == 1 && conv.stride_w == 1;
  const bool direct_dy = unit_stride && is_pointwise(conv) && t == 1;
  const int images = unit_stride ? 1 : dx.n();  // pixel lists: per image, or one over all
  const int64_t image_pixels = int64_t(H) * W;
  auto phase_count = [&](const DgradPhase& ph) {
    const int64_t rows_y = (H - ph.py + conv.stride_h - 1) / conv.stride_h;
    const int64_t cols_x = (W - ph.px + conv.stride_w - 1) / conv.stride_w;
    return unit_stride ? int64_t(dx.n()) * image_pixels : rows_y * cols_x;
  };
  const int64_t groups = int64_t(images) * int64_t(phases.size());
  int64_t tile = 1;
  int cb = C;
  for (const DgradPhase& ph : phases) {
    const GemmTiling g = conv_gemm_tiling(
        std::max<int64_t>(phase_count(ph), 1), C, int64_t(std::max(max_taps, 1)) * K, 16,
        split_gemm_for_threads(macs) ? std::max<int64_t>(1, (4 + groups - 1) / groups) : 1);
    tile = std::max(tile, g.rows);  // one buffer size for every phase
    cb = std::min(cb, g.k_block);
  }
  const int c_blocks = C / cb;
  std::vector<DgradTile> items;
  for (int n = 0; n < images; ++n) {
    for (int pi = 0; pi < int(phases.size()); ++pi) {
      const DgradPhase& ph = phases[pi];
      if (ph.py >= H || ph.px >= W) continue;
      const int64_t count = phase_count(ph);
      for (int64_t f = 0; f < count; f += tile) {
        for (int b = 0; b < c_blocks; ++b)
          items.push_back(DgradTile{n, pi, f, int(std::min(tile, count - f)), b * cb});
      }
    }
  }
  float* dxs = dx.ptr<float>();
#pragma omp parallel if (items.size() > 1 && worth_threads_gemm(macs))
  {
    const std::unique_ptr<float[]> a =
        scratch<float>(direct_dy ? 0 : size_t(tile) * std::max(max_taps, 1) * K);
    const std::unique_ptr<float[]> out = scratch<float>(unit_stride ? 0 : size_t(tile) * cb);
#pragma omp for schedule(dynamic)
    for (int64_t it = 0; it < int64_t(items.size()); ++it) {
      const DgradTile& d = items[size_t(it)];
      const DgradPhase& ph = phases[size_t(d.phase)];
      const int T = int(ph.taps.size());
      const int64_t cols_x = (W - ph.px + conv.stride_w - 1) / conv.stride_w;
      const int64_t lda = int64_t(T) * K;
      const float* wb = ph.weights.data() + d.c0;  // [T*K][C], this block's columns
      if (unit_stride && T > 0) {
        float* c = dxs + (int64_t(d.n) * H * W + d.first) * dx.pixel_stride + d.c0;
        if (direct_dy) {
          const float* g =
              dy.ptr<const float>() + (int64_t(d.n) * H * W + d.first) * dy.pixel_stride;
          sgemm(false, false, d.rows, cb, K, 1.0f, g, dy.pixel_stride, wb, C,
                accumulate ? 1.0f : 0.0f, c, dx.pixel_stride);
          continue;
        }
      }
      for (int i = 0; i < d.rows; ++i) {
        // Unit stride: d.first + i counts over all images' pixels.
        const int n = unit_stride ? int((d.first + i) / image_pixels) : d.n;
        const int64_t idx = unit_stride ? (d.first + i) % image_pixels : d.first + i;
        const int qy = ph.py + int(idx / cols_x) * conv.stride_h;
        const int qx = ph.px + int(idx % cols_x) * conv.stride_w;
        for (int ti = 0; ti < T; ++ti) {
          const int r = ph.taps[size_t(ti)] / conv.kernel_w,
                    s = ph.taps[size_t(ti)] % conv.kernel_w;
          const int oy = (qy + conv.pad_h - r * conv.dilation_h) / conv.stride_h;
          const int ox = (qx + conv.pad_w - s * conv.dilation_w) / conv.stride_w;
          float* dst = a.get() + i * lda + int64_t(ti) * K;
          const bool inside = qy + conv.pad_h - r * conv.dilation_h >= 0 && oy < oh &&
                              qx + conv.pad_w - s * conv.dilation_w >= 0 && ox < ow;
          if (inside) {
            load_output_grad_row(dy, t, n, oy, ox, 0, K, dst);
          } else {
            std::memset(dst, 0, sizeof(float) * size_t(K));
          }
        }
      }
      if (unit_stride && T > 0) {
        sgemm(false, false, d.rows, cb, T * K, 1.0f, a.get(), lda, wb, C, accumulate ? 1.0f : 0.0f,
              dxs + (int64_t(d.n) * H * W + d.first) * dx.pixel_stride + d.c0, dx.pixel_stride);
        continue;
      }
      if (T > 0) {
        sgemm(false, false, d.rows, cb, T * K, 1.0f, a.get(), lda, wb, C, 0.0f, out.get(), cb);
      } else {
        std::fill(out.get(), out.get() + int64_t(d.rows) * cb, 0.0f);
      }
      for (int i = 0; i < d.rows; ++i) {
        const int64_t idx = d.first + i;
        const int qy = ph.py + int(idx / cols_x) * conv.stride_h;
        const int qx = ph.px + int(idx % cols_x) * conv.stride_w;
        float* dst = dxs + dx.offset(d.n, qy, qx, d.c0);
        const float* src = out.get() + int64_t(i) * cb;
        if (accumulate) {
#pragma omp simd
          for (int c = 0; c < cb; ++c) dst[c] += src[c];
        } else {
          std::memcpy(dst, src, sizeof(float) * size_t(cb));
        }
      }
    }
  }
}

void conv_bwd_weight(FARSEE_CONV_BWD_WEIGHT_IMPL_ARGS) {
  if (x.dtype != DType::F32) {
    reference::conv_bwd_weight(ctx, conv, x, dy, shuffle_factor, dw, db, plan);
    return;
  }
  const int t = shuffle_factor;
  const int K = dy.c() * t * t, C = x.c();
  const int oh = conv.out_h(x.h()), ow = conv.out_w(x.w());
  const int64_t P = int64_t(x.n()) * oh * ow;
  const int taps = conv.kernel_h * conv.kernel_w;
  const int64_t rsc = int64_t(taps) * C;
  // Segments of >= 1024 pixels (at most 8). When there are fewer than 4, each tap is a block of
  // dw's columns as well, and dw's rows (output channels) are cut into blocks until there are 8
  // items and an even count below 16 (9 taps: 18): both cores have work on the small maps, and
  // their shares are equal or differ by one small item. The patches are gathered once per tap
  // block, dy once per channel block. Shape-only decisions.
  const int segments = int(std::clamp<int64_t>(P / 1024, 1, 8));
  const int tap_blocks = segments < 4 ? taps : 1;
  const int k_multiple = std::lcm(16, t * t);
  int k_blocks = 1;
  auto more_items = [&](int items) { return items < 8 || (items % 2 == 1 && items < 16); };
  while (more_items(segments * tap_blocks * k_blocks) && K % (2 * k_blocks) == 0 &&
         (K / (2 * k_blocks)) % k_multiple == 0 && K / (2 * k_blocks) >= 64)
    k_blocks *= 2;
  const int kb = K / k_blocks;
  const int64_t seg_len = (P + segments - 1) / segments;
  const int64_t tile = tile_rows(seg_len, rsc);
  // One segment (the small maps): the SGEMMs accumulate into dw itself (beta = 1), no partial.
  std::vector<float> partial(segments > 1 ? size_t(segments) * size_t(K) * size_t(rsc) : 0, 0.0f);
  std::vector<float> bias_partial(size_t(segments) * K, 0.0f);
  const bool plain_dy = t == 1;
  const bool direct_x = is_pointwise(conv);  // the patches are x's rows
  const int items = segments * tap_blocks * k_blocks;
#pragma omp parallel if (items > 1 && worth_threads_gemm(P * K * rsc))
  {
    const std::unique_ptr<float[]> patches = scratch<float>(direct_x ? 0 : size_t(tile) * rsc);
    const std::unique_ptr<float[]> g = scratch<float>(plain_dy ? 0 : size_t(tile) * kb);
#pragma omp for schedule(dynamic)
    for (int item = 0; item < items; ++item) {
      const int seg = item / (tap_blocks * k_blocks);
      const int block = item / k_blocks % tap_blocks, k0 = item % k_blocks * kb;
      const int tap0 = block * taps / tap_blocks, tap1 = (block + 1) * taps / tap_blocks;
      const int64_t width = int64_t(tap1 - tap0) * C;
      float* part = (segments > 1 ? partial.data() + size_t(seg) * K * rsc : dw) +
                    int64_t(k0) * rsc + int64_t(tap0) * C;
      float* bpart = bias_partial.data() + size_t(seg) * K + k0;
      const int64_t end = std::min(P, (seg + 1) * seg_len);
      for (int64_t p0 = seg * seg_len; p0 < end; p0 += tile) {
        const int rows = int(std::min(tile, end - p0));
        const float* ga;
        int64_t ldg;
        if (plain_dy) {
          ga = dy.ptr<const float>() + p0 * dy.pixel_stride + k0;
          ldg = dy.pixel_stride;
        } else {
          for (int i = 0; i < rows; ++i) {
            const OutPixel o = out_pixel(p0 + i, oh, ow);
            load_output_grad_row(dy, t, o.n, o.y, o.x, k0, kb, g.get() + int64_t(i) * kb);
          }
          ga = g.get();
          ldg = kb;
        }
        const float* b = patches.get();
        int64_t ldb = width;
        if (direct_x) {
          b = x.ptr<const float>() + p0 * x.pixel_stride;
          ldb = x.pixel_stride;
        } else {
          gather_patches(conv, x, oh, ow, p0, rows, tap0, tap1, patches.get(), width);
        }
        sgemm(true, false, kb, int(width), rows, 1.0f, ga, ldg, b, ldb, 1.0f, part, rsc);
        if (db != nullptr && block == 0) {
          for (int i = 0; i < rows; ++i) {
            const float* gr = ga + int64_t(i) * ldg;
#pragma omp simd
            for (int k = 0; k < kb; ++k) bpart[k] += gr[k];
          }
        }
      }
    }
  }
  const int64_t total = segments > 1 ? int64_t(K) * rsc : 0;
#pragma omp parallel for simd if (worth_threads_elements(total * segments)) schedule(dynamic, 4096)
  for (int64_t e = 0; e < total; ++e) {
    float s = partial[size_t(e)];
    for (int seg = 1; seg < segments; ++seg) s += partial[size_t(seg) * total + e];
    dw[e] += s;
  }
  if (db != nullptr) {
    for (int k = 0; k < K; ++k) {
      float s = bias_partial[size_t(k)];
      for (int seg = 1; seg < segments; ++seg) s += bias_partial[size_t(seg) * K + k];
      db[k] += s;
    }
  }
}

}  // namespace farsee::cpu_impl

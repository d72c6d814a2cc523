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
#include "kernels/cpu/fallback.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"

namespace farsee::cpu_impl {
namespace {

bool is_pointwise(const ConvShape& c) {
  return c.kernel_h == 1 && c.kernel_w == 1 && c.stride_h == 1 && c.stride_w == 1 && c.pad_h == 0 &&
         c.pad_w == 0;
}

// The forward's work split (a function of the shape only): items are tiles of `tile` output
// pixels times blocks of `kb` output channels (conv_gemm_tiling).
struct FwdSplit {
  int oh, ow, taps;
  int64_t P, rsc;
  int64_t tile, tiles, items;
  int kb, blocks;
  bool direct;  // 1x1 stride-1 unpadded: A is x's rows in place
};

FwdSplit fwd_split(const ConvShape& conv, const TensorView& x, const ConvWeights& w,
                   const ConvEpilogue& epilogue) {
  FwdSplit f;
  f.oh = conv.out_h(x.h());
  f.ow = conv.out_w(x.w());
  f.P = int64_t(x.n()) * f.oh * f.ow;
  f.rsc = int64_t(w.R) * w.S * w.C;
  f.taps = w.R * w.S;
  f.direct = is_pointwise(conv);
  const int shuffle_group = epilogue.shuffle_factor * epilogue.shuffle_factor;
  const GemmTiling tiling = conv_gemm_tiling(f.P, w.K, f.rsc, std::lcm(16, shuffle_group),
                                             split_gemm_for_threads(f.P * w.K * f.rsc) ? 4 : 1);
  f.tile = tiling.rows;
  f.tiles = (f.P + f.tile - 1) / f.tile;
  f.kb = tiling.k_block;
  f.blocks = w.K / f.kb;
  f.items = f.tiles * f.blocks;
  return f;
}

// With channel blocks every block of a tile reads the same patch rows: gathered once for all P
// pixels first (conv_gemm_tiling bounds that buffer), instead of once per block. Null otherwise.
std::unique_ptr<float[]> gather_all_patches(const ConvShape& conv, const TensorView& x,
                                            const FwdSplit& f, bool threads) {
  std::unique_ptr<float[]> all =
      scratch<float>(f.direct || f.blocks == 1 ? 0 : size_t(f.P * f.rsc));
  if (all) {
#pragma omp parallel for schedule(dynamic) if (f.tiles > 1 && threads)
    for (int64_t ti = 0; ti < f.tiles; ++ti) {
      const int64_t p0 = ti * f.tile;
      gather_patches(conv, x, f.oh, f.ow, p0, int(std::min(f.tile, f.P - p0)), 0, f.taps,
                     all.get() + p0 * f.rsc, f.rsc);
    }
  }
  return all;
}

// Plain stores: the GEMM writes y's rows itself (consecutive output pixels are rows
// pixel_stride apart) and the epilogue runs on them in place, unless the residual overlaps y.
bool gemm_into_y(const ConvEpilogue& epilogue, const TensorView& y) {
  if (epilogue.shuffle_factor != 1) return false;
  if (epilogue.residual.data == nullptr) return true;
  const char* r0 = epilogue.residual.ptr<const char>();
  const char* r1 = r0 + sizeof(float) * size_t(epilogue.residual.shape.pixels() *
                                               epilogue.residual.pixel_stride);
  const char* y0 = y.ptr<const char>();
  const char* y1 = y0 + sizeof(float) * size_t(y.shape.pixels() * y.pixel_stride);
  return r1 <= y0 || y1 <= r0;
}

// One forward work item: the SGEMM of output pixels [p0, p0 + rows) times output channels
// [k0, k0 + kb), then the fused epilogue on its rows (in y, or from the thread's `acc`).
// `patches`: the thread's im2col buffer (single channel block).
inline void fwd_item(const ConvShape& conv, const TensorView& x, const float* wk,
                     const ConvEpilogue& epilogue, const TensorView& y, const FwdSplit& f,
                     int64_t item, bool in_y, const float* all_patches, float* patches,
                     float* acc) {
  const int64_t p0 = (item / f.blocks) * f.tile;
  const int k0 = int(item % f.blocks) * f.kb, kb = f.kb;
  const int rows = int(std::min(f.tile, f.P - p0));
  const float* a;
  int64_t lda;
  if (f.direct) {
    a = x.ptr<const float>() + p0 * x.pixel_stride;
    lda = x.pixel_stride;
  } else if (f.blocks > 1) {
    a = all_patches + p0 * f.rsc;
    lda = f.rsc;
  } else {
    gather_patches(conv, x, f.oh, f.ow, p0, rows, 0, f.taps, patches, f.rsc);
    a = patches;
    lda = f.rsc;
  }
  const float* wb = wk + int64_t(k0) * f.rsc;
  if (in_y) {
    float* c = y.ptr<float>() + p0 * y.pixel_stride + k0;
    sgemm(false, true, rows, kb, int(f.rsc), 1.0f, a, lda, wb, f.rsc, 0.0f, c, y.pixel_stride);
    if (!has_epilogue(epilogue)) return;
    for (int i = 0; i < rows; ++i) {
      const OutPixel o = out_pixel(p0 + i, f.oh, f.ow);
      epilogue_stored_row(epilogue, o.n, o.y, o.x, c + int64_t(i) * y.pixel_stride, k0, kb);
    }
    return;
  }
  sgemm(false, true, rows, kb, int(f.rsc), 1.0f, a, lda, wb, f.rsc, 0.0f, acc, kb);
  for (int i = 0; i < rows; ++i) {
    const OutPixel o = out_pixel(p0 + i, f.oh, f.ow);
    store_output_row(epilogue, y, o.n, o.y, o.x, acc + int64_t(i) * kb, k0, kb);
  }
}

}  // namespace

void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS) {
  if (ran_reference_unless_f32(w.dtype, reference::conv_bn_act_fwd, ctx, conv, x, w, epilogue, y,
                               plan))
    return;
  const FwdSplit f = fwd_split(conv, x, w, epilogue);
  const bool threads = worth_threads_gemm(f.P * w.K * f.rsc);
  const float* wk = static_cast<const float*>(w.buffer.data());
  const std::unique_ptr<float[]> all_patches = gather_all_patches(conv, x, f, threads);
  const bool in_y = gemm_into_y(epilogue, y);
#pragma omp parallel if (f.items > 1 && threads)
  {
    const std::unique_ptr<float[]> patches =
        scratch<float>(f.direct || f.blocks > 1 ? 0 : size_t(f.tile * f.rsc));
    const std::unique_ptr<float[]> acc = scratch<float>(in_y ? 0 : size_t(f.tile * f.kb));
#pragma omp for schedule(dynamic)
    for (int64_t item = 0; item < f.items; ++item)
      fwd_item(conv, x, wk, epilogue, y, f, item, in_y, all_patches.get(), patches.get(),
               acc.get());
  }
}

// Weights: fp32 KRSC is the master layout itself (one copy); fp16: the reference's loop.
void refresh_conv_weights(const Context& ctx, const float* master_krsc, ConvWeights& w) {
  if (ran_reference_unless_f32(w.dtype, reference::refresh_conv_weights, ctx, master_krsc, w))
    return;
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

// conv_bwd_data's geometry and work split (a function of the shape only).
struct DgradSplit {
  int K, C, t, N, H, W, oh, ow;
  int max_taps;  // the most taps any phase has
  int64_t macs;
  // Stride 1: one phase whose pixels are consecutive dx rows (across the images too: a tile may
  // span images, so the small maps' weights are packed once per block, not once per image), so
  // the GEMM writes (or, with beta = 1, accumulates into) dx in place; 1x1 unpadded with a plain
  // dy also reads dy in place (direct_dy). Strided: per image, per phase.
  bool unit_stride, direct_dy;
  int images;  // pixel lists: per image, or one over all
  int64_t image_pixels;
  int64_t tile;  // pixels per item: one buffer size for every phase
  int cb;        // input channels per item
};

// Columns of phase ph's pixel grid in a W-wide image.
int64_t phase_cols(const ConvShape& conv, const DgradPhase& ph, int W) {
  return (W - ph.px + conv.stride_w - 1) / conv.stride_w;
}

// Length of phase ph's pixel list: one image's pixels of the phase, or (unit stride) all pixels.
int64_t phase_pixels(const ConvShape& conv, const DgradPhase& ph, const DgradSplit& s) {
  const int64_t rows_y = (s.H - ph.py + conv.stride_h - 1) / conv.stride_h;
  const int64_t cols_x = phase_cols(conv, ph, s.W);
  return s.unit_stride ? int64_t(s.N) * s.image_pixels : rows_y * cols_x;
}

DgradSplit dgrad_split(const ConvShape& conv, const std::vector<DgradPhase>& phases,
                       const ConvWeights& w, const TensorView& dx, int t) {
  DgradSplit s;
  s.K = w.K, s.C = w.C, s.t = t;
  s.N = dx.n(), s.H = dx.h(), s.W = dx.w();
  s.oh = conv.out_h(s.H), s.ow = conv.out_w(s.W);
  s.max_taps = 0;
  for (const DgradPhase& ph : phases) s.max_taps = std::max(s.max_taps, int(ph.taps.size()));
  // Work items: per image, per phase, tiles of that phase's pixels times blocks of input
  // channels (conv_gemm_tiling: the deep layers' phase weights outweigh their few pixels, so
  // they are cut by channel, packed once per block instead of once per pixel tile).
  s.macs = int64_t(dx.n()) * s.H * s.W * s.C * s.max_taps * s.K;
  s.unit_stride = conv.stride_h == 1 && conv.stride_w == 1;
  s.direct_dy = s.unit_stride && is_pointwise(conv) && t == 1;
  s.images = s.unit_stride ? 1 : dx.n();
  s.image_pixels = int64_t(s.H) * s.W;
  const int64_t groups = int64_t(s.images) * int64_t(phases.size());
  s.tile = 1;
  s.cb = s.C;
  for (const DgradPhase& ph : phases) {
    const GemmTiling g = conv_gemm_tiling(
        std::max<int64_t>(phase_pixels(conv, ph, s), 1), s.C,
        int64_t(std::max(s.max_taps, 1)) * s.K, 16,
        split_gemm_for_threads(s.macs) ? std::max<int64_t>(1, (4 + groups - 1) / groups) : 1);
    s.tile = std::max(s.tile, g.rows);
    s.cb = std::min(s.cb, g.k_block);
  }
  return s;
}

std::vector<DgradTile> dgrad_items(const ConvShape& conv, const std::vector<DgradPhase>& phases,
                                   const DgradSplit& s) {
  const int c_blocks = s.C / s.cb;
  std::vector<DgradTile> items;
  for (int n = 0; n < s.images; ++n) {
    for (int pi = 0; pi < int(phases.size()); ++pi) {
      const DgradPhase& ph = phases[pi];
      if (ph.py >= s.H || ph.px >= s.W) continue;
      const int64_t count = phase_pixels(conv, ph, s);
      for (int64_t f = 0; f < count; f += s.tile) {
        for (int b = 0; b < c_blocks; ++b)
          items.push_back(DgradTile{n, pi, f, int(std::min(s.tile, count - f)), b * s.cb});
      }
    }
  }
  return items;
}

// The A rows of tile d: per pixel, the K conv-output-gradient channels of each of the phase's T
// taps (read through the shuffle mapping; zeros where the tap's output pixel is outside).
inline void gather_dgrad_rows(const ConvShape& conv, const TensorView& dy, const DgradSplit& s,
                              const DgradPhase& ph, const DgradTile& d, float* a) {
  const int T = int(ph.taps.size()), K = s.K;
  const int64_t cols_x = phase_cols(conv, ph, s.W);
  const int64_t lda = int64_t(T) * K;
  for (int i = 0; i < d.rows; ++i) {
    // Unit stride: d.first + i counts over all images' pixels.
    const int n = s.unit_stride ? int((d.first + i) / s.image_pixels) : d.n;
    const int64_t idx = s.unit_stride ? (d.first + i) % s.image_pixels : d.first + i;
    const int qy = ph.py + int(idx / cols_x) * conv.stride_h;
    const int qx = ph.px + int(idx % cols_x) * conv.stride_w;
    for (int ti = 0; ti < T; ++ti) {
      const int r = ph.taps[size_t(ti)] / conv.kernel_w, sx = ph.taps[size_t(ti)] % conv.kernel_w;
      const int oy = (qy + conv.pad_h - r * conv.dilation_h) / conv.stride_h;
      const int ox = (qx + conv.pad_w - sx * conv.dilation_w) / conv.stride_w;
      float* dst = a + i * lda + int64_t(ti) * K;
      const bool inside = qy + conv.pad_h - r * conv.dilation_h >= 0 && oy < s.oh &&
                          qx + conv.pad_w - sx * conv.dilation_w >= 0 && ox < s.ow;
      if (inside) {
        load_output_grad_row(dy, s.t, n, oy, ox, 0, K, dst);
      } else {
        std::memset(dst, 0, sizeof(float) * size_t(K));
      }
    }
  }
}

// Strided convs: tile d's rows of `out` to their dx pixels (written, or added: accumulate).
inline void store_dgrad_rows(const ConvShape& conv, const DgradSplit& s, const DgradPhase& ph,
                             const DgradTile& d, const float* out, const TensorView& dx,
                             bool accumulate) {
  const int64_t cols_x = phase_cols(conv, ph, s.W);
  const int cb = s.cb;
  for (int i = 0; i < d.rows; ++i) {
    const int64_t idx = d.first + i;
    const int qy = ph.py + int(idx / cols_x) * conv.stride_h;
    const int qx = ph.px + int(idx % cols_x) * conv.stride_w;
    float* dst = dx.ptr<float>() + dx.offset(d.n, qy, qx, d.c0);
    const float* src = out + int64_t(i) * cb;
    if (accumulate) {
#pragma omp simd
      for (int c = 0; c < cb; ++c) dst[c] += src[c];
    } else {
      std::memcpy(dst, src, sizeof(float) * size_t(cb));
    }
  }
}

// One dgrad work item: A (dy in place, or gathered into `a`) times the phase's weights for this
// block of input channels, into dx (unit stride) or the thread's `out` and then dx.
inline void dgrad_item(const ConvShape& conv, const TensorView& dy, const TensorView& dx,
                       bool accumulate, const DgradSplit& s, const DgradPhase& ph,
                       const DgradTile& d, float* a, float* out) {
  const int T = int(ph.taps.size()), K = s.K, C = s.C, cb = s.cb;
  const int64_t lda = int64_t(T) * K;
  const float* wb = ph.weights.data() + d.c0;  // [T*K][C], this block's columns
  // dx / dy pixel of the tile's first row, used at unit stride (d.n = 0, d.first over all images)
  const int64_t first = int64_t(d.n) * s.H * s.W + d.first;
  if (s.unit_stride && T > 0 && s.direct_dy) {
    const float* g = dy.ptr<const float>() + first * dy.pixel_stride;
    sgemm(false, false, d.rows, cb, K, 1.0f, g, dy.pixel_stride, wb, C, accumulate ? 1.0f : 0.0f,
          dx.ptr<float>() + first * dx.pixel_stride + d.c0, dx.pixel_stride);
    return;
  }
  gather_dgrad_rows(conv, dy, s, ph, d, a);
  if (s.unit_stride && T > 0) {
    sgemm(false, false, d.rows, cb, T * K, 1.0f, a, lda, wb, C, accumulate ? 1.0f : 0.0f,
          dx.ptr<float>() + first * dx.pixel_stride + d.c0, dx.pixel_stride);
    return;
  }
  if (T > 0) {
    sgemm(false, false, d.rows, cb, T * K, 1.0f, a, lda, wb, C, 0.0f, out, cb);
  } else {
    std::fill(out, out + int64_t(d.rows) * cb, 0.0f);
  }
  store_dgrad_rows(conv, s, ph, d, out, dx, accumulate);
}

}  // namespace

void conv_bwd_data(FARSEE_CONV_BWD_DATA_IMPL_ARGS) {
  if (ran_reference_unless_f32(w.dtype, reference::conv_bwd_data, ctx, conv, dy, shuffle_factor, w,
                               dx, accumulate, plan))
    return;
  const std::vector<DgradPhase> phases =
      dgrad_phases(conv, static_cast<const float*>(w.buffer.data()), w.K, w.C);
  const DgradSplit s = dgrad_split(conv, phases, w, dx, shuffle_factor);
  const std::vector<DgradTile> items = dgrad_items(conv, phases, s);
#pragma omp parallel if (items.size() > 1 && worth_threads_gemm(s.macs))
  {
    const std::unique_ptr<float[]> a =
        scratch<float>(s.direct_dy ? 0 : size_t(s.tile) * std::max(s.max_taps, 1) * s.K);
    const std::unique_ptr<float[]> out = scratch<float>(s.unit_stride ? 0 : size_t(s.tile) * s.cb);
#pragma omp for schedule(dynamic)
    for (int64_t it = 0; it < int64_t(items.size()); ++it) {
      const DgradTile& d = items[size_t(it)];
      dgrad_item(conv, dy, dx, accumulate, s, phases[size_t(d.phase)], d, a.get(), out.get());
    }
  }
}

namespace {

// conv_bwd_weight's work split (a function of the shape only): `items` = segments (contiguous
// ranges of the P output pixels) x tap blocks x output-channel blocks.
struct WgradSplit {
  int oh, ow, taps, K, C, t;
  int64_t P, rsc;
  int segments, tap_blocks, k_blocks, kb, items;
  int64_t seg_len, tile;
  bool direct_x;  // 1x1 stride-1 unpadded: the patches are x's rows
};

WgradSplit wgrad_split(const ConvShape& conv, const TensorView& x, const TensorView& dy, int t) {
  WgradSplit s;
  s.t = t;
  s.K = dy.c() * t * t, s.C = x.c();
  s.oh = conv.out_h(x.h()), s.ow = conv.out_w(x.w());
  s.P = int64_t(x.n()) * s.oh * s.ow;
  s.taps = conv.kernel_h * conv.kernel_w;
  s.rsc = int64_t(s.taps) * s.C;
  // Segments of >= 1024 pixels (at most 8). When there are fewer than 4, each tap is a block of
  // dw's columns as well, and dw's rows (output channels) are cut into blocks until there are 8
  // items and an even count below 16 (9 taps: 18): both cores have work on the small maps, and
  // their shares are equal or differ by one small item. The patches are gathered once per tap
  // block, dy once per channel block. Shape-only decisions.
  s.segments = int(std::clamp<int64_t>(s.P / 1024, 1, 8));
  s.tap_blocks = s.segments < 4 ? s.taps : 1;
  const int k_multiple = std::lcm(16, t * t), K = s.K;
  int k_blocks = 1;
  auto more_items = [&](int items) { return items < 8 || (items % 2 == 1 && items < 16); };
  while (more_items(s.segments * s.tap_blocks * k_blocks) && K % (2 * k_blocks) == 0 &&
         (K / (2 * k_blocks)) % k_multiple == 0 && K / (2 * k_blocks) >= 64)
    k_blocks *= 2;
  s.k_blocks = k_blocks;
  s.kb = K / k_blocks;
  s.items = s.segments * s.tap_blocks * k_blocks;
  s.seg_len = (s.P + s.segments - 1) / s.segments;
  s.tile = tile_rows(s.seg_len, s.rsc);
  s.direct_x = is_pointwise(conv);
  return s;
}

// Conv-output-gradient rows [p0, p0 + rows), channels [k0, k0 + kb): dy itself (plain, t = 1) or
// gathered through the shuffle mapping into the thread's `g`. Sets ld (leading dimension).
inline const float* wgrad_dy_rows(const TensorView& dy, const WgradSplit& s, int64_t p0, int rows,
                                  int k0, float* g, int64_t& ld) {
  if (s.t == 1) {
    ld = dy.pixel_stride;
    return dy.ptr<const float>() + p0 * dy.pixel_stride + k0;
  }
  for (int i = 0; i < rows; ++i) {
    const OutPixel o = out_pixel(p0 + i, s.oh, s.ow);
    load_output_grad_row(dy, s.t, o.n, o.y, o.x, k0, s.kb, g + int64_t(i) * s.kb);
  }
  ld = s.kb;
  return g;
}

// One wgrad work item: its segment's pixel tiles in pixel order, each an SGEMM accumulated
// (beta = 1) into the item's block of the segment's partial (or of dw: one segment), and for the
// first tap block dy's rows summed into the segment's bias partial.
inline void wgrad_item(const ConvShape& conv, const TensorView& x, const TensorView& dy,
                       const WgradSplit& s, int item, float* partial, float* dw,
                       float* bias_partial, bool with_db, float* patches, float* g) {
  const int seg = item / (s.tap_blocks * s.k_blocks);
  const int block = item / s.k_blocks % s.tap_blocks, k0 = item % s.k_blocks * s.kb;
  const int tap0 = block * s.taps / s.tap_blocks, tap1 = (block + 1) * s.taps / s.tap_blocks;
  const int64_t width = int64_t(tap1 - tap0) * s.C;
  const int kb = s.kb;
  float* part = (s.segments > 1 ? partial + size_t(seg) * s.K * s.rsc : dw) + int64_t(k0) * s.rsc +
                int64_t(tap0) * s.C;
  float* bpart = bias_partial + size_t(seg) * s.K + k0;
  const int64_t end = std::min(s.P, (seg + 1) * s.seg_len);
  for (int64_t p0 = seg * s.seg_len; p0 < end; p0 += s.tile) {
    const int rows = int(std::min(s.tile, end - p0));
    int64_t ldg;
    const float* ga = wgrad_dy_rows(dy, s, p0, rows, k0, g, ldg);
    const float* b = patches;
    int64_t ldb = width;
    if (s.direct_x) {
      b = x.ptr<const float>() + p0 * x.pixel_stride;
      ldb = x.pixel_stride;
    } else {
      gather_patches(conv, x, s.oh, s.ow, p0, rows, tap0, tap1, patches, width);
    }
    sgemm(true, false, kb, int(width), rows, 1.0f, ga, ldg, b, ldb, 1.0f, part, s.rsc);
    if (!with_db || block != 0) continue;
    for (int i = 0; i < rows; ++i) {
      const float* gr = ga + int64_t(i) * ldg;
#pragma omp simd
      for (int k = 0; k < kb; ++k) bpart[k] += gr[k];
    }
  }
}

// The segments' partials summed in segment order and added to dw (more than one segment; one
// segment accumulated into dw itself), and the bias partials to db (if any).
void reduce_wgrad_partials(const std::vector<float>& partial,
                           const std::vector<float>& bias_partial, const WgradSplit& s, float* dw,
                           float* db) {
  const int segments = s.segments, K = s.K;
  const int64_t total = segments > 1 ? int64_t(K) * s.rsc : 0;
#pragma omp parallel for simd if (worth_threads_elements(total * segments)) schedule(dynamic, 4096)
  for (int64_t e = 0; e < total; ++e) {
    float sum = partial[size_t(e)];
    for (int seg = 1; seg < segments; ++seg) sum += partial[size_t(seg) * total + e];
    dw[e] += sum;
  }
  if (db != nullptr) {
    for (int k = 0; k < K; ++k) {
      float sum = bias_partial[size_t(k)];
      for (int seg = 1; seg < segments; ++seg) sum += bias_partial[size_t(seg) * K + k];
      db[k] += sum;
    }
  }
}

}  // namespace

void conv_bwd_weight(FARSEE_CONV_BWD_WEIGHT_IMPL_ARGS) {
  if (ran_reference_unless_f32(x.dtype, reference::conv_bwd_weight, ctx, conv, x, dy,
                               shuffle_factor, dw, db, plan))
    return;
  const WgradSplit s = wgrad_split(conv, x, dy, shuffle_factor);
  // One segment (the small maps): the SGEMMs accumulate into dw itself (beta = 1), no partial.
  std::vector<float> partial(s.segments > 1 ? size_t(s.segments) * size_t(s.K) * size_t(s.rsc) : 0,
                             0.0f);
  std::vector<float> bias_partial(size_t(s.segments) * s.K, 0.0f);
#pragma omp parallel if (s.items > 1 && worth_threads_gemm(s.P * s.K * s.rsc))
  {
    const std::unique_ptr<float[]> patches =
        scratch<float>(s.direct_x ? 0 : size_t(s.tile) * s.rsc);
    const std::unique_ptr<float[]> g = scratch<float>(s.t == 1 ? 0 : size_t(s.tile) * s.kb);
#pragma omp for schedule(dynamic)
    for (int item = 0; item < s.items; ++item)
      wgrad_item(conv, x, dy, s, item, partial.data(), dw, bias_partial.data(), db != nullptr,
                 patches.get(), g.get());
  }
  reduce_wgrad_partials(partial, bias_partial, s, dw, db);
}

}  // namespace farsee::cpu_impl

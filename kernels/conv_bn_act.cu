// Fused convolution + folded BN + residual + ReLU (forward), and its backward passes (dgrad,
// wgrad + bias grad, weight re-packing for training), implicit GEMM, NHWC.
//
// GEMM view: D[m][k] = sum_red A[m][red] * B[k][red], m = output pixel (n, oy, ox), k = output
//   channel, red = (r, s, c) = filter tap and input channel, A[m][(r,s,c)] = x[n, oy*sh - ph +
//   r*dh, ox*sw - pw + s*dw, c] (0 in the padding): the im2col matrix, never materialised.
//
// fp16 path (tensor cores, sm_80+): 128 threads = 4 warps per block, block tile BM x BN (128x128,
//   128x64 or 64x64; warps 2x2, so warp tiles of 64x64, 64x32 or 32x32), reduction step 32; or
//   the 8-warp 128x128 tile (ConvTile::M128N128W8, the cp.async loader only): 256 threads, warps
//   2x4 (warp tiles 64x32), reduction step 64 (stage rows of 8 chunks, rows64 swizzle, 3 stages =
//   96 KiB): one barrier per 512 warp MMAs instead of 256, 128 reduction elements in flight.
//   - Loads: a 3-4 stage cp.async pipeline in dynamic shared memory. Each stage holds A (BM rows)
//     and B (BN rows) as rows of 32 halves = four 16-byte chunks; chunk j of row r is stored at
//     chunk j ^ ((r >> 1) & 3) (XOR swizzle), so the eight 16-byte row reads of every ldmatrix
//     phase, and the cp.async writes, hit 8 distinct bank quads: conflict-free without padding.
//     A (activations): the reduction walks taps (r, s) and, per tap, 32 channels at a time (C = 8
//     or 16: 32 / C whole taps per step, kernels/core/cp_async_tiles.h); a
//     16-byte chunk is 8 channels of one input pixel, zero-filled by cp.async (src_bytes 0) in
//     the padding, past C and past the last pixel. This needs C % 8 == 0 and a 16-byte aligned x;
//     otherwise (the 3-channel stem, odd slices) the "gather" loader reads A element by element
//     in flat (r, s, c) order (ld + st.shared, same smem layout). B (weights, KRSCRows layout:
//     one zero-padded KRSC row per output channel) is always 16-byte cp.async.
//   - Math: ldmatrix.x4 fragments (A: 16x16, B: two 8x16 n-tiles), mma.m16n8k16 f16 x f16 ->
//     f32; each warp keeps its warp tile of fp32 accumulators in registers.
//   - Epilogue: the fp32 tile is staged through shared memory (row stride BN + 8 floats: the
//     fragment writes are conflict-free), then each thread takes groups of 8 output channels that
//     are contiguous in y (consecutive channels; with pixel shuffle t, conv channels c*t*t + i*t +
//     j for 8 consecutive c at fixed (i, j)), applies scale/bias, residual, ReLU, converts and
//     stores 16 bytes. Groups that are partial (K or the shuffled channel count not a multiple of
//     8) or misaligned (slices at odd offsets) fall back to guarded element stores. Natural order
//     with shuffle t = 4 and a 64-wide tile leaves 4 channels per group: scalar. Sub-pixel packed
//     weights (ConvWeights.subpixel_factor, kernels/core/subpixel_store.h) order the columns
//     (i, j)-major, so each thread's 8 (fp16) / 4 (fp32 SIMT) adjacent columns are 8 / 4
//     adjacent channels of one output pixel: one 16-byte store (zeros into y's padding channels
//     when the shuffled channel count is padded); no split-K for them.
//   - Fused max-pool (ConvEpilogue::max_pool: the stem's 3x3 / s2 / pad 1 pool, inference on
//     emu/cuda; the 128x64 tile's one extra variant): a block computes the 11 x 11 conv pixels
//     of a 5 x 5 pooled tile (its GEMM rows; borders recomputed by the neighbours, 1.21x the
//     rows), rounds the staged activations to fp16 in place and stores the 3x3 maxima, 8
//     channels per 16-byte store (kernels/core/fused_max_pool.h); the conv output never goes
//     to memory and the pool launch disappears.
//   - Programmatic dependent launch (ConvOptions::programmatic_launch, off unless switched on;
//     kernels/core/launch.h): the first kStages - 1 stages' weight tiles are requested before
//     griddepcontrol.wait, everything else after it; launch_dependents after the main loop.
//   - Split-K (grid.z > 1, small maps), reduced in the same launch: each z-slice of the reduction
//     writes its raw fp32 tile to the workspace [z][M][K] and counts itself on its output tile's
//     integer counter; the CTA arriving last sums the slices in z order (fixed: bitwise
//     reproducible whatever the block order) into the staging tile and runs the same epilogue,
//     and resets the counter (mma_splitk_reduce; kernels/core/fixed_order_reduce.h).
// fp32 path (SIMT, exact fp32): 256 threads, block tile BM x BN (128x128, 128x64, 64x64), 8
//   reduction elements per step, each thread an (BM/16) x (BN/16) register tile built from float4
//   reads of two shared-memory operand tiles (A transposed to [red][m], B as [red][k] from the RSCK
//   weights); double-buffered shared memory with register prefetch of the next step; A loaded
//   element-wise in flat (r, s, c) order, so any C and any slice alignment work. The epilogue runs
//   from registers (4 consecutive channels per store); split-K as above, the last CTA summing the
//   slices into its registers (simt_splitk_reduce).
// tf32 path (plan.tf32, fp32 storage; --precision tf32): the SIMT kernel's loaders and
//   register-prefetch main loop (8 reduction elements per step, fp32 tiles [red][m] / [red][n] in
//   double-buffered shared memory, rows padded by 8 floats), the math on tensor cores: 256
//   threads = 8 warps 2 x 4, warp tiles (BM/2) x (BN/4) of mma.m16n8k8 tf32 (operands rounded by
//   cvt.rna when the fragments are read), fp32 accumulation; epilogue from the fragments (two
//   consecutive channels per store); split-K as above, the last CTA summing the slices into its
//   fragments (tf32_splitk_reduce). wgrad: the SIMT wgrad's loaders, the same warp MMAs, the
//   split finished by wgrad_splitk_finish (conv_wgrad_tf32_kernel).
// Layout: x, y, residual NHWC, each possibly a channel slice (pixel_stride > C); y may be the
//   pixel-shuffled [N, OH*t, OW*t, K/t^2]. Weights: ConvWeightLayout (kernels/conv_bn_act.h).
// Precision: fp32 accumulation; fp16 storage rounds once at the store; scale/bias as one fma.
//   Every fma is an explicit fmaf (SIMT main loop, epilogue). The one kernel file built with
//   nvcc's default --fmad=true (kernels/CMakeLists.txt: the same PTX, but --fmad=false changed
//   ptxas's register allocation; the conv tests have tolerances).
// Fused: folded BN (or conv bias), residual add, ReLU, concat (slice store), pixel shuffle, the
//   stem's max-pool.
// Variants: with_kernel_variant() is the one place that instantiates (dtype, math, tile,
// loader).
// Index math (ConvGeometry, window origins/pixels, reduction cursor, output index, split ranges)
// lives in kernels/core/conv_gemm.h. The two tensor-core kernels (conv_mma_kernel,
// conv_wgrad_mma_kernel) share kernels/core/mma_tile.h: the cp.async pipeline, the warp MMAs and
// ldmatrix fragment loads of their stage layouts, the accumulator fragment mapping, and the fp32
// tile stores (split-K slices, wgrad's dw, epilogue staging); their stage loaders are here. The
// SIMT kernels share simt_mainloop.
//
// Backward (training; the gradient of the raw conv output, dy, possibly pixel-shuffled):
// - dgrad: dx = the transposed conv of dy, run by the SAME two kernels (loaders, pipeline,
//   split-K, epilogue) on the dgrad geometry of conv_gemm.h: source dy (read through the shuffle
//   mapping when t > 1; fp16 then uses the gather loader), result dx, taps at -dilation with the
//   valid-tap condition for stride 2 (off-phase taps read zero: at stride 2, 3/4 of the 3x3
//   products and of the 1x1 pixels are zeros that are still multiplied), weights in the
//   BackwardData layouts (RSKC fp32, CRSKRows fp16: N = C, reduction (r, s, k)); identity
//   epilogue, with dx itself as the residual for accumulate (dx +=, read and written by one
//   thread).
// - wgrad: dw[k][(r,s,c)] += sum_m dy[m][k] * im2col(x)[m][(r,s,c)]: a GEMM reducing over the
//   output pixels m. fp16 with 8-channel-aligned x and dy: conv_wgrad_mma_kernel (tensor cores,
//   reduction-major swizzled stages, ldmatrix.trans); otherwise conv_wgrad_simt_kernel (the SIMT
//   main loop, fp16 operands converted at the load). The pixel range is split into `splits`
//   fixed chunks (grid.z); each writes its fp32 tile to workspace slice z, and the last CTA of
//   the tile to arrive (int tile counter, as the forward's split-K) adds the slices' sum, in z
//   order, to dw (wgrad_splitk_finish; unsplit: the kernel adds to dw directly, one owner per
//   element). db: conv_bias_grad_kernel (fixed per-thread pixel strides, fixed-order
//   shared-memory sum), split the same way with its own counters. No float atomics, no reduce
//   launch: bitwise reproducible.
// - refresh_conv_weights: conv_pack_weights_kernel writes every packed element (padding = 0)
//   from the fp32 KRSC master weights, for any layout.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/conv_bn_act.h"
#include "kernels/core/conv_gemm.h"
#include "kernels/core/cp_async_tiles.h"
#include "kernels/core/epilogue.h"
#include "kernels/core/fixed_order_reduce.h"
#include "kernels/core/fused_max_pool.h"
#include "kernels/core/launch.h"
#include "kernels/core/mem_access.h"
#include "kernels/core/mma_tile.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/core/per_device_once.h"
#include "kernels/core/ptx.h"
#include "kernels/core/subpixel_store.h"
#include "kernels/core/vec.h"

namespace farsee {
namespace FARSEE_KERNEL_NS {
namespace {

// ---------------------------------------------------------------------------------------------
// Geometry and epilogue shared by every kernel of this file.

// Output channels [k0, k0 + step * count) with stride `step`: one run of contiguous y elements.
struct ChannelGroup {
  int k0, step, count;
};
// Groups of up to V channels covering conv channels [k_begin, k_begin + width) (both multiples of
// shuffle^2): without shuffle, V consecutive channels; with shuffle t, channels c*t*t + i*t + j of
// V consecutive c at one (i, j) (contiguous in the shuffled y). Group g: (i, j) = g / groups_of_c.
FARSEE_HD int channel_groups_per_row(int width, int shuffle, int V) {
  const int t2 = shuffle * shuffle;
  return t2 * ceil_div(width / t2, V);
}
FARSEE_HD ChannelGroup channel_group(int g, int k_begin, int width, int shuffle, int K, int V) {
  const int t2 = shuffle * shuffle;
  const int c_count = width / t2;
  const int c_groups = ceil_div(c_count, V);
  const int ij = g / c_groups;
  const int c = (g - ij * c_groups) * V;
  const int k0 = k_begin + c * t2 + ij;
  int count = min(V, c_count - c);
  count = k0 >= K ? 0 : min(count, ceil_div(K - k0, t2));
  return ChannelGroup{k0, t2, count};
}

// The sub-pixel column order of w (t2 = 0: natural order).
SubpixelColumns subpixel_columns(const ConvWeights& w) {
  SubpixelColumns s;
  if (w.subpixel_factor > 1) {
    s.t2 = w.subpixel_factor * w.subpixel_factor;
    s.channels = w.K / s.t2;
    s.stride = w.subpixel_stride;
  }
  return s;
}

FARSEE_HD bool aligned_to(const void* p, unsigned bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// The epilogue and store mode: conv output element (m, k) -> y (plain, slice or shuffled).
template <typename T>
struct ConvStore : ConvOutputIndex<T> {
  const T* residual;  // [M][K] view with residual_pixel_stride; null: none
  int64_t residual_pixel_stride;
  BnActEpilogue epilogue;
  int K;
  // sub.t2 > 0: GEMM columns in sub-pixel order (kernels/core/subpixel_store.h).
  SubpixelColumns sub;

  FARSEE_HD float value(float acc, int m, int k) const {
    if (residual == nullptr) return epilogue(acc, k);
    return epilogue(acc, k, to_float(ld(&residual[int64_t(m) * residual_pixel_stride + k])));
  }
  // Stores group `cg` of output pixel m from its accumulators acc[0 .. cg.count).
  template <int V>
  FARSEE_HD void store(int m, const ChannelGroup& cg, const float (&acc)[V]) const {
    T* dst = this->element(m, cg.k0);
    const bool contiguous = cg.step == this->shuffle * this->shuffle;
    if (cg.count == V && contiguous && aligned_to(dst, V * sizeof(T))) {
      const T* res =
          residual != nullptr ? residual + int64_t(m) * residual_pixel_stride + cg.k0 : nullptr;
      if (res != nullptr && cg.step == 1 && aligned_to(res, V * sizeof(T))) {
        epilogue.store<V>(dst, acc, cg.k0, res);
      } else {
        float out[V];
#pragma unroll
        for (int e = 0; e < V; ++e) out[e] = value(acc[e], m, cg.k0 + e * cg.step);
        store_from_float<V>(dst, out);
      }
      return;
    }
    store_elements<V>(m, cg, acc);
  }
  template <int V>
  FARSEE_HD void store_elements(int m, const ChannelGroup& cg, const float (&acc)[V]) const {
#pragma unroll
    for (int e = 0; e < V; ++e) {
      if (e < cg.count) {
        const int k = cg.k0 + e * cg.step;
        st(this->element(m, k), from_float<T>(value(acc[e], m, k)));
      }
    }
  }
  // Sub-pixel order: GEMM columns [n, n + V) (n % V == 0) of output pixel m, one 16-byte store of
  // V consecutive shuffled channels (zeros in the padding channels) when y allows it.
  template <int V>
  FARSEE_HD void store_subpixel(int m, int n, const float (&acc)[V]) const {
    const int count = subpixel_group_count(sub, n, V);
    if (count == 0) return;
    const ChannelGroup cg{subpixel_conv_channel(sub, n), sub.t2, count};
    T* dst = this->element(m, cg.k0);
    if (subpixel_store_width<V>(dst) != V) return store_elements<V>(m, cg, acc);
    float out[V];
#pragma unroll
    for (int e = 0; e < V; ++e) out[e] = e < count ? value(acc[e], m, cg.k0 + e * cg.step) : 0.0f;
    store_from_float<V>(dst, out);
  }
};

// ---------------------------------------------------------------------------------------------
// fp16 tensor-core kernel: the stage loaders here; the pipeline, warp MMAs, fragment mapping and
// fp32 tile stores are kernels/core/mma_tile.h's (rows32 / rows64 row-major stage tiles).

constexpr int kEpilogueVector = 8;  // halves per 16-byte store

// Block tile BM x BN, kStages pipeline stages of Red_ halves of reduction (32: 4 warps; 64: the
// 8-warp 128x128 tile), Warps_ warps in 2 x (Warps_ / 2), the gather or the cp.async A loader,
// the fused pool.
template <int BM_, int BN_, int Stages_, bool Gather_, bool Pool_ = false, int Warps_ = 4,
          int Red_ = 32>
struct MmaConfig {
  static constexpr int BM = BM_, BN = BN_, kStages = Stages_;
  static constexpr bool kGather = Gather_;
  static constexpr int kThreads = 32 * Warps_, kWarpsN = Warps_ / 2;
  static constexpr int kRed = Red_;                              // halves per stage row
  static constexpr int kChunksPerRow = kRed / kChunkHalves;      // 16-byte chunks per stage row
  static constexpr int kRowsPerPass = kThreads / kChunksPerRow;  // rows per cp.async pass (32)
  FARSEE_HD static int swizzled(int row, int chunk) { return swizzled_row_major<kRed>(row, chunk); }
  // The fused 3x3 / s2 max-pool (ConvEpilogue::max_pool): GEMM rows are a block's conv patch
  // (kernels/core/fused_max_pool.h), the epilogue pools the staged tile.
  static constexpr bool kPool = Pool_;
  static_assert(!kPool || (kFusedPoolRows <= BM && !kGather), "the pooled patch fills the rows");
  static constexpr int kWarpM = BM / 2, kWarpN = BN / kWarpsN;  // warps 2 x kWarpsN
  static constexpr int kMi = kWarpM / 16, kNi = kWarpN / 8;
  static constexpr int kStageHalves = (BM + BN) * kRed;
  static constexpr int kEpilogueStride = BN + 8;  // floats per staged row
  static constexpr size_t kPipelineBytes = size_t(kStages) * kStageHalves * 2;
  static constexpr size_t kEpilogueBytes = size_t(BM) * kEpilogueStride * 4;
  static constexpr size_t kSmemBytes =
      kPipelineBytes > kEpilogueBytes ? kPipelineBytes : kEpilogueBytes;
  // A rows per thread: the cp.async loader's passes of kRowsPerPass rows x kChunksPerRow chunks,
  // or one (gather: kThreads / BM threads per row).
  static constexpr int kARowsPerThread = kGather ? 1 : BM / kRowsPerPass;
  static_assert(BM % kRowsPerPass == 0 && BN % kRowsPerPass == 0 && kThreads % BM == 0,
                "tiles are multiples of the load pass");
};

// This thread's share of every stage load, fixed for the block: its row and chunk in the cp.async
// passes, its row and span in the gather loader, and the windows of its A rows.
template <typename Cfg>
struct MmaLoadSlot {
  int load_chunk, load_row;     // cp.async passes (A and B)
  int gather_row, gather_part;  // gather loader (A)
  int c_tiles;                  // reduction tiles per tap (cp.async loader)
  int taps_per_tile;            // > 1: C divides the tile, which then holds whole taps
  WindowOrigin a_origin[Cfg::kARowsPerThread];
};
template <typename Cfg>
FARSEE_DEVICE MmaLoadSlot<Cfg> mma_load_slot(const ConvGeometry& g, int m0,
                                             const FusedPoolTile& pool) {
  const int tid = threadIdx.x;
  MmaLoadSlot<Cfg> s;
  s.load_chunk = tid % Cfg::kChunksPerRow;
  s.load_row = tid / Cfg::kChunksPerRow;
  s.gather_row = tid % Cfg::BM;
  s.gather_part = tid / Cfg::BM;
  s.c_tiles = ceil_div(g.in_c, Cfg::kRed);
  s.taps_per_tile = cp_async_taps_per_tile(g.in_c, Cfg::kRed);
#pragma unroll
  for (int i = 0; i < Cfg::kARowsPerThread; ++i) {
    const int row = Cfg::kGather ? s.gather_row : s.load_row + Cfg::kRowsPerPass * i;
    s.a_origin[i] = window_origin(g, Cfg::kPool ? fused_pool_patch_pixel(g, pool, row) : m0 + row);
  }
  return s;
}

// Where this thread's B chunk starts in a weight row, and whether it lies inside the (padded) row.
struct BChunk {
  int red;
  bool in_row;
};

// The tap and first channel of this thread's 16-byte chunk of reduction tile `tile` (cp.async
// loader: one tap, Cfg::kRed channels; or kRed / C whole taps when C divides it), and whether
// it is a real element (c < C, tap inside the kernel).
struct TapChunk {
  int tap, c;
  bool in_row;
};
template <typename Cfg>
FARSEE_DEVICE TapChunk tap_chunk(const ConvGeometry& g, const MmaLoadSlot<Cfg>& s, int tile) {
  int tap, c;
  if (s.taps_per_tile > 1) {  // flat (tap, c) order: this chunk's offset in the tile
    const int offset = s.load_chunk * kChunkHalves, sub = offset / g.in_c;
    tap = tile * s.taps_per_tile + sub;
    c = offset - sub * g.in_c;
  } else {
    tap = tile / s.c_tiles;
    c = (tile - tap * s.c_tiles) * Cfg::kRed + s.load_chunk * kChunkHalves;
  }
  return TapChunk{tap, c, c < g.in_c && tap < g.kernel_h * g.kernel_w};
}

// This thread's B chunk of reduction tile `tile`: the weight row follows the A loader's order
// (flat (r, s, c) for the gather loader, tap_chunk for cp.async).
template <typename Cfg>
FARSEE_DEVICE BChunk b_chunk(const ConvGeometry& g, const MmaLoadSlot<Cfg>& s, int tile) {
  if constexpr (Cfg::kGather) {
    const int red = tile * Cfg::kRed + s.load_chunk * kChunkHalves;
    return BChunk{red, red < g.w_row};
  } else {
    const TapChunk t = tap_chunk<Cfg>(g, s, tile);
    return BChunk{t.tap * g.in_c + t.c, t.in_row};
  }
}

// A of reduction tile `tile`, gather loader: kGatherSpan elements of row gather_row, flat
// reduction order, zeros outside, written as swizzled 16-byte chunks.
template <typename Cfg>
FARSEE_DEVICE void gather_a_tile(const ConvGeometry& g, const __half* x, __half* a_tile,
                                 const MmaLoadSlot<Cfg>& s, int tile) {
  constexpr int kThreadsPerRow = Cfg::kThreads / Cfg::BM;  // threads sharing one A row
  constexpr int kGatherSpan = Cfg::kRed / kThreadsPerRow;
  const uint16_t* xs = reinterpret_cast<const uint16_t*>(x);
  const int red0 = tile * Cfg::kRed + s.gather_part * kGatherSpan;
  ReductionCursor cur = reduction_cursor(g, red0);
  Pack<uint16_t, kChunkHalves> chunk;
#pragma unroll
  for (int e = 0; e < kGatherSpan; ++e) {
    uint16_t v = 0;
    if (red0 + e < g.reduction) {
      const int p = window_pixel(g, s.a_origin[0], cur.r, cur.s);
      if (p >= 0) v = ld(&xs[source_offset(g, p, cur.c)]);
    }
    cur.advance(g);
    chunk.v[e % kChunkHalves] = v;
    if (e % kChunkHalves == kChunkHalves - 1) {
      const int logical = (s.gather_part * kGatherSpan + e) / kChunkHalves;
      st(reinterpret_cast<Pack<uint16_t, kChunkHalves>*>(a_tile +
                                                         Cfg::swizzled(s.gather_row, logical)),
         chunk);
    }
  }
}

// A of reduction tile `tile` (one tap, 32 channels; or 32 / C whole taps when C is 8 or 16,
// kernels/core/cp_async_tiles.h), cp.async loader: 16-byte chunks of 8 channels of one input
// pixel, zero-filled in the padding, past C, past the last tap and past the last pixel.
template <typename Cfg>
FARSEE_DEVICE void cp_async_a_tile(const ConvGeometry& g, const __half* x, __half* a_tile,
                                   const MmaLoadSlot<Cfg>& s, int tile) {
  const TapChunk t = tap_chunk<Cfg>(g, s, tile);
  const int tap = t.tap, c = t.c;
  const int r = tap / g.kernel_w, sx = tap - r * g.kernel_w;
  const bool in_row = t.in_row;
#pragma unroll
  for (int i = 0; i < Cfg::kARowsPerThread; ++i) {
    const int p = in_row ? window_pixel(g, s.a_origin[i], r, sx) : -1;
    const __half* src = p >= 0 ? x + source_offset(g, p, c) : x;  // (shuffle == 1 here)
    ptx::cp_async_16(a_tile + Cfg::swizzled(s.load_row + Cfg::kRowsPerPass * i, s.load_chunk), src,
                     p >= 0 ? 16 : 0);
  }
}

// B of a reduction tile: chunk b of BN weight rows (output channels n0..), zeros past K.
template <typename Cfg>
FARSEE_DEVICE void cp_async_b_tile(const ConvGeometry& g, const __half* w, __half* b_tile,
                                   const MmaLoadSlot<Cfg>& s, int n0, BChunk b) {
#pragma unroll
  for (int i = 0; i < Cfg::BN / Cfg::kRowsPerPass; ++i) {
    const int k = n0 + s.load_row + Cfg::kRowsPerPass * i;
    const bool valid = b.in_row && k < g.K;
    const __half* src = valid ? w + int64_t(k) * g.w_row + b.red : w;
    ptx::cp_async_16(b_tile + Cfg::swizzled(s.load_row + Cfg::kRowsPerPass * i, s.load_chunk), src,
                     valid ? 16 : 0);
  }
}

// Epilogue of the staged fp32 tile (row stride kEpilogueStride): each thread takes groups of
// kEpilogueVector output channels that are contiguous in y and stores them through `out`.
template <typename Cfg>
FARSEE_DEVICE void store_staged_tile(const float* staged, const ConvStore<__half>& out, int M,
                                     int K, int m0, int n0) {
  if (out.sub.t2 > 0) {  // sub-pixel order: 8 consecutive columns = one 16-byte store
    constexpr int kGroups = Cfg::BN / kEpilogueVector;
    for (int q = threadIdx.x; q < Cfg::BM * kGroups; q += Cfg::kThreads) {
      const int row = q / kGroups, col = (q - row * kGroups) * kEpilogueVector;
      if (m0 + row >= M) continue;
      float v[kEpilogueVector];
#pragma unroll
      for (int e = 0; e < kEpilogueVector; ++e) v[e] = staged[row * Cfg::kEpilogueStride + col + e];
      out.template store_subpixel<kEpilogueVector>(m0 + row, n0 + col, v);
    }
    return;
  }
  const int groups_per_row = channel_groups_per_row(Cfg::BN, out.shuffle, kEpilogueVector);
  for (int q = threadIdx.x; q < Cfg::BM * groups_per_row; q += Cfg::kThreads) {
    const int row = q / groups_per_row;
    const int m = m0 + row;
    if (m >= M) continue;
    const ChannelGroup cg =
        channel_group(q - row * groups_per_row, n0, Cfg::BN, out.shuffle, K, kEpilogueVector);
    const float* src = staged + row * Cfg::kEpilogueStride + (cg.k0 - n0);
    float v[kEpilogueVector];
#pragma unroll
    for (int e = 0; e < kEpilogueVector; ++e) v[e] = e < cg.count ? ld(&src[e * cg.step]) : 0.0f;
    out.template store<kEpilogueVector>(m, cg, v);
  }
}

// The fused max-pool's epilogue (Cfg::kPool): the staged fp32 patch (row = i * kFusedPoolPatch + j)
// becomes the activation rounded to fp16 as the unfused conv stores it, in place; then each thread
// takes groups of kEpilogueVector channels of the block's pooled pixels and stores the maximum
// over the 3x3 window's patch pixels inside the conv output (kernels/pool.cu's window order and
// max_keep_nan: bitwise the unfused conv then max_pool_fwd). y (out) is the pooled image.
template <typename Cfg>
FARSEE_DEVICE void pool_staged_tile(float* staged, const ConvStore<__half>& out,
                                    const ConvGeometry& g, const FusedPoolTile& t, int n0) {
  for (int q = threadIdx.x; q < kFusedPoolRows * Cfg::BN; q += Cfg::kThreads) {
    const int row = q / Cfg::BN, col = q - row * Cfg::BN;
    float* v = &staged[row * Cfg::kEpilogueStride + col];
    if (n0 + col < g.K) st(v, to_float(from_float<__half>(out.epilogue(ld(v), n0 + col))));
  }
  __syncthreads();
  constexpr int kGroups = Cfg::BN / kEpilogueVector;
  for (int q = threadIdx.x; q < kFusedPoolTile * kFusedPoolTile * kGroups; q += Cfg::kThreads) {
    const int p = q / kGroups, col = (q - p * kGroups) * kEpilogueVector;
    const int pr = p / kFusedPoolTile, pc = p - pr * kFusedPoolTile;
    const int py = t.py0 + pr, px = t.px0 + pc, count = min(kEpilogueVector, g.K - n0 - col);
    if (py >= out.y_h || px >= out.y_w || count <= 0) continue;
    float m[kEpilogueVector];
#pragma unroll
    for (int e = 0; e < kEpilogueVector; ++e) m[e] = -INFINITY;
    for (int i = 2 * pr; i < 2 * pr + 3; ++i) {
      for (int j = 2 * pc; j < 2 * pc + 3; ++j) {
        if (!inside_conv_output(t.conv_y(i), t.conv_x(j), g.out_h, g.out_w)) continue;
        const float* src = staged + (i * kFusedPoolPatch + j) * Cfg::kEpilogueStride + col;
#pragma unroll
        for (int e = 0; e < kEpilogueVector; ++e) m[e] = max_keep_nan(m[e], ld(&src[e]));
      }
    }
    __half* dst = out.element((t.n * out.y_h + py) * out.y_w + px, n0 + col);
    if (count == kEpilogueVector && aligned_to(dst, 16)) {
      store_from_float<kEpilogueVector>(dst, m);
    } else {
      for (int e = 0; e < count; ++e) st(dst + e, from_float<__half>(m[e]));
    }
  }
}

// Split-K of the fp16 kernel: this CTA's raw fp32 tile to workspace slice z ([z][M][K]); the CTA
// of the output tile that arrives last sums the slices in z order into `staged` (the epilogue's
// staging tile, row stride kEpilogueStride) and returns true; the others return false.
template <typename Cfg, typename Acc>
FARSEE_DEVICE bool mma_splitk_reduce(const Acc& acc, const AccFragment& frag, const ConvGeometry& g,
                                     int m0, int n0, float* workspace, int* tile_counters,
                                     float* staged) {
  const int64_t slice = int64_t(g.M) * g.K;
  store_fp32_tile(acc, frag, m0, n0, g.M, g.K, workspace + int64_t(blockIdx.z) * slice, false,
                  [](int m) { return m; });
  if (!splitk_last_arrival(tile_counters + blockIdx.y * gridDim.x + blockIdx.x, int(gridDim.z)))
    return false;
  for (int q = threadIdx.x; q < Cfg::BM * Cfg::BN; q += Cfg::kThreads) {
    const int row = q / Cfg::BN, col = q - row * Cfg::BN;
    const int m = m0 + row, k = n0 + col;
    if (m < g.M && k < g.K) {
      st(&staged[row * Cfg::kEpilogueStride + col],
         splitk_sum(workspace + int64_t(m) * g.K + k, slice, int(gridDim.z)));
    }
  }
  __syncthreads();
  return true;
}

// Launch bounds (threads, 1): without the minimum-blocks hint ptxas capped the 64x64 gather
// variant at 72 registers on sm_80 and spilled 12 bytes; with it, 104 registers and no spill
// (tests/static: static.kernels.resources).
template <typename Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    conv_mma_kernel(ConvGeometry g, const __half* __restrict__ x, const __half* __restrict__ w,
                    ConvStore<__half> out, float* workspace, int* tile_counters, int red_tiles) {
  constexpr int kBOffset = Cfg::BM * Cfg::kRed;  // B tile within a stage, in halves
  __half* smem = dynamic_smem<__half>();
  const int m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN;
  FusedPoolTile pool{};
  if constexpr (Cfg::kPool) pool = fused_pool_tile(blockIdx.x, out.y_h, out.y_w);
  const MmaLoadSlot<Cfg> slot = mma_load_slot<Cfg>(g, m0, pool);
  const TileRange range = split_range(red_tiles, gridDim.z, blockIdx.z);
  // Programmatic dependent launch (FARSEE_LAUNCH_PDL): the weights of the pipeline's first
  // stages (no kernel writes them) are requested before waiting for the previous kernel; the
  // activations, the split-K workspace and counters and every store come after the wait. The
  // copies join the first cp.async group (landed by the first stage's wait).
  const int prefetched = min(Cfg::kStages - 1, range.last - range.first);
  for (int s = 0; s < prefetched; ++s) {
    cp_async_b_tile<Cfg>(g, w, smem + s * Cfg::kStageHalves + kBOffset, slot, n0,
                         b_chunk<Cfg>(g, slot, range.first + s));
  }
  ptx::griddepcontrol_wait();
  auto load_stage = [&](int stage, int tile) {
    __half* a_tile = smem + stage * Cfg::kStageHalves;
    if constexpr (Cfg::kGather) {
      gather_a_tile<Cfg>(g, x, a_tile, slot, tile);
    } else {
      cp_async_a_tile<Cfg>(g, x, a_tile, slot, tile);
    }
    if (tile - range.first >= prefetched)
      cp_async_b_tile<Cfg>(g, w, a_tile + kBOffset, slot, n0, b_chunk<Cfg>(g, slot, tile));
  };

  const WarpPosition wp = warp_position<Cfg::kWarpsN>();
  const int warp_row0 = wp.warp_m * Cfg::kWarpM, warp_col0 = wp.warp_n * Cfg::kWarpN;
  float acc[Cfg::kMi][Cfg::kNi][4];
  zero_accumulators(acc);
  auto compute_stage = [&](int stage) {
    const __half* a_tile = smem + stage * Cfg::kStageHalves;
    warp_stage_mma<Cfg::kRed>(acc, [&](int ks, auto& a, auto& b) {
      load_fragments_row_major<Cfg::kRed>(a, b, a_tile, a_tile + kBOffset, warp_row0, warp_col0, ks,
                                          wp.lane);
    });
  };
  cp_async_pipeline<Cfg::kStages>(range, load_stage, compute_stage);
  ptx::griddepcontrol_launch_dependents();  // the next conv may start fetching its weights

  const AccFragment frag = acc_fragment(warp_row0, warp_col0, wp.lane);
  float* staged = dynamic_smem<float>();  // the pipeline's memory, free again
  if (gridDim.z > 1) {
    if (!mma_splitk_reduce<Cfg>(acc, frag, g, m0, n0, workspace, tile_counters, staged)) return;
  } else {
    stage_accumulators(acc, frag, staged, Cfg::kEpilogueStride);
    __syncthreads();
  }
  if constexpr (Cfg::kPool) {
    pool_staged_tile<Cfg>(staged, out, g, pool, n0);
  } else {
    store_staged_tile<Cfg>(staged, out, g.M, g.K, m0, n0);
  }
}

// ---------------------------------------------------------------------------------------------
// fp32 SIMT kernel.

constexpr int kSimtThreads = 256;  // 16 x 16
constexpr int kSimtRed = 8;        // reduction elements per step

template <int BM_, int BN_>
struct SimtConfig {
  static constexpr int BM = BM_, BN = BN_;
  static constexpr int kTm = BM / 16, kTn = BN / 16;  // register tile per thread
  static constexpr int kALoads = BM * kSimtRed / kSimtThreads;
  static constexpr int kBLoads = BN * kSimtRed / kSimtThreads;
  static constexpr bool kTf32 = false;
  static_assert(kTm % 4 == 0 && kTn % 4 == 0, "register tiles are float4 columns");
};

// Thread tile index i -> tile row/column: float4 runs of 4, runs 64 apart (conflict-free float4
// smem reads, 16 threads of a half-warp on 256 contiguous bytes per store).
FARSEE_HD int simt_offset(int i, int thread) {
  return (i / 4) * 64 + thread * 4 + (i % 4);
}

// The register-prefetch main loop of the SIMT and tf32 kernels: A [red][m] and B [red][n] operand
// tiles, double-buffered in shared memory; per reduction step of kSimtRed elements, fetch(step)
// loads the NEXT step's operands into registers (global loads in flight during the math), then
// compute(buffer) runs the math on the resident buffer, then stash(buffer) writes the fetched
// operands to the other buffer, one barrier per step.
template <typename Fetch, typename Stash, typename Compute>
FARSEE_DEVICE void prefetch_mainloop(const TileRange& range, Fetch& fetch, Stash& stash,
                                     Compute&& compute) {
  int buffer = 0;
  if (range.first < range.last) {
    fetch(range.first);
    stash(0);
  }
  __syncthreads();
  for (int tile = range.first; tile < range.last; ++tile) {
    const bool more = tile + 1 < range.last;
    if (more) fetch(tile + 1);  // global loads in flight during the math below
    compute(buffer);
    if (more) stash(buffer ^ 1);  // the other buffer was last read before the previous barrier
    __syncthreads();
    buffer ^= 1;
  }
}

// The SIMT main loop shared by conv_simt_kernel (forward, dgrad) and conv_wgrad_simt_kernel:
// prefetch_mainloop with register-tile FMAs. acc[i][j] is tile row simt_offset(i, ty), column
// simt_offset(j, tx) (threadIdx = ty * 16 + tx). The caller's fetch/stash define the loaders.
template <typename Cfg, typename Fetch, typename Stash>
FARSEE_DEVICE void simt_mainloop(const TileRange& range, float (&a_tile)[2][kSimtRed][Cfg::BM + 4],
                                 float (&b_tile)[2][kSimtRed][Cfg::BN], Fetch& fetch, Stash& stash,
                                 float (&acc)[Cfg::kTm][Cfg::kTn]) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
  for (int i = 0; i < Cfg::kTm; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kTn; ++j) acc[i][j] = 0.0f;
  }
  prefetch_mainloop(range, fetch, stash, [&](int buffer) {
#pragma unroll
    for (int kk = 0; kk < kSimtRed; ++kk) {
      float a[Cfg::kTm], b[Cfg::kTn];
#pragma unroll
      for (int i = 0; i < Cfg::kTm; i += 4) {
        const Pack<float, 4> v =
            ld(reinterpret_cast<const Pack<float, 4>*>(&a_tile[buffer][kk][simt_offset(i, ty)]));
#pragma unroll
        for (int e = 0; e < 4; ++e) a[i + e] = v.v[e];
      }
#pragma unroll
      for (int j = 0; j < Cfg::kTn; j += 4) {
        const Pack<float, 4> v =
            ld(reinterpret_cast<const Pack<float, 4>*>(&b_tile[buffer][kk][simt_offset(j, tx)]));
#pragma unroll
        for (int e = 0; e < 4; ++e) b[j + e] = v.v[e];
      }
#pragma unroll
      for (int i = 0; i < Cfg::kTm; ++i) {
#pragma unroll
        for (int j = 0; j < Cfg::kTn; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
  });
}

// Forward / dgrad operand loads of the SIMT and tf32 kernels: A element-wise in flat (r, s, c)
// order (any C, any slice alignment, zeros in the padding), B from the RSCK / RSKC weights (zeros
// past K and the reduction). fetch(tile) loads reduction step `tile` into registers; stash(a, b)
// writes them into one buffer of the [kSimtRed][m] and [kSimtRed][n] tiles.
template <typename Cfg>
struct SimtConvLoads {
  static constexpr int kBRowStep = kSimtThreads / Cfg::BN;
  int a_col, a_row;  // A: reduction column a_col of rows a_row + 32 * i
  int b_col, b_row;  // B: channel b_col of reduction rows b_row + kBRowStep * i
  WindowOrigin a_origin[Cfg::kALoads];
  float a_next[Cfg::kALoads], b_next[Cfg::kBLoads];

  FARSEE_DEVICE SimtConvLoads(const ConvGeometry& g, int m0) {
    const int tid = threadIdx.x;
    a_col = tid % kSimtRed;
    a_row = tid / kSimtRed;
    b_col = tid % Cfg::BN;
    b_row = tid / Cfg::BN;
#pragma unroll
    for (int i = 0; i < Cfg::kALoads; ++i) a_origin[i] = window_origin(g, m0 + a_row + 32 * i);
  }
  FARSEE_DEVICE void fetch(const ConvGeometry& g, const float* x, const float* w, int n0,
                           int tile) {
    const int red = tile * kSimtRed + a_col;
    const ReductionCursor cur = reduction_cursor(g, red);
#pragma unroll
    for (int i = 0; i < Cfg::kALoads; ++i) {
      const int p = red < g.reduction ? window_pixel(g, a_origin[i], cur.r, cur.s) : -1;
      a_next[i] = p >= 0 ? ld(&x[source_offset(g, p, cur.c)]) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < Cfg::kBLoads; ++i) {
      const int red_b = tile * kSimtRed + b_row + kBRowStep * i;
      const int k = n0 + b_col;
      b_next[i] = red_b < g.reduction && k < g.K ? ld(&w[int64_t(red_b) * g.K + k]) : 0.0f;
    }
  }
  template <typename ATile, typename BTile>
  FARSEE_DEVICE void stash(ATile& a_tile, BTile& b_tile) const {
#pragma unroll
    for (int i = 0; i < Cfg::kALoads; ++i) st(&a_tile[a_col][a_row + 32 * i], a_next[i]);
#pragma unroll
    for (int i = 0; i < Cfg::kBLoads; ++i) st(&b_tile[b_row + kBRowStep * i][b_col], b_next[i]);
  }
};

// Split-K of the SIMT kernel: this CTA's register tile to workspace slice z ([z][M][K]); the CTA
// of the output tile that arrives last replaces its registers by the sums of the slices in z
// order and returns true; the others return false.
template <typename Cfg>
FARSEE_DEVICE bool simt_splitk_reduce(float (&acc)[Cfg::kTm][Cfg::kTn], const ConvGeometry& g,
                                      int m0, int n0, float* workspace, int* tile_counters) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t slice = int64_t(g.M) * g.K;
  auto for_each_element = [&](auto&& f) {
#pragma unroll
    for (int i = 0; i < Cfg::kTm; ++i) {
      const int m = m0 + simt_offset(i, ty);
#pragma unroll
      for (int j = 0; j < Cfg::kTn; ++j) {
        const int k = n0 + simt_offset(j, tx);
        if (m < g.M && k < g.K) f(acc[i][j], int64_t(m) * g.K + k);
      }
    }
  };
  float* own = workspace + int64_t(blockIdx.z) * slice;
  for_each_element([&](float& a, int64_t e) { st(&own[e], a); });
  if (!splitk_last_arrival(tile_counters + blockIdx.y * gridDim.x + blockIdx.x, int(gridDim.z)))
    return false;
  for_each_element(
      [&](float& a, int64_t e) { a = splitk_sum(workspace + e, slice, int(gridDim.z)); });
  return true;
}

template <typename Cfg>
__global__ void __launch_bounds__(kSimtThreads)
    conv_simt_kernel(ConvGeometry g, const float* __restrict__ x, const float* __restrict__ w,
                     ConvStore<float> out, float* workspace, int* tile_counters, int red_tiles) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN;
  FARSEE_SHARED(float, a_tile, [2][kSimtRed][BM + 4]);  // +4: conflict-free transposed stores
  FARSEE_SHARED(float, b_tile, [2][kSimtRed][BN]);

  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const TileRange range = split_range(red_tiles, gridDim.z, blockIdx.z);

  SimtConvLoads<Cfg> loads(g, m0);
  auto fetch = [&](int tile) { loads.fetch(g, x, w, n0, tile); };
  auto stash = [&](int buffer) { loads.stash(a_tile[buffer], b_tile[buffer]); };

  float acc[Cfg::kTm][Cfg::kTn];
  simt_mainloop<Cfg>(range, a_tile, b_tile, fetch, stash, acc);

  if (gridDim.z > 1 && !simt_splitk_reduce<Cfg>(acc, g, m0, n0, workspace, tile_counters)) return;
#pragma unroll
  for (int i = 0; i < Cfg::kTm; ++i) {
    const int m = m0 + simt_offset(i, ty);
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < Cfg::kTn; j += 4) {
      const int k0 = n0 + simt_offset(j, tx);
      const float v[4] = {acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]};
      if (out.sub.t2 > 0) {  // sub-pixel order: 4 consecutive columns = one 16-byte store
        out.template store_subpixel<4>(m, k0, v);
        continue;
      }
      const ChannelGroup cg{k0, 1, k0 >= g.K ? 0 : min(4, g.K - k0)};
      out.template store<4>(m, cg, v);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// tf32 tensor-core kernel (fp32 storage, --precision tf32): the SIMT kernel's loads (SimtConvLoads)
// and register-prefetch main loop, with the math on tensor cores: 8 warps 2 (m) x 4 (n), warp
// tiles (BM/2) x (BN/4) of mma.m16n8k8 tf32 fragments built from the fp32 [red][m] / [red][n]
// tiles (rows padded by 8 floats: conflict-free fragment reads) and rounded by cvt.rna there
// (kernels/core/mma_tile.h); fp32 accumulation. Split-K: tf32_splitk_reduce (the last CTA of the
// tile sums the slices into its fragments); the epilogue stores each lane's two consecutive
// channels per row.

template <int BM_, int BN_>
struct Tf32Config : SimtConfig<BM_, BN_> {
  static constexpr bool kTf32 = true;
  static constexpr int kWarpM = BM_ / 2, kWarpN = BN_ / 4;  // warps 2 x 4
  static constexpr int kMi = kWarpM / 16, kNi = kWarpN / 8;
  static constexpr int kAStride = BM_ + 8, kBStride = BN_ + 8;  // floats per tile row
};

// This warp's tile origin in the block tile (warps 2 x 4) and its accumulator mapping.
template <typename Cfg>
FARSEE_DEVICE AccFragment tf32_warp_fragment(int& warp_row0, int& warp_col0) {
  const int warp = int(threadIdx.x) >> 5;
  warp_row0 = (warp >> 2) * Cfg::kWarpM;
  warp_col0 = (warp & 3) * Cfg::kWarpN;
  return acc_fragment(warp_row0, warp_col0, int(threadIdx.x) & 31);
}

// The MMAs of one resident 8-deep buffer of the tf32 tiles.
template <typename Cfg, typename ATile, typename BTile>
FARSEE_DEVICE void tf32_buffer_mma(float (&acc)[Cfg::kMi][Cfg::kNi][4], const ATile& a_tile,
                                   const BTile& b_tile, int warp_row0, int warp_col0) {
  uint32_t a[Cfg::kMi][4], b[Cfg::kNi][2];
  load_fragments_tf32(a, b, &a_tile[0][0], Cfg::kAStride, &b_tile[0][0], Cfg::kBStride, warp_row0,
                      warp_col0, int(threadIdx.x) & 31);
  warp_tile_mma_tf32(acc, a, b);
}

// Split-K of the tf32 kernel, as simt_splitk_reduce on the warp fragments: this CTA's tile to
// workspace slice z; the last CTA of the output tile to arrive replaces its accumulators by the
// sums of the slices in z order and returns true.
template <typename Cfg>
FARSEE_DEVICE bool tf32_splitk_reduce(float (&acc)[Cfg::kMi][Cfg::kNi][4], const AccFragment& frag,
                                      const ConvGeometry& g, int m0, int n0, float* workspace,
                                      int* tile_counters) {
  const int64_t slice = int64_t(g.M) * g.K;
  store_fp32_tile(acc, frag, m0, n0, g.M, g.K, workspace + int64_t(blockIdx.z) * slice, false,
                  [](int m) { return m; });
  if (!splitk_last_arrival(tile_counters + blockIdx.y * gridDim.x + blockIdx.x, int(gridDim.z)))
    return false;
#pragma unroll
  for (int i = 0; i < Cfg::kMi; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kNi; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = m0 + frag.row(i, e), k = n0 + frag.col(j, e);
        if (m < g.M && k < g.K)
          acc[i][j][e] = splitk_sum(workspace + int64_t(m) * g.K + k, slice, int(gridDim.z));
      }
    }
  }
  return true;
}

// Launch bounds (threads, 1): without the minimum-blocks hint ptxas capped the 128x128 variant at
// 128 registers and spilled 144-152 bytes (sm_80 and sm_90) once the in-kernel split-K and the
// sub-pixel stores joined it (tests/static: static.kernels.resources).
template <typename Cfg>
__global__ void __launch_bounds__(kSimtThreads, 1)
    conv_tf32_kernel(ConvGeometry g, const float* __restrict__ x, const float* __restrict__ w,
                     ConvStore<float> out, float* workspace, int* tile_counters, int red_tiles) {
  FARSEE_SHARED(float, a_tile, [2][kSimtRed][Cfg::kAStride]);
  FARSEE_SHARED(float, b_tile, [2][kSimtRed][Cfg::kBStride]);
  const int m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN;
  SimtConvLoads<Cfg> loads(g, m0);
  auto fetch = [&](int tile) { loads.fetch(g, x, w, n0, tile); };
  auto stash = [&](int buffer) { loads.stash(a_tile[buffer], b_tile[buffer]); };

  int warp_row0, warp_col0;
  const AccFragment frag = tf32_warp_fragment<Cfg>(warp_row0, warp_col0);
  float acc[Cfg::kMi][Cfg::kNi][4];
  zero_accumulators(acc);
  prefetch_mainloop(split_range(red_tiles, gridDim.z, blockIdx.z), fetch, stash, [&](int buffer) {
    tf32_buffer_mma<Cfg>(acc, a_tile[buffer], b_tile[buffer], warp_row0, warp_col0);
  });

  if (gridDim.z > 1 && !tf32_splitk_reduce<Cfg>(acc, frag, g, m0, n0, workspace, tile_counters))
    return;
#pragma unroll
  for (int i = 0; i < Cfg::kMi; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {  // accumulators 2h, 2h + 1: one row, two channels
      const int m = m0 + frag.row(i, 2 * h);
      if (m >= g.M) continue;
#pragma unroll
      for (int j = 0; j < Cfg::kNi; ++j) {
        const int k0 = n0 + frag.col(j, 0);
        const float v[2] = {acc[i][j][2 * h], acc[i][j][2 * h + 1]};
        if (out.sub.t2 > 0) {  // sub-pixel order: the two columns are adjacent output channels
          out.template store_subpixel<2>(m, k0, v);
          continue;
        }
        const ChannelGroup cg{k0, 1, k0 >= g.K ? 0 : min(2, g.K - k0)};
        out.template store<2>(m, cg, v);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side: the one place where the variants are instantiated, and the launches.

template <typename Cfg, typename T>
struct KernelVariant {
  using config = Cfg;
  using storage = T;
};

// Calls f(KernelVariant<config, T>{}) for the plan's dtype, math, tile and loader.
template <typename F>
void with_kernel_variant(DType dtype, const ConvPlan& plan, F&& f) {
  // M128N128W8 is the 8-warp main loop of the fp16 cp.async kernel; everywhere else (fp32 SIMT,
  // tf32, the fp16 gather loader) it runs the 128x128 tile of that kernel.
  if (dtype == DType::F32 && plan.tf32) {
    switch (plan.tile) {
      case ConvTile::M128N128:
      case ConvTile::M128N128W8:
        return f(KernelVariant<Tf32Config<128, 128>, float>{});
      case ConvTile::M128N64:
        return f(KernelVariant<Tf32Config<128, 64>, float>{});
      default:
        return f(KernelVariant<Tf32Config<64, 64>, float>{});
    }
  }
  if (dtype == DType::F32) {
    switch (plan.tile) {
      case ConvTile::M128N128:
      case ConvTile::M128N128W8:
        return f(KernelVariant<SimtConfig<128, 128>, float>{});
      case ConvTile::M128N64:
        return f(KernelVariant<SimtConfig<128, 64>, float>{});
      default:
        return f(KernelVariant<SimtConfig<64, 64>, float>{});
    }
  }
  // fp16: 3 stages for the 128x128 tiles (4 warps: 48 KiB of pipeline, 68 KiB with the epilogue
  // stage; 8 warps with stage rows of 64: 96 KiB), 4 for the smaller ones.
  const bool gather = plan.gather_activations;
  if (plan.max_pool) return f(KernelVariant<MmaConfig<128, 64, 4, false, true>, __half>{});
  if (plan.tile == ConvTile::M128N128W8 && !gather)
    return f(KernelVariant<MmaConfig<128, 128, 3, false, false, 8, 64>, __half>{});
  switch (plan.tile) {
    case ConvTile::M128N128:
    case ConvTile::M128N128W8:
      return gather ? f(KernelVariant<MmaConfig<128, 128, 3, true>, __half>{})
                    : f(KernelVariant<MmaConfig<128, 128, 3, false>, __half>{});
    case ConvTile::M128N64:
      return gather ? f(KernelVariant<MmaConfig<128, 64, 4, true>, __half>{})
                    : f(KernelVariant<MmaConfig<128, 64, 4, false>, __half>{});
    default:
      return gather ? f(KernelVariant<MmaConfig<64, 64, 4, true>, __half>{})
                    : f(KernelVariant<MmaConfig<64, 64, 4, false>, __half>{});
  }
}

template <typename T>
ConvStore<T> make_store(const ConvGeometry& g, const ConvEpilogue& e, const TensorView& y,
                        const ConvWeights& w) {
  ConvStore<T> s;
  s.sub = subpixel_columns(w);
  s.y = static_cast<T*>(y.data);
  s.y_pixel_stride = y.pixel_stride;
  s.y_h = y.h();
  s.y_w = y.w();
  s.residual = static_cast<const T*>(e.residual.data);
  s.residual_pixel_stride = e.residual.pixel_stride;
  s.epilogue.scale = e.scale;
  s.epilogue.bias = e.bias;
  s.epilogue.relu = e.relu;
  s.K = g.K;
  s.out_h = g.out_h;
  s.out_w = g.out_w;
  s.shuffle = e.shuffle_factor;
  return s;
}

template <typename Cfg>
void launch_main(const Context& ctx, const ConvGeometry& g, const TensorView& x,
                 const ConvWeights& w, const ConvStore<float>& out, const ConvPlan& plan) {
  const dim3 grid(unsigned(ceil_div(g.M, Cfg::BM)), unsigned(ceil_div(g.K, Cfg::BN)),
                  unsigned(plan.split_k));
  auto kernel = [] {  // the same signature: tf32 (tensor cores) or strict fp32 (SIMT)
    if constexpr (Cfg::kTf32) {
      return conv_tf32_kernel<Cfg>;
    } else {
      return conv_simt_kernel<Cfg>;
    }
  }();
  FARSEE_LAUNCH(kernel, grid, dim3(kSimtThreads), 0, ctx.stream, g, x.ptr<const float>(),
                w.buffer.as<const float>(), out, plan.workspace, plan.tile_counters,
                ceil_div(g.reduction, kSimtRed));
}

template <typename Cfg>
void launch_main(const Context& ctx, const ConvGeometry& g, const TensorView& x,
                 const ConvWeights& w, const ConvStore<__half>& out, const ConvPlan& plan) {
  const int red_tiles = Cfg::kGather
                            ? ceil_div(g.reduction, Cfg::kRed)
                            : cp_async_reduction_tiles(g.kernel_h * g.kernel_w, g.in_c, Cfg::kRed);
  const int blocks_m = Cfg::kPool ? fused_pool_blocks(g.M / (g.out_h * g.out_w), out.y_h, out.y_w)
                                  : ceil_div(g.M, Cfg::BM);
  const dim3 grid(unsigned(blocks_m), unsigned(ceil_div(g.K, Cfg::BN)), unsigned(plan.split_k));
  auto kernel = conv_mma_kernel<Cfg>;
  static PerDeviceOnce smem_opt_in;  // per variant and per device (a device attribute)
  smem_opt_in.call(current_device(), [&] { FARSEE_SET_MAX_DYNAMIC_SMEM(kernel, Cfg::kSmemBytes); });
  FARSEE_LAUNCH_PDL(plan.programmatic_launch, kernel, grid, dim3(Cfg::kThreads), Cfg::kSmemBytes,
                    ctx.stream, g, x.ptr<const __half>(), w.buffer.as<const __half>(), out,
                    plan.workspace, plan.tile_counters, red_tiles);
}

// Runs the implicit-GEMM kernel of the plan (split-K reduced inside it) storing through `e`.
void run_conv_gemm(const Context& ctx, const ConvGeometry& g, const TensorView& src,
                   const ConvWeights& w, const ConvEpilogue& e, const TensorView& y,
                   const ConvPlan& plan) {
  with_kernel_variant(src.dtype, plan, [&](auto variant) {
    using Cfg = typename decltype(variant)::config;
    using T = typename decltype(variant)::storage;
    launch_main<Cfg>(ctx, g, src, w, make_store<T>(g, e, y, w), plan);
  });
}

// Forward geometry: source x, result y (conv output), taps at stride/dilation.
ConvGeometry forward_geometry(const ConvShape& conv, const TensorView& x, int K) {
  ConvGeometry g;
  g.in_h = x.h();
  g.in_w = x.w();
  g.in_c = x.c();
  g.in_pixel_stride = x.pixel_stride;
  g.out_h = conv.out_h(x.h());
  g.out_w = conv.out_w(x.w());
  g.kernel_h = conv.kernel_h;
  g.kernel_w = conv.kernel_w;
  g.stride_h = conv.stride_h;
  g.stride_w = conv.stride_w;
  g.pad_h = conv.pad_h;
  g.pad_w = conv.pad_w;
  g.dilation_h = conv.dilation_h;
  g.dilation_w = conv.dilation_w;
  g.phase_h = g.phase_w = 1;
  g.shuffle = 1;
  g.K = K;
  g.M = x.n() * g.out_h * g.out_w;
  g.reduction = conv.kernel_h * conv.kernel_w * x.c();
  g.w_row = 0;
  return g;
}

// Dgrad geometry (kernels/core/conv_gemm.h): source dy (conv output, maybe shuffled), result dx;
// dx[iy] gathers dy[(iy + pad - r*dil) / stride] where the division is exact.
ConvGeometry dgrad_geometry(const ConvShape& conv, const TensorView& dy, int shuffle,
                            const TensorView& dx, int K) {
  ConvGeometry g;
  g.in_h = conv.out_h(dx.h());
  g.in_w = conv.out_w(dx.w());
  g.in_c = K;
  g.in_pixel_stride = dy.pixel_stride;
  g.out_h = dx.h();
  g.out_w = dx.w();
  g.kernel_h = conv.kernel_h;
  g.kernel_w = conv.kernel_w;
  g.stride_h = g.stride_w = 1;
  g.pad_h = -conv.pad_h;
  g.pad_w = -conv.pad_w;
  g.dilation_h = -conv.dilation_h;
  g.dilation_w = -conv.dilation_w;
  g.phase_h = conv.stride_h;
  g.phase_w = conv.stride_w;
  g.shuffle = shuffle;
  g.K = dx.c();
  g.M = dx.n() * dx.h() * dx.w();
  g.reduction = conv.kernel_h * conv.kernel_w * K;
  g.w_row = 0;
  return g;
}

}  // namespace

void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS) {
  ConvGeometry g = forward_geometry(conv, x, conv_gemm_columns(w));
  g.w_row = w.row_elements;
  run_conv_gemm(ctx, g, x, w, epilogue, y, plan);
}

// ---------------------------------------------------------------------------------------------
// Training: weight re-packing.

namespace {

// Element `i` of a packed weight buffer: the KRSC master value it holds (0 for row padding).
struct WeightPacking {
  ConvWeightLayout layout;
  int K, R, S, C, row;
  FARSEE_HD float value(const float* krsc, int64_t i) const {
    const int rsc = R * S * C;
    switch (layout) {
      case ConvWeightLayout::RSCK: {  // [(r, s, c)][k]
        const int64_t red = i / K;
        return krsc[int64_t(i - red * K) * rsc + red];
      }
      case ConvWeightLayout::KRSCRows: {  // [k][(r, s, c) padded]
        const int64_t k = i / row;
        const int j = int(i - k * row);
        return j < rsc ? krsc[k * rsc + j] : 0.0f;
      }
      case ConvWeightLayout::RSKC:      // [(r, s, k)][c]
      case ConvWeightLayout::CRSKRows:  // [c][(r, s, k) padded]
      {
        int c, j;
        if (layout == ConvWeightLayout::RSKC) {
          j = int(i / C);
          c = int(i - int64_t(j) * C);
        } else {
          c = int(i / row);
          j = int(i - int64_t(c) * row);
          if (j >= R * S * K) return 0.0f;
        }
        const int tap = j / K, k = j - tap * K;
        return krsc[(int64_t(k) * R * S + tap) * C + c];
      }
      default:  // KRSC
        return krsc[i];
    }
  }
};

template <typename T>
__global__ void __launch_bounds__(256)
    conv_pack_weights_kernel(const float* __restrict__ krsc, T* __restrict__ dst, int64_t count,
                             WeightPacking packing) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_float<T>(packing.value(krsc, i));
}

}  // namespace

void refresh_conv_weights(const Context& ctx, const float* master_krsc, ConvWeights& w) {
  const WeightPacking packing{w.layout, w.K, w.R, w.S, w.C, w.row_elements};
  const int64_t count = int64_t(w.buffer.bytes() / dtype_size(w.dtype));
  constexpr int kThreads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>((count + kThreads - 1) / kThreads, 2048));
  if (w.dtype == DType::F32) {
    auto kernel = conv_pack_weights_kernel<float>;
    FARSEE_LAUNCH(kernel, dim3(blocks), dim3(kThreads), 0, ctx.stream, master_krsc,
                  w.buffer.as<float>(), count, packing);
  } else {
    auto kernel = conv_pack_weights_kernel<__half>;
    FARSEE_LAUNCH(kernel, dim3(blocks), dim3(kThreads), 0, ctx.stream, master_krsc,
                  w.buffer.as<__half>(), count, packing);
  }
}

// ---------------------------------------------------------------------------------------------
// Training: dgrad runs the forward kernels (conv_simt_kernel / conv_mma_kernel, their loaders,
// pipeline, split-K and epilogue) on the dgrad geometry and the BackwardData weights; the
// epilogue is the identity, plus dx itself as the "residual" when accumulating.

void conv_bwd_data(FARSEE_CONV_BWD_DATA_IMPL_ARGS) {
  ConvGeometry g = dgrad_geometry(conv, dy, shuffle_factor, dx, w.K);
  g.w_row = w.row_elements;
  ConvEpilogue e;                   // identity: scale 1, bias 0, no ReLU, stored plain
  if (accumulate) e.residual = dx;  // dx += result: each element read, then written, by one thread
  run_conv_gemm(ctx, g, dy, w, e, dx, plan);
}

// ---------------------------------------------------------------------------------------------
// Training: wgrad. GEMM dw[k][(r, s, c)] = sum_m dy[m][k] * A[m][(r, s, c)], A the forward's
// im2col view of x (forward geometry: window_origin / window_pixel / reduction_cursor), dy read
// through ConvOutputIndex (plain or pixel-shuffled). The shared SIMT main loop, with A = dy^T
// tile [pixels][BM channels k] and B = im2col tile [pixels][BN reduction columns]; each split z
// of the pixel range writes its fp32 tile to workspace slice z (or, unsplit, adds into dw); the
// last CTA of each tile sums the slices in z order and adds into dw (db: the same, per block of
// conv_bias_grad_kernel), in the same launches.

namespace {

constexpr int kWgradTile = 64;  // = kWgradTile in kernels/conv_bn_act.cpp (the plan)
using WgradConfig = SimtConfig<kWgradTile, kWgradTile>;

// wgrad operand loads of the SIMT and tf32 kernels (fp16 converted to fp32 at the load): A = dy^T
// [pixels][k], B = im2col(x) [pixels][(r, s, c)]; fetch(step) loads pixel step `step` into
// registers, stash(a, b) writes them into one buffer of the tiles.
template <typename T, typename Cfg>
struct WgradSimtLoads {
  static constexpr int kRowStep = kSimtThreads / Cfg::BM;
  int a_col, a_row, k;    // A: channel k = k0 + a_col of pixel rows a_row + kRowStep * i
  int b_col, b_row, red;  // B: reduction column red = n0 + b_col, the same (r, s, c) each step
  ReductionCursor cur;
  float a_next[Cfg::kALoads], b_next[Cfg::kBLoads];

  FARSEE_DEVICE WgradSimtLoads(const ConvGeometry& g, int k0, int n0) {
    const int tid = threadIdx.x;
    a_col = tid % Cfg::BM;  // consecutive threads: consecutive channels of one pixel
    a_row = tid / Cfg::BM;
    k = k0 + a_col;
    b_col = tid % Cfg::BN;
    b_row = tid / Cfg::BN;
    red = n0 + b_col;
    cur = reduction_cursor(g, red < g.reduction ? red : 0);
  }
  FARSEE_DEVICE void fetch(const ConvGeometry& g, const T* x, const ConvOutputIndex<const T>& dy,
                           int step) {
#pragma unroll
    for (int i = 0; i < Cfg::kALoads; ++i) {
      const int m = step * kSimtRed + a_row + kRowStep * i;
      a_next[i] = m < g.M && k < g.K ? to_float(*dy.element(m, k)) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < Cfg::kBLoads; ++i) {
      const int m = step * kSimtRed + b_row + kRowStep * i;
      const int p = red < g.reduction ? window_pixel(g, window_origin(g, m), cur.r, cur.s) : -1;
      b_next[i] = p >= 0 ? to_float(x[source_offset(g, p, cur.c)]) : 0.0f;
    }
  }
  template <typename ATile, typename BTile>
  FARSEE_DEVICE void stash(ATile& a_tile, BTile& b_tile) const {
#pragma unroll
    for (int i = 0; i < Cfg::kALoads; ++i) a_tile[a_row + kRowStep * i][a_col] = a_next[i];
#pragma unroll
    for (int i = 0; i < Cfg::kBLoads; ++i) b_tile[b_row + kRowStep * i][b_col] = b_next[i];
  }
};

// Split wgrad, after this CTA stored its tile to workspace slice z: the last CTA of the (k, n)
// tile to arrive adds the sum of the slices, in z order, to dw for the tile's GEMM rows k0.. (dw
// row row_of(row)) and columns n0.. (one thread per element, as the unsplit store).
template <typename RowOf>
FARSEE_DEVICE void wgrad_splitk_finish(const ConvGeometry& g, int k0, int n0,
                                       const float* workspace, int64_t slice_elements,
                                       int* tile_counters, float* dw, RowOf row_of) {
  if (!splitk_last_arrival(tile_counters + blockIdx.y * gridDim.x + blockIdx.x, int(gridDim.z)))
    return;
  for (int q = threadIdx.x; q < kWgradTile * kWgradTile; q += blockDim.x) {
    const int row = k0 + q / kWgradTile, n = n0 + q % kWgradTile;
    if (row < g.K && n < g.reduction) {
      const int64_t e = int64_t(row_of(row)) * g.reduction + n;
      dw[e] += splitk_sum(workspace + e, slice_elements, int(gridDim.z));
    }
  }
}

// fp32 operands (float storage) or fp16 operands converted to fp32 at the load (SIMT FMAs).
template <typename T>
__global__ void __launch_bounds__(kSimtThreads)
    conv_wgrad_simt_kernel(ConvGeometry g, const T* __restrict__ x, ConvOutputIndex<const T> dy,
                           float* __restrict__ dw, float* workspace, int* tile_counters,
                           int64_t slice_elements, int pixel_steps) {
  using Cfg = WgradConfig;
  constexpr int BM = Cfg::BM, BN = Cfg::BN;
  FARSEE_SHARED(float, a_tile, [2][kSimtRed][BM + 4]);
  FARSEE_SHARED(float, b_tile, [2][kSimtRed][BN]);

  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int k0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const TileRange range = split_range(pixel_steps, gridDim.z, blockIdx.z);

  WgradSimtLoads<T, Cfg> loads(g, k0, n0);
  auto fetch = [&](int step) { loads.fetch(g, x, dy, step); };
  auto stash = [&](int buffer) { loads.stash(a_tile[buffer], b_tile[buffer]); };

  float acc[Cfg::kTm][Cfg::kTn];
  simt_mainloop<Cfg>(range, a_tile, b_tile, fetch, stash, acc);

  // Unsplit: dw += tile (each element owned by one thread); split: raw tile to slice z.
  float* dst = gridDim.z > 1 ? workspace + int64_t(blockIdx.z) * slice_elements : dw;
#pragma unroll
  for (int i = 0; i < Cfg::kTm; ++i) {
    const int kk = k0 + simt_offset(i, ty);
#pragma unroll
    for (int j = 0; j < Cfg::kTn; ++j) {
      const int n = n0 + simt_offset(j, tx);
      if (kk < g.K && n < g.reduction) {
        float* e = dst + int64_t(kk) * g.reduction + n;
        *e = gridDim.z > 1 ? acc[i][j] : *e + acc[i][j];
      }
    }
  }
  if (gridDim.z > 1) {
    wgrad_splitk_finish(g, k0, n0, workspace, slice_elements, tile_counters, dw,
                        [](int row) { return row; });
  }
}

// wgrad in tf32 (fp32 storage, plan.tf32): the SIMT wgrad's loads (WgradSimtLoads) and main loop
// with the tf32 kernel's warp MMAs (block tile 64 (k) x 64 (n), 8 warps 2 x 4, tiles
// Tf32Config<64, 64>); the fp32 tile is stored (or added into dw) by store_fp32_tile, a split
// finished in the same launch by wgrad_splitk_finish.
__global__ void __launch_bounds__(kSimtThreads)
    conv_wgrad_tf32_kernel(ConvGeometry g, const float* __restrict__ x,
                           ConvOutputIndex<const float> dy, float* __restrict__ dw,
                           float* workspace, int* tile_counters, int64_t slice_elements,
                           int pixel_steps) {
  using Cfg = Tf32Config<kWgradTile, kWgradTile>;
  FARSEE_SHARED(float, a_tile, [2][kSimtRed][Cfg::kAStride]);
  FARSEE_SHARED(float, b_tile, [2][kSimtRed][Cfg::kBStride]);
  const int k0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN;
  WgradSimtLoads<float, Cfg> loads(g, k0, n0);
  auto fetch = [&](int step) { loads.fetch(g, x, dy, step); };
  auto stash = [&](int buffer) { loads.stash(a_tile[buffer], b_tile[buffer]); };

  int warp_row0, warp_col0;
  const AccFragment frag = tf32_warp_fragment<Cfg>(warp_row0, warp_col0);
  float acc[Cfg::kMi][Cfg::kNi][4];
  zero_accumulators(acc);
  prefetch_mainloop(split_range(pixel_steps, gridDim.z, blockIdx.z), fetch, stash, [&](int buffer) {
    tf32_buffer_mma<Cfg>(acc, a_tile[buffer], b_tile[buffer], warp_row0, warp_col0);
  });

  // Unsplit: dw += tile (each element owned by one thread); split: raw tile to slice z.
  const bool split = gridDim.z > 1;
  float* dst = split ? workspace + int64_t(blockIdx.z) * slice_elements : dw;
  auto row_of = [](int row) { return row; };
  store_fp32_tile(acc, frag, k0, n0, g.K, g.reduction, dst, !split, row_of);
  if (split) wgrad_splitk_finish(g, k0, n0, workspace, slice_elements, tile_counters, dw, row_of);
}

// fp16 wgrad on tensor cores (plan.tensor_cores: C % 8 == 0, dy's stored channels % 8 == 0, both
// 16-byte aligned; a pixel-shuffled dy through wgrad_row_channel): the same GEMM, block tile 64 (k)
// x 64 (n = (r, s, c)), 4 warps 2 x 2 (warp tiles 32 x 32), 32 pixels of reduction per stage in the
// shared cp.async pipeline (kWgradStages stages). The stage tiles are reduction-major (rows64 of
// kernels/core/mma_tile.h), as both operands lie in memory: A_s[32 pixels][64 k] (16-byte chunks
// of 8 channels of a dy pixel) and B_s[32 pixels][64 n] (8 channels of one tap of x: C % 8 == 0
// keeps a chunk inside a tap), both zero-filled past M / K / R*S*C and in the padding. The
// transposed fragments come from ldmatrix.x4.trans; mma.m16n8k16 f16 x f16 -> f32; the fp32 tile
// is stored (or added into dw) by the shared store_fp32_tile.
constexpr int kWgradMmaRed = 32;  // pixels per stage
constexpr int kWgradStages = 4;
constexpr int kWgradStageHalves = 2 * kWgradMmaRed * kWgradTile;
constexpr size_t kWgradSmemBytes = size_t(kWgradStages) * kWgradStageHalves * 2;  // 32 KiB
static_assert(kWgradTile == 64, "wgrad stage rows are mma_tile.h's rows64");

// GEMM row -> conv output channel. With a pixel-shuffled dy (t > 1), rows are taken in (i, j, c)
// order, row = (i*t + j) * (K/t^2) + c for conv channel k = c*t*t + i*t + j, so 8 consecutive
// rows are 8 consecutive channels c of one stored dy pixel (16 bytes, when K/t^2 % 8 == 0).
FARSEE_HD int wgrad_row_channel(int row, int shuffle, int K) {
  if (shuffle == 1) return row;
  const int t2 = shuffle * shuffle, cs = K / t2;
  const int ij = row / cs;
  return (row - ij * cs) * t2 + ij;
}

// This thread's share of every stage load, fixed for the block: chunk column `chunk` of pixel
// rows `row` and row + 16 of both tiles; its A chunk is 8 GEMM rows from dy channel k, its B chunk
// 8 reduction columns from (r, s, c) = cur.
struct WgradLoadSlot {
  int chunk, row;
  bool k_valid, n_valid;
  int k;
  ReductionCursor cur;
};
FARSEE_DEVICE WgradLoadSlot wgrad_load_slot(const ConvGeometry& g, int shuffle, int k0, int n0) {
  const int tid = threadIdx.x;
  WgradLoadSlot s;
  s.chunk = tid & 7;
  s.row = tid >> 3;
  const int k_row = k0 + s.chunk * kChunkHalves;
  s.k_valid = k_row < g.K;
  s.k = wgrad_row_channel(s.k_valid ? k_row : 0, shuffle, g.K);
  const int n = n0 + s.chunk * kChunkHalves;
  s.n_valid = n < g.reduction;
  s.cur = reduction_cursor(g, s.n_valid ? n : 0);
  return s;
}

// Pixels [step, step + 1) * kWgradMmaRed of dy (A) and of x's im2col view (B) into a stage.
FARSEE_DEVICE void wgrad_load_stage(const ConvGeometry& g, const __half* x,
                                    const ConvOutputIndex<const __half>& dy, const WgradLoadSlot& s,
                                    __half* a_tile, int step) {
  __half* b_tile = a_tile + kWgradMmaRed * kWgradTile;
#pragma unroll
  for (int i = 0; i < kWgradMmaRed / 16; ++i) {
    const int row = s.row + 16 * i;
    const int m = step * kWgradMmaRed + row;
    const bool a_ok = s.k_valid && m < g.M;
    ptx::cp_async_16(a_tile + swizzled_rows64(row, s.chunk), a_ok ? dy.element(m, s.k) : dy.y,
                     a_ok ? 16 : 0);
    const int p = s.n_valid ? window_pixel(g, window_origin(g, m), s.cur.r, s.cur.s) : -1;
    ptx::cp_async_16(b_tile + swizzled_rows64(row, s.chunk),
                     p >= 0 ? x + source_offset(g, p, s.cur.c) : x, p >= 0 ? 16 : 0);
  }
}

__global__ void __launch_bounds__(kMmaThreads)
    conv_wgrad_mma_kernel(ConvGeometry g, const __half* __restrict__ x,
                          ConvOutputIndex<const __half> dy, float* __restrict__ dw,
                          float* workspace, int* tile_counters, int64_t slice_elements,
                          int pixel_steps) {
  constexpr int kWarpTile = kWgradTile / 2, kMi = kWarpTile / 16, kNi = kWarpTile / 8;
  constexpr int kBOffset = kWgradMmaRed * kWgradTile;  // B tile within a stage, in halves
  __half* smem = dynamic_smem<__half>();
  const int k0 = blockIdx.x * kWgradTile, n0 = blockIdx.y * kWgradTile;
  const WgradLoadSlot slot = wgrad_load_slot(g, dy.shuffle, k0, n0);
  auto load_stage = [&](int stage, int step) {
    wgrad_load_stage(g, x, dy, slot, smem + stage * kWgradStageHalves, step);
  };

  const WarpPosition wp = warp_position();
  const int warp_row0 = wp.warp_m * kWarpTile, warp_col0 = wp.warp_n * kWarpTile;
  float acc[kMi][kNi][4];
  zero_accumulators(acc);
  auto compute_stage = [&](int stage) {
    const __half* a_tile = smem + stage * kWgradStageHalves;
    warp_stage_mma<kWgradMmaRed>(acc, [&](int ks, auto& a, auto& b) {
      load_fragments_rows64_trans(a, b, a_tile, a_tile + kBOffset, warp_row0, warp_col0, ks,
                                  wp.lane);
    });
  };
  cp_async_pipeline<kWgradStages>(split_range(pixel_steps, gridDim.z, blockIdx.z), load_stage,
                                  compute_stage);

  // Unsplit: dw += tile (each element owned by one thread); split: raw tile to slice z.
  const bool split = gridDim.z > 1;
  float* dst = split ? workspace + int64_t(blockIdx.z) * slice_elements : dw;
  auto row_of = [&](int row) { return wgrad_row_channel(row, dy.shuffle, g.K); };
  store_fp32_tile(acc, acc_fragment(warp_row0, warp_col0, wp.lane), k0, n0, g.K, g.reduction, dst,
                  !split, row_of);
  if (split) wgrad_splitk_finish(g, k0, n0, workspace, slice_elements, tile_counters, dw, row_of);
}

// db: block (32 channels) x (8 pixel rows); chunk z = blockIdx.y of the pixels. Each thread sums
// its pixels in order, then row 0 adds the 8 row sums in order: deterministic. Unsplit: db +=
// total; split: total to db_slices[z][k], and the last block of the channel block to arrive
// (counter blockIdx.x) adds the slices' sum, in z order, to db.
constexpr int kBiasChannels = 32, kBiasRows = 8;
template <typename T>
__global__ void __launch_bounds__(kBiasChannels* kBiasRows)
    conv_bias_grad_kernel(ConvOutputIndex<const T> dy, int M, int K, float* __restrict__ db,
                          float* db_slices, int* tile_counters, int64_t slice_elements) {
  FARSEE_SHARED(float, partial, [kBiasRows][kBiasChannels + 1]);
  const int tx = threadIdx.x % kBiasChannels, ty = threadIdx.x / kBiasChannels;
  const int k = blockIdx.x * kBiasChannels + tx;
  const TileRange range = split_range(M, gridDim.y, blockIdx.y);
  float sum = 0.0f;
  if (k < K) {
    for (int m = range.first + ty; m < range.last; m += kBiasRows)
      sum += to_float(*dy.element(m, k));
  }
  partial[ty][tx] = sum;
  __syncthreads();
  const bool owner = ty == 0 && k < K;
  if (owner) {
    float total = 0.0f;
#pragma unroll
    for (int r = 0; r < kBiasRows; ++r) total += partial[r][tx];
    if (gridDim.y > 1) {
      db_slices[int64_t(blockIdx.y) * slice_elements + k] = total;
    } else {
      db[k] += total;
    }
  }
  if (gridDim.y > 1 && splitk_last_arrival(tile_counters + blockIdx.x, int(gridDim.y)) && owner)
    db[k] += splitk_sum(db_slices + k, slice_elements, int(gridDim.y));
}

template <typename T>
void run_wgrad(const Context& ctx, const ConvGeometry& g, const TensorView& x,
               const ConvOutputIndex<const T>& dy, float* dw, float* db,
               const ConvWgradPlan& plan) {
  const int splits = plan.splits;
  const int64_t dw_count = int64_t(g.K) * g.reduction;
  const int64_t slice = dw_count + g.K;  // workspace slice: dw partials, then db partials
  const dim3 grid(unsigned(ceil_div(g.K, kWgradTile)), unsigned(ceil_div(g.reduction, kWgradTile)),
                  unsigned(splits));
  if constexpr (std::is_same_v<T, __half>) {
    if (plan.tensor_cores) {
      FARSEE_LAUNCH(conv_wgrad_mma_kernel, grid, dim3(kMmaThreads), kWgradSmemBytes, ctx.stream, g,
                    x.ptr<const __half>(), dy, dw, plan.workspace, plan.tile_counters, slice,
                    ceil_div(g.M, kWgradMmaRed));
    }
  }
  if constexpr (std::is_same_v<T, float>) {
    if (plan.tf32) {
      FARSEE_LAUNCH(conv_wgrad_tf32_kernel, grid, dim3(kSimtThreads), 0, ctx.stream, g,
                    x.ptr<const float>(), dy, dw, plan.workspace, plan.tile_counters, slice,
                    ceil_div(g.M, kSimtRed));
    }
  }
  if (!plan.tensor_cores && !plan.tf32) {
    auto kernel = conv_wgrad_simt_kernel<T>;
    FARSEE_LAUNCH(kernel, grid, dim3(kSimtThreads), 0, ctx.stream, g, x.ptr<const T>(), dy, dw,
                  plan.workspace, plan.tile_counters, slice, ceil_div(g.M, kSimtRed));
  }
  if (db != nullptr) {
    // db's counters follow the GEMM tiles' (kernels/conv_bn_act.cpp: wgrad_tile_counters_for).
    auto bias = conv_bias_grad_kernel<T>;
    FARSEE_LAUNCH(bias, dim3(unsigned(ceil_div(g.K, kBiasChannels)), unsigned(splits)),
                  dim3(kBiasChannels * kBiasRows), 0, ctx.stream, dy, g.M, g.K, db,
                  splits > 1 ? plan.workspace + dw_count : nullptr,
                  splits > 1 ? plan.tile_counters + grid.x * grid.y : nullptr, slice);
  }
}

}  // namespace

void conv_bwd_weight(FARSEE_CONV_BWD_WEIGHT_IMPL_ARGS) {
  const int t = shuffle_factor;
  const int K = dy.c() * t * t;
  const ConvGeometry g = forward_geometry(conv, x, K);
  auto dy_index = [&](auto* data) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(data)>>;
    ConvOutputIndex<const T> d;
    d.y = data;
    d.y_pixel_stride = dy.pixel_stride;
    d.y_h = dy.h();
    d.y_w = dy.w();
    d.out_h = g.out_h;
    d.out_w = g.out_w;
    d.shuffle = t;
    return d;
  };
  if (x.dtype == DType::F32) {
    run_wgrad<float>(ctx, g, x, dy_index(dy.ptr<const float>()), dw, db, plan);
  } else {
    run_wgrad<__half>(ctx, g, x, dy_index(dy.ptr<const __half>()), dw, db, plan);
  }
}

}  // namespace FARSEE_KERNEL_NS
}  // namespace farsee

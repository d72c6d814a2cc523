// The tensor-core pieces shared by the fp16 implicit-GEMM kernels of kernels/conv_bn_act.cu
// (conv_mma_kernel, which runs the forward and dgrad, and conv_wgrad_mma_kernel), split as in
// CUTLASS into main loop, fragment mapping and accumulator stores:
//   main loop   cp_async_pipeline (the multi-stage cp.async pipeline), warp_stage_mma (the MMAs of
//               one resident stage, 16 reduction elements at a time, fragments from one of the two
//               stage layouts below), warp_tile_mma (one k-slice of a warp tile)
//   mapping     AccFragment: the block-tile row and column of every fp32 accumulator of a lane
//   stores      store_fp32_tile (raw or added fp32 tile: split-K slices, wgrad's dw),
//               stage_accumulators (the tile into shared memory, for an epilogue by rows)
// Block: kMmaThreads = 4 warps, 2 x 2 (the 8-warp 128x128 conv tile: 2 x 4); warp (warp_m,
// warp_n) owns kMi x kNi mma.m16n8k16 tiles of fp32 accumulators acc[i][j][0..3] (fragment
// layouts: kernels/core/ptx.h).
// Stage tiles (fp16, 16-byte chunks of 8 halves, XOR-swizzled so that the eight row addresses of
// every ldmatrix phase and the cp.async writes hit 8 distinct bank quads, without padding):
//   rows32  one row of 32 reduction elements per GEMM row (A: m, B: n); chunk j of row r at
//           j ^ ((r >> 1) & 3); fragments by ldmatrix.x4
//   rows64  one row of 64 GEMM rows (A) or columns (B) per reduction element; chunk j of row r at
//           j ^ (r & 7); fragments by ldmatrix.x4.trans. The same swizzle holds the 8-warp conv
//           tile's rows of 64 reduction elements per GEMM row, read by ldmatrix.x4
//           (swizzled_row_major<64>, load_fragments_row_major<64>)
// TF32 (fp32 storage, kernels/conv_bn_act.cu's conv_tf32_kernel and conv_wgrad_tf32_kernel):
// reduction-major fp32 tiles a[k][m], b[k][n] (rows padded to a multiple of 32 plus 8 floats, so
// the fragment reads, lane (g, q) at row q, column g, hit 32 distinct banks); fragments of one
// 8-deep k-slice read element-wise and rounded by cvt.rna (load_fragments_tf32), then
// mma.m16n8k8 tf32 x tf32 -> f32 (warp_tile_mma_tf32); the accumulators have the C layout above.
// Everything is __forceinline__: the kernels compile as if written in one piece.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/core/conv_gemm.h"
#include "kernels/core/hd.h"
#include "kernels/core/mem_access.h"
#include "kernels/core/ptx.h"

namespace farsee {

constexpr int kMmaThreads = 128;  // 4 warps, 2 x 2
constexpr int kChunkHalves = 8;   // halves per 16-byte chunk (cp.async, ldmatrix row)

// Offset (in halves) of chunk `chunk` of row `row` in a rows32 / rows64 stage tile.
FARSEE_HD int swizzled_rows32(int row, int chunk) {
  return row * 32 + ((chunk ^ ((row >> 1) & 3)) * kChunkHalves);
}
FARSEE_HD int swizzled_rows64(int row, int chunk) {
  return row * 64 + ((chunk ^ (row & 7)) * kChunkHalves);
}
// A row-major stage tile of kRowHalves (32 or 64) reduction elements per GEMM row: rows32, or
// rows64 read by ldmatrix (non-trans), whose eight rows of a phase then hit 8 distinct bank quads.
template <int kRowHalves>
FARSEE_HD int swizzled_row_major(int row, int chunk) {
  static_assert(kRowHalves == 32 || kRowHalves == 64, "stage rows of 32 or 64 halves");
  return kRowHalves == 32 ? swizzled_rows32(row, chunk) : swizzled_rows64(row, chunk);
}

// This thread's lane and warp position in the 2 x kWarpsN warp grid (2 x 2: kMmaThreads; 2 x 4:
// the 8-warp 128x128 conv tile).
struct WarpPosition {
  int lane, warp_m, warp_n;
};
template <int kWarpsN = 2>
FARSEE_DEVICE WarpPosition warp_position() {
  const int warp = int(threadIdx.x) >> 5;
  return WarpPosition{int(threadIdx.x) & 31, warp / kWarpsN, warp % kWarpsN};
}

// ---- main loop ----

// kStages - 1 reduction tiles in flight while one is computed. load_stage(stage, tile) issues the
// cp.async copies of reduction tile `tile` into `stage`; compute_stage(stage) runs the MMAs on a
// resident stage. Returns with every copy landed and all warps past a barrier, so the pipeline's
// shared memory can be reused (epilogue staging).
template <int kStages, typename Load, typename Compute>
FARSEE_DEVICE void cp_async_pipeline(const TileRange& range, Load& load_stage,
                                     Compute& compute_stage) {
  const int tiles = range.last - range.first;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) load_stage(s, range.first + s);
    ptx::cp_async_commit();
  }
  for (int t = 0; t < tiles; ++t) {
    ptx::cp_async_wait<kStages - 2>();
    __syncthreads();  // tile t visible to all; stage (t - 1) % kStages free for reuse
    if (t + kStages - 1 < tiles)
      load_stage((t + kStages - 1) % kStages, range.first + t + kStages - 1);
    ptx::cp_async_commit();
    compute_stage(t % kStages);
  }
  ptx::cp_async_wait<0>();
  __syncthreads();  // all warps done with the pipeline before its memory is reused
}

template <int kMi, int kNi>
FARSEE_DEVICE void zero_accumulators(float (&acc)[kMi][kNi][4]) {
#pragma unroll
  for (int i = 0; i < kMi; ++i) {
#pragma unroll
    for (int j = 0; j < kNi; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
    }
  }
}

// One 16-deep k-slice of a warp tile: acc[i][j] += a[i] (16x16) * b[j] (16x8), fp32 accumulate.
template <int kMi, int kNi>
FARSEE_DEVICE void warp_tile_mma(float (&acc)[kMi][kNi][4], const uint32_t (&a)[kMi][4],
                                 const uint32_t (&b)[kNi][2]) {
#pragma unroll
  for (int i = 0; i < kMi; ++i) {
#pragma unroll
    for (int j = 0; j < kNi; ++j) ptx::mma_m16n8k16_f16f32(acc[i][j], a[i], b[j], acc[i][j]);
  }
}

// A resident stage of kRed reduction elements: per 16-deep k-slice ks, fragments(ks, a, b) loads
// the warp's A and B fragments, then the MMAs.
template <int kRed, int kMi, int kNi, typename Fragments>
FARSEE_DEVICE void warp_stage_mma(float (&acc)[kMi][kNi][4], Fragments&& fragments) {
#pragma unroll
  for (int ks = 0; ks < kRed / 16; ++ks) {
    uint32_t a[kMi][4], b[kNi][2];
    fragments(ks, a, b);
    warp_tile_mma(acc, a, b);
  }
}

// The four 8x8 matrices of one ldmatrix.x4 of B: n-tiles 2j and 2j + 1, two registers each.
template <int kNi>
FARSEE_DEVICE void set_b_pair(uint32_t (&b)[kNi][2], int j, const uint32_t (&r)[4]) {
  b[2 * j][0] = r[0];
  b[2 * j][1] = r[1];
  b[2 * j + 1][0] = r[2];
  b[2 * j + 1][1] = r[3];
}

// Fragments of k-slice ks from row-major tiles of kRowHalves per row (rows32, or rows64 read
// without .trans); the warp's A rows start at a_row0, its B rows (n) at b_row0.
template <int kRowHalves, int kMi, int kNi>
FARSEE_DEVICE void load_fragments_row_major(uint32_t (&a)[kMi][4], uint32_t (&b)[kNi][2],
                                            const __half* a_tile, const __half* b_tile, int a_row0,
                                            int b_row0, int ks, int lane) {
#pragma unroll
  for (int i = 0; i < kMi; ++i) {
    // x4: rows 0-15 of the 16x16 A tile, k-chunks 2ks (lanes 0-15) and 2ks+1 (lanes 16-31).
    const int row = a_row0 + i * 16 + (lane & 15);
    ptx::ldmatrix_x4(a[i], a_tile + swizzled_row_major<kRowHalves>(row, 2 * ks + (lane >> 4)));
  }
#pragma unroll
  for (int j = 0; j < kNi / 2; ++j) {
    // x4: n-rows 0-7 (lanes 0-15) and 8-15 (lanes 16-31) x k-chunks 2ks, 2ks+1.
    const int row = b_row0 + j * 16 + (lane & 7) + ((lane >> 4) << 3);
    uint32_t r[4];
    ptx::ldmatrix_x4(r, b_tile + swizzled_row_major<kRowHalves>(row, 2 * ks + ((lane >> 3) & 1)));
    set_b_pair(b, j, r);
  }
}

// Fragments of k-slice ks from rows64 tiles (transposed by ldmatrix.trans); the warp's A rows (m)
// are columns a_col0.. of the A tile, its B columns (n) columns b_col0.. of the B tile.
template <int kMi, int kNi>
FARSEE_DEVICE void load_fragments_rows64_trans(uint32_t (&a)[kMi][4], uint32_t (&b)[kNi][2],
                                               const __half* a_tile, const __half* b_tile,
                                               int a_col0, int b_col0, int ks, int lane) {
  const int q = lane >> 3, q_row = lane & 7;  // matrix q = lane / 8, its row (reduction) lane % 8
#pragma unroll
  for (int i = 0; i < kMi; ++i) {
    // a0..a3 = (m 0-7, red 0-7), (m 8-15, red 0-7), (m 0-7, red 8-15), (m 8-15, red 8-15).
    const int row = ks * 16 + q_row + ((q >> 1) << 3);
    const int col = a_col0 + i * 16 + ((q & 1) << 3);
    ptx::ldmatrix_x4_trans(a[i], a_tile + swizzled_rows64(row, col / kChunkHalves));
  }
#pragma unroll
  for (int j = 0; j < kNi / 2; ++j) {
    // (n 0-7, red 0-7), (n 0-7, red 8-15), (n 8-15, red 0-7), (n 8-15, red 8-15).
    const int row = ks * 16 + q_row + ((q & 1) << 3);
    const int col = b_col0 + j * 16 + ((q >> 1) << 3);
    uint32_t r[4];
    ptx::ldmatrix_x4_trans(r, b_tile + swizzled_rows64(row, col / kChunkHalves));
    set_b_pair(b, j, r);
  }
}

// ---- TF32 ----

// One 8-deep k-slice: acc[i][j] += a[i] (16x8) * b[j] (8x8), tf32 operands, fp32 accumulate.
template <int kMi, int kNi>
FARSEE_DEVICE void warp_tile_mma_tf32(float (&acc)[kMi][kNi][4], const uint32_t (&a)[kMi][4],
                                      const uint32_t (&b)[kNi][2]) {
#pragma unroll
  for (int i = 0; i < kMi; ++i) {
#pragma unroll
    for (int j = 0; j < kNi; ++j) ptx::mma_m16n8k8_tf32f32(acc[i][j], a[i], b[j], acc[i][j]);
  }
}

// Fragments of an 8-deep k-slice from reduction-major fp32 tiles a_tile[k * a_stride + m] and
// b_tile[k * b_stride + n], rounded to TF32: the warp's rows m start at a_col0, its columns n at
// b_col0 (fragment layouts: kernels/core/ptx.h, mma.m16n8k8 .tf32).
template <int kMi, int kNi>
FARSEE_DEVICE void load_fragments_tf32(uint32_t (&a)[kMi][4], uint32_t (&b)[kNi][2],
                                       const float* a_tile, int a_stride, const float* b_tile,
                                       int b_stride, int a_col0, int b_col0, int lane) {
  const int g = lane >> 2, q = lane & 3;
  const float* a_k0 = a_tile + q * a_stride + a_col0 + g;  // (m g, k q)
  const float* a_k4 = a_k0 + 4 * a_stride;                 // (m g, k q + 4)
#pragma unroll
  for (int i = 0; i < kMi; ++i) {
    a[i][0] = ptx::cvt_rna_tf32(a_k0[i * 16]);
    a[i][1] = ptx::cvt_rna_tf32(a_k0[i * 16 + 8]);
    a[i][2] = ptx::cvt_rna_tf32(a_k4[i * 16]);
    a[i][3] = ptx::cvt_rna_tf32(a_k4[i * 16 + 8]);
  }
  const float* b_k0 = b_tile + q * b_stride + b_col0 + g;  // (k q, n g)
  const float* b_k4 = b_k0 + 4 * b_stride;
#pragma unroll
  for (int j = 0; j < kNi; ++j) {
    b[j][0] = ptx::cvt_rna_tf32(b_k0[j * 8]);
    b[j][1] = ptx::cvt_rna_tf32(b_k4[j * 8]);
  }
}

// ---- fragment mapping ----

// Where a lane's accumulators lie in the block tile: element e of fragment (i, j) is at row(i, e),
// col(j, e) (the C/D layout of mma.m16n8k16).
struct AccFragment {
  int row0, col0;
  FARSEE_DEVICE int row(int i, int e) const { return row0 + i * 16 + 8 * (e >> 1); }
  FARSEE_DEVICE int col(int j, int e) const { return col0 + j * 8 + (e & 1); }
};
// The warp tile starts at block-tile row warp_row0, column warp_col0.
FARSEE_DEVICE AccFragment acc_fragment(int warp_row0, int warp_col0, int lane) {
  return AccFragment{warp_row0 + (lane >> 2), warp_col0 + 2 * (lane & 3)};
}

// f(row, col, value) for every accumulator of the lane, in (i, j, e) order.
template <int kMi, int kNi, typename F>
FARSEE_DEVICE void for_each_accumulator(const float (&acc)[kMi][kNi][4], const AccFragment& frag,
                                        F&& f) {
#pragma unroll
  for (int i = 0; i < kMi; ++i) {
#pragma unroll
    for (int j = 0; j < kNi; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) f(frag.row(i, e), frag.col(j, e), acc[i][j][e]);
    }
  }
}

// ---- stores ----

// The block tile at (row0, col0) of the fp32 row-major matrix dst [rows][cols], elements past
// rows / cols skipped; GEMM row r goes to matrix row row_of(r). Stored raw, or added (add: each
// element read and written by its one owner thread, no atomics).
template <int kMi, int kNi, typename RowOf>
FARSEE_DEVICE void store_fp32_tile(const float (&acc)[kMi][kNi][4], const AccFragment& frag,
                                   int row0, int col0, int rows, int cols, float* dst, bool add,
                                   RowOf&& row_of) {
  for_each_accumulator(acc, frag, [&](int r, int c, float v) {
    const int row = row0 + r, col = col0 + c;
    if (row < rows && col < cols) {
      float* d = dst + int64_t(row_of(row)) * cols + col;
      st(d, add ? ld(d) + v : v);
    }
  });
}

// The block tile into shared memory, staged[row * stride + col] (stride = tile columns + 8 floats:
// the fragment writes are conflict-free). The caller synchronises before reading it.
template <int kMi, int kNi>
FARSEE_DEVICE void stage_accumulators(const float (&acc)[kMi][kNi][4], const AccFragment& frag,
                                      float* staged, int stride) {
  for_each_accumulator(acc, frag, [&](int r, int c, float v) { st(&staged[r * stride + c], v); });
}

}  // namespace farsee

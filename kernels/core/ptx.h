// The only PTX in FarSee (DESIGN.md section 4): warp-level matrix loads, tensor-core MMA and
// asynchronous copies, with one signature for both builds.
//   nvcc (__CUDACC__): inline asm, sm_80 or newer.
//   emu (g++):         the same operation computed on the host from every lane's registers,
//                      gathered through the emu warp exchange, following the PTX ISA fragment
//                      layouts exactly, so a wrong layout gives the same wrong result as on the
//                      GPU.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .f16/.bf16 operands), lane = 4*g + q:
//   A (16x16, row-major), 8 elements a_i in 4 registers (2 per register, low half first):
//     row g + 8*((i>>1)&1), col 2q + (i&1) + 8*(i>>2)
//   B (16x8, "col": K x N), 4 elements b_i in 2 registers: row 2q + (i&1) + 8*(i>>1), col g
//   C/D (16x8 fp32), 4 elements c_i: row g + 8*(i>>1), col 2q + (i&1)
// mma.m16n8k8 with .tf32 operands (one element per 32-bit register; the tensor core reads only
//   the 19 high bits, so an operand not rounded by cvt_rna_tf32 is truncated), lane = 4*g + q:
//   A (16x8, row-major), a_i: row g + 8*(i&1), col q + 4*(i>>1)
//   B (8x8, "col": K x N), b_i: row q + 4*i, col g
//   C/D as m16n8k16.
// cvt.rna.tf32.f32: round to TF32, nearest with ties away (round_to_tf32, kernels/core/dtype.h).
// ldmatrix.m8n8.x{1,2,4}[.trans].b16: lanes 8j..8j+7 give the 16-byte row addresses of matrix j;
//   register j of lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of matrix j (.trans: the
//   transposed matrix, i.e. rows 2(l%4) and 2(l%4)+1 at column l/4).
// cp.async.cg 16 bytes: copies src_bytes (0..16) from global and zero-fills the rest; the data is
// visible only after cp_async_wait<N>() has retired its group (the emulation defers the copy, so a
// missing wait reads the poisoned shared memory).
#pragma once

#include <cstdint>

#include "kernels/core/dtype.h"
#include "kernels/core/hd.h"

#if !defined(__CUDACC__)
#include <cstring>
#include <stdexcept>
#include <string>
#endif

namespace farsee::ptx {

#if defined(__CUDACC__)

FARSEE_DEVICE uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

FARSEE_DEVICE void ldmatrix_x1(uint32_t (&r)[1], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
               : "=r"(r[0])
               : "r"(shared_address(row)));
}
FARSEE_DEVICE void ldmatrix_x2(uint32_t (&r)[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row)));
}
FARSEE_DEVICE void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}
FARSEE_DEVICE void ldmatrix_x1_trans(uint32_t (&r)[1], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
               : "=r"(r[0])
               : "r"(shared_address(row)));
}
FARSEE_DEVICE void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row)));
}
FARSEE_DEVICE void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

FARSEE_DEVICE void mma_m16n8k16_f16f32(float (&d)[4], const uint32_t (&a)[4],
                                       const uint32_t (&b)[2], const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
}
FARSEE_DEVICE void mma_m16n8k16_bf16f32(float (&d)[4], const uint32_t (&a)[4],
                                        const uint32_t (&b)[2], const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
}

FARSEE_DEVICE uint32_t cvt_rna_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}
FARSEE_DEVICE void mma_m16n8k8_tf32f32(float (&d)[4], const uint32_t (&a)[4],
                                       const uint32_t (&b)[2], const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
}

FARSEE_DEVICE void cp_async_16(void* smem_dst, const void* global_src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(smem_dst)),
               "l"(global_src), "r"(src_bytes));
}
FARSEE_DEVICE void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
FARSEE_DEVICE void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Programmatic dependent launch (FARSEE_LAUNCH_PDL, kernels/core/launch.h; sm_90): wait until
// the grids this one depends on have completed and their memory is visible; let the grid that
// depends on this one start launching (its own wait still waits for this grid to complete).
// No-ops below sm_90 and in a launch without the PDL attribute.
FARSEE_DEVICE void griddepcontrol_wait() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
FARSEE_DEVICE void griddepcontrol_launch_dependents() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::);
#endif
}

#else  // ---- emulation ----

namespace detail {

inline void require_aligned16(const void* p, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {
    throw std::runtime_error(std::string(what) + ": address is not 16-byte aligned");
  }
}

inline uint16_t load_b16(const void* row, int col) {
  uint16_t v;
  std::memcpy(&v, static_cast<const unsigned char*>(row) + 2 * col, 2);
  return v;
}

inline uint32_t pack(uint16_t lo, uint16_t hi) {
  return uint32_t(lo) | (uint32_t(hi) << 16);
}

// Gathers every lane's row address and fills `count` registers of this lane.
template <int Count, bool Trans>
inline void ldmatrix(uint32_t (&r)[Count], const void* row, const char* what) {
  const int lane = ::emu::lane_id();
  if (lane < 8 * Count) {
    require_aligned16(row, what);
    ::emu::count_access(row, 16, false);  // lanes 8j..8j+7 read matrix j's 16-byte rows
  }
  const ::emu::WarpPayload* all = ::emu::warp_exchange(::emu::WarpOp::Gather, 0xffffffffu, &row,
                                                       sizeof row, __FILE__, __LINE__);
  auto row_of = [&](int matrix, int i) {
    const void* p;
    std::memcpy(&p, all[8 * matrix + i].bytes, sizeof p);
    return p;
  };
  for (int j = 0; j < Count; ++j) {
    if (!Trans) {
      const void* p = row_of(j, lane / 4);
      r[j] = pack(load_b16(p, 2 * (lane % 4)), load_b16(p, 2 * (lane % 4) + 1));
    } else {
      r[j] = pack(load_b16(row_of(j, 2 * (lane % 4)), lane / 4),
                  load_b16(row_of(j, 2 * (lane % 4) + 1), lane / 4));
    }
  }
}

template <typename Half>
inline float half_bits_to_float(uint16_t bits) {
  static_assert(sizeof(Half) == 2, "16-bit operand type expected");
  Half h;
  std::memcpy(static_cast<void*>(&h), &bits, 2);
  return static_cast<float>(h);
}

// The A and B registers of one mma, of every lane of the warp (gathered through the exchange).
struct MmaFragments {
  uint32_t a[4];
  uint32_t b[2];
};
struct WarpMmaFragments {
  MmaFragments lane[32];
};
inline WarpMmaFragments gather_mma_fragments(const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const MmaFragments mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
  const ::emu::WarpPayload* all = ::emu::warp_exchange(::emu::WarpOp::Gather, 0xffffffffu, &mine,
                                                       sizeof mine, __FILE__, __LINE__);
  WarpMmaFragments w;
  for (int lane = 0; lane < 32; ++lane) std::memcpy(&w.lane[lane], all[lane].bytes, sizeof mine);
  return w;
}

// This lane's D = A * B + C (C/D layout: element i at row g + 8*(i>>1), column 2q + (i&1)), each
// element the fmaf chain over k in order; counts one MMA.
template <int K>
inline void mma_accumulate(float (&d)[4], const float (&A)[16][K], const float (&B)[K][8],
                           const float (&c)[4]) {
  ::emu::count_mma();
  const int lane = ::emu::lane_id();
  const int g = lane >> 2, q = lane & 3;
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i >> 1), col = 2 * q + (i & 1);
    float acc = c[i];
    for (int k = 0; k < K; ++k) acc = std::fma(A[row][k], B[k][col], acc);
    d[i] = acc;
  }
}

// D = A * B + C for one m16n8k16 tile, reconstructing A and B from all lanes' fragments.
template <typename Half>
inline void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                         const float (&c)[4]) {
  const WarpMmaFragments all = gather_mma_fragments(a, b);
  float A[16][16], B[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaFragments& f = all.lane[lane];
    const int g = lane >> 2, q = lane & 3;
    for (int i = 0; i < 8; ++i) {
      uint16_t bits = static_cast<uint16_t>(f.a[i / 2] >> (16 * (i & 1)));
      A[g + 8 * ((i >> 1) & 1)][2 * q + (i & 1) + 8 * (i >> 2)] = half_bits_to_float<Half>(bits);
    }
    for (int i = 0; i < 4; ++i) {
      uint16_t bits = static_cast<uint16_t>(f.b[i / 2] >> (16 * (i & 1)));
      B[2 * q + (i & 1) + 8 * (i >> 1)][g] = half_bits_to_float<Half>(bits);
    }
  }
  mma_accumulate(d, A, B, c);
}

// The value the tensor core multiplies for a .tf32 register: its 19 high bits.
inline float tf32_operand(uint32_t bits) {
  bits &= 0xffffe000u;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// D = A * B + C for one m16n8k8 tf32 tile. Products of two TF32 values are exact in fp32, so the
// sequential fmaf is the fp32 sum in k order.
inline void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                             const float (&c)[4]) {
  const WarpMmaFragments all = gather_mma_fragments(a, b);
  float A[16][8], B[8][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaFragments& f = all.lane[lane];
    const int g = lane >> 2, q = lane & 3;
    for (int i = 0; i < 4; ++i) A[g + 8 * (i & 1)][q + 4 * (i >> 1)] = tf32_operand(f.a[i]);
    for (int i = 0; i < 2; ++i) B[q + 4 * i][g] = tf32_operand(f.b[i]);
  }
  mma_accumulate(d, A, B, c);
}

}  // namespace detail

inline void ldmatrix_x1(uint32_t (&r)[1], const void* row) {
  detail::ldmatrix<1, false>(r, row, "ldmatrix_x1");
}
inline void ldmatrix_x2(uint32_t (&r)[2], const void* row) {
  detail::ldmatrix<2, false>(r, row, "ldmatrix_x2");
}
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  detail::ldmatrix<4, false>(r, row, "ldmatrix_x4");
}
inline void ldmatrix_x1_trans(uint32_t (&r)[1], const void* row) {
  detail::ldmatrix<1, true>(r, row, "ldmatrix_x1_trans");
}
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const void* row) {
  detail::ldmatrix<2, true>(r, row, "ldmatrix_x2_trans");
}
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  detail::ldmatrix<4, true>(r, row, "ldmatrix_x4_trans");
}

inline void mma_m16n8k16_f16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                const float (&c)[4]) {
  detail::mma_m16n8k16<__half>(d, a, b, c);
}
inline void mma_m16n8k16_bf16f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                 const float (&c)[4]) {
  detail::mma_m16n8k16<__nv_bfloat16>(d, a, b, c);
}

inline uint32_t cvt_rna_tf32(float x) {
  const float r = round_to_tf32(x);
  uint32_t bits;
  std::memcpy(&bits, &r, 4);
  return bits;
}
inline void mma_m16n8k8_tf32f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                const float (&c)[4]) {
  detail::mma_m16n8k8_tf32(d, a, b, c);
}

inline void cp_async_16(void* smem_dst, const void* global_src, int src_bytes) {
  detail::require_aligned16(smem_dst, "cp_async_16 destination");
  if (src_bytes > 0) detail::require_aligned16(global_src, "cp_async_16 source");
  if (src_bytes < 0 || src_bytes > 16)
    throw std::runtime_error("cp_async_16: src_bytes not in 0..16");
  // Counted at issue: a 16-byte global read (none when all zero-fill) and a 16-byte shared write.
  if (src_bytes > 0) ::emu::count_access(global_src, 16, false);
  ::emu::count_access(smem_dst, 16, true);
  ::emu::cp_async_enqueue(smem_dst, global_src, src_bytes, 16);
}
inline void cp_async_commit() {
  ::emu::cp_async_commit();
}
template <int N>
inline void cp_async_wait() {
  ::emu::cp_async_wait(N);
}
// Emu runs each launch to completion before the next: nothing to wait for or release.
inline void griddepcontrol_wait() {}
inline void griddepcontrol_launch_dependents() {}

#endif

}  // namespace farsee::ptx

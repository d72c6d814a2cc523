// Emulator self-test of the PTX wrappers: a 16x8 tile D = A(16x16) * B(16x8) computed by one warp
// from ldmatrix-loaded fragments equals a CPU matmul; a deliberately wrong fragment layout does
// not. A and B are fp16 (bf16 for the second variant) with small integers, so every product and
// sum is exact and the comparison is exact. TF32: mma.m16n8k8 from fragments built per the .tf32
// layout with cvt.rna equals the CPU matmul of the rounded operands; raw fp32 bits are truncated
// (the tensor core reads 19 bits); a wrong layout differs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/core/half_convert.h"
#include "kernels/core/launch.h"
#include "kernels/core/ptx.h"

namespace {

using farsee::ptx::ldmatrix_x2_trans;
using farsee::ptx::ldmatrix_x4;

// A: 16x16 row-major; B: 16x8 row-major (K x N), loaded with .trans to get the "col" fragment.
// SwapHalves = true loads A's two 8-column halves in the wrong register order (a2/a3 <-> a0/a1
// layout error) — the result must differ.
template <bool Bf16, bool SwapHalves>
__global__ void mma_tile(const uint16_t* a_global, const uint16_t* b_global, float* d_global) {
  FARSEE_SHARED(uint16_t, a_tile, [16 * 16]);
  FARSEE_SHARED(uint16_t, b_tile, [16 * 8]);
  const int lane = threadIdx.x;
  for (int i = lane; i < 16 * 16; i += 32) a_tile[i] = a_global[i];
  for (int i = lane; i < 16 * 8; i += 32) b_tile[i] = b_global[i];
  __syncthreads();
  // x4 for A: matrices (rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15),
  // (rows 8-15, cols 8-15) -> registers a0..a3 in the PTX A-fragment order.
  int matrix = lane / 8, row = lane % 8;
  int col_half = SwapHalves ? (1 - matrix / 2) : matrix / 2;
  const uint16_t* a_row = &a_tile[(row + 8 * (matrix % 2)) * 16 + 8 * col_half];
  uint32_t a[4];
  ldmatrix_x4(a, a_row);
  // x2.trans for B: matrices k rows 0-7 and 8-15 of the 16x8 B, rows given by lanes 0-15.
  const uint16_t* b_row = &b_tile[(lane % 16) * 8];
  uint32_t b[2];
  ldmatrix_x2_trans(b, b_row);
  float c[4] = {0.5f, 0.5f, 0.5f, 0.5f}, d[4];
  if (Bf16) {
    farsee::ptx::mma_m16n8k16_bf16f32(d, a, b, c);
  } else {
    farsee::ptx::mma_m16n8k16_f16f32(d, a, b, c);
  }
  const int g = lane >> 2, q = lane & 3;
  for (int i = 0; i < 4; ++i) d_global[(g + 8 * (i >> 1)) * 8 + 2 * q + (i & 1)] = d[i];
}

struct MmaCase {
  std::vector<float> a, b, expect;
};

MmaCase make_case() {
  MmaCase m;
  m.a.resize(256);
  m.b.resize(128);
  for (int i = 0; i < 256; ++i) m.a[i] = float((i * 7) % 9 - 4);
  for (int i = 0; i < 128; ++i) m.b[i] = float((i * 5) % 7 - 3);
  m.expect.assign(128, 0.5f);
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n)
      for (int k = 0; k < 16; ++k) m.expect[r * 8 + n] += m.a[r * 16 + k] * m.b[k * 8 + n];
  return m;
}

template <bool Bf16, bool SwapHalves>
std::vector<float> run(const MmaCase& m) {
  std::vector<uint16_t> a(256), b(128);
  for (int i = 0; i < 256; ++i)
    a[i] = Bf16 ? farsee::float_to_bf16_bits(m.a[i]) : farsee::float_to_half_bits(m.a[i]);
  for (int i = 0; i < 128; ++i)
    b[i] = Bf16 ? farsee::float_to_bf16_bits(m.b[i]) : farsee::float_to_half_bits(m.b[i]);
  std::vector<float> d(128, -1.f);
  auto kernel = mma_tile<Bf16, SwapHalves>;
  FARSEE_LAUNCH(kernel, 1, 32, 0, nullptr, a.data(), b.data(), d.data());
  return d;
}

TEST(EmuMma, F16TileFromLdmatrixEqualsCpuMatmul) {
  MmaCase m = make_case();
  for (auto s : {emu::Schedule::GreedyForward, emu::Schedule::GreedyReverse}) {
    emu::set_schedule(s);
    EXPECT_EQ((run<false, false>(m)), m.expect) << emu::schedule_name(s);
  }
}

TEST(EmuMma, Bf16TileFromLdmatrixEqualsCpuMatmul) {
  MmaCase m = make_case();
  EXPECT_EQ((run<true, false>(m)), m.expect);
}

TEST(EmuMma, WrongFragmentLayoutGivesWrongResult) {
  MmaCase m = make_case();
  std::vector<float> d = run<false, true>(m);
  int differing = 0;
  for (int i = 0; i < 128; ++i) differing += d[i] != m.expect[i];
  EXPECT_GT(differing, 64) << "swapping A's column halves must change most outputs";
}

__global__ void misaligned_ldmatrix(const uint16_t* src) {
  FARSEE_SHARED(uint16_t, tile, [16 * 16 + 8]);
  for (int i = threadIdx.x; i < 16 * 16 + 8; i += 32) tile[i] = src[0];
  __syncthreads();
  uint32_t r[4];
  ldmatrix_x4(r, &tile[1 + threadIdx.x % 16 * 8]);  // 2-byte offset: not 16-byte aligned
}

TEST(EmuMma, MisalignedLdmatrixIsAnError) {
  uint16_t v = 0;
  auto kernel = misaligned_ldmatrix;
  try {
    FARSEE_LAUNCH(kernel, 1, 32, 0, nullptr, &v);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("not 16-byte aligned"), std::string::npos) << e.what();
  }
}

// ---- mma.m16n8k8 tf32 ----

enum class Tf32Mode { Rounded, RawBits, SwappedA };

// A: 16x8 row-major, B: 8x8 row-major (K x N); fragments read element-wise per the PTX .tf32
// layout (a_i: row g + 8*(i&1), col q + 4*(i>>1); b_i: row q + 4i, col g).
template <Tf32Mode Mode>
__global__ void mma_tf32_tile(const float* a_global, const float* b_global, float* d_global) {
  const int lane = threadIdx.x, g = lane >> 2, q = lane & 3;
  auto op = [](float v) {
    if (Mode != Tf32Mode::RawBits) return farsee::ptx::cvt_rna_tf32(v);
    uint32_t u;
    std::memcpy(&u, &v, 4);
    return u;
  };
  uint32_t a[4];
  for (int i = 0; i < 4; ++i) a[i] = op(a_global[(g + 8 * (i & 1)) * 8 + q + 4 * (i >> 1)]);
  if (Mode == Tf32Mode::SwappedA) std::swap(a[1], a[2]);
  const uint32_t b[2] = {op(b_global[q * 8 + g]), op(b_global[(q + 4) * 8 + g])};
  float c[4] = {0.5f, 0.5f, 0.5f, 0.5f}, d[4];
  farsee::ptx::mma_m16n8k8_tf32f32(d, a, b, c);
  for (int i = 0; i < 4; ++i) d_global[(g + 8 * (i >> 1)) * 8 + 2 * q + (i & 1)] = d[i];
}

template <Tf32Mode Mode>
std::vector<float> run_tf32(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(128, -1.f);
  auto kernel = mma_tf32_tile<Mode>;
  FARSEE_LAUNCH(kernel, 1, 32, 0, nullptr, a.data(), b.data(), d.data());
  return d;
}

// A = p * (1 + 3*2^-12) with p in {0, +-1, +-2, +-4}: 3*2^-12 is 0.75 of a TF32 ulp, so cvt.rna
// gives p * (1 + 2^-10) and truncation gives p. B: integers in [-3, 3] (exact). D = 0.5 + S * f
// with S = sum_k p*b (|S| <= 96) and f = 1 + 2^-10 (rounded) or 1 (raw): exact in fp32.
TEST(EmuMma, Tf32TileEqualsCpuMatmulOfRoundedOperands) {
  const float pows[7] = {0.f, 1.f, -1.f, 2.f, -2.f, 4.f, -4.f};
  std::vector<float> a(128), b(64), p(128);
  for (int i = 0; i < 128; ++i) {
    p[i] = pows[(i * 5) % 7];
    a[i] = p[i] * (1.0f + std::ldexp(3.0f, -12));
  }
  for (int i = 0; i < 64; ++i) b[i] = float((i * 3) % 7 - 3);
  std::vector<float> rounded(128), raw(128);
  for (int r = 0; r < 16; ++r) {
    for (int n = 0; n < 8; ++n) {
      double sum = 0;
      for (int k = 0; k < 8; ++k) sum += double(p[r * 8 + k]) * b[k * 8 + n];
      rounded[r * 8 + n] = float(0.5 + sum * (1.0 + std::ldexp(1.0, -10)));
      raw[r * 8 + n] = float(0.5 + sum);
    }
  }
  for (auto s : {emu::Schedule::GreedyForward, emu::Schedule::GreedyReverse}) {
    emu::set_schedule(s);
    EXPECT_EQ(run_tf32<Tf32Mode::Rounded>(a, b), rounded) << emu::schedule_name(s);
  }
  EXPECT_EQ(run_tf32<Tf32Mode::RawBits>(a, b), raw) << "unrounded operands are truncated";
  const std::vector<float> swapped = run_tf32<Tf32Mode::SwappedA>(a, b);
  int differing = 0;
  for (int i = 0; i < 128; ++i) differing += swapped[i] != rounded[i];
  EXPECT_GT(differing, 64) << "swapping a1 and a2 must change most outputs";
}

}  // namespace

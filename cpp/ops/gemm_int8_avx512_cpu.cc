// int8 GEMM with AVX-512 VNNI (see gemm.h, gemm_int8_cpu.cc): vpdpbusd multiplies 4 unsigned weight bytes
// (W_q + 128) by 4 signed input bytes and adds the 4 products to an int32 lane, so one instruction covers 16 columns
// x 4 k. Same panels and row tiles as the fp32 kernel (gemm_avx512_tiles.h); every function that uses AVX-512
// carries a target attribute and runs only after gemm_cpu.cc has found VNNI.
//
// Per element: the integer sums are exact; the epilogue is the portable kernel's, bias[n], then per block
// fma(s_a * s_w[n], float(sum - 128 * sum(q_a)), c), with explicit fmas so the compiler cannot regroup them.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/cpu_target.h"
#include "ops/gemm.h"
#include "ops/gemm_avx512_tiles.h"

namespace mbfast::ops::detail {

namespace {

using namespace avx512;

// quantize_block (gemm_int8_cpu.cc) 16 values at a time: the same max, division and rounded products.
MBFAST_VNNI void quantize_block_avx512(const float* a, int count, int8_t* q, float& scale, int32_t& offset) {
  auto mask_at = [count](int k) {
    const int left = count - k;
    return left >= kVector ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
  };
  __m512 amax = _mm512_setzero_ps();
  for (int k = 0; k < count; k += kVector)
    amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_maskz_loadu_ps(mask_at(k), a + k)));
  const float max_value = _mm512_reduce_max_ps(amax);
  const float inverse = max_value > 0.0f ? 127.0f / max_value : 0.0f;
  const __m512 times = _mm512_set1_ps(inverse);
  __m512i sum = _mm512_setzero_si512();
  for (int k = 0; k < count; k += kVector) {
    const __mmask16 mask = mask_at(k);
    // rounded half to even (MXCSR's default), as std::lrint in quantize_block
    const __m512i values = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, a + k), times));
    sum = _mm512_add_epi32(sum, values);  // masked-off lanes are 0
    _mm512_mask_cvtepi32_storeu_epi8(q + k, mask, values);
  }
  for (int k = count; k < int8_groups(count) * 4; ++k) q[k] = 0;
  scale = max_value / 127.0f;
  offset = 128 * _mm512_reduce_add_epi32(sum);
}

// acc + the 4-byte dot products of b (unsigned) and a (signed) per int32 lane: _mm512_dpbusd_epi32 in inline asm,
// because GCC 12 copies and spills every accumulator of a 6 x 4 tile around the intrinsic on each k group.
MBFAST_VNNI inline __m512i dot_add(__m512i acc, __m512i b, __m512i a) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b), "v"(a));
  return acc;
}

struct Int8Args {
  int groups1, groups, ld, ldc, valid;
  bool two_blocks;
  const int8_t* q;
  const float* row_scale;      // (ROWS, 2)
  const int32_t* row_offset;   // (ROWS, 2)
  const uint8_t* panel;
  const float *bias, *scale1, *scale2;  // at the tile's first column
  float* c;
};

// One block of the tile: integer sums over groups [g_begin, g_end) of 4 k, then
// C = fma(s_a * s_w, float(sum - offset), bias for block 0 or C for block 1) on the valid columns. The sums live
// in this function alone and C goes through memory between blocks, so the 24 accumulators stay in registers.
// NV > 4: two neighbouring full panels at once (vector j in panel j / 4), as the fp32 kernel.
template <int ROWS, int NV>
MBFAST_VNNI inline void block_int8(const Int8Args& x, int block) {
  constexpr int width = std::min(NV, 4) * kVector;
  const long panel_stride = static_cast<long>(kPanel) * x.groups * 4;
  const int g_begin = block ? x.groups1 : 0, g_end = block ? x.groups : x.groups1;
  __m512i acc[ROWS][NV];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_si512();
  for (int g = g_begin; g < g_end; ++g) {
    __m512i b[NV];
    for (int j = 0; j < NV; ++j)
      b[j] = _mm512_loadu_si512(x.panel + (j / 4) * panel_stride +
                                (static_cast<long>(g) * width + (j % 4) * kVector) * 4);
    for (int r = 0; r < ROWS; ++r) {
      int32_t four;
      std::memcpy(&four, x.q + static_cast<long>(r) * x.ld + g * 4, sizeof(four));
      const __m512i a = _mm512_set1_epi32(four);
      for (int j = 0; j < NV; ++j) acc[r][j] = dot_add(acc[r][j], b[j], a);
    }
  }
  const float* w_scale = block ? x.scale2 : x.scale1;
  for (int j = 0; j < NV; ++j) {
    const int left = x.valid - j * kVector;
    if (left <= 0) break;
    const __mmask16 mask = left >= kVector ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __m512 w = _mm512_loadu_ps(w_scale + j * kVector);
    const __m512 bias = _mm512_loadu_ps(x.bias + j * kVector);
    for (int r = 0; r < ROWS; ++r) {
      float* c = x.c + static_cast<long>(r) * x.ldc + j * kVector;
      const __m512 addend = block ? _mm512_maskz_loadu_ps(mask, c) : bias;
      const __m512 s = _mm512_mul_ps(_mm512_set1_ps(x.row_scale[2 * r + block]), w);
      const __m512i sum = _mm512_sub_epi32(acc[r][j], _mm512_set1_epi32(x.row_offset[2 * r + block]));
      _mm512_mask_storeu_ps(c, mask, _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(sum), addend));
    }
  }
}

template <int ROWS, int NV>
MBFAST_VNNI void tile_int8(const Int8Args& x) {
  block_int8<ROWS, NV>(x, 0);
  if (x.two_blocks) block_int8<ROWS, NV>(x, 1);
}

#define MBFAST_TILE_ROW(rows) {tile_int8<rows, 1>, tile_int8<rows, 2>, tile_int8<rows, 3>, tile_int8<rows, 4>}
constexpr void (*kInt8Tiles[kMaxRows][4])(const Int8Args&) = {
    MBFAST_TILE_ROW(1), MBFAST_TILE_ROW(2), MBFAST_TILE_ROW(3),
    MBFAST_TILE_ROW(4), MBFAST_TILE_ROW(5), MBFAST_TILE_ROW(6)};
#undef MBFAST_TILE_ROW
// M <= kPairRows: two panels per tile (for_each_tile)
constexpr void (*kInt8PairTiles[kPairRows])(const Int8Args&) = {tile_int8<1, 8>, tile_int8<2, 8>};

}  // namespace

MBFAST_VNNI void gemm_int8_vnni(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin,
                                int n_end) {
  Int8Rows& rows = gemm_scratch().int8_rows;
  quantize_rows(M, A, W, rows, quantize_block_avx512);
  const int N_padded = padded_columns(W.N), groups1 = int8_groups(W.k1), groups = rows.ld / 4;
  for_each_tile(M, W, n_begin, n_end, [&](int tile_rows, int vectors, int m, int panel, int valid) {
    const int n0 = panel * kPanel;
    const Int8Args args{groups1, groups, rows.ld, ldc, valid, W.k1 < W.K,
                        rows.values.data() + size_t(m) * rows.ld, rows.scale.data() + 2 * m,
                        rows.offset.data() + 2 * m, W.int8.data() + size_t(n0) * groups * 4,
                        W.bias.data() + n0, W.scale.data() + n0, W.scale.data() + N_padded + n0,
                        C + static_cast<long>(m) * ldc + n0};
    (vectors == 8 ? kInt8PairTiles[tile_rows - 1] : kInt8Tiles[tile_rows - 1][vectors - 1])(args);
  });
}

}  // namespace mbfast::ops::detail

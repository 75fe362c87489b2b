// Tiling shared by the AVX-512 kernels (gemm_avx512_cpu.cc, gemm_int8_avx512_cpu.cc): 64-column panels of 4 zmm,
// row tiles of up to kMaxRows, and the masked store of a tile's valid columns. Internal to those two files.
#pragma once

#include <immintrin.h>

#include <algorithm>

#include "ops/cpu_target.h"
#include "ops/gemm.h"

namespace mbfast::ops::detail::avx512 {

constexpr int kMaxRows = 6;
constexpr int kVector = 16;  // floats (or int32 sums) per zmm
// M of 1 or 2 (streaming one object): two panels per tile, 8 or 16 independent sums instead of 4 or 8
constexpr int kPairRows = 2;

inline int padded_columns(int N) { return (N + kVector - 1) / kVector * kVector; }
inline int panel_width(int N_padded, int panel) { return std::min(kPanel, N_padded - panel * kPanel); }

// Stores the ROWS x NV tile; columns at or past `valid` (relative to the panel start) are padding and not written.
template <int ROWS, int NV>
MBFAST_AVX512 inline void store_tile(__m512 (&acc)[ROWS][NV], float* C, int ldc, int valid) {
  for (int j = 0; j < NV; ++j) {
    const int left = valid - j * kVector;
    if (left <= 0) break;
    const __mmask16 mask = left >= kVector ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    for (int r = 0; r < ROWS; ++r) _mm512_mask_storeu_ps(C + static_cast<long>(r) * ldc + j * kVector, mask, acc[r][j]);
  }
}

// Walks panels [n_begin, n_end) and row tiles of up to kMaxRows; tile(rows, vectors, m, panel, valid) runs one.
// vectors = 8: panels `panel` and `panel + 1` together (M <= kPairRows, both full and inside the range).
template <typename Tile>
inline void for_each_tile(int M, const PackedWeights& W, int n_begin, int n_end, Tile&& tile) {
  const int N_padded = padded_columns(W.N);
  for (int panel = n_begin / kPanel; panel * kPanel < n_end;) {
    const int valid = std::min(n_end, W.N) - panel * kPanel;
    if (M <= kPairRows && valid >= 2 * kPanel && panel_width(N_padded, panel + 1) == kPanel) {
      tile(M, 8, 0, panel, valid);
      panel += 2;
      continue;
    }
    const int vectors = panel_width(N_padded, panel) / kVector;
    for (int m = 0; m < M; m += kMaxRows) tile(std::min(kMaxRows, M - m), vectors, m, panel, valid);
    ++panel;
  }
}

}  // namespace mbfast::ops::detail::avx512

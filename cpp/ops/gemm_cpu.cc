// Portable fp32 GEMM (see gemm.h): 4-row x 8-column register tiles in GCC/Clang vector types.
// Not tuned per ISA yet; the AVX-512 kernel will live next to it and keep the same summation order.
#include "ops/gemm.h"

#include <cstring>

namespace mbfast::ops {

namespace {

constexpr int kTileRows = 4;
constexpr int kTileCols = 8;  // 4 x 8 accumulators = 8 SSE registers of baseline x86-64, no spills

// GCC/Clang vector extension: the compiler emits the SIMD instructions of the target (SSE2 pairs here, one
// register with AVX2), and every lane does exactly the scalar bias + a * b additions in k order.
typedef float Lanes __attribute__((vector_size(16)));
constexpr int kLanes = 4;
constexpr int kLaneGroups = kTileCols / kLanes;

inline Lanes load(const float* values) {
  Lanes out;
  std::memcpy(&out, values, sizeof(out));
  return out;
}

inline void store(float* values, Lanes lanes) { std::memcpy(values, &lanes, sizeof(lanes)); }

// Full tile: ROWS rows of A against columns [n0, n0 + kTileCols) of B.
template <int ROWS>
void tile_full(int N, int K, const float* A, int lda, const float* B, const float* bias, float* C, int ldc,
               int n0) {
  Lanes acc[ROWS][kLaneGroups];
  for (int r = 0; r < ROWS; ++r)
    for (int g = 0; g < kLaneGroups; ++g) acc[r][g] = load(bias + n0 + g * kLanes);
  for (int k = 0; k < K; ++k) {
    const float* b_row = B + static_cast<long>(k) * N + n0;
    Lanes b[kLaneGroups];
    for (int g = 0; g < kLaneGroups; ++g) b[g] = load(b_row + g * kLanes);
    for (int r = 0; r < ROWS; ++r) {
      const float a = A[static_cast<long>(r) * lda + k];
      for (int g = 0; g < kLaneGroups; ++g) acc[r][g] += a * b[g];
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int g = 0; g < kLaneGroups; ++g) store(C + static_cast<long>(r) * ldc + n0 + g * kLanes, acc[r][g]);
}

// Ragged column edge (N not a multiple of kTileCols): same summation order, fewer columns.
void tile_edge(int rows, int N, int K, const float* A, int lda, const float* B, const float* bias, float* C, int ldc,
               int n0, int cols) {
  for (int r = 0; r < rows; ++r) {
    float acc[kTileCols];
    for (int j = 0; j < cols; ++j) acc[j] = bias[n0 + j];
    const float* a_row = A + static_cast<long>(r) * lda;
    for (int k = 0; k < K; ++k) {
      const float* b_row = B + static_cast<long>(k) * N + n0;
      for (int j = 0; j < cols; ++j) acc[j] += a_row[k] * b_row[j];
    }
    for (int j = 0; j < cols; ++j) C[static_cast<long>(r) * ldc + n0 + j] = acc[j];
  }
}

template <int ROWS>
void row_block(int N, int K, const float* A, int lda, const float* B, const float* bias, float* C, int ldc) {
  int n0 = 0;
  for (; n0 + kTileCols <= N; n0 += kTileCols) tile_full<ROWS>(N, K, A, lda, B, bias, C, ldc, n0);
  if (n0 < N) tile_edge(ROWS, N, K, A, lda, B, bias, C, ldc, n0, N - n0);
}

}  // namespace

void gemm_bias_cpu(int M, int N, int K, const float* A, int lda, const float* B, const float* bias, float* C,
                   int ldc) {
  int m = 0;
  for (; m + kTileRows <= M; m += kTileRows)
    row_block<kTileRows>(N, K, A + static_cast<long>(m) * lda, lda, B, bias, C + static_cast<long>(m) * ldc, ldc);
  for (; m < M; ++m)
    row_block<1>(N, K, A + static_cast<long>(m) * lda, lda, B, bias, C + static_cast<long>(m) * ldc, ldc);
}

}  // namespace mbfast::ops

// Portable fp32 GEMM (see gemm.h): 4-row x 16-column register tiles the compiler auto-vectorises.
// Not tuned per ISA yet; the AVX-512 kernel will live next to it and keep the same summation order.
#include "ops/gemm.h"

#include <algorithm>

namespace mbfast::ops {

namespace {

constexpr int kTileRows = 4;
constexpr int kTileCols = 16;

// Full tile: ROWS rows of A against columns [n0, n0 + kTileCols) of B.
template <int ROWS>
void tile_full(int N, int K, const float* A, int lda, const float* B, const float* bias, float* C, int ldc,
               int n0) {
  float acc[ROWS][kTileCols];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < kTileCols; ++j) acc[r][j] = bias[n0 + j];
  for (int k = 0; k < K; ++k) {
    const float* b_row = B + static_cast<long>(k) * N + n0;
    for (int r = 0; r < ROWS; ++r) {
      const float a = A[static_cast<long>(r) * lda + k];
      for (int j = 0; j < kTileCols; ++j) acc[r][j] += a * b_row[j];
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < kTileCols; ++j) C[static_cast<long>(r) * ldc + n0 + j] = acc[r][j];
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

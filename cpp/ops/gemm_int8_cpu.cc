// int8 GEMM (see gemm.h): weight packing and quantisation, the quantisation of input rows, and the portable kernel
// (plain integer loops) that CPUs without AVX-512 VNNI run. The vpdpbusd kernel is gemm_int8_avx512_cpu.cc; both
// read the layout packed here and give the same bits. The portable kernel is there for those bits, not for speed:
// on SSE2 integer arithmetic a ZTF-shape step runs ~7x slower than the AVX2 fp32 kernel.
//
// C[m, n] = bias[n] + (s_a1 * s_w1[n]) * (q_a1 . q_w1[:, n]) + (s_a2 * s_w2[n]) * (q_a2 . q_w2[:, n]), one block per
// GemmInput block ([x | h] have different ranges, so each gets its own scales), each term one fma in this order.
// The dot products are exact int32 (|sum| <= 255 * 127 * K, far from 2^31 for K <= 4096), so only the epilogue's
// float operations could differ between kernels, and both do the same ones.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/gemm.h"

namespace mbfast::ops::detail {

namespace {

constexpr int kColumnPad = 16;  // columns padded as the AVX-512 panels are (one zmm)

int padded_columns(int N) { return (N + kColumnPad - 1) / kColumnPad * kColumnPad; }

// Symmetric quantisation of `count` values at `stride`: q = round-half-even(value * 127 / max |value|).
float quantize_column(const float* values, long stride, int count, int32_t* q) {
  float amax = 0.0f;
  for (int k = 0; k < count; ++k) amax = std::max(amax, std::fabs(values[k * stride]));
  const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int k = 0; k < count; ++k) q[k] = static_cast<int32_t>(std::lrint(values[k * stride] * inverse));
  return amax / 127.0f;
}

// sum[j] += (W_q + 128)[g, j, :] . q[g, :] for groups g in [g_begin, g_end), every column of the panel (padding
// included, so the loop has no ragged end for the vectoriser).
void dot_groups(const uint8_t* panel, int width, const int8_t* q, int g_begin, int g_end, int32_t* sum) {
  for (int g = g_begin; g < g_end; ++g) {
    const uint8_t* b = panel + size_t(g) * width * 4;
    const int32_t q0 = q[4 * g], q1 = q[4 * g + 1], q2 = q[4 * g + 2], q3 = q[4 * g + 3];
    for (int j = 0; j < width; ++j)
      sum[j] += b[4 * j] * q0 + b[4 * j + 1] * q1 + b[4 * j + 2] * q2 + b[4 * j + 3] * q3;
  }
}

}  // namespace

int int8_groups(int k) { return (k + 3) / 4; }

void pack_int8(PackedWeights& W, const float* weight_t) {
  const int K = W.K, N = W.N, N_padded = padded_columns(N);
  const int groups1 = int8_groups(W.k1), groups = groups1 + int8_groups(K - W.k1);
  W.int8.assign(size_t(groups) * 4 * N_padded, 128);  // padding: W_q = 0
  W.scale.assign(size_t(2) * N_padded, 0.0f);
  std::vector<int32_t> q(K);
  for (int n = 0; n < N; ++n) {
    const int panel = n / kPanel, n0 = panel * kPanel, j = n - n0;
    const int width = std::min(kPanel, N_padded - n0);
    uint8_t* out = W.int8.data() + size_t(n0) * groups * 4;
    for (int block = 0; block < 2; ++block) {
      const int k_begin = block ? W.k1 : 0, k_end = block ? K : W.k1, g0 = block ? groups1 : 0;
      W.scale[size_t(block) * N_padded + n] =
          quantize_column(weight_t + size_t(k_begin) * N + n, N, k_end - k_begin, q.data());
      for (int k = 0; k < k_end - k_begin; ++k)
        out[(size_t(g0 + k / 4) * width + j) * 4 + k % 4] = static_cast<uint8_t>(q[k] + 128);
    }
  }
}

void quantize_block(const float* a, int count, int8_t* q, float& scale, int32_t& offset) {
  float amax = 0.0f;
  for (int k = 0; k < count; ++k) amax = std::max(amax, std::fabs(a[k]));
  const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
  int32_t sum = 0;
  for (int k = 0; k < count; ++k) {
    q[k] = static_cast<int8_t>(std::lrint(a[k] * inverse));
    sum += q[k];
  }
  for (int k = count; k < int8_groups(count) * 4; ++k) q[k] = 0;
  scale = amax / 127.0f;
  offset = 128 * sum;
}

void quantize_rows(int M, const GemmInput& A, const PackedWeights& W, Int8Rows& rows, QuantizeBlock block) {
  const int K = W.K, bytes1 = int8_groups(A.k1) * 4;
  rows.ld = bytes1 + int8_groups(K - A.k1) * 4;
  if (rows.values.size() < size_t(M) * rows.ld) rows.values.resize(size_t(M) * rows.ld);
  if (rows.scale.size() < size_t(M) * 2) {
    rows.scale.resize(size_t(M) * 2);
    rows.offset.resize(size_t(M) * 2);
  }
  for (int m = 0; m < M; ++m) {
    int8_t* q = rows.values.data() + size_t(m) * rows.ld;
    block(A.a1 + static_cast<long>(m) * A.lda1, A.k1, q, rows.scale[2 * m], rows.offset[2 * m]);
    rows.scale[2 * m + 1] = 0.0f;
    rows.offset[2 * m + 1] = 0;
    if (A.k1 < K)
      block(A.a2 + static_cast<long>(m) * A.lda2, K - A.k1, q + bytes1, rows.scale[2 * m + 1], rows.offset[2 * m + 1]);
  }
}

void gemm_int8_portable(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin,
                        int n_end) {
  Int8Rows& rows = gemm_scratch().int8_rows;
  quantize_rows(M, A, W, rows, quantize_block);
  const int N_padded = padded_columns(W.N), groups1 = int8_groups(W.k1), groups = rows.ld / 4;
  const bool two_blocks = W.k1 < W.K;
  for (int n0 = n_begin; n0 < n_end; n0 += kPanel) {  // n_begin is a panel start
    const int width = std::min(kPanel, N_padded - n0), columns = std::min(width, std::min(n_end, W.N) - n0);
    const uint8_t* panel = W.int8.data() + size_t(n0) * groups * 4;
    for (int m = 0; m < M; ++m) {
      const int8_t* q = rows.values.data() + size_t(m) * rows.ld;
      int32_t sum[2][kPanel] = {};  // sum over each block of (W_q + 128) * q, as vpdpbusd forms it
      dot_groups(panel, width, q, 0, groups1, sum[0]);
      dot_groups(panel, width, q, groups1, groups, sum[1]);
      const float scale1 = rows.scale[2 * m], scale2 = rows.scale[2 * m + 1];
      const int32_t offset1 = rows.offset[2 * m], offset2 = rows.offset[2 * m + 1];
      for (int j = 0; j < columns; ++j) {
        const int n = n0 + j;
        float c = std::fma(scale1 * W.scale[n], static_cast<float>(sum[0][j] - offset1), W.bias[n]);
        if (two_blocks)
          c = std::fma(scale2 * W.scale[size_t(N_padded) + n], static_cast<float>(sum[1][j] - offset2), c);
        C[static_cast<long>(m) * ldc + n] = c;
      }
    }
  }
}

}  // namespace mbfast::ops::detail

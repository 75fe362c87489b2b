// CPU versions of the row-wise ops (see rowwise.h); statistics accumulate in double for parity with reference.py.
// LayerNorm has an AVX-512 twin (8 double lanes, a fixed reduction order), picked with the GEMM kernel.
#include "ops/rowwise.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "ops/gemm.h"

#define MBFAST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

namespace mbfast::ops {

namespace {

void layer_norm_portable(int M, int H, const float* x, int ld, const float* weight, const float* bias, float eps,
                         float* y, int ld_out) {
  for (int m = 0; m < M; ++m) {
    const float* row = x + static_cast<long>(m) * ld;
    float* out = y + static_cast<long>(m) * ld_out;
    double sum = 0.0;
    for (int j = 0; j < H; ++j) sum += row[j];
    const double mean = sum / H;
    double square_sum = 0.0;
    for (int j = 0; j < H; ++j) square_sum += (row[j] - mean) * (row[j] - mean);
    const float inv_std = static_cast<float>(1.0 / std::sqrt(square_sum / H + eps));
    const float mean_f = static_cast<float>(mean);
    for (int j = 0; j < H; ++j) out[j] = (row[j] - mean_f) * inv_std * weight[j] + bias[j];
  }
}

// The same statistics with 8 double lanes (lane sums added in a fixed order), then the same float formula.
MBFAST_AVX512 void layer_norm_avx512(int M, int H, const float* x, int ld, const float* weight, const float* bias,
                                     float eps, float* y, int ld_out) {
  for (int m = 0; m < M; ++m) {
    const float* row = x + static_cast<long>(m) * ld;
    float* out = y + static_cast<long>(m) * ld_out;
    __m512d sum = _mm512_setzero_pd();
    for (int j = 0; j < H; j += 8) {
      const __mmask8 mask = H - j >= 8 ? __mmask8(0xff) : __mmask8((1u << (H - j)) - 1);
      sum = _mm512_add_pd(sum, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mask, row + j)));
    }
    const double mean = _mm512_reduce_add_pd(sum) / H;
    const __m512d mean_lanes = _mm512_set1_pd(mean);
    __m512d square_sum = _mm512_setzero_pd();
    for (int j = 0; j < H; j += 8) {
      const __mmask8 mask = H - j >= 8 ? __mmask8(0xff) : __mmask8((1u << (H - j)) - 1);
      const __m512d centred = _mm512_maskz_sub_pd(mask, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mask, row + j)),
                                                  mean_lanes);
      square_sum = _mm512_add_pd(square_sum, _mm512_mul_pd(centred, centred));
    }
    const float inv_std = static_cast<float>(1.0 / std::sqrt(_mm512_reduce_add_pd(square_sum) / H + eps));
    const __m512 mean_f = _mm512_set1_ps(static_cast<float>(mean)), scale = _mm512_set1_ps(inv_std);
    for (int j = 0; j < H; j += 16) {
      const __mmask16 mask = H - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (H - j)) - 1);
      const __m512 normed = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + j), mean_f), scale);
      _mm512_mask_storeu_ps(out + j, mask, _mm512_add_ps(_mm512_mul_ps(normed, _mm512_maskz_loadu_ps(mask, weight + j)),
                                                         _mm512_maskz_loadu_ps(mask, bias + j)));
    }
  }
}

}  // namespace

void layer_norm_cpu(int M, int H, const float* x, int ld, const float* weight, const float* bias, float eps, float* y,
                    int ld_out) {
  if (cpu_kernel() == CpuKernel::kPortable) layer_norm_portable(M, H, x, ld, weight, bias, eps, y, ld_out);
  else layer_norm_avx512(M, H, x, ld, weight, bias, eps, y, ld_out);
}

void softmax_cpu(int M, int N, float* x, int ld) {
  for (int m = 0; m < M; ++m) {
    float* row = x + static_cast<long>(m) * ld;
    const float top = *std::max_element(row, row + N);
    double total = 0.0;
    for (int j = 0; j < N; ++j) {
      row[j] = std::exp(row[j] - top);
      total += row[j];
    }
    const float scale = static_cast<float>(1.0 / total);
    for (int j = 0; j < N; ++j) row[j] *= scale;
  }
}

void relu_cpu(int M, int N, float* x, int ld) {
  for (int m = 0; m < M; ++m) {
    float* row = x + static_cast<long>(m) * ld;
    for (int j = 0; j < N; ++j) row[j] = std::max(row[j], 0.0f);
  }
}

void layer_mix_cpu(int M, int L, int H, const float* x, const float* mix, float* y, int ld_out) {
  for (int m = 0; m < M; ++m) {
    const float* layers = x + static_cast<long>(m) * L * H;
    float* out = y + static_cast<long>(m) * ld_out;
    for (int j = 0; j < H; ++j) out[j] = mix[0] * layers[j];
    for (int l = 1; l < L; ++l)
      for (int j = 0; j < H; ++j) out[j] += mix[l] * layers[l * H + j];
  }
}

}  // namespace mbfast::ops

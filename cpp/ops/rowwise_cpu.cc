// CPU versions of the row-wise ops (see rowwise.h); statistics accumulate in double for parity with reference.py.
// LayerNorm has an AVX-512 twin (8 double lanes, a fixed reduction order), picked with the GEMM kernel; the AVX2
// kernel runs the portable versions here (these ops are a few per cent of a step).
#include "ops/rowwise.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/cpu_target.h"
#include "ops/gemm.h"

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

// IEEE binary16 by hand (the portable kernel; the AVX-512 one uses vcvtps2ph / vcvtph2ps with the same rounding).
uint16_t to_fp16_scalar(float value) {
  value = std::min(std::max(value, -65504.0f), 65504.0f);  // NaN passes through both
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;  // NaN
  const int exponent = static_cast<int>(magnitude >> 23) - 127;
  if (exponent < -25) return sign;  // rounds to 0
  uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  int shift = 13;  // 24-bit significand -> 11 bits
  int half_exponent = exponent + 15;
  if (half_exponent <= 0) {  // subnormal half
    shift += 1 - half_exponent;
    half_exponent = 0;
  }
  const uint32_t rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  mantissa >>= shift;
  if (rest > halfway || (rest == halfway && (mantissa & 1u))) ++mantissa;  // nearest even; a carry bumps the exponent
  const uint32_t out = half_exponent == 0 ? mantissa : (uint32_t(half_exponent) << 10) + (mantissa - 0x400u);
  return sign | static_cast<uint16_t>(out);
}

float from_fp16_scalar(uint16_t half) {
  const uint32_t sign = uint32_t(half & 0x8000u) << 16, exponent = (half >> 10) & 0x1fu, mantissa = half & 0x3ffu;
  float value;
  if (exponent == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal, exact
  } else if (exponent == 31) {
    value = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    const uint32_t bits = ((exponent + 112) << 23) | (mantissa << 13);
    std::memcpy(&value, &bits, sizeof(value));
  }
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  bits |= sign;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

MBFAST_AVX512 void to_fp16_avx512(int n, const float* x, uint16_t* y) {
  const __m512 low = _mm512_set1_ps(-65504.0f), high = _mm512_set1_ps(65504.0f);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    const __m512 clamped = _mm512_max_ps(low, _mm512_min_ps(high, _mm512_maskz_loadu_ps(mask, x + i)));
    _mm256_mask_storeu_epi16(y + i, mask, _mm512_cvtps_ph(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

MBFAST_AVX512 void from_fp16_avx512(int n, const uint16_t* x, float* y) {
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, mask, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, x + i)));
  }
}

}  // namespace

void to_fp16_cpu(int n, const float* x, uint16_t* y) {
  if (cpu_kernel() < CpuKernel::kAvx512) {
    for (int i = 0; i < n; ++i) y[i] = to_fp16_scalar(x[i]);
  } else {
    to_fp16_avx512(n, x, y);
  }
}

void from_fp16_cpu(int n, const uint16_t* x, float* y) {
  if (cpu_kernel() < CpuKernel::kAvx512) {
    for (int i = 0; i < n; ++i) y[i] = from_fp16_scalar(x[i]);
  } else {
    from_fp16_avx512(n, x, y);
  }
}

void layer_norm(const CpuContext&, int M, int H, const float* x, int ld, const float* weight, const float* bias,
                float eps, float* y, int ld_out) {
  if (cpu_kernel() < CpuKernel::kAvx512) layer_norm_portable(M, H, x, ld, weight, bias, eps, y, ld_out);
  else layer_norm_avx512(M, H, x, ld, weight, bias, eps, y, ld_out);
}

void softmax(const CpuContext&, int M, int N, float* x, int ld) {
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

void relu(const CpuContext&, int M, int N, float* x, int ld) {
  for (int m = 0; m < M; ++m) {
    float* row = x + static_cast<long>(m) * ld;
    for (int j = 0; j < N; ++j) row[j] = std::max(row[j], 0.0f);
  }
}

void layer_mix(const CpuContext&, int M, int L, int H, const float* x, int ld_x, const float* mix, float* y,
               int ld_out) {
  for (int m = 0; m < M; ++m) {
    const float* layers = x + static_cast<long>(m) * ld_x;
    float* out = y + static_cast<long>(m) * ld_out;
    for (int j = 0; j < H; ++j) out[j] = mix[0] * layers[j];
    for (int l = 1; l < L; ++l)
      for (int j = 0; j < H; ++j) out[j] += mix[l] * layers[l * H + j];
  }
}

void add(const CpuContext&, int M, int N, const float* x, int ld_x, float* y, int ld_y) {
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < N; ++j) y[static_cast<long>(m) * ld_y + j] += x[static_cast<long>(m) * ld_x + j];
}

void copy(const CpuContext&, int M, int N, const float* x, int ld_x, float* y, int ld_y) {
  for (int m = 0; m < M; ++m)
    std::memcpy(y + static_cast<long>(m) * ld_y, x + static_cast<long>(m) * ld_x, sizeof(float) * N);
}

}  // namespace mbfast::ops

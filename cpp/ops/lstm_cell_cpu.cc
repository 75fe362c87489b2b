// CPU LSTM cell (see lstm_cell.h); mirrors the cell lines of mbfast/model/reference.py ReferenceModel.stack_step.
// Three versions of the same formulas: portable scalar code, AVX2 (8 lanes) and AVX-512 (16 lanes), both with their
// own exp, picked with the GEMM kernel (ops::cpu_kernel), so one process always runs one of them.
#include "ops/lstm_cell.h"

#include <immintrin.h>

#include <cmath>

#include "ops/cpu_target.h"
#include "ops/gemm.h"

namespace mbfast::ops {

namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// tanh through expf: glibc's tanhf goes through expm1f and was 40 % of a step. Absolute error stays below ~2e-7
// (relative error grows near 0, where tanh itself is tiny), well inside the 1e-6 parity tolerance.
inline float tanh_via_exp(float x) { return 1.0f - 2.0f / (1.0f + std::exp(2.0f * x)); }

void lstm_cell_portable(int M, int H, const float* gates, int ld_gates, float* cell, float* hidden, int ld_state) {
  for (int m = 0; m < M; ++m) {
    const float* gate_i = gates + static_cast<long>(m) * ld_gates;
    const float* gate_f = gate_i + H;
    const float* gate_g = gate_i + 2 * H;
    const float* gate_o = gate_i + 3 * H;
    float* c = cell + static_cast<long>(m) * ld_state;
    float* h = hidden + static_cast<long>(m) * ld_state;
    for (int j = 0; j < H; ++j) {
      c[j] = sigmoid(gate_f[j]) * c[j] + sigmoid(gate_i[j]) * tanh_via_exp(gate_g[j]);
      h[j] = sigmoid(gate_o[j]) * tanh_via_exp(c[j]);
    }
  }
}

// The vector exps (exp16, exp8): x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^7 (truncation
// < 6e-9 relative, below fp32 rounding), evaluated by Horner from the r^7 coefficient down, then times 2^n.
constexpr float kLog2E = 1.44269504088896341f;
constexpr float kLn2High = 0.693145751953125f;  // ln 2 split: the high part is exact in n * kLn2High
constexpr float kLn2Low = 1.428606765330187e-6f;
constexpr float kExpTaylor[] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f,
                                1.0f, 1.0f};
constexpr float kExpMin = -87.3f;  // finite, normal results; sigmoid and tanh saturate long before

// e^x for 16 lanes, 2^n by vscalefps. Inputs clamped to [kExpMin, 88.7]; NaN passes through the clamps.
MBFAST_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(kExpMin), _mm512_min_ps(_mm512_set1_ps(88.7f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2E)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2High), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Low), r);
  __m512 p = _mm512_set1_ps(kExpTaylor[0]);
  for (int k = 1; k < 8; ++k) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpTaylor[k]));
  return _mm512_scalef_ps(p, n);
}

// 1 / d for d >= 1: vrcp14ps (relative error < 2^-14) and one Newton step (< 2^-27, below fp32 rounding);
// cheaper than vdivps, whose throughput bounded the cell.
MBFAST_AVX512 inline __m512 reciprocal16(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

MBFAST_AVX512 inline __m512 sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return reciprocal16(_mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

MBFAST_AVX512 inline __m512 tanh16(__m512 x) {  // 1 - 2 / (1 + e^2x), as tanh_via_exp
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 inverse = reciprocal16(_mm512_add_ps(one, exp16(_mm512_add_ps(x, x))));
  return _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), inverse, one);
}

MBFAST_AVX512 void lstm_cell_avx512(int M, int H, const float* gates, int ld_gates, float* cell, float* hidden,
                                    int ld_state) {
  for (int m = 0; m < M; ++m) {
    const float* gate_i = gates + static_cast<long>(m) * ld_gates;
    float* c = cell + static_cast<long>(m) * ld_state;
    float* h = hidden + static_cast<long>(m) * ld_state;
    for (int j = 0; j < H; j += 16) {
      const __mmask16 mask = H - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (H - j)) - 1);
      const __m512 i = sigmoid16(_mm512_maskz_loadu_ps(mask, gate_i + j));
      const __m512 f = sigmoid16(_mm512_maskz_loadu_ps(mask, gate_i + H + j));
      const __m512 g = tanh16(_mm512_maskz_loadu_ps(mask, gate_i + 2 * H + j));
      const __m512 o = sigmoid16(_mm512_maskz_loadu_ps(mask, gate_i + 3 * H + j));
      const __m512 c_new = _mm512_add_ps(_mm512_mul_ps(f, _mm512_maskz_loadu_ps(mask, c + j)), _mm512_mul_ps(i, g));
      _mm512_mask_storeu_ps(c + j, mask, c_new);
      _mm512_mask_storeu_ps(h + j, mask, _mm512_mul_ps(o, tanh16(c_new)));
    }
  }
}

// exp8, sigmoid8, tanh8: exp16's formulas at 8 lanes for AVX2 + FMA, which has no vscalefps: 2^n is built in the
// exponent field, so the upper clamp is 88.3 (n <= 127; e^88.3 = 2.2e38), and divisions are exact vdivps (no
// 14-bit reciprocal estimate here). Results differ from the AVX-512 cell by rounding only.
MBFAST_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(kExpMin), _mm256_min_ps(_mm256_set1_ps(88.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2E)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2High), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Low), r);
  __m256 p = _mm256_set1_ps(kExpTaylor[0]);
  for (int k = 1; k < 8; ++k) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpTaylor[k]));
  // 2^n for n in [-126, 127]: (n + 127) << 23 (NaN inputs stay NaN through p)
  const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23)));
}

MBFAST_AVX2 inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

MBFAST_AVX2 inline __m256 tanh8(__m256 x) {  // 1 - 2 / (1 + e^2x), as tanh_via_exp
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(one, exp8(_mm256_add_ps(x, x)))));
}

MBFAST_AVX2 void lstm_cell_avx2(int M, int H, const float* gates, int ld_gates, float* cell, float* hidden,
                                int ld_state) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int m = 0; m < M; ++m) {
    const float* gate_i = gates + static_cast<long>(m) * ld_gates;
    float* c = cell + static_cast<long>(m) * ld_state;
    float* h = hidden + static_cast<long>(m) * ld_state;
    for (int j = 0; j < H; j += 8) {
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(H - j), lane);  // lanes before H
      const __m256 i = sigmoid8(_mm256_maskload_ps(gate_i + j, mask));
      const __m256 f = sigmoid8(_mm256_maskload_ps(gate_i + H + j, mask));
      const __m256 g = tanh8(_mm256_maskload_ps(gate_i + 2 * H + j, mask));
      const __m256 o = sigmoid8(_mm256_maskload_ps(gate_i + 3 * H + j, mask));
      const __m256 c_new = _mm256_add_ps(_mm256_mul_ps(f, _mm256_maskload_ps(c + j, mask)), _mm256_mul_ps(i, g));
      _mm256_maskstore_ps(c + j, mask, c_new);
      _mm256_maskstore_ps(h + j, mask, _mm256_mul_ps(o, tanh8(c_new)));
    }
  }
}

}  // namespace

void lstm_cell(const CpuContext&, int M, int H, const float* gates, int ld_gates, float* cell, float* hidden,
               int ld_state) {
  switch (cpu_kernel()) {
    case CpuKernel::kPortable: return lstm_cell_portable(M, H, gates, ld_gates, cell, hidden, ld_state);
    case CpuKernel::kAvx2: return lstm_cell_avx2(M, H, gates, ld_gates, cell, hidden, ld_state);
    default: return lstm_cell_avx512(M, H, gates, ld_gates, cell, hidden, ld_state);
  }
}

}  // namespace mbfast::ops

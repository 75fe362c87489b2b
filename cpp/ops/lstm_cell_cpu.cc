// CPU LSTM cell (see lstm_cell.h); mirrors the cell lines of mbfast/reference.py ReferenceModel.stack_step.
// Two versions of the same formulas: portable scalar code, and AVX-512 (16 lanes, own exp) picked with the GEMM
// kernel (ops::cpu_kernel), so one process always runs one of them.
#include "ops/lstm_cell.h"

#include <immintrin.h>

#include <cmath>

#include "ops/gemm.h"

#define MBFAST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

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

// e^x for 16 lanes: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^7 (truncation < 6e-9
// relative, below fp32 rounding), times 2^n by vscalefps. Inputs clamped to [-87.3, 88.7] (finite, normal
// results; sigmoid and tanh saturate long before); NaN passes through the clamps.
MBFAST_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.3f), _mm512_min_ps(_mm512_set1_ps(88.7f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln 2 split: hi part exact in n * hi
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
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

}  // namespace

void lstm_cell_cpu(int M, int H, const float* gates, int ld_gates, float* cell, float* hidden, int ld_state) {
  if (cpu_kernel() == CpuKernel::kPortable) lstm_cell_portable(M, H, gates, ld_gates, cell, hidden, ld_state);
  else lstm_cell_avx512(M, H, gates, ld_gates, cell, hidden, ld_state);
}

}  // namespace mbfast::ops

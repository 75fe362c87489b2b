// AVX-512 GEMM kernels (see gemm.h): fp32 with vfmadd231ps, bf16 with vdpbf16ps, on weights packed into column
// panels of 64 (4 zmm). Every function that uses AVX-512 carries a target attribute, so this file builds with the
// portable baseline flags and is only called after gemm_cpu.cc has checked the CPU (no -march=native).
//
// Register tile: up to 6 rows x 4 zmm (64 columns) = 24 accumulators. For each k (k pair for bf16) the panel row
// is loaded once and every A value is broadcast, so C[m, n] = bias[n], then one fused multiply-add per k in order
// (bf16: one vdpbf16ps per k pair): the same instructions for a row whatever M, the tile or the column split.
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

// acc += rows of A (columns k_begin..k_end of the input, `a` at k_begin) times the same panel rows, k ascending
// NV > 4: two neighbouring full panels at once (vector j in panel j / 4), more independent sums for small M.
template <int ROWS, int NV>
MBFAST_AVX512 inline void accumulate_fp32(__m512 (&acc)[ROWS][NV], int k_begin, int k_end, const float* a, int lda,
                                          const float* panel, long panel_stride) {
  constexpr int width = std::min(NV, 4) * kVector;
  for (int k = k_begin; k < k_end; ++k, ++a) {
    __m512 b[NV];
    for (int j = 0; j < NV; ++j)
      b[j] = _mm512_loadu_ps(panel + (j / 4) * panel_stride + static_cast<long>(k) * width + (j % 4) * kVector);
    for (int r = 0; r < ROWS; ++r) {
      const __m512 a_value = _mm512_set1_ps(a[static_cast<long>(r) * lda]);
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(a_value, b[j], acc[r][j]);
    }
  }
}

// One tile of C = [A1 | A2] @ panel + bias: k over A1's k1 columns, then on over A2's K - k1.
template <int ROWS, int NV>
MBFAST_AVX512 void tile_fp32(int K, int k1, const float* a1, int lda1, const float* a2, int lda2, const float* panel,
                             const float* bias, float* C, int ldc, int valid) {
  __m512 acc[ROWS][NV];
  for (int j = 0; j < NV; ++j) {
    const __m512 b = _mm512_loadu_ps(bias + j * kVector);
    for (int r = 0; r < ROWS; ++r) acc[r][j] = b;
  }
  const long panel_stride = static_cast<long>(kPanel) * K;
  accumulate_fp32<ROWS, NV>(acc, 0, k1, a1, lda1, panel, panel_stride);
  if (k1 < K) accumulate_fp32<ROWS, NV>(acc, k1, K, a2, lda2, panel, panel_stride);
  store_tile<ROWS, NV>(acc, C, ldc, valid);
}

template <int ROWS, int NV>
MBFAST_AVX512_BF16 void tile_bf16(int K_pairs, const uint32_t* A, int lda, const uint16_t* panel, const float* bias,
                                  float* C, int ldc, int valid) {
  constexpr int width = std::min(NV, 4) * kVector;
  const long panel_stride = static_cast<long>(kPanel) * K_pairs * 2;  // NV > 4: two panels, as accumulate_fp32
  __m512 acc[ROWS][NV];
  for (int j = 0; j < NV; ++j) {
    const __m512 b = _mm512_loadu_ps(bias + j * kVector);
    for (int r = 0; r < ROWS; ++r) acc[r][j] = b;
  }
  for (int k = 0; k < K_pairs; ++k) {
    __m512i b[NV];
    for (int j = 0; j < NV; ++j)
      b[j] = _mm512_loadu_si512(panel + (j / 4) * panel_stride + (static_cast<long>(k) * width + (j % 4) * kVector) * 2);
    for (int r = 0; r < ROWS; ++r) {
      const __m512i a = _mm512_set1_epi32(static_cast<int>(A[static_cast<long>(r) * lda + k]));
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)a, (__m512bh)b[j]);
    }
  }
  store_tile<ROWS, NV>(acc, C, ldc, valid);
}

// One tile's operands; the kernels are picked from tables indexed by (rows - 1, vectors - 1).
struct Fp32Args {
  int K, k1, lda1, lda2, ldc, valid;
  const float *a1, *a2, *panel, *bias;
  float* c;
};
struct Bf16Args {
  int K_pairs, lda, ldc, valid;
  const uint32_t* a;
  const uint16_t* panel;
  const float* bias;
  float* c;
};

template <int ROWS, int NV>
MBFAST_AVX512 void run_fp32(const Fp32Args& x) {
  tile_fp32<ROWS, NV>(x.K, x.k1, x.a1, x.lda1, x.a2, x.lda2, x.panel, x.bias, x.c, x.ldc, x.valid);
}

template <int ROWS, int NV>
MBFAST_AVX512_BF16 void run_bf16(const Bf16Args& x) {
  tile_bf16<ROWS, NV>(x.K_pairs, x.a, x.lda, x.panel, x.bias, x.c, x.ldc, x.valid);
}

#define MBFAST_TILE_ROW(kernel, rows) {kernel<rows, 1>, kernel<rows, 2>, kernel<rows, 3>, kernel<rows, 4>}
constexpr void (*kFp32Tiles[kMaxRows][4])(const Fp32Args&) = {
    MBFAST_TILE_ROW(run_fp32, 1), MBFAST_TILE_ROW(run_fp32, 2), MBFAST_TILE_ROW(run_fp32, 3),
    MBFAST_TILE_ROW(run_fp32, 4), MBFAST_TILE_ROW(run_fp32, 5), MBFAST_TILE_ROW(run_fp32, 6)};
constexpr void (*kBf16Tiles[kMaxRows][4])(const Bf16Args&) = {
    MBFAST_TILE_ROW(run_bf16, 1), MBFAST_TILE_ROW(run_bf16, 2), MBFAST_TILE_ROW(run_bf16, 3),
    MBFAST_TILE_ROW(run_bf16, 4), MBFAST_TILE_ROW(run_bf16, 5), MBFAST_TILE_ROW(run_bf16, 6)};
#undef MBFAST_TILE_ROW
// M <= kPairRows: two panels per tile (for_each_tile)
constexpr void (*kFp32PairTiles[kPairRows])(const Fp32Args&) = {run_fp32<1, 8>, run_fp32<2, 8>};
constexpr void (*kBf16PairTiles[kPairRows])(const Bf16Args&) = {run_bf16<1, 8>, run_bf16<2, 8>};

}  // namespace

void pack_avx512(PackedWeights& W, const float* weight_t) {
  const int K = W.K, N = W.N, N_padded = padded_columns(N);
  const int n_panels = (N_padded + kPanel - 1) / kPanel;
  if (W.precision == Precision::kFp32) {
    W.fp32.assign(size_t(K) * N_padded, 0.0f);
    for (int panel = 0; panel < n_panels; ++panel) {
      const int width = panel_width(N_padded, panel), n0 = panel * kPanel;
      float* out = W.fp32.data() + size_t(n0) * K;
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < width && n0 + j < N; ++j) out[size_t(k) * width + j] = weight_t[size_t(k) * N + n0 + j];
    }
    return;
  }
  const int K_pairs = (K + 1) / 2;
  W.bf16.assign(size_t(K_pairs) * 2 * N_padded, 0);
  for (int panel = 0; panel < n_panels; ++panel) {
    const int width = panel_width(N_padded, panel), n0 = panel * kPanel;
    uint16_t* out = W.bf16.data() + size_t(n0) * K_pairs * 2;
    for (int k = 0; k < K; ++k) {
      for (int j = 0; j < width && n0 + j < N; ++j) {
        float value = weight_t[size_t(k) * N + n0 + j];
        uint32_t bits;
        std::memcpy(&bits, &value, sizeof(bits));
        if ((bits & 0x7f800000u) != 0x7f800000u) bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
        out[(size_t(k / 2) * width + j) * 2 + k % 2] = static_cast<uint16_t>(bits >> 16);
      }
    }
  }
}

MBFAST_AVX512 void gemm_avx512_fp32(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc,
                                    int n_begin, int n_end) {
  const int K = W.K;
  for_each_tile(M, W, n_begin, n_end, [&](int rows, int vectors, int m, int panel, int valid) {
    const float* a1 = A.a1 + static_cast<long>(m) * A.lda1;
    const float* a2 = A.a2 ? A.a2 + static_cast<long>(m) * A.lda2 : nullptr;
    const float* panel_data = W.fp32.data() + size_t(panel) * kPanel * K;
    const float* bias = W.bias.data() + panel * kPanel;
    float* c = C + static_cast<long>(m) * ldc + panel * kPanel;
    const Fp32Args args{K, A.k1, A.lda1, A.lda2, ldc, valid, a1, a2, panel_data, bias, c};
    (vectors == 8 ? kFp32PairTiles[rows - 1] : kFp32Tiles[rows - 1][vectors - 1])(args);
  });
}

// count floats -> bf16 (vcvtneps2bf16: nearest even) at out[0, count)
MBFAST_AVX512_BF16 inline void to_bf16(const float* values, int count, uint16_t* out) {
  for (int k = 0; k < count; k += kVector) {
    const int left = count - k;
    const __mmask16 mask = left >= kVector ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __m256bh packed = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, values + k));
    _mm256_mask_storeu_epi16(out + k, mask, (__m256i)packed);
  }
}

MBFAST_AVX512_BF16 void gemm_avx512_bf16(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc,
                                         int n_begin, int n_end) {
  // A rounded to bf16 (vcvtneps2bf16, nearest even), rows of k pairs padded to 16 pairs
  const int K = W.K, K_pairs = (K + 1) / 2, ld_pairs = (K_pairs + kVector - 1) / kVector * kVector;
  std::vector<uint32_t>& a_pairs = gemm_scratch().a_pairs;
  if (a_pairs.size() < size_t(M) * ld_pairs) a_pairs.resize(size_t(M) * ld_pairs);
  for (int m = 0; m < M; ++m) {  // [A1 | A2] joined as it is converted; zero beyond K
    uint16_t* out = reinterpret_cast<uint16_t*>(a_pairs.data() + size_t(m) * ld_pairs);
    to_bf16(A.a1 + static_cast<long>(m) * A.lda1, A.k1, out);
    if (A.k1 < K) to_bf16(A.a2 + static_cast<long>(m) * A.lda2, K - A.k1, out + A.k1);
    for (int k = K; k < 2 * ld_pairs; ++k) out[k] = 0;
  }
  for_each_tile(M, W, n_begin, n_end, [&](int rows, int vectors, int m, int panel, int valid) {
    const uint32_t* a = a_pairs.data() + size_t(m) * ld_pairs;
    const uint16_t* panel_data = W.bf16.data() + size_t(panel) * kPanel * K_pairs * 2;
    const float* bias = W.bias.data() + panel * kPanel;
    float* c = C + static_cast<long>(m) * ldc + panel * kPanel;
    const Bf16Args args{K_pairs, ld_pairs, ldc, valid, a, panel_data, bias, c};
    (vectors == 8 ? kBf16PairTiles[rows - 1] : kBf16Tiles[rows - 1][vectors - 1])(args);
  });
}

}  // namespace mbfast::ops::detail

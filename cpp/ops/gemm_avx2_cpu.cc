// AVX2 + FMA GEMM kernel (see gemm.h) for CPUs without AVX-512 (AMD Zen 2/3, Intel before Skylake-X): the same
// 64-column panels as gemm_avx512_cpu.cc, read 8 columns (one ymm) at a time. Every function that uses AVX2 carries
// a target attribute, so this file builds with the portable baseline flags and runs only after gemm_cpu.cc has
// checked the CPU.
//
// Register tile: up to 6 rows x 2 ymm (16 columns) = 12 of the 16 ymm registers; 1 row x 8 ymm and 2 rows x 4 ymm
// when M is small (more independent sums). C[m, n] = bias[n], then one vfmadd231ps per k in order, whatever the tile:
// the same operations as the AVX-512 fp32 kernel, so both give the same bits.
//
// bf16 (no vdpbf16ps here): panels hold the weights as bf16 (half the bytes), widened to fp32 in registers (a shift
// or a mask); the input rows are rounded to bf16 as the portable emulation does. A product of two bf16 values is exact
// in fp32, so the fused multiply-add rounds exactly where the emulation's add does: same bits as the portable kernel.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/cpu_target.h"
#include "ops/gemm.h"

namespace mbfast::ops::detail {

namespace {

constexpr int kMaxRows = 6;
constexpr int kVector = 8;   // floats per ymm
constexpr int kStrip = 16;   // columns per tile of 3-6 rows; panel widths are multiples of it

int padded_columns(int N) { return (N + kStrip - 1) / kStrip * kStrip; }
int panel_width(int N_padded, int panel) { return std::min(kPanel, N_padded - panel * kPanel); }

// Two ymm of weights, columns [0, 8) and [8, 16) from `b`. bf16 panels hold each 16 columns as 8 32-bit words,
// word w = column w in its low half and column 8 + w in its high half: one load, then a shift and a mask widen
// both halves to fp32 (the bf16 bits are an fp32's high half).
MBFAST_AVX2 inline void load16(const float* b, __m256& low, __m256& high) {
  low = _mm256_loadu_ps(b);
  high = _mm256_loadu_ps(b + kVector);
}
MBFAST_AVX2 inline void load16(const uint16_t* b, __m256& low, __m256& high) {
  const __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  low = _mm256_castsi256_ps(_mm256_slli_epi32(words, 16));
  high = _mm256_castsi256_ps(_mm256_and_si256(words, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
}

// Stores the ROWS x NV tile; columns at or past `valid` (relative to the tile start) are padding, not written.
template <int ROWS, int NV>
MBFAST_AVX2 inline void store_tile(__m256 (&acc)[ROWS][NV], float* C, int ldc, int valid) {
  for (int j = 0; j < NV; ++j) {
    const int left = valid - j * kVector;
    if (left <= 0) break;
    if (left >= kVector) {
      for (int r = 0; r < ROWS; ++r) _mm256_storeu_ps(C + static_cast<long>(r) * ldc + j * kVector, acc[r][j]);
    } else {
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      for (int r = 0; r < ROWS; ++r) _mm256_maskstore_ps(C + static_cast<long>(r) * ldc + j * kVector, mask, acc[r][j]);
    }
  }
}

// acc += rows of A (input columns k_begin..k_end, `a` at k_begin) times the same panel rows, k ascending.
template <typename Weight, int ROWS, int NV>
MBFAST_AVX2 inline void accumulate(__m256 (&acc)[ROWS][NV], int k_begin, int k_end, const float* a, int lda,
                                   const Weight* b, int width) {
  static_assert(NV % 2 == 0, "tiles are whole 16-column strips");
  for (int k = k_begin; k < k_end; ++k, ++a) {
    const Weight* b_row = b + static_cast<long>(k) * width;
    __m256 b_lanes[NV];
    for (int j = 0; j < NV; j += 2) load16(b_row + j * kVector, b_lanes[j], b_lanes[j + 1]);
    for (int r = 0; r < ROWS; ++r) {
      // set1 from a value, not _mm256_broadcast_ss(pointer): with the latter GCC stored acc to the stack every k
      const __m256 a_value = _mm256_set1_ps(a[static_cast<long>(r) * lda]);
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm256_fmadd_ps(a_value, b_lanes[j], acc[r][j]);
    }
  }
}

// One tile's operands: rows of [A1 | A2], NV * 8 columns of a panel starting at `b` (panel row stride `width`).
template <typename Weight>
struct TileArgs {
  int K, k1, lda1, lda2, ldc, width, valid;
  const float *a1, *a2;
  const Weight* b;
  const float* bias;
  float* c;
};

template <typename Weight, int ROWS, int NV>
MBFAST_AVX2 void run_tile(const TileArgs<Weight>& x) {
  __m256 acc[ROWS][NV];
  for (int j = 0; j < NV; ++j) {
    const __m256 bias = _mm256_loadu_ps(x.bias + j * kVector);
    for (int r = 0; r < ROWS; ++r) acc[r][j] = bias;
  }
  accumulate<Weight, ROWS, NV>(acc, 0, x.k1, x.a1, x.lda1, x.b, x.width);
  if (x.k1 < x.K) accumulate<Weight, ROWS, NV>(acc, x.k1, x.K, x.a2, x.lda2, x.b, x.width);
  store_tile<ROWS, NV>(acc, x.c, x.ldc, x.valid);
}

// Tiles of 16 columns by rows (1..6), and the wide ones for 1 and 2 rows (64 and 32 columns).
template <typename Weight>
struct Tiles {
  static constexpr void (*narrow[kMaxRows])(const TileArgs<Weight>&) = {
      run_tile<Weight, 1, 2>, run_tile<Weight, 2, 2>, run_tile<Weight, 3, 2>,
      run_tile<Weight, 4, 2>, run_tile<Weight, 5, 2>, run_tile<Weight, 6, 2>};
  static constexpr void (*one_row)(const TileArgs<Weight>&) = run_tile<Weight, 1, 8>;
  static constexpr void (*two_rows)(const TileArgs<Weight>&) = run_tile<Weight, 2, 4>;
};

// Panels of [n_begin, n_end) outermost. M <= 2 (streaming): one wide tile per panel (or 16-column strips on a
// narrower last panel). Otherwise 16-column strips, each run down all row blocks of 6 while its K x 16 weights
// (one cache line per k) stay in L1.
template <typename Weight>
void gemm_panels(int M, const GemmInput& A, const PackedWeights& W, const Weight* packed, float* C, int ldc,
                 int n_begin, int n_end) {
  const int K = W.K, N_padded = padded_columns(W.N);
  const int wide_columns = M == 1 ? 64 : M == 2 ? 32 : kStrip;
  for (int panel = n_begin / kPanel; panel * kPanel < n_end; ++panel) {
    const int width = panel_width(N_padded, panel), n0 = panel * kPanel;
    const int valid = std::min(n_end, W.N) - n0;
    const Weight* panel_data = packed + size_t(n0) * K;
    for (int col = 0; col < width && col < valid;) {
      const int columns = width - col >= wide_columns ? wide_columns : kStrip;
      for (int m = 0; m < M; m += kMaxRows) {
        const int rows = std::min(kMaxRows, M - m);
        const TileArgs<Weight> args{K, A.k1, A.lda1, A.lda2, ldc, width, valid - col,
                                    A.a1 + static_cast<long>(m) * A.lda1,
                                    A.a2 ? A.a2 + static_cast<long>(m) * A.lda2 : nullptr,
                                    panel_data + col, W.bias.data() + n0 + col,
                                    C + static_cast<long>(m) * ldc + n0 + col};
        if (columns == 64) Tiles<Weight>::one_row(args);
        else if (columns == 32) Tiles<Weight>::two_rows(args);
        else Tiles<Weight>::narrow[rows - 1](args);
      }
      col += columns;
    }
  }
}

// count floats rounded to bf16 (nearest even; NaN and inf kept), still as fp32: the portable emulation's round_to_bf16
MBFAST_AVX2 void round_to_bf16(const float* values, int count, float* out) {
  const __m256i exponent = _mm256_set1_epi32(0x7f800000), half = _mm256_set1_epi32(0x7fff);
  const __m256i one = _mm256_set1_epi32(1), high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  int k = 0;
  for (; k + kVector <= count; k += kVector) {
    const __m256i bits = _mm256_castps_si256(_mm256_loadu_ps(values + k));
    const __m256i finite = _mm256_xor_si256(_mm256_cmpeq_epi32(_mm256_and_si256(bits, exponent), exponent),
                                            _mm256_set1_epi32(-1));
    const __m256i rounding = _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(bits, 16), one));
    const __m256i rounded = _mm256_add_epi32(bits, _mm256_and_si256(rounding, finite));
    _mm256_storeu_ps(out + k, _mm256_castsi256_ps(_mm256_and_si256(rounded, high)));
  }
  for (; k < count; ++k) {
    uint32_t bits;
    std::memcpy(&bits, values + k, sizeof(bits));
    if ((bits & 0x7f800000u) != 0x7f800000u) bits += 0x7fffu + ((bits >> 16) & 1u);
    bits &= 0xffff0000u;
    std::memcpy(out + k, &bits, sizeof(bits));
  }
}

}  // namespace

void pack_avx2(PackedWeights& W, const float* weight_t) {
  if (W.precision == Precision::kFp32) return pack_avx512(W, weight_t);  // the same fp32 panels
  const int K = W.K, N = W.N, N_padded = padded_columns(N);
  W.bf16.assign(size_t(K) * N_padded, 0);
  for (int n0 = 0; n0 < N_padded; n0 += kPanel) {
    const int width = panel_width(N_padded, n0 / kPanel);
    uint16_t* out = W.bf16.data() + size_t(n0) * K;
    for (int k = 0; k < K; ++k) {
      for (int j = 0; j < width && n0 + j < N; ++j) {
        uint32_t bits;
        std::memcpy(&bits, weight_t + size_t(k) * N + n0 + j, sizeof(bits));
        if ((bits & 0x7f800000u) != 0x7f800000u) bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
        out[size_t(k) * width + j / kStrip * kStrip + j % kVector * 2 + j % kStrip / kVector] =
            static_cast<uint16_t>(bits >> 16);  // load16's order: (column w, column 8 + w) per 32-bit word
      }
    }
  }
}

MBFAST_AVX2 void gemm_avx2(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin,
                           int n_end) {
  if (W.precision == Precision::kFp32) return gemm_panels(M, A, W, W.fp32.data(), C, ldc, n_begin, n_end);
  // bf16: [A1 | A2] joined and rounded to bf16 first, as the portable emulation does
  const int K = W.K;
  std::vector<float>& joined = gemm_scratch().joined;
  if (joined.size() < size_t(M) * K) joined.resize(size_t(M) * K);
  for (int m = 0; m < M; ++m) {
    float* row = joined.data() + size_t(m) * K;
    round_to_bf16(A.a1 + static_cast<long>(m) * A.lda1, A.k1, row);
    if (A.k1 < K) round_to_bf16(A.a2 + static_cast<long>(m) * A.lda2, K - A.k1, row + A.k1);
  }
  gemm_panels(M, GemmInput{joined.data(), K, K, nullptr, 0}, W, W.bf16.data(), C, ldc, n_begin, n_end);
}

}  // namespace mbfast::ops::detail

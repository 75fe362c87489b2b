// Portable fp32 GEMM (see gemm.h): 4-row x 8-column register tiles in GCC/Clang vector types, SSE2 on baseline
// x86-64. Also the kernel choice (cpuid, MBFAST_KERNEL), weight packing and the dispatch to the AVX2 and AVX-512
// kernels (gemm_avx2_cpu.cc, gemm_avx512_cpu.cc: the same per-element summation order within each kernel) and to
// the int8 ones (gemm_int8_cpu.cc, gemm_int8_avx512_cpu.cc: the same bits on every kernel).
#include "ops/gemm.h"

#include "column_team.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

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
void row_block(int N, int K, const float* A, int lda, const float* B, const float* bias, float* C, int ldc,
               int n_begin, int n_end) {
  int n0 = n_begin;
  for (; n0 + kTileCols <= n_end; n0 += kTileCols) tile_full<ROWS>(N, K, A, lda, B, bias, C, ldc, n0);
  if (n0 < n_end) tile_edge(ROWS, N, K, A, lda, B, bias, C, ldc, n0, n_end - n0);
}

void gemm_portable(int M, const float* A, int lda, const PackedWeights& W, float* C, int ldc, int n_begin,
                   int n_end) {
  const int N = W.N, K = W.K;
  const float* B = W.fp32.data();
  const float* bias = W.bias.data();
  int m = 0;
  for (; m + kTileRows <= M; m += kTileRows)
    row_block<kTileRows>(N, K, A + static_cast<long>(m) * lda, lda, B, bias, C + static_cast<long>(m) * ldc, ldc,
                         n_begin, n_end);
  for (; m < M; ++m)
    row_block<1>(N, K, A + static_cast<long>(m) * lda, lda, B, bias, C + static_cast<long>(m) * ldc, ldc, n_begin,
                 n_end);
}

// fp32 -> bfloat16 -> fp32, round to nearest even (what vcvtneps2bf16 does for normal numbers).
float round_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7f800000u) != 0x7f800000u) bits += 0x7fffu + ((bits >> 16) & 1u);  // NaN and inf stay as they are
  bits &= 0xffff0000u;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// The portable kernel on [A1 | A2]: copied together first (rounded to bf16 for the bf16 emulation, then the fp32
// kernel on bf16-rounded weights: a product of two bf16 numbers is exact in fp32, so only the additions round).
void gemm_portable_input(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin,
                         int n_end) {
  const bool bf16 = W.precision == Precision::kBf16;
  if (!bf16 && (A.a2 == nullptr || A.k1 == W.K)) return gemm_portable(M, A.a1, A.lda1, W, C, ldc, n_begin, n_end);
  std::vector<float>& joined = detail::gemm_scratch().joined;
  const int K = W.K;
  if (joined.size() < size_t(M) * K) joined.resize(size_t(M) * K);
  for (int m = 0; m < M; ++m) {
    float* row = joined.data() + size_t(m) * K;
    for (int k = 0; k < A.k1; ++k) row[k] = A.a1[static_cast<long>(m) * A.lda1 + k];
    for (int k = A.k1; k < K; ++k) row[k] = A.a2[static_cast<long>(m) * A.lda2 + k - A.k1];
    if (bf16)
      for (int k = 0; k < K; ++k) row[k] = round_to_bf16(row[k]);
  }
  gemm_portable(M, joined.data(), K, W, C, ldc, n_begin, n_end);
}

CpuKernel detect_kernel() {
  const CpuKernel best = best_cpu_kernel();
  const char* forced = std::getenv("MBFAST_KERNEL");
  if (!forced || !*forced) return best;
  const std::string name = forced;
  CpuKernel asked;
  if (name == "portable") asked = CpuKernel::kPortable;
  else if (name == "avx2") asked = CpuKernel::kAvx2;
  else if (name == "avx512") asked = CpuKernel::kAvx512;
  else if (name == "avx512_vnni") asked = CpuKernel::kAvx512Vnni;
  else if (name == "avx512_bf16") asked = CpuKernel::kAvx512Bf16;
  else
    throw std::invalid_argument("MBFAST_KERNEL must be portable, avx2, avx512, avx512_vnni or avx512_bf16, got '" +
                                name + "'");
  if (static_cast<int>(asked) > static_cast<int>(best))
    throw std::invalid_argument("MBFAST_KERNEL=" + name + " but this CPU only supports " + kernel_name(best));
  return asked;
}

}  // namespace

// The one place the CPU's features are read (ops/cpu_target.h lists what each kernel is compiled for).
CpuKernel best_cpu_kernel() {
  CpuKernel best = CpuKernel::kPortable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("fma");
  if (avx512) {
    best = CpuKernel::kAvx512;
    if (__builtin_cpu_supports("avx512vnni"))
      best = __builtin_cpu_supports("avx512bf16") ? CpuKernel::kAvx512Bf16 : CpuKernel::kAvx512Vnni;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    best = CpuKernel::kAvx2;
  }
#endif
  return best;
}

CpuKernel cpu_kernel() {
  static const CpuKernel kernel = detect_kernel();
  return kernel;
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::kBf16: return "bf16";
    case Precision::kFp16: return "fp16";
    case Precision::kInt8: return "int8";
    default: return "fp32";
  }
}

Precision parse_precision(const std::string& name) {
  for (Precision precision : {Precision::kFp32, Precision::kBf16, Precision::kFp16, Precision::kInt8})
    if (name == precision_name(precision)) return precision;
  throw std::invalid_argument("precision must be 'fp32', 'bf16', 'fp16' or 'int8', got '" + name + "'");
}

const char* kernel_name(CpuKernel kernel) {
  switch (kernel) {
    case CpuKernel::kAvx2: return "avx2";
    case CpuKernel::kAvx512: return "avx512";
    case CpuKernel::kAvx512Vnni: return "avx512_vnni";
    case CpuKernel::kAvx512Bf16: return "avx512_bf16";
    default: return "portable";
  }
}


PackedWeights pack_weights(int K, int N, int k1, const float* weight_t, const float* bias, Precision precision,
                           CpuKernel kernel) {
  if (k1 < 0 || k1 > K) throw std::invalid_argument("pack_weights: k1 must be in [0, K]");
  PackedWeights W;
  W.K = K;
  W.N = N;
  W.k1 = k1;
  W.precision = precision;
  // bf16 needs vdpbf16ps for the AVX-512 layout; avx512(_vnni) without it runs the AVX2 bf16 kernel (the
  // emulation's bits)
  if (precision == Precision::kBf16 && (kernel == CpuKernel::kAvx512 || kernel == CpuKernel::kAvx512Vnni))
    kernel = CpuKernel::kAvx2;
  // int8 needs vpdpbusd; below it (avx2 included) the portable int8 kernel, which gives the same bits
  if (precision == Precision::kInt8)
    kernel = kernel >= CpuKernel::kAvx512Vnni ? CpuKernel::kAvx512Vnni : CpuKernel::kPortable;
  W.kernel = kernel;
  W.bias.assign((N + 15) / 16 * 16, 0.0f);
  std::memcpy(W.bias.data(), bias, sizeof(float) * N);
  if (precision == Precision::kInt8) {
    detail::pack_int8(W, weight_t);
  } else if (kernel == CpuKernel::kPortable) {
    W.fp32.assign(weight_t, weight_t + size_t(K) * N);
    if (precision == Precision::kBf16)
      for (float& value : W.fp32) value = round_to_bf16(value);
  } else if (kernel == CpuKernel::kAvx2) {
    detail::pack_avx2(W, weight_t);
  } else {
    detail::pack_avx512(W, weight_t);
  }
  return W;
}

void gemm_bias_cpu_columns(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin,
                           int n_end) {
  if (M <= 0 || n_begin >= n_end) return;
  if (W.precision == Precision::kInt8) {
    if (A.k1 != W.k1) throw std::logic_error("int8 GEMM: input block k1 differs from the packed weights' k1");
    if (W.kernel == CpuKernel::kAvx512Vnni) detail::gemm_int8_vnni(M, A, W, C, ldc, n_begin, n_end);
    else detail::gemm_int8_portable(M, A, W, C, ldc, n_begin, n_end);
    return;
  }
  if (W.kernel == CpuKernel::kPortable) gemm_portable_input(M, A, W, C, ldc, n_begin, n_end);
  else if (W.kernel == CpuKernel::kAvx2) detail::gemm_avx2(M, A, W, C, ldc, n_begin, n_end);
  else if (W.precision == Precision::kBf16) detail::gemm_avx512_bf16(M, A, W, C, ldc, n_begin, n_end);
  else detail::gemm_avx512_fp32(M, A, W, C, ldc, n_begin, n_end);
}

void gemm_bias_cpu(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc) {
  gemm_bias_cpu_columns(M, A, W, C, ldc, 0, W.N);
}

void gemm_bias(const CpuContext& context, int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc) {
  if (context.team) context.team->gemm(M, A, W, C, ldc);
  else gemm_bias_cpu(M, A, W, C, ldc);
}

namespace detail {

GemmScratch& gemm_scratch() {
  thread_local GemmScratch scratch;
  return scratch;
}

}  // namespace detail

void reserve_gemm_scratch(int M, int K) {
  detail::GemmScratch& scratch = detail::gemm_scratch();
  const size_t rows = size_t(M), pairs = size_t(K) / 2 + 32, int8_bytes = size_t(K) + 8;
  if (scratch.joined.size() < rows * K) scratch.joined.resize(rows * K);
  if (scratch.a_pairs.size() < rows * pairs) scratch.a_pairs.resize(rows * pairs);
  detail::Int8Rows& int8 = scratch.int8_rows;
  if (int8.values.size() < rows * int8_bytes) int8.values.resize(rows * int8_bytes);
  if (int8.scale.size() < rows * 2) {
    int8.scale.resize(rows * 2);
    int8.offset.resize(rows * 2);
  }
}

}  // namespace mbfast::ops

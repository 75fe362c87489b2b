// Dense matrix products for the batched LSTM gates and FFNN layers: C = A @ W + bias, W packed once at load.
// Not a general BLAS: one entry point whose CPU kernel (portable, AVX2, AVX-512, AVX-512 VNNI, AVX-512 BF16) is
// chosen once per process, so kernels can be tuned without touching callers. Kernel sources: gemm_cpu.cc (portable,
// dispatch), gemm_avx2_cpu.cc (AVX2 + FMA fp32 and bf16), gemm_avx512_cpu.cc (AVX-512 fp32 and bf16),
// gemm_int8_cpu.cc (int8 packing, quantisation, portable int8) and gemm_int8_avx512_cpu.cc (int8 with vpdpbusd); the
// SIMD ones are compiled per function with target attributes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/device.h"

namespace mbfast::ops {

// The instruction set the CPU kernels of this process use: the best the CPU has, unless the environment variable
// MBFAST_KERNEL=portable|avx2|avx512|avx512_vnni|avx512_bf16 asks for a lower one (tests use it to check every
// fallback). Ordered from the lowest: a CPU that runs one kernel runs every kernel before it (every CPU with
// AVX512_BF16 also has AVX512_VNNI: Cooper Lake, Sapphire Rapids, Zen 4). kAvx512Vnni adds vpdpbusd for int8 only;
// fp32 and bf16 run there as on kAvx512.
enum class CpuKernel { kPortable, kAvx2, kAvx512, kAvx512Vnni, kAvx512Bf16 };
CpuKernel best_cpu_kernel();            // the best this CPU runs (MBFAST_KERNEL not applied)
CpuKernel cpu_kernel();                 // decided on first use, then fixed for the process
const char* kernel_name(CpuKernel kernel);  // "portable", "avx2", "avx512", "avx512_vnni", "avx512_bf16"

// Storage and arithmetic of the weights. kBf16: weights and the GEMM inputs rounded to bfloat16, products summed
// in fp32 (vdpbf16ps where the CPU has it; the AVX2 and portable kernels widen the bf16 values to fp32, where their
// products are exact). kInt8: weights quantised per output column and input block, GEMM inputs per row and block
// (symmetric, scale = max |value| / 127), products summed exactly in int32 and scaled back in fp32 (vpdpbusd from
// kAvx512Vnni up; below it a portable kernel with the same bits). kFp16: IEEE half weights, CUDA only (tensor
// cores). Everything else stays fp32. The CPU runs kFp32, kBf16 and kInt8; CUDA kFp32, kBf16 and kFp16.
enum class Precision { kFp32, kBf16, kFp16, kInt8 };
inline constexpr Precision kCpuPrecisions[] = {Precision::kFp32, Precision::kBf16, Precision::kInt8};
inline constexpr Precision kCudaPrecisions[] = {Precision::kFp32, Precision::kBf16, Precision::kFp16};
// The names Python uses ("fp32", "bf16", "fp16", "int8"; mbfast._core.CPU_PRECISIONS / CUDA_PRECISIONS list them).
const char* precision_name(Precision precision);
Precision parse_precision(const std::string& name);  // throws std::invalid_argument naming the four

// W (K, N) and its bias laid out for one kernel and precision (pack_weights); kernels read nothing else.
struct PackedWeights {
  int K = 0, N = 0;
  int k1 = 0;                     // width of the GEMM input's first block (GemmInput::k1); int8 quantises per block
  CpuKernel kernel = CpuKernel::kPortable;
  Precision precision = Precision::kFp32;
  std::vector<float> bias;        // (N rounded up to 16,) zero padded
  std::vector<float> fp32;        // portable: (K, N) row-major; avx2, avx512: column panels, each (K, width)
  std::vector<uint16_t> bf16;     // avx512_bf16: column panels, each (K / 2 rounded up, width, 2): k pairs;
                                  // avx2: column panels, each (K, width)
  std::vector<uint8_t> int8;      // int8 (every kernel): column panels, each (K4, width, 4) of W_q + 128, K4 = each
                                  // block's k range padded to a multiple of 4 separately (padding W_q = 0)
  std::vector<float> scale;       // int8: (2, N rounded up to 16) per block and column: max |W| / 127
};

// weight_t (K, N) row-major and bias (N,) -> the layout `kernel` reads for `precision`. k1: the width of the first
// block of the GemmInput this product will get (K when it has one block); only int8 depends on it.
PackedWeights pack_weights(int K, int N, int k1, const float* weight_t, const float* bias, Precision precision,
                           CpuKernel kernel);

// The GEMM input as two column blocks side by side, [A1 | A2] (M, K): the LSTM gates read [x | h] where x and h
// live, without copying them together. Row m is A1[m, 0:k1] then A2[m, 0:K - k1]; a2 may be null when k1 = K.
struct GemmInput {
  const float* a1 = nullptr;
  int lda1 = 0, k1 = 0;
  const float* a2 = nullptr;
  int lda2 = 0;
};

// C (M, N; row stride ldc) = A (M, K; row stride lda) @ W + bias.
// Every C[m, n] is computed by the same float operations whatever M and wherever row m sits in A (fp32: bias[n],
// then A[m, k] * W[k, n] added for k = 0, 1, ... in order; bf16: the same over k pairs; int8: row m quantised from
// row m alone, exact integer sums, then bias[n] and one fma per block): a row's result never depends on the other
// rows, which is what makes Engine results independent of batch composition and thread count. Faster kernels must
// keep this property. For int8, A.k1 must be the k1 the weights were packed with.
void gemm_bias_cpu(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc);  // [A1 | A2] @ W + bias
// Only columns [n_begin, n_end) of C, n_begin a multiple of kGemmPanel (n_end too, or W.N): each column exactly as
// gemm_bias_cpu computes it, so threads may split one product by columns (column_team.h).
constexpr int kGemmPanel = 64;
void gemm_bias_cpu_columns(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin,
                           int n_end);
// The kernels keep per-thread scratch ([A1 | A2] joined, bf16 pairs, int8 rows) that grows on first use; this sizes
// the calling thread's for products of up to M rows and K inputs, so that they allocate nothing (Engine::advance).
void reserve_gemm_scratch(int M, int K);

namespace detail {  // the AVX2 and AVX-512 kernels (gemm_avx2_cpu.cc, gemm_avx512_cpu.cc); callers use gemm_bias_cpu
// Both compute columns [n_begin, n_end) of C (n_begin a multiple of kPanel); each column as gemm_bias_cpu would.
constexpr int kPanel = kGemmPanel;  // columns per packed panel: 4 zmm registers
void pack_avx512(PackedWeights& W, const float* weight_t);
void gemm_avx512_fp32(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin, int n_end);
void gemm_avx512_bf16(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin, int n_end);
void pack_avx2(PackedWeights& W, const float* weight_t);  // fp32: pack_avx512's panels; bf16: (K, width) panels
void gemm_avx2(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin, int n_end);

// int8 (gemm_int8_cpu.cc): one layout for every kernel, so the portable and VNNI kernels read the same integers.
void pack_int8(PackedWeights& W, const float* weight_t);
// Rows of [A1 | A2] quantised for the int8 kernels, each row and block on its own: scale = max |a| / 127 (0 for an
// all-zero block), q = round-half-even(a * (127 / max |a|)) in [-127, 127].
struct Int8Rows {
  int ld = 0;                   // bytes per row: block 1 padded to a multiple of 4, then block 2 the same (zeros)
  std::vector<int8_t> values;   // (M, ld)
  std::vector<float> scale;     // (M, 2): block 1, block 2
  std::vector<int32_t> offset;  // (M, 2): 128 * sum of the block's q: what W_q + 128 adds to the integer sum
};
// One block of one row: a (count,) -> q (count, then zeros up to a multiple of 4), its scale and offset. The portable
// and AVX-512 versions do the same float operations (max |a|; one division 127 / max; a * that, rounded half to even)
// so both give the same bytes.
using QuantizeBlock = void (*)(const float* a, int count, int8_t* q, float& scale, int32_t& offset);
void quantize_block(const float* a, int count, int8_t* q, float& scale, int32_t& offset);  // portable
void quantize_rows(int M, const GemmInput& A, const PackedWeights& W, Int8Rows& rows, QuantizeBlock block);
// This thread's scratch of the kernels (reserve_gemm_scratch).
struct GemmScratch {
  std::vector<float> joined;      // (M, K) [A1 | A2], rounded to bf16 for the bf16 kernels without vdpbf16ps
  std::vector<uint32_t> a_pairs;  // (M, K / 2 padded) bf16 pairs for avx512_bf16
  Int8Rows int8_rows;
};
GemmScratch& gemm_scratch();
int int8_groups(int k);  // k values -> groups of 4 (k rounded up to a multiple of 4, / 4)
void gemm_int8_portable(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin,
                        int n_end);
void gemm_int8_vnni(int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc, int n_begin, int n_end);
}  // namespace detail

// W (K, N) and its bias in GPU memory (uploaded by CudaState): W row-major, fp32 or bf16/fp16 bits.
struct CudaWeights {
  int K = 0, N = 0;
  Precision precision = Precision::kFp32;
  const void* weight = nullptr;
  const float* bias = nullptr;
};

// C (M, N; row stride ldc) = [A1 | A2] (M, K) @ W + bias on the context's device: the model step's one GEMM.
// CPU: gemm_bias_cpu, split by columns over the context's team when it has one (same values either way). CUDA
// (gemm_cuda.cu): bf16/fp16 W rounds A to W's type as it is read and sums in fp32 on tensor cores; not batch-order
// exact like the CPU: the GPU sums in its own order (fused multiply-adds).
void gemm_bias(const CpuContext& context, int M, const GemmInput& A, const PackedWeights& W, float* C, int ldc);
void gemm_bias(const CudaContext& context, int M, const GemmInput& A, const CudaWeights& W, float* C, int ldc);
// `count` fp32 weights -> bf16/fp16 (round to nearest even) in `out`; nothing for kFp32.
void convert_weights_cuda(CUstream_st* stream, long long count, const float* weights, void* out, Precision dtype);

}  // namespace mbfast::ops

// CUDA GEMM (see gemm.h): C = [A1 | A2] @ W + bias for the LSTM gates and FFNN layers on a GPU. Two kernels:
// fp32 on CUDA cores (shared-memory tiles, 4 x 4 outputs per thread) and bf16/fp16 W on tensor cores (WMMA,
// fp32 accumulation). Not cuBLAS: the toolkit on our build machines ships without it, and these products are
// skinny (K <= a few hundred, N <= 4H), where a plain tiled kernel is within a small factor of the library.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <stdexcept>
#include <string>

#include "ops/gemm.h"

namespace mbfast::ops {

namespace {

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA launch of ") + what + ": " + cudaGetErrorString(status));
}

// ---- fp32: block tile 64 x 64, k tile 16, 256 threads each owning a 4 x 4 block of C --------------------------
constexpr int kTile = 64;
constexpr int kTileK = 16;
constexpr int kThreads = 256;

// A[row, k] of the input [A1 | A2]: the LSTM gates read [x | h] where x and h live
__device__ __forceinline__ float load_a(const GemmInput& A, int row, int k) {
  return k < A.k1 ? A.a1[static_cast<long long>(row) * A.lda1 + k]
                  : A.a2[static_cast<long long>(row) * A.lda2 + (k - A.k1)];
}

__global__ void gemm_fp32_kernel(int M, int N, int K, GemmInput A, const float* __restrict__ W,
                                 const float* __restrict__ bias, float* __restrict__ C, int ldc) {
  __shared__ float a_tile[kTileK][kTile + 4];  // transposed: a_tile[k][m]
  __shared__ float w_tile[kTileK][kTile];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;  // this thread's C block: rows ty*4.., columns tx*4..
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  float acc[4][4];
  for (int j = 0; j < 4; ++j) {  // bias first, as the CPU kernel sums
    const int col = col0 + tx * 4 + j;
    const float b = col < N ? bias[col] : 0.0f;
    for (int i = 0; i < 4; ++i) acc[i][j] = b;
  }
  for (int k0 = 0; k0 < K; k0 += kTileK) {
    for (int e = tid; e < kTile * kTileK; e += kThreads) {
      const int m = e / kTileK, k = e % kTileK;
      const int row = row0 + m, kk = k0 + k;
      a_tile[k][m] = row < M && kk < K ? load_a(A, row, kk) : 0.0f;
    }
    for (int e = tid; e < kTile * kTileK; e += kThreads) {
      const int k = e / kTile, n = e % kTile;
      const int kk = k0 + k, col = col0 + n;
      w_tile[k][n] = kk < K && col < N ? W[static_cast<long long>(kk) * N + col] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTileK; ++k) {
      float a[4], w[4];
      for (int i = 0; i < 4; ++i) a[i] = a_tile[k][ty * 4 + i];
      for (int j = 0; j < 4; ++j) w[j] = w_tile[k][tx * 4 + j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    const int row = row0 + ty * 4 + i;
    if (row >= M) continue;
    for (int j = 0; j < 4; ++j) {
      const int col = col0 + tx * 4 + j;
      if (col < N) C[static_cast<long long>(row) * ldc + col] = acc[i][j];
    }
  }
}

// ---- bf16/fp16 W: block tile 64 x 64, k tile 16, 4 warps each owning 32 x 32 (2 x 2 WMMA 16x16x16 tiles) -----
// A is rounded to W's type as it is staged in shared memory; tiles are zero padded, so any M, N, K works.
constexpr int kWarps = 4;
constexpr int kPadHalf = 8;   // rows of 16-bit tiles stay 32-byte aligned and ldm a multiple of 8
constexpr int kPadFloat = 4;

template <typename T>
__device__ T to_weight_type(float x);
template <>
__device__ __half to_weight_type<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __nv_bfloat16 to_weight_type<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <typename T>
__global__ void gemm_wmma_kernel(int M, int N, int K, GemmInput A, const T* __restrict__ W,
                                 const float* __restrict__ bias, float* __restrict__ C, int ldc) {
  using namespace nvcuda;
  __shared__ __align__(32) T a_tile[kTile][kTileK + kPadHalf];
  __shared__ __align__(32) T w_tile[kTileK][kTile + kPadHalf];
  __shared__ __align__(32) float c_tile[kTile][kTile + kPadFloat];
  const int tid = threadIdx.x, warp = tid / 32;
  const int warp_row = (warp / 2) * 32, warp_col = (warp % 2) * 32;
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  for (int k0 = 0; k0 < K; k0 += kTileK) {
    for (int e = tid; e < kTile * kTileK; e += kWarps * 32) {
      const int m = e / kTileK, k = e % kTileK;
      const int row = row0 + m, kk = k0 + k;
      a_tile[m][k] = to_weight_type<T>(row < M && kk < K ? load_a(A, row, kk) : 0.0f);
    }
    for (int e = tid; e < kTile * kTileK; e += kWarps * 32) {
      const int k = e / kTile, n = e % kTile;
      const int kk = k0 + k, col = col0 + n;
      w_tile[k][n] = kk < K && col < N ? W[static_cast<long long>(kk) * N + col] : to_weight_type<T>(0.0f);
    }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[2];
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> w[2];
    for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a[i], &a_tile[warp_row + i * 16][0], kTileK + kPadHalf);
    for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(w[j], &w_tile[0][warp_col + j * 16], kTile + kPadHalf);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], w[j], acc[i][j]);
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&c_tile[warp_row + i * 16][warp_col + j * 16], acc[i][j], kTile + kPadFloat,
                              wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < kTile * kTile; e += kWarps * 32) {
    const int m = e / kTile, n = e % kTile;
    const int row = row0 + m, col = col0 + n;
    if (row < M && col < N) {
      C[static_cast<long long>(row) * ldc + col] = c_tile[m][n] + bias[col];
    }
  }
}

template <typename T>
__global__ void convert_kernel(long long count, const float* __restrict__ in, T* __restrict__ out) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = to_weight_type<T>(in[i]);
}

}  // namespace

void convert_weights_cuda(CUstream_st* stream, long long count, const float* weights, void* out, Precision dtype) {
  if (count <= 0 || dtype == Precision::kFp32) return;
  const unsigned blocks = static_cast<unsigned>((count + 255) / 256);
  if (dtype == Precision::kBf16)
    convert_kernel<<<blocks, 256, 0, stream>>>(count, weights, static_cast<__nv_bfloat16*>(out));
  else
    convert_kernel<<<blocks, 256, 0, stream>>>(count, weights, static_cast<__half*>(out));
  check_launch("convert_weights");
}

void gemm_bias(const CudaContext& context, int M, const GemmInput& A, const CudaWeights& W, float* C, int ldc) {
  const int N = W.N, K = W.K;
  if (M <= 0 || N <= 0) return;
  const dim3 grid((N + kTile - 1) / kTile, (M + kTile - 1) / kTile);
  cudaStream_t stream = context.stream;
  switch (W.precision) {
    case Precision::kBf16:
      gemm_wmma_kernel<__nv_bfloat16><<<grid, kWarps * 32, 0, stream>>>(
          M, N, K, A, static_cast<const __nv_bfloat16*>(W.weight), W.bias, C, ldc);
      break;
    case Precision::kFp16:
      gemm_wmma_kernel<__half><<<grid, kWarps * 32, 0, stream>>>(M, N, K, A, static_cast<const __half*>(W.weight),
                                                                 W.bias, C, ldc);
      break;
    default:  // kFp32 (int8 is refused before any weight reaches the GPU)
      gemm_fp32_kernel<<<grid, kThreads, 0, stream>>>(M, N, K, A, static_cast<const float*>(W.weight), W.bias, C,
                                                       ldc);
      break;
  }
  check_launch("gemm_bias");
}

}  // namespace mbfast::ops

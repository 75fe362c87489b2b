// CUDA versions of the row-wise ops (see rowwise.h): one warp per row for the reductions (LayerNorm, softmax), one
// thread per element for the layer mix. fp32 statistics (the CPU op uses double): the difference is far below the
// 1e-4 CUDA-vs-CPU tolerance.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "ops/rowwise.h"

namespace mbfast::ops {

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA launch of ") + what + ": " + cudaGetErrorString(status));
}

__device__ float warp_sum(float value) {
  for (int delta = 16; delta > 0; delta /= 2) value += __shfl_xor_sync(0xffffffffu, value, delta);
  return value;
}

__device__ float warp_max(float value) {
  for (int delta = 16; delta > 0; delta /= 2) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, delta));
  return value;
}

// Each element is read and written by the same lane after both reductions, so y may alias x.
__global__ void layer_norm_kernel(int M, int H, const float* x, int ld, const float* add, int ld_add,
                                  const float* __restrict__ weight, const float* __restrict__ bias, float eps,
                                  float* y, int ld_out) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= M) return;  // the whole warp leaves together: the shuffles below see all 32 lanes
  const float* in = x + static_cast<long long>(row) * ld;
  const float* extra = add ? add + static_cast<long long>(row) * ld_add : nullptr;
  float sum = 0.0f;
  for (int j = lane; j < H; j += 32) sum += in[j] + (extra ? extra[j] : 0.0f);
  const float mean = warp_sum(sum) / H;
  float square_sum = 0.0f;
  for (int j = lane; j < H; j += 32) {
    const float d = in[j] + (extra ? extra[j] : 0.0f) - mean;
    square_sum += d * d;
  }
  const float inv_std = 1.0f / sqrtf(warp_sum(square_sum) / H + eps);
  float* out = y + static_cast<long long>(row) * ld_out;
  for (int j = lane; j < H; j += 32) {
    const float value = in[j] + (extra ? extra[j] : 0.0f);
    out[j] = (value - mean) * inv_std * weight[j] + bias[j];
  }
}

__global__ void softmax_kernel(int M, int N, float* x, int ld) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= M) return;
  float* values = x + static_cast<long long>(row) * ld;
  float top = -INFINITY;
  for (int j = lane; j < N; j += 32) top = fmaxf(top, values[j]);
  top = warp_max(top);
  float total = 0.0f;
  for (int j = lane; j < N; j += 32) {
    values[j] = expf(values[j] - top);
    total += values[j];
  }
  const float scale = 1.0f / warp_sum(total);
  for (int j = lane; j < N; j += 32) values[j] *= scale;
}

__global__ void layer_mix_kernel(int M, int L, int H, const float* __restrict__ x, int ld_x,
                                 const float* __restrict__ mix, float* __restrict__ y, int ld_out) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(M) * H) return;
  const int m = static_cast<int>(i / H), j = static_cast<int>(i % H);
  const float* layers = x + static_cast<long long>(m) * ld_x;
  float value = mix[0] * layers[j];
  for (int l = 1; l < L; ++l) value += mix[l] * layers[l * H + j];
  y[static_cast<long long>(m) * ld_out + j] = value;
}

unsigned row_blocks(int M) { return static_cast<unsigned>((M + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void layer_norm_cuda(CUstream_st* stream, int M, int H, const float* x, int ld, const float* add, int ld_add,
                     const float* weight, const float* bias, float eps, float* y, int ld_out) {
  if (M <= 0) return;
  layer_norm_kernel<<<row_blocks(M), kThreads, 0, stream>>>(M, H, x, ld, add, ld_add, weight, bias, eps, y, ld_out);
  check_launch("layer_norm");
}

void softmax_cuda(CUstream_st* stream, int M, int N, float* x, int ld) {
  if (M <= 0) return;
  softmax_kernel<<<row_blocks(M), kThreads, 0, stream>>>(M, N, x, ld);
  check_launch("softmax");
}

void layer_mix_cuda(CUstream_st* stream, int M, int L, int H, const float* x, int ld_x, const float* mix, float* y,
                    int ld_out) {
  if (M <= 0) return;
  const long long count = static_cast<long long>(M) * H;
  layer_mix_kernel<<<static_cast<unsigned>((count + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      M, L, H, x, ld_x, mix, y, ld_out);
  check_launch("layer_mix");
}

}  // namespace mbfast::ops

// CUDA versions of the row-wise ops (see rowwise.h): one warp per row for the reductions (LayerNorm, softmax), one
// thread per element for the others. fp32 statistics (the CPU op uses double): the difference is far below the
// 1e-4 CUDA-vs-CPU tolerance.
#include <cuda_runtime.h>

#include <cstdint>
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
__global__ void layer_norm_kernel(int M, int H, const float* x, int ld, const float* __restrict__ weight,
                                  const float* __restrict__ bias, float eps, float* y, int ld_out) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= M) return;  // the whole warp leaves together: the shuffles below see all 32 lanes
  const float* in = x + static_cast<long long>(row) * ld;
  float sum = 0.0f;
  for (int j = lane; j < H; j += 32) sum += in[j];
  const float mean = warp_sum(sum) / H;
  float square_sum = 0.0f;
  for (int j = lane; j < H; j += 32) {
    const float d = in[j] - mean;
    square_sum += d * d;
  }
  const float inv_std = 1.0f / sqrtf(warp_sum(square_sum) / H + eps);
  float* out = y + static_cast<long long>(row) * ld_out;
  for (int j = lane; j < H; j += 32) out[j] = (in[j] - mean) * inv_std * weight[j] + bias[j];
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

__global__ void relu_kernel(int M, int N, float* x, int ld) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(M) * N) return;
  float* value = x + (i / N) * ld + i % N;
  *value = fmaxf(*value, 0.0f);
}

__global__ void add_kernel(int M, int N, const float* __restrict__ x, int ld_x, float* __restrict__ y, int ld_y) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(M) * N) return;
  y[(i / N) * ld_y + i % N] += x[(i / N) * ld_x + i % N];
}

// state row of row m: slots[m] * slot_stride + offset; to_state: y -> state (scatter), else state -> y (gather)
__global__ void slot_rows_kernel(int M, int N, float* state, const int32_t* __restrict__ slots, long long slot_stride,
                                 long long offset, float* rows, int ld_rows, bool to_state) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(M) * N) return;
  const long long m = i / N, j = i % N;
  float* at_state = state + slots[m] * slot_stride + offset + j;
  float* at_row = rows + m * ld_rows + j;
  if (to_state) *at_state = *at_row;
  else *at_row = *at_state;
}

unsigned element_blocks(int M, int N) {
  return static_cast<unsigned>((static_cast<long long>(M) * N + kThreads - 1) / kThreads);
}

unsigned row_blocks(int M) { return static_cast<unsigned>((M + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void layer_norm(const CudaContext& context, int M, int H, const float* x, int ld, const float* weight,
                const float* bias, float eps, float* y, int ld_out) {
  if (M <= 0) return;
  layer_norm_kernel<<<row_blocks(M), kThreads, 0, context.stream>>>(M, H, x, ld, weight, bias, eps, y, ld_out);
  check_launch("layer_norm");
}

void softmax(const CudaContext& context, int M, int N, float* x, int ld) {
  if (M <= 0) return;
  softmax_kernel<<<row_blocks(M), kThreads, 0, context.stream>>>(M, N, x, ld);
  check_launch("softmax");
}

void relu(const CudaContext& context, int M, int N, float* x, int ld) {
  if (M <= 0 || N <= 0) return;
  relu_kernel<<<element_blocks(M, N), kThreads, 0, context.stream>>>(M, N, x, ld);
  check_launch("relu");
}

void layer_mix(const CudaContext& context, int M, int L, int H, const float* x, int ld_x, const float* mix, float* y,
               int ld_out) {
  if (M <= 0) return;
  layer_mix_kernel<<<element_blocks(M, H), kThreads, 0, context.stream>>>(M, L, H, x, ld_x, mix, y, ld_out);
  check_launch("layer_mix");
}

void add(const CudaContext& context, int M, int N, const float* x, int ld_x, float* y, int ld_y) {
  if (M <= 0 || N <= 0) return;
  add_kernel<<<element_blocks(M, N), kThreads, 0, context.stream>>>(M, N, x, ld_x, y, ld_y);
  check_launch("add");
}

void copy(const CudaContext& context, int M, int N, const float* x, int ld_x, float* y, int ld_y) {
  if (M <= 0 || N <= 0) return;
  const cudaError_t status = cudaMemcpy2DAsync(y, ld_y * sizeof(float), x, ld_x * sizeof(float), N * sizeof(float),
                                               M, cudaMemcpyDeviceToDevice, context.stream);
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA copy: ") + cudaGetErrorString(status));
}

void gather_rows(const CudaContext& context, int M, int N, const float* state, const int32_t* slots,
                 long long slot_stride, long long offset, float* y, int ld_y) {
  if (M <= 0 || N <= 0) return;
  slot_rows_kernel<<<element_blocks(M, N), kThreads, 0, context.stream>>>(
      M, N, const_cast<float*>(state), slots, slot_stride, offset, y, ld_y, false);
  check_launch("gather_rows");
}

void scatter_rows(const CudaContext& context, int M, int N, const float* x, int ld_x, float* state,
                  const int32_t* slots, long long slot_stride, long long offset) {
  if (M <= 0 || N <= 0) return;
  slot_rows_kernel<<<element_blocks(M, N), kThreads, 0, context.stream>>>(
      M, N, state, slots, slot_stride, offset, const_cast<float*>(x), ld_x, true);
  check_launch("scatter_rows");
}

}  // namespace mbfast::ops

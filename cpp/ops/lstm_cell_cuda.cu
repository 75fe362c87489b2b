// CUDA LSTM cell (see lstm_cell.h): the [x | h] gather and the pointwise cell update on a GPU, reading and writing
// the recurrent state in place through each row's slot. Mirrors lstm_cell_cpu.cc; expf/tanhf, no fast math.
#include <cuda_runtime.h>

#include <cstdint>

#include <stdexcept>
#include <string>

#include "ops/lstm_cell.h"

namespace mbfast::ops {

namespace {

constexpr int kThreads = 256;

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA launch of ") + what + ": " + cudaGetErrorString(status));
}

unsigned blocks_for(long long count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

__device__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void lstm_input_kernel(int M, int in, int H, const float* __restrict__ x, int ld_x,
                                  const float* __restrict__ hidden, const int32_t* __restrict__ slots,
                                  long long slot_stride, long long offset, float* __restrict__ out) {
  const int width = in + H;
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(M) * width) return;
  const int m = static_cast<int>(i / width), col = static_cast<int>(i % width);
  out[i] = col < in ? x[static_cast<long long>(m) * ld_x + col]
                    : hidden[slots[m] * slot_stride + offset + (col - in)];
}

__global__ void lstm_cell_kernel(int M, int H, const float* __restrict__ gates, float* __restrict__ cell,
                                 float* __restrict__ hidden, const int32_t* __restrict__ slots, long long slot_stride,
                                 long long offset, float* __restrict__ hidden_out, int ld_out) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(M) * H) return;
  const int m = static_cast<int>(i / H), j = static_cast<int>(i % H);
  const float* gate = gates + static_cast<long long>(m) * 4 * H;  // PyTorch order i, f, g, o
  const long long state = slots[m] * slot_stride + offset + j;
  const float c = sigmoid(gate[H + j]) * cell[state] + sigmoid(gate[j]) * tanhf(gate[2 * H + j]);
  const float h = sigmoid(gate[3 * H + j]) * tanhf(c);
  cell[state] = c;
  hidden[state] = h;
  hidden_out[static_cast<long long>(m) * ld_out + j] = h;
}

}  // namespace

void lstm_input_cuda(CUstream_st* stream, int M, int in, int H, const float* x, int ld_x, const float* hidden,
                     const int32_t* slots, long long slot_stride, long long offset, float* out) {
  if (M <= 0) return;
  const long long count = static_cast<long long>(M) * (in + H);
  lstm_input_kernel<<<blocks_for(count), kThreads, 0, stream>>>(M, in, H, x, ld_x, hidden, slots, slot_stride,
                                                                 offset, out);
  check_launch("lstm_input");
}

void lstm_cell_cuda(CUstream_st* stream, int M, int H, const float* gates, float* cell, float* hidden,
                    const int32_t* slots, long long slot_stride, long long offset, float* hidden_out, int ld_out) {
  if (M <= 0) return;
  const long long count = static_cast<long long>(M) * H;
  lstm_cell_kernel<<<blocks_for(count), kThreads, 0, stream>>>(M, H, gates, cell, hidden, slots, slot_stride, offset,
                                                                hidden_out, ld_out);
  check_launch("lstm_cell");
}

}  // namespace mbfast::ops

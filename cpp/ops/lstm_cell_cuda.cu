// CUDA LSTM cell (see lstm_cell.h): the pointwise cell update on a GPU, one thread per value. Mirrors
// lstm_cell_cpu.cc; expf/tanhf, no fast math.
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

__global__ void lstm_cell_kernel(int M, int H, const float* __restrict__ gates, int ld_gates,
                                 float* __restrict__ cell, float* __restrict__ hidden, int ld_state) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(M) * H) return;
  const int m = static_cast<int>(i / H), j = static_cast<int>(i % H);
  const float* gate = gates + static_cast<long long>(m) * ld_gates;  // PyTorch order i, f, g, o
  const long long state = static_cast<long long>(m) * ld_state + j;
  const float c = sigmoid(gate[H + j]) * cell[state] + sigmoid(gate[j]) * tanhf(gate[2 * H + j]);
  cell[state] = c;
  hidden[state] = sigmoid(gate[3 * H + j]) * tanhf(c);
}

}  // namespace

void lstm_cell(const CudaContext& context, int M, int H, const float* gates, int ld_gates, float* cell, float* hidden,
               int ld_state) {
  if (M <= 0) return;
  const long long count = static_cast<long long>(M) * H;
  lstm_cell_kernel<<<blocks_for(count), kThreads, 0, context.stream>>>(M, H, gates, ld_gates, cell, hidden, ld_state);
  check_launch("lstm_cell");
}

}  // namespace mbfast::ops

// Small row-wise ops of the model: LayerNorm, softmax, ReLU, weighted layer mix, row add and copy. fp32 in and out.
// One signature per device (ops/device.h): CPU in rowwise_cpu.cc, CUDA in rowwise_cuda.cu.
#pragma once

#include <cstdint>

#include "ops/device.h"

namespace mbfast::ops {

// x (M, H; stride ld) -> y (M, H; stride ld_out): (x - mean) / sqrt(var + eps) * weight + bias, per row. The CPU
// sums the statistics in double (parity with reference.py), CUDA in fp32 (far below its 1e-4 tolerance).
void layer_norm(const CpuContext& context, int M, int H, const float* x, int ld, const float* weight, const float* bias,
                float eps, float* y, int ld_out);
void layer_norm(const CudaContext& context, int M, int H, const float* x, int ld, const float* weight,
                const float* bias, float eps, float* y, int ld_out);

// In place, per row of x (M, N; stride ld).
void softmax(const CpuContext& context, int M, int N, float* x, int ld);
void softmax(const CudaContext& context, int M, int N, float* x, int ld);
void relu(const CpuContext& context, int M, int N, float* x, int ld);
void relu(const CudaContext& context, int M, int N, float* x, int ld);

// y (M, H; stride ld_out) = sum_l mix[l] * x[:, l, :] for x (M, L, H) (row stride ld_x), mix (L,).
void layer_mix(const CpuContext& context, int M, int L, int H, const float* x, int ld_x, const float* mix, float* y,
               int ld_out);
void layer_mix(const CudaContext& context, int M, int L, int H, const float* x, int ld_x, const float* mix, float* y,
               int ld_out);

// y (M, N; stride ld_y) += x (M, N; stride ld_x)
void add(const CpuContext& context, int M, int N, const float* x, int ld_x, float* y, int ld_y);
void add(const CudaContext& context, int M, int N, const float* x, int ld_x, float* y, int ld_y);

// y (M, N; stride ld_y) = x (M, N; stride ld_x)
void copy(const CpuContext& context, int M, int N, const float* x, int ld_x, float* y, int ld_y);
void copy(const CudaContext& context, int M, int N, const float* x, int ld_x, float* y, int ld_y);

// CUDA only: rows of the GPU's state arrays by slot (the CPU's state is StateStore's RecurrentArray). Row m is the
// N values at state + slots[m] * slot_stride + offset. gather: y (M, N; ld_y) = those rows; scatter: the reverse.
void gather_rows(const CudaContext& context, int M, int N, const float* state, const int32_t* slots,
                 long long slot_stride, long long offset, float* y, int ld_y);
void scatter_rows(const CudaContext& context, int M, int N, const float* x, int ld_x, float* state,
                  const int32_t* slots, long long slot_stride, long long offset);

// fp32 <-> IEEE fp16 for 16-bit recurrent state (Engine state_dtype "fp16", host memory): round to nearest even,
// values beyond +-65504 saturate (no inf: an LSTM cell grows by at most 1 per step, so only absurd curves get there).
void to_fp16_cpu(int n, const float* x, uint16_t* y);
void from_fp16_cpu(int n, const uint16_t* x, float* y);

}  // namespace mbfast::ops

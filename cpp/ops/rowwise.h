// Small row-wise ops of the model: LayerNorm, softmax, ReLU, weighted layer mix. fp32 in and out.
#pragma once

#include <cstdint>

struct CUstream_st;  // cudaStream_t, so this header needs no CUDA include

namespace mbfast::ops {

// x (M, H; stride ld) -> y (M, H; stride ld_out): (x - mean) / sqrt(var + eps) * weight + bias, per row.
void layer_norm_cpu(int M, int H, const float* x, int ld, const float* weight, const float* bias, float eps, float* y,
                    int ld_out);

// In place, per row of x (M, N; stride ld).
void softmax_cpu(int M, int N, float* x, int ld);
void relu_cpu(int M, int N, float* x, int ld);

// y (M, H; stride ld_out) = sum_l mix[l] * x[:, l, :] for x (M, L, H) row-contiguous (row stride L * H).
void layer_mix_cpu(int M, int L, int H, const float* x, const float* mix, float* y, int ld_out);

// fp32 <-> IEEE fp16 for 16-bit recurrent state (Engine state_dtype "fp16"): round to nearest even, values beyond
// +-65504 saturate (no inf: an LSTM cell grows by at most 1 per step, so only absurd curves get there).
void to_fp16_cpu(int n, const float* x, uint16_t* y);
void from_fp16_cpu(int n, const uint16_t* x, float* y);

// CUDA (rowwise_cuda.cu), on device pointers, queued on `stream`.
// y = LayerNorm(x + add) per row (add (M, H; ld_add) may be null: plain LayerNorm); y may be x.
void layer_norm_cuda(CUstream_st* stream, int M, int H, const float* x, int ld, const float* add, int ld_add,
                     const float* weight, const float* bias, float eps, float* y, int ld_out);
void softmax_cuda(CUstream_st* stream, int M, int N, float* x, int ld);
// layer_mix_cpu with a row stride ld_x for x (M, L, H) and mix (L,) in device memory.
void layer_mix_cuda(CUstream_st* stream, int M, int L, int H, const float* x, int ld_x, const float* mix, float* y,
                    int ld_out);

}  // namespace mbfast::ops

// LSTM cell update from precomputed gate pre-activations (PyTorch gate order i, f, g, o), for M rows at once.
// The gate GEMM ([x | h] @ [W_ih | W_hh]^T + b_ih + b_hh) is ops::gemm_bias; this op is the pointwise part.
// CPU: lstm_cell_cpu.cc (portable, AVX2, AVX-512); CUDA: lstm_cell_cuda.cu (expf/tanhf, no fast math).
#pragma once

#include <cstdint>

#include "ops/device.h"

namespace mbfast::ops {

// gates (M, 4H; row stride ld_gates); cell (M, H; row stride ld_state) updated in place;
// hidden (M, H; row stride ld_state) overwritten: c = sig(f) c + sig(i) tanh(g), h = sig(o) tanh(c).
void lstm_cell(const CpuContext& context, int M, int H, const float* gates, int ld_gates, float* cell, float* hidden,
               int ld_state);
void lstm_cell(const CudaContext& context, int M, int H, const float* gates, int ld_gates, float* cell, float* hidden,
               int ld_state);

}  // namespace mbfast::ops

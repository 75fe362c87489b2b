// LSTM cell update from precomputed gate pre-activations (PyTorch gate order i, f, g, o), for M rows at once.
// The gate GEMM ([x | h] @ [W_ih | W_hh]^T + b_ih + b_hh) is ops::gemm_bias_cpu; this op is the pointwise part.
#pragma once

#include <cstdint>

struct CUstream_st;  // cudaStream_t, so this header needs no CUDA include

namespace mbfast::ops {

// gates (M, 4H; row stride ld_gates); cell (M, H; row stride ld_state) updated in place;
// hidden (M, H; row stride ld_state) overwritten: c = sig(f) c + sig(i) tanh(g), h = sig(o) tanh(c).
void lstm_cell_cpu(int M, int H, const float* gates, int ld_gates, float* cell, float* hidden, int ld_state);

// CUDA (lstm_cell_cuda.cu), on device pointers, queued on `stream`. The state of row m is found through its slot:
// the h and c values of row m start at hidden/cell + slots[m] * slot_stride + offset (H contiguous values).
// [x | h] rows for the gate GEMM: out (M, in + H) from x (M, in; row stride ld_x) and each row's h.
void lstm_input_cuda(CUstream_st* stream, int M, int in, int H, const float* x, int ld_x, const float* hidden,
                     const int32_t* slots, long long slot_stride, long long offset, float* out);
// lstm_cell_cpu's update from gates (M, 4H), c and h rewritten in place; h also written to hidden_out (M, H; ld_out).
void lstm_cell_cuda(CUstream_st* stream, int M, int H, const float* gates, float* cell, float* hidden,
                    const int32_t* slots, long long slot_stride, long long offset, float* hidden_out, int ld_out);

}  // namespace mbfast::ops

// Dense matrix product for the batched LSTM gates and FFNN layers: C = A @ B + bias, fp32, row-major.
// Not a general BLAS: one entry point, so the CPU kernel can be swapped (AVX-512 tuning) without touching callers.
#pragma once

namespace mbfast::ops {

// C (M, N; row stride ldc) = A (M, K; row stride lda) @ B (K, N; contiguous) + bias (N,).
// Every C[m, n] is computed as bias[n] + A[m, 0] * B[0, n] + A[m, 1] * B[1, n] + ... in that order, whatever M
// and wherever row m sits in A: a row's result never depends on the other rows of the batch, which is what makes
// Engine results independent of batch composition and thread count. Faster kernels must keep this property.
void gemm_bias_cpu(int M, int N, int K, const float* A, int lda, const float* B, const float* bias, float* C,
                   int ldc);

}  // namespace mbfast::ops

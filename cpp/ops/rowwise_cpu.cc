// CPU versions of the row-wise ops (see rowwise.h); statistics accumulate in double for parity with reference.py.
#include "ops/rowwise.h"

#include <algorithm>
#include <cmath>

namespace mbfast::ops {

void layer_norm_cpu(int M, int H, const float* x, int ld, const float* weight, const float* bias, float eps, float* y,
                    int ld_out) {
  for (int m = 0; m < M; ++m) {
    const float* row = x + static_cast<long>(m) * ld;
    float* out = y + static_cast<long>(m) * ld_out;
    double sum = 0.0;
    for (int j = 0; j < H; ++j) sum += row[j];
    const double mean = sum / H;
    double square_sum = 0.0;
    for (int j = 0; j < H; ++j) square_sum += (row[j] - mean) * (row[j] - mean);
    const float inv_std = static_cast<float>(1.0 / std::sqrt(square_sum / H + eps));
    const float mean_f = static_cast<float>(mean);
    for (int j = 0; j < H; ++j) out[j] = (row[j] - mean_f) * inv_std * weight[j] + bias[j];
  }
}

void softmax_cpu(int M, int N, float* x, int ld) {
  for (int m = 0; m < M; ++m) {
    float* row = x + static_cast<long>(m) * ld;
    const float top = *std::max_element(row, row + N);
    double total = 0.0;
    for (int j = 0; j < N; ++j) {
      row[j] = std::exp(row[j] - top);
      total += row[j];
    }
    const float scale = static_cast<float>(1.0 / total);
    for (int j = 0; j < N; ++j) row[j] *= scale;
  }
}

void relu_cpu(int M, int N, float* x, int ld) {
  for (int m = 0; m < M; ++m) {
    float* row = x + static_cast<long>(m) * ld;
    for (int j = 0; j < N; ++j) row[j] = std::max(row[j], 0.0f);
  }
}

void layer_mix_cpu(int M, int L, int H, const float* x, const float* mix, float* y, int ld_out) {
  for (int m = 0; m < M; ++m) {
    const float* layers = x + static_cast<long>(m) * L * H;
    float* out = y + static_cast<long>(m) * ld_out;
    for (int j = 0; j < H; ++j) out[j] = mix[0] * layers[j];
    for (int l = 1; l < L; ++l)
      for (int j = 0; j < H; ++j) out[j] += mix[l] * layers[l * H + j];
  }
}

}  // namespace mbfast::ops

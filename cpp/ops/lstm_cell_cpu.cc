// CPU LSTM cell (see lstm_cell.h); mirrors the cell lines of mbfast/reference.py ReferenceModel.stack_step.
#include "ops/lstm_cell.h"

#include <cmath>

namespace mbfast::ops {

namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// tanh through expf: glibc's tanhf goes through expm1f and was 40 % of a step. Absolute error stays below ~2e-7
// (relative error grows near 0, where tanh itself is tiny), well inside the 1e-6 parity tolerance.
inline float tanh_via_exp(float x) { return 1.0f - 2.0f / (1.0f + std::exp(2.0f * x)); }

}  // namespace

void lstm_cell_cpu(int M, int H, const float* gates, int ld_gates, float* cell, float* hidden, int ld_state) {
  for (int m = 0; m < M; ++m) {
    const float* gate_i = gates + static_cast<long>(m) * ld_gates;
    const float* gate_f = gate_i + H;
    const float* gate_g = gate_i + 2 * H;
    const float* gate_o = gate_i + 3 * H;
    float* c = cell + static_cast<long>(m) * ld_state;
    float* h = hidden + static_cast<long>(m) * ld_state;
    for (int j = 0; j < H; ++j) {
      c[j] = sigmoid(gate_f[j]) * c[j] + sigmoid(gate_i[j]) * tanh_via_exp(gate_g[j]);
      h[j] = sigmoid(gate_o[j]) * tanh_via_exp(c[j]);
    }
  }
}

}  // namespace mbfast::ops

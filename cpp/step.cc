// The CPU model step (step.h): mirrors mbfast/reference.py ReferenceModel.step, chunk by chunk.
#include "step.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "ops/lstm_cell.h"
#include "ops/rowwise.h"

namespace mbfast {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Residual LayerNorm'd LSTM stack, one step for M rows: x (M, in; stride ld_x); hidden, cell (M, L, H) gathered
// rows, updated in place. Mirrors reference.py ReferenceModel.stack_step.
void stack_step(const PackedModel& packed, const RecurrentStack& stack, float eps, int M, const float* x, int ld_x, float* hidden, float* cell,
                Workspace& ws) {
  const int H = stack.hidden, L = stack.layers, LH = L * H;
  const float* layer_in = x;
  int ld_in = ld_x, in = stack.in;
  float* gates = Workspace::sized(ws.gates, size_t(M) * 4 * H);
  float* skip = Workspace::sized(ws.skip, size_t(M) * H);
  float* next_in = Workspace::sized(ws.layer_in, size_t(M) * H);
  for (int layer = 0; layer < L; ++layer) {
    // [x | h] read in place, so one GEMM computes W_ih x + W_hh h
    const ops::GemmInput x_h{layer_in, ld_in, in, hidden + size_t(layer) * H, LH};
    ws.gemm(M, x_h, packed.of(stack.gates[layer]), gates, 4 * H);
    ops::lstm_cell_cpu(M, H, gates, 4 * H, cell + size_t(layer) * H, hidden + size_t(layer) * H, LH);
    if (layer == L - 1) break;
    if (layer == 0) {  // first residual projects the stack input to H
      ws.gemm(packed, stack.residual, M, x, ld_x, skip, H);
    } else {
      for (int m = 0; m < M; ++m) std::memcpy(skip + size_t(m) * H, layer_in + size_t(m) * ld_in, sizeof(float) * H);
    }
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < H; ++j) skip[size_t(m) * H + j] += hidden[size_t(m) * LH + size_t(layer) * H + j];
    ops::layer_norm_cpu(M, H, skip, H, stack.norm_weight[layer].data(), stack.norm_bias[layer].data(), eps, next_in, H);
    layer_in = next_in;
    ld_in = H;
    in = H;
  }
}

// [Linear(+folded BatchNorm) -> ReLU] x layers -> Linear: x (M, in; stride ld_x) -> out (M, ffnn.out.out).
void ffnn_forward(const PackedModel& packed, const Ffnn& ffnn, int M, const float* x, int ld_x, float* out, Workspace& ws) {
  const float* input = x;
  int ld_in = ld_x;
  for (size_t layer = 0; layer < ffnn.layers.size(); ++layer) {
    const Dense& dense = ffnn.layers[layer];
    float* output = Workspace::sized(layer % 2 ? ws.pong : ws.ping, size_t(M) * dense.out);
    ws.gemm(packed, dense, M, input, ld_in, output, dense.out);
    ops::relu_cpu(M, dense.out, output, dense.out);
    input = output;
    ld_in = dense.out;
  }
  ws.gemm(packed, ffnn.out, M, input, ld_in, out, ffnn.out.out);
}

}  // namespace

void band_chunk(const Model& model, const PackedModel& packed, StateStore& store, const Task* const* tasks, int M,
                float* translated, Workspace& ws) {
  const ModelConfig& config = model.config;
  const int band = tasks[0]->band;
  const int B = config.n_bands(), L = config.band_layers, H = config.band_hidden, Hc = config.central_hidden;
  const size_t LH = size_t(L) * H;
  const auto eps = static_cast<float>(config.layernorm_eps);

  // gather the band's state rows
  float* window = Workspace::sized(ws.window, size_t(M) * kRowWidth);
  float* band_hidden = Workspace::sized(ws.band_hidden, M * LH);
  float* band_cell = Workspace::sized(ws.band_cell, M * LH);
  constexpr int kAhead = 2;  // rows whose state is fetched while one is copied: slots are scattered in memory
  for (int m = 0; m < M; ++m) {
    if (m + kAhead < M) {
      const size_t ahead = (size_t(tasks[m + kAhead]->slot) * B + band) * LH;
      store.band_hidden_state.prefetch(ahead, LH);
      store.band_cell_state.prefetch(ahead, LH);
    }
    const size_t state = (size_t(tasks[m]->slot) * B + band) * LH;
    std::memcpy(window + size_t(m) * kRowWidth, tasks[m]->window, sizeof(float) * kRowWidth);
    store.band_hidden_state.read(state, LH, band_hidden + m * LH);
    store.band_cell_state.read(state, LH, band_cell + m * LH);
  }
  stack_step(packed, model.band_stacks[band], eps, M, window, kRowWidth, band_hidden, band_cell, ws);
  for (int m = 0; m < M; ++m) {
    const size_t state = (size_t(tasks[m]->slot) * B + band) * LH;
    store.band_hidden_state.write(band_hidden + m * LH, LH, state);
    store.band_cell_state.write(band_cell + m * LH, LH, state);
  }

  // translation: the central model's mix of this band's layers (eq. 3), FFNN with ReLU, LayerNorm (§3.3)
  float* mixed = Workspace::sized(ws.mixed, size_t(M) * std::max(H, Hc));
  ops::layer_mix_cpu(M, L, H, band_hidden, model.translation_mix[band].data(), mixed, H);
  const float* input = mixed;
  int ld_in = H;
  for (size_t layer = 0; layer < model.translators[band].size(); ++layer) {
    const Dense& dense = model.translators[band][layer];
    float* output = Workspace::sized(layer % 2 ? ws.pong : ws.ping, size_t(M) * Hc);
    ws.gemm(packed, dense, M, input, ld_in, output, Hc);
    ops::relu_cpu(M, Hc, output, Hc);
    input = output;
    ld_in = Hc;
  }
  ops::layer_norm_cpu(M, Hc, input, ld_in, model.translator_norm_weight[band].data(),
                      model.translator_norm_bias[band].data(), eps, translated, Hc);
}

void central_chunk(const Model& model, const PackedModel& packed, StateStore& store, const Task* const* tasks, int M,
                   const float* translated, const float* colours, RowOutputs outputs, Workspace& ws) {
  const ModelConfig& config = model.config;
  const int Lc = config.central_layers, Hc = config.central_hidden;
  const int C = config.n_classes(), T = config.n_targets(), P = config.n_colours(), F = config.final_width();
  const size_t LHc = size_t(Lc) * Hc;
  const auto eps = static_cast<float>(config.layernorm_eps);

  float* central_hidden = Workspace::sized(ws.central_hidden, M * LHc);
  float* central_cell = Workspace::sized(ws.central_cell, M * LHc);
  constexpr int kAhead = 2;  // as in band_chunk
  for (int m = 0; m < M; ++m) {
    if (m + kAhead < M) {
      const size_t ahead = size_t(tasks[m + kAhead]->slot) * LHc;
      store.central_hidden_state.prefetch(ahead, LHc);
      store.central_cell_state.prefetch(ahead, LHc);
    }
    const size_t state = size_t(tasks[m]->slot) * LHc;
    store.central_hidden_state.read(state, LHc, central_hidden + m * LHc);
    store.central_cell_state.read(state, LHc, central_cell + m * LHc);
  }
  stack_step(packed, model.central, eps, M, translated, Hc, central_hidden, central_cell, ws);
  for (int m = 0; m < M; ++m) {
    const size_t state = size_t(tasks[m]->slot) * LHc;
    store.central_hidden_state.write(central_hidden + m * LHc, LHc, state);
    store.central_cell_state.write(central_cell + m * LHc, LHc, state);
    // 16-bit state: the heads see the stored (rounded) h, so predict's embedding, recomputed from it, is the same
    if (store.recurrent_storage() == RecurrentStorage::kFp16)
      store.central_hidden_state.read(state, LHc, central_hidden + m * LHc);
  }

  // final representation [embedding, colours, multiband dt] (§3.5) -> classifier softmax, regressors
  float* final = Workspace::sized(ws.final, size_t(M) * F);
  ops::layer_mix_cpu(M, Lc, Hc, central_hidden, model.central.mix.data(), final, F);
  for (int m = 0; m < M; ++m) {
    std::memcpy(final + size_t(m) * F + Hc, colours + size_t(m) * P, sizeof(float) * P);
    final[size_t(m) * F + Hc + P] = tasks[m]->dt_central;
  }
  float* logits = Workspace::sized(ws.logits, size_t(M) * C);
  ffnn_forward(packed, model.classifier, M, final, F, logits, ws);
  ops::softmax_cpu(M, C, logits, C);
  float* target = Workspace::sized(ws.target, size_t(M) * std::max(T, 1));
  for (int k = 0; k < T; ++k) {
    float* column = Workspace::sized(ws.column, size_t(M));
    ffnn_forward(packed, model.regressors[k], M, final, F, column, ws);
    for (int m = 0; m < M; ++m) target[size_t(m) * T + k] = column[m];
  }

  write_outputs(store, tasks, M, logits, C, final, F, target, outputs);
}

void write_outputs(StateStore& store, const Task* const* tasks, size_t M, const float* probs, int ld_probs,
                   const float* embedding, int ld_embedding, const float* regression, RowOutputs outputs) {
  const int C = store.n_classes, Hc = store.central_hidden, T = store.n_targets;
  const bool stored_embedding = store.embedding_width() > 0;  // a GPU engine keeps it: its h is on the device
  for (size_t m = 0; m < M; ++m) {  // waves ascend, so an object's last window row of the call is written last
    const size_t slot = tasks[m]->slot;
    const int64_t row = tasks[m]->row;
    const float* row_probs = probs + m * ld_probs;
    const float* row_embedding = embedding + m * ld_embedding;
    store.has_prediction[slot] = 1;
    std::memcpy(store.probs.data() + slot * C, row_probs, sizeof(float) * C);
    if (stored_embedding) std::memcpy(store.embedding.data() + slot * Hc, row_embedding, sizeof(float) * Hc);
    if (T) std::memcpy(store.regression.data() + slot * T, regression + m * T, sizeof(float) * T);
    if (outputs.probs) std::memcpy(outputs.probs + row * C, row_probs, sizeof(float) * C);
    if (outputs.embedding) std::memcpy(outputs.embedding + row * Hc, row_embedding, sizeof(float) * Hc);
    if (outputs.regression && T)
      std::memcpy(outputs.regression + row * T, regression + m * T, sizeof(float) * T);
  }
}

void mix_embedding(const Model& model, const StateStore& store, int32_t slot, float* out, std::vector<float>& hidden) {
  const int Lc = store.central_layers, Hc = store.central_hidden;
  if (!store.has_prediction[slot]) return std::fill(out, out + Hc, kNaN);
  hidden.resize(size_t(Lc) * Hc);
  store.central_hidden_state.read(size_t(slot) * Lc * Hc, hidden.size(), hidden.data());
  ops::layer_mix_cpu(1, Lc, Hc, hidden.data(), model.central.mix.data(), out, Hc);
}

PackedModel::PackedModel(const Model& model, ops::Precision precision_) : precision(precision_) {
  // k1: the width of the GEMM input's first block (stack_step reads the gates' [x | h] as two blocks)
  auto add = [&](const Dense& dense, int k1) {
    weights.emplace(&dense, ops::pack_weights(dense.in, dense.out, k1, dense.weight_t.data(), dense.bias.data(),
                                              precision, ops::cpu_kernel()));
    max_k = std::max(max_k, dense.in);
  };
  auto add_one = [&](const Dense& dense) { add(dense, dense.in); };
  auto add_stack = [&](const RecurrentStack& stack) {
    for (const Dense& dense : stack.gates) add(dense, dense.in - stack.hidden);
    add_one(stack.residual);
  };
  auto add_ffnn = [&](const Ffnn& ffnn) {
    for (const Dense& dense : ffnn.layers) add_one(dense);
    add_one(ffnn.out);
  };
  for (const RecurrentStack& stack : model.band_stacks) add_stack(stack);
  for (const auto& translator : model.translators)
    for (const Dense& dense : translator) add_one(dense);
  add_stack(model.central);
  add_ffnn(model.classifier);
  for (const Ffnn& regressor : model.regressors) add_ffnn(regressor);
}

void Workspace::reserve(const ModelConfig& config, size_t M) {
  const size_t L = config.band_layers, H = config.band_hidden, Lc = config.central_layers,
               Hc = config.central_hidden, widest = std::max(H, Hc);
  const size_t hidden = std::max({Hc, size_t(config.classifier_hidden), size_t(config.regression_hidden)});
  sized(window, M * kRowWidth);
  sized(band_hidden, M * L * H);
  sized(band_cell, M * L * H);
  sized(gates, M * 4 * widest);
  sized(skip, M * widest);
  sized(layer_in, M * widest);
  sized(mixed, M * widest);
  sized(ping, M * hidden);
  sized(pong, M * hidden);
  sized(central_hidden, M * Lc * Hc);
  sized(central_cell, M * Lc * Hc);
  sized(final, M * config.final_width());
  sized(logits, M * config.n_classes());
  sized(target, M * std::max(config.n_targets(), 1));
  sized(column, M);
}

}  // namespace mbfast

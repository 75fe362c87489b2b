// The model step, written once for every device: band_chunk (one band step + the translation into the central
// model's input) and central_chunk (one central step + the heads) for a chunk of window rows, over ops that pick the
// device by their context (ops/device.h). Mirrors mbfast/model/reference.py ReferenceModel.step.
//
// A Backend gives the step its device, the weights as that device holds them and the recurrent state's rows:
//   context()                        ops::CpuContext or ops::CudaContext
//   weights(dense), values(vector)   the model's Dense and vectors as packed (CPU) or uploaded (CUDA) at load
//   scratch(buffer, count)           a scratch buffer of at least count floats (Scratch)
//   read_band_state(rows, band, hidden, cell) / write_band_state(...)   h, c rows (M, L*H) <-> the state store
//   read_central_state(rows, hidden, cell) / write_central_state(...)   (M, Lc*Hc); the write may round `hidden` to
//                                    what the store keeps (fp16 state), so the heads see the stored value
//   write_outputs(rows, probs, ld_probs, embedding, ld_embedding, regression)   the chunk's outputs, to the store
//                                    and the caller's rows
// CpuBackend (below, step.cc) is one; CUDA's is in engine_cuda.cc. Which chunks run where is the scheduler's.
//
// Dimension legend: M rows of a chunk, B bands, L band layers, H band hidden, Lc central layers, Hc central hidden,
// P colour pairs, F final width (Hc + P + 1), C classes, T regression targets.
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine.h"
#include "model.h"
#include "ops/device.h"
#include "ops/gemm.h"
#include "ops/lstm_cell.h"
#include "ops/rowwise.h"
#include "plan.h"
#include "state_store.h"

namespace mbfast {

// The window rows of one chunk; every pointer is on the step's device, at the chunk's first row.
struct ChunkRows {
  int64_t first = 0;               // the chunk's first row, as an index into the call's rows in run order
  int M = 0;
  const int32_t* slot = nullptr;   // (M,) StateStore slot of each row's object
  const float* window = nullptr;   // (M, 4) eq. 2 window rows
  const float* dt = nullptr;       // (M,) log10(1 + days since the object's previous window row), §3.5
  const float* colours = nullptr;  // (M, P)
};

// The step's scratch buffers.
enum Scratch : int {
  kBandHidden, kBandCell, kGates, kSkip, kLayerIn, kMixed, kPing, kPong, kCentralHidden, kCentralCell, kFinal,
  kLogits, kTarget, kScratchCount
};
// Floats `buffer` needs for chunks of up to M rows (Backend::scratch then never grows during a step).
size_t scratch_size(Scratch buffer, const ModelConfig& config, size_t M);

// y (M, dense.out; ld_y) = x (M, dense.in; ld_x) @ dense + bias
template <typename Backend>
void dense_forward(Backend& backend, const Dense& dense, int M, const float* x, int ld_x, float* y, int ld_y) {
  ops::gemm_bias(backend.context(), M, ops::GemmInput{x, ld_x, dense.in, nullptr, 0}, backend.weights(dense), y, ld_y);
}

// Residual LayerNorm'd LSTM stack, one step for M rows: x (M, in; stride ld_x); hidden, cell (M, L, H) gathered
// rows, updated in place. Mirrors reference.py ReferenceModel.stack_step.
template <typename Backend>
void stack_step(Backend& backend, const RecurrentStack& stack, float eps, int M, const float* x, int ld_x,
                float* hidden, float* cell) {
  const auto& context = backend.context();
  const int H = stack.hidden, L = stack.layers, LH = L * H;
  const float* layer_in = x;
  int ld_in = ld_x, in = stack.in;
  float* gates = backend.scratch(kGates, size_t(M) * 4 * H);
  float* skip = backend.scratch(kSkip, size_t(M) * H);
  float* next_in = backend.scratch(kLayerIn, size_t(M) * H);
  for (int layer = 0; layer < L; ++layer) {
    float* layer_hidden = hidden + size_t(layer) * H;
    // [x | h] read in place, so one GEMM computes W_ih x + W_hh h
    const ops::GemmInput x_h{layer_in, ld_in, in, layer_hidden, LH};
    ops::gemm_bias(context, M, x_h, backend.weights(stack.gates[layer]), gates, 4 * H);
    ops::lstm_cell(context, M, H, gates, 4 * H, cell + size_t(layer) * H, layer_hidden, LH);
    if (layer == L - 1) break;
    if (layer == 0) dense_forward(backend, stack.residual, M, x, ld_x, skip, H);  // projects the stack input to H
    else ops::copy(context, M, H, layer_in, ld_in, skip, H);  // later layers: the layer input is the skip
    ops::add(context, M, H, layer_hidden, LH, skip, H);
    ops::layer_norm(context, M, H, skip, H, backend.values(stack.norm_weight[layer]),
                    backend.values(stack.norm_bias[layer]), eps, next_in, H);
    layer_in = next_in;
    ld_in = H;
    in = H;
  }
}

// [Linear(+folded BatchNorm) -> ReLU] x layers -> Linear: x (M, in; stride ld_x) -> out (M, ffnn.out.out; ld_out).
template <typename Backend>
void ffnn_forward(Backend& backend, const Ffnn& ffnn, int M, const float* x, int ld_x, float* out, int ld_out) {
  const float* input = x;
  int ld_in = ld_x;
  for (size_t layer = 0; layer < ffnn.layers.size(); ++layer) {
    const Dense& dense = ffnn.layers[layer];
    float* output = backend.scratch(layer % 2 ? kPong : kPing, size_t(M) * dense.out);
    dense_forward(backend, dense, M, input, ld_in, output, dense.out);
    ops::relu(backend.context(), M, dense.out, output, dense.out);
    input = output;
    ld_in = dense.out;
  }
  dense_forward(backend, ffnn.out, M, input, ld_in, out, ld_out);
}

// The band step and translation for the rows of one band and wave (distinct objects): `translated` (M, Hc)
// receives each row's translated band embedding, the central step's input.
template <typename Backend>
void band_chunk(Backend& backend, const Model& model, const ChunkRows& rows, int band, float* translated) {
  const ModelConfig& config = model.config;
  const auto& context = backend.context();
  const int M = rows.M, L = config.band_layers, H = config.band_hidden, Hc = config.central_hidden, LH = L * H;
  const auto eps = static_cast<float>(config.layernorm_eps);
  float* hidden = backend.scratch(kBandHidden, size_t(M) * LH);
  float* cell = backend.scratch(kBandCell, size_t(M) * LH);
  backend.read_band_state(rows, band, hidden, cell);
  stack_step(backend, model.band_stacks[band], eps, M, rows.window, kRowWidth, hidden, cell);
  backend.write_band_state(rows, band, hidden, cell);

  // translation: the central model's mix of this band's layers (eq. 3), FFNN with ReLU, LayerNorm (§3.3)
  float* mixed = backend.scratch(kMixed, size_t(M) * std::max(H, Hc));
  ops::layer_mix(context, M, L, H, hidden, LH, backend.values(model.translation_mix[band]), mixed, H);
  const float* input = mixed;
  int ld_in = H;
  for (size_t layer = 0; layer < model.translators[band].size(); ++layer) {
    float* output = backend.scratch(layer % 2 ? kPong : kPing, size_t(M) * Hc);
    dense_forward(backend, model.translators[band][layer], M, input, ld_in, output, Hc);
    ops::relu(context, M, Hc, output, Hc);
    input = output;
    ld_in = Hc;
  }
  ops::layer_norm(context, M, Hc, input, ld_in, backend.values(model.translator_norm_weight[band]),
                  backend.values(model.translator_norm_bias[band]), eps, translated, Hc);
}

// The central step and the heads for rows of one wave, any bands (the central weights are shared by all bands, so
// small calls of several bands stream them once): `translated` (M, Hc) from band_chunk.
template <typename Backend>
void central_chunk(Backend& backend, const Model& model, const ChunkRows& rows, const float* translated) {
  const ModelConfig& config = model.config;
  const auto& context = backend.context();
  const int M = rows.M, Lc = config.central_layers, Hc = config.central_hidden, LHc = Lc * Hc;
  const int C = config.n_classes(), T = config.n_targets(), P = config.n_colours(), F = config.final_width();
  const auto eps = static_cast<float>(config.layernorm_eps);
  float* hidden = backend.scratch(kCentralHidden, size_t(M) * LHc);
  float* cell = backend.scratch(kCentralCell, size_t(M) * LHc);
  backend.read_central_state(rows, hidden, cell);
  stack_step(backend, model.central, eps, M, translated, Hc, hidden, cell);
  backend.write_central_state(rows, hidden, cell);

  // final representation [embedding, colours, multiband dt] (§3.5) -> classifier softmax, regressors
  float* final = backend.scratch(kFinal, size_t(M) * F);
  ops::layer_mix(context, M, Lc, Hc, hidden, LHc, backend.values(model.central.mix), final, F);
  ops::copy(context, M, P, rows.colours, P, final + Hc, F);
  ops::copy(context, M, 1, rows.dt, 1, final + Hc + P, F);
  float* logits = backend.scratch(kLogits, size_t(M) * C);
  ffnn_forward(backend, model.classifier, M, final, F, logits, C);
  ops::softmax(context, M, C, logits, C);
  float* target = backend.scratch(kTarget, size_t(M) * std::max(T, 1));
  for (int k = 0; k < T; ++k) ffnn_forward(backend, model.regressors[k], M, final, F, target + k, T);
  backend.write_outputs(rows, logits, C, final, F, target);
}

// ---------------------------------------------------------------------------------------------------------------
// The CPU backend
// ---------------------------------------------------------------------------------------------------------------

// Every Dense of the model packed for the CPU kernels at the engine's precision (ops::pack_weights), found by
// address: the Model is shared and immutable, so its Dense objects outlive the engine's use of them.
struct PackedModel {
  PackedModel(const Model& model, ops::Precision precision);
  const ops::PackedWeights& of(const Dense& dense) const { return weights.at(&dense); }

  ops::Precision precision = ops::Precision::kFp32;
  std::unordered_map<const Dense*, ops::PackedWeights> weights;
  int max_k = 0;  // the widest GEMM input (ops::reserve_gemm_scratch)
};

// One thread's scratch buffers and op context.
struct Workspace {
  std::vector<float> buffers[kScratchCount];
  ops::CpuContext context;  // context.team is set while this thread leads a column-split step (scheduler.cc)

  // Every buffer at its size for M rows, so that a step of chunks of at most M rows allocates nothing once the state
  // is being written.
  void reserve(const ModelConfig& config, size_t M);
};

// The CPU's step: state rows gathered from the StateStore (fp32 or fp16, prefetched ahead) into the thread's
// Workspace and scattered back; outputs written by write_outputs. `tasks` are the call's rows in run order.
class CpuBackend {
 public:
  CpuBackend(const PackedModel& packed, Workspace& ws, StateStore& store, const Task* const* tasks,
             RowOutputs outputs)
      : packed_(packed), ws_(ws), store_(store), tasks_(tasks), outputs_(outputs) {}

  const ops::CpuContext& context() const { return ws_.context; }
  const ops::PackedWeights& weights(const Dense& dense) const { return packed_.of(dense); }
  const float* values(const std::vector<float>& values) const { return values.data(); }
  float* scratch(Scratch buffer, size_t count) {
    std::vector<float>& values = ws_.buffers[buffer];
    if (values.size() < count) values.resize(count);
    return values.data();
  }
  void read_band_state(const ChunkRows& rows, int band, float* hidden, float* cell) const;
  void write_band_state(const ChunkRows& rows, int band, const float* hidden, const float* cell);
  void read_central_state(const ChunkRows& rows, float* hidden, float* cell) const;
  void write_central_state(const ChunkRows& rows, float* hidden, const float* cell);
  void write_outputs(const ChunkRows& rows, const float* probs, int ld_probs, const float* embedding, int ld_embedding,
                     const float* regression);

 private:
  const PackedModel& packed_;
  Workspace& ws_;
  StateStore& store_;
  const Task* const* tasks_;
  RowOutputs outputs_;
};

// The outputs of M window rows, probs (M, C; ld_probs), embedding (M, Hc; ld_embedding), regression (M, T), into
// the store's slots and the caller's rows (`outputs`, null pointers skipped). Both devices' steps end here.
void write_outputs(StateStore& store, const Task* const* tasks, size_t M, const float* probs, int ld_probs,
                   const float* embedding, int ld_embedding, const float* regression, RowOutputs outputs);

// The embedding of object `slot` from the central h its store holds on the host: its layers mixed with the central
// stack's softmax weights (eq. 3), which is what its last central step computed from the same h; NaN before its
// first prediction. Hc values to `out`; `hidden` (Lc x Hc) is scratch.
void mix_embedding(const Model& model, const StateStore& store, int32_t slot, float* out, std::vector<float>& hidden);

}  // namespace mbfast

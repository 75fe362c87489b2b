// The CPU backend of the model step (step.h): state rows gathered from and scattered to the StateStore, outputs
// written to the store and the caller's rows; the scratch sizes both devices use.
#include "step.h"

#include <cstring>
#include <limits>

namespace mbfast {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kAhead = 2;  // rows whose state is fetched while one is copied: slots are scattered in memory

}  // namespace

void CpuBackend::read_band_state(const ChunkRows& rows, int band, float* hidden, float* cell) const {
  const size_t LH = size_t(store_.band_layers) * store_.band_hidden, slot_width = store_.n_bands * LH;
  for (int m = 0; m < rows.M; ++m) {
    if (m + kAhead < rows.M) {
      const size_t ahead = size_t(rows.slot[m + kAhead]) * slot_width + band * LH;
      store_.band_hidden_state.prefetch(ahead, LH);
      store_.band_cell_state.prefetch(ahead, LH);
    }
    const size_t state = size_t(rows.slot[m]) * slot_width + band * LH;
    store_.band_hidden_state.read(state, LH, hidden + m * LH);
    store_.band_cell_state.read(state, LH, cell + m * LH);
  }
}

void CpuBackend::write_band_state(const ChunkRows& rows, int band, const float* hidden, const float* cell) {
  const size_t LH = size_t(store_.band_layers) * store_.band_hidden, slot_width = store_.n_bands * LH;
  for (int m = 0; m < rows.M; ++m) {
    const size_t state = size_t(rows.slot[m]) * slot_width + band * LH;
    store_.band_hidden_state.write(hidden + m * LH, LH, state);
    store_.band_cell_state.write(cell + m * LH, LH, state);
  }
}

void CpuBackend::read_central_state(const ChunkRows& rows, float* hidden, float* cell) const {
  const size_t LHc = size_t(store_.central_layers) * store_.central_hidden;
  for (int m = 0; m < rows.M; ++m) {
    if (m + kAhead < rows.M) {
      const size_t ahead = size_t(rows.slot[m + kAhead]) * LHc;
      store_.central_hidden_state.prefetch(ahead, LHc);
      store_.central_cell_state.prefetch(ahead, LHc);
    }
    const size_t state = size_t(rows.slot[m]) * LHc;
    store_.central_hidden_state.read(state, LHc, hidden + m * LHc);
    store_.central_cell_state.read(state, LHc, cell + m * LHc);
  }
}

void CpuBackend::write_central_state(const ChunkRows& rows, float* hidden, const float* cell) {
  const size_t LHc = size_t(store_.central_layers) * store_.central_hidden;
  const bool rounded = store_.recurrent_storage() == RecurrentStorage::kFp16;
  for (int m = 0; m < rows.M; ++m) {
    const size_t state = size_t(rows.slot[m]) * LHc;
    store_.central_hidden_state.write(hidden + m * LHc, LHc, state);
    store_.central_cell_state.write(cell + m * LHc, LHc, state);
    // 16-bit state: the heads see the stored (rounded) h, so predict's embedding, recomputed from it, is the same
    if (rounded) store_.central_hidden_state.read(state, LHc, hidden + m * LHc);
  }
}

void CpuBackend::write_outputs(const ChunkRows& rows, const float* probs, int ld_probs, const float* embedding,
                               int ld_embedding, const float* regression) {
  mbfast::write_outputs(store_, tasks_ + rows.first, size_t(rows.M), probs, ld_probs, embedding, ld_embedding,
                        regression, outputs_);
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
  ops::layer_mix(ops::CpuContext{}, 1, Lc, Hc, hidden.data(), Lc * Hc, model.central.mix.data(), out, Hc);
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

size_t scratch_size(Scratch buffer, const ModelConfig& config, size_t M) {
  const size_t L = config.band_layers, H = config.band_hidden, Lc = config.central_layers,
               Hc = config.central_hidden, widest = std::max(H, Hc);
  switch (buffer) {
    case kBandHidden:
    case kBandCell: return M * L * H;
    case kGates: return M * 4 * widest;
    case kSkip:
    case kLayerIn:
    case kMixed: return M * widest;
    case kPing:
    case kPong: return M * std::max({Hc, size_t(config.classifier_hidden), size_t(config.regression_hidden)});
    case kCentralHidden:
    case kCentralCell: return M * Lc * Hc;
    case kFinal: return M * config.final_width();
    case kLogits: return M * config.n_classes();
    case kTarget: return M * std::max(config.n_targets(), 1);
    case kScratchCount: break;
  }
  return 0;
}

void Workspace::reserve(const ModelConfig& config, size_t M) {
  for (int buffer = 0; buffer < kScratchCount; ++buffer) {
    const size_t size = scratch_size(Scratch(buffer), config, M);
    if (buffers[buffer].size() < size) buffers[buffer].resize(size);
  }
}

}  // namespace mbfast

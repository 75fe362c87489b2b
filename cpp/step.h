// The model step on the CPU: one band step + translation (band_chunk) and one central step + heads (central_chunk)
// for a chunk of window rows, their recurrent state gathered from the store into contiguous (rows, H) buffers for
// batched gate GEMMs and scattered back. Mirrors mbfast/reference.py ReferenceModel.step; the CUDA twin is
// CudaState (engine_cuda.cc). Which chunks run where is the scheduler's (scheduler.h).
//
// Dimension legend: M rows of a chunk, B bands, L band layers, H band hidden, Lc central layers, Hc central hidden,
// P colour pairs, F final width (Hc + P + 1), C classes, T regression targets.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "column_team.h"
#include "engine.h"
#include "model.h"
#include "ops/gemm.h"
#include "plan.h"
#include "state_store.h"

namespace mbfast {

// Every Dense of the model packed for the CPU kernels at the engine's precision (ops::pack_weights), found by
// address: the Model is shared and immutable, so its Dense objects outlive the engine's use of them.
struct PackedModel {
  PackedModel(const Model& model, ops::Precision precision);
  const ops::PackedWeights& of(const Dense& dense) const { return weights.at(&dense); }

  ops::Precision precision = ops::Precision::kFp32;
  std::unordered_map<const Dense*, ops::PackedWeights> weights;
  int max_k = 0;  // the widest GEMM input (ops::reserve_gemm_scratch)
};

// One thread's scratch buffers for the step.
struct Workspace {
  std::vector<float> window, band_hidden, band_cell, gates, skip, layer_in, mixed, ping, pong;
  std::vector<float> central_hidden, central_cell, final, logits, target, column;
  ColumnTeam* team = nullptr;  // set while this thread leads a column-split step (scheduler.cc)

  static float* sized(std::vector<float>& buffer, size_t size) {
    if (buffer.size() < size) buffer.resize(size);
    return buffer.data();
  }
  // Every buffer at its size for M rows, so that a step of chunks of at most M rows allocates nothing once the state
  // is being written.
  void reserve(const ModelConfig& config, size_t M);
  // C (M, W.N; stride ldc) = [A1 | A2] @ W + bias, split by columns over the team when there is one
  void gemm(int M, const ops::GemmInput& A, const ops::PackedWeights& W, float* C, int ldc) {
    if (team) team->gemm(M, A, W, C, ldc);
    else ops::gemm_bias_cpu(M, A, W, C, ldc);
  }
  void gemm(const PackedModel& packed, const Dense& dense, int M, const float* x, int lda, float* y, int ldc) {
    gemm(M, ops::GemmInput{x, lda, dense.in, nullptr, 0}, packed.of(dense), y, ldc);
  }
};

// The band step and translation for M tasks of the same band and wave (distinct objects): `translated` (M, Hc)
// receives each row's translated band embedding, the central step's input.
void band_chunk(const Model& model, const PackedModel& packed, StateStore& store, const Task* const* tasks, int M,
                float* translated, Workspace& ws);

// The central step and the heads for M tasks of one wave, any bands (the central weights are shared by all bands,
// so small calls of several bands stream them once): `translated` (M, Hc) from band_chunk, `colours` (M, P).
// Outputs go to the store and to `outputs` (write_outputs).
void central_chunk(const Model& model, const PackedModel& packed, StateStore& store, const Task* const* tasks, int M,
                   const float* translated, const float* colours, RowOutputs outputs, Workspace& ws);

// The outputs of M window rows, probs (M, C; ld_probs), embedding (M, Hc; ld_embedding), regression (M, T), into
// the store's slots and the caller's rows (`outputs`, null pointers skipped). Both devices' steps end here.
void write_outputs(StateStore& store, const Task* const* tasks, size_t M, const float* probs, int ld_probs,
                   const float* embedding, int ld_embedding, const float* regression, RowOutputs outputs);

// The embedding of object `slot` from the central h its store holds on the host: its layers mixed with the central
// stack's softmax weights (eq. 3), which is what its last central step computed from the same h; NaN before its
// first prediction. Hc values to `out`; `hidden` (Lc x Hc) is scratch.
void mix_embedding(const Model& model, const StateStore& store, int32_t slot, float* out, std::vector<float>& hidden);

}  // namespace mbfast

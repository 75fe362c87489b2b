// CpuScheduler and CudaCall (scheduler.h): which window rows run together, on which thread or device.
#include "scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace mbfast {

namespace {

constexpr int kChunkRows = 96;        // rows per gathered batch: 16 full 6-row GEMM tiles, all in L2
constexpr size_t kMinChunkRows = 6;   // a wave is spread over threads only down to one full GEMM tile each

// Rows [begin, end) as chunks of at most kChunkRows and of even sizes, as many as `threads` or a multiple of it (a
// ragged last chunk would leave threads idle at the end of a phase) while each keeps a full 6-row GEMM tile.
void split_evenly(size_t begin, size_t end, int threads, std::vector<CpuScheduler::Chunk>& out) {
  const size_t rows = end - begin, T = size_t(threads);
  size_t n = (rows + kChunkRows - 1) / kChunkRows;
  n = n > T ? (n + T - 1) / T * T : std::min(T, std::max(n, rows / kMinChunkRows));
  for (size_t k = 0; k < n; ++k) out.push_back({begin + (end - begin) * k / n, begin + (end - begin) * (k + 1) / n});
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// CPU: chunks of one wave spread over the thread pool
// ---------------------------------------------------------------------------------------------------------------

CpuScheduler::CpuScheduler(std::shared_ptr<const Model> model, ops::Precision precision, int num_threads)
    : model_(std::move(model)),
      packed_(*model_, precision),
      pool_(std::max(num_threads, 1), [this] { reserve_scratch(); }) {
  for (int worker = 0; worker < pool_.size(); ++worker) {
    workspaces_.push_back(std::make_unique<Workspace>());
    workspaces_.back()->reserve(model_->config, kChunkRows);
  }
}

CpuScheduler::~CpuScheduler() = default;

const char* CpuScheduler::kernel() const {
  // the kernel the weights were packed for: bf16 on an AVX-512 CPU without vdpbf16ps runs the avx2 kernel, int8
  // runs avx512_vnni or portable
  return ops::kernel_name(packed_.of(model_->classifier.out).kernel);
}

void CpuScheduler::reserve_scratch() const { ops::reserve_gemm_scratch(kChunkRows, packed_.max_k); }

CpuScheduler::Call CpuScheduler::prepare(const Plan& plan, const std::vector<int32_t>& order) {
  reserve_scratch();  // the calling thread's (the pool's workers sized theirs when they started)
  const size_t n = order.size(), P = model_->config.n_colours(), Hc = model_->config.central_hidden;
  Call call;
  call.tasks.resize(n);
  call.slot.resize(n);
  call.window.resize(n * kRowWidth);
  call.dt.resize(n);
  call.colours.resize(n * P);
  call.translated.resize(n * Hc);
  call.band_chunks.reserve(n + 1);  // split_evenly makes at most rows + threads
  call.central_chunks.reserve(n + size_t(pool_.size()));
  for (size_t i = 0; i < n; ++i) {
    const Task& task = plan.tasks[order[i]];
    call.tasks[i] = &task;
    std::memcpy(call.window.data() + i * kRowWidth, task.window, sizeof(float) * kRowWidth);
    call.dt[i] = task.dt_central;
    std::memcpy(call.colours.data() + i * P, plan.colours.data() + size_t(order[i]) * P, sizeof(float) * P);
  }
  return call;
}

ChunkRows CpuScheduler::Call::rows(const Chunk& chunk, int P) const {
  const size_t i = chunk.begin;
  return {static_cast<int64_t>(i), static_cast<int>(chunk.end - chunk.begin), slot.data() + i,
          window.data() + i * kRowWidth, dt.data() + i, colours.data() + i * P};
}

void CpuScheduler::run(Call& call, StateStore& store, RowOutputs outputs) {
  for (size_t i = 0; i < call.tasks.size(); ++i) call.slot[i] = call.tasks[i]->slot;
  size_t wave_begin = 0;
  while (wave_begin < call.tasks.size()) {
    const int wave = call.tasks[wave_begin]->wave;
    size_t wave_end = wave_begin;
    while (wave_end < call.tasks.size() && call.tasks[wave_end]->wave == wave) ++wave_end;
    run_wave(call, wave_begin, wave_end, store, outputs);
    wave_begin = wave_end;
  }
}

// One wave: the band phase in chunks of one band each (its own weights), then the central phase in chunks of any
// bands (every band shares the central weights).
void CpuScheduler::run_wave(Call& call, size_t begin, size_t end, StateStore& store, RowOutputs outputs) {
  const size_t Hc = model_->config.central_hidden;
  const int P = model_->config.n_colours();
  call.band_chunks.clear();
  for (size_t i = begin; i < end;) {
    size_t band_end = i;
    while (band_end < end && call.tasks[band_end]->band == call.tasks[i]->band) ++band_end;
    split_evenly(i, band_end, 1, call.band_chunks);
    i = band_end;
  }
  call.central_chunks.clear();
  split_evenly(begin, end, pool_.size(), call.central_chunks);
  // a phase of one chunk (e.g. a one-row call) may split its products over the threads; timed to choose
  const bool lone = pool_.size() > 1 && (call.band_chunks.size() == 1 || call.central_chunks.size() == 1);
  const bool split = lone && split_chooser_.split_next();
  const auto start = std::chrono::steady_clock::now();
  auto run_band = [&](const Chunk& chunk, Workspace& ws) {
    CpuBackend backend(packed_, ws, store, call.tasks.data(), outputs);
    band_chunk(backend, *model_, call.rows(chunk, P), call.tasks[chunk.begin]->band,
               call.translated.data() + chunk.begin * Hc);
  };
  auto run_central = [&](const Chunk& chunk, Workspace& ws) {
    CpuBackend backend(packed_, ws, store, call.tasks.data(), outputs);
    central_chunk(backend, *model_, call.rows(chunk, P), call.translated.data() + chunk.begin * Hc);
  };
  if (call.band_chunks.size() == 1 && call.central_chunks.size() == 1) {  // both phases in one hand-over
    run_phase(call.band_chunks, split, [&](const Chunk& chunk, Workspace& ws) {
      run_band(chunk, ws);
      run_central(call.central_chunks[0], ws);
    });
  } else {
    run_phase(call.band_chunks, split, run_band);
    run_phase(call.central_chunks, split, run_central);
  }
  if (lone) {
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    split_chooser_.record(split, took.count() / double(end - begin));
  }
}

// fn(chunk, workspace) for every chunk: chunks spread over the threads, or a lone chunk split by columns over all of
// them when `split` (ColumnTeam).
template <typename Fn>
void CpuScheduler::run_phase(const std::vector<Chunk>& chunks, bool split, Fn&& fn) {
  if (chunks.size() != 1 || !split) {
    pool_.run(static_cast<int64_t>(chunks.size()),
              [&](int64_t item, int worker) { fn(chunks[item], *workspaces_[worker]); });
    return;
  }
  ColumnTeam team(pool_.size());
  pool_.run(pool_.size(), [&](int64_t item, int worker) {
    if (item > 0) return team.help();
    Workspace& ws = *workspaces_[worker];
    struct Lead {  // releases the helpers even when the step throws
      ColumnTeam& team;
      Workspace& ws;
      ~Lead() { ws.context.team = nullptr; team.finish(); }
    } lead{team, ws};
    ws.context.team = &team;
    fn(chunks[0], ws);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// GPU: the whole call as one StepBatch
// ---------------------------------------------------------------------------------------------------------------

CudaCall::CudaCall(const ModelConfig& config, size_t n)
    : colour_pairs(config.n_colours()), tasks(n), probs(n * config.n_classes()), embedding(n * config.central_hidden),
      regression(n * config.n_targets()) {
  batch.runs.reserve(n);
  batch.slot.resize(n);
  batch.window.resize(n * kRowWidth);
  batch.dt.resize(n);
  batch.colours.resize(n * config.n_colours());
}

void CudaCall::run(CudaState& cuda, const Plan& plan, const std::vector<int32_t>& order, StateStore& store,
                   RowOutputs outputs) {
  const size_t n = order.size(), P = colour_pairs;
  if (n == 0) return;
  for (size_t i = 0; i < n; ++i) {
    const Task& task = plan.tasks[order[i]];
    tasks[i] = &task;
    batch.slot[i] = task.slot;
    std::memcpy(batch.window.data() + i * kRowWidth, task.window, sizeof(float) * kRowWidth);
    batch.dt[i] = task.dt_central;
    std::memcpy(batch.colours.data() + i * P, plan.colours.data() + size_t(order[i]) * P, sizeof(float) * P);
    if (batch.runs.empty() || batch.runs.back().wave != task.wave || batch.runs.back().band != task.band)
      batch.runs.push_back({static_cast<int64_t>(i), static_cast<int64_t>(i), task.wave, task.band});
    batch.runs.back().end = static_cast<int64_t>(i) + 1;
  }
  cuda.run(batch, probs.data(), embedding.data(), regression.data());
  write_outputs(store, tasks.data(), n, probs.data(), store.n_classes, embedding.data(),
                store.central_hidden, regression.data(), outputs);
}

}  // namespace mbfast

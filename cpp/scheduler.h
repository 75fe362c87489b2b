// Runs a planned call's window rows through the model step, wave by wave (wave k holds each object's k-th window row
// of the call, so a wave reads the state the previous one wrote): on the CPU threads (CpuScheduler, over step.h) or
// on a GPU (CudaCall, over CudaState). Each takes every buffer it needs before the call commits, so that
// commit_plan and the step allocate nothing and a std::bad_alloc leaves the state as it was.
//
// Dimension legend: n window rows of the call, P colour pairs, Hc central hidden, C classes, T regression targets.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "column_team.h"
#include "engine.h"
#include "engine_cuda.h"
#include "plan.h"
#include "step.h"
#include "thread_pool.h"

namespace mbfast {

class CpuScheduler {
 public:
  CpuScheduler(std::shared_ptr<const Model> model, ops::Precision precision, int num_threads);
  ~CpuScheduler();

  // A call's window rows in run order (plan.h run_order) and its buffers.
  struct Chunk {
    size_t begin, end;  // into the run order
  };
  struct Call {
    std::vector<const Task*> tasks;  // (n,) stay valid: commit_plan only sets the tasks' slots
    std::vector<int32_t> slot;       // (n,) filled by run, once commit_plan has resolved them
    std::vector<float> window;       // (n, 4)
    std::vector<float> dt;           // (n,)
    std::vector<float> colours;      // (n, P)
    std::vector<float> translated;   // (n, Hc) band_chunk -> central_chunk
    std::vector<Chunk> band_chunks, central_chunks;  // one wave's
    ChunkRows rows(const Chunk& chunk, int P) const;
  };
  Call prepare(const Plan& plan, const std::vector<int32_t>& order);  // before commit_plan
  void run(Call& call, StateStore& store, RowOutputs outputs);        // after commit_plan

  int num_threads() const { return pool_.size(); }
  const char* kernel() const;  // the GEMM kernel the weights were packed for (ops::kernel_name)

 private:
  void run_wave(Call& call, size_t begin, size_t end, StateStore& store, RowOutputs outputs);
  template <typename Fn>
  void run_phase(const std::vector<Chunk>& chunks, bool split, Fn&& fn);
  void reserve_scratch() const;  // this thread's GEMM scratch for chunks of kChunkRows (allocation-free steps)

  std::shared_ptr<const Model> model_;
  PackedModel packed_;
  ThreadPool pool_;
  std::vector<std::unique_ptr<Workspace>> workspaces_;  // one per pool worker
  SplitChooser split_chooser_;  // one-chunk waves: split over the threads or not (column_team.h)
};

// A call on a GPU: its window rows go over in (wave, band) order as one StepBatch, the per-row outputs come back into
// these buffers and are written to the store and the caller's arrays (write_outputs).
struct CudaCall {
  CudaCall(const ModelConfig& config, size_t n);  // before commit_plan
  void run(CudaState& cuda, const Plan& plan, const std::vector<int32_t>& order, StateStore& store,
           RowOutputs outputs);  // after commit_plan

  int colour_pairs;                                 // P
  StepBatch batch;
  std::vector<const Task*> tasks;                   // (n,) in run order
  std::vector<float> probs, embedding, regression;  // (n, C), (n, Hc), (n, T)
};

}  // namespace mbfast

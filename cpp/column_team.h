// Splits matrix products by columns between threads, for calls too small to spread over objects (one row of a
// single object): each thread then streams only its share of the weights from cache, which is what limits a
// one-row step. The calling thread leads (runs the model step and posts each GEMM); helpers spin inside a
// ThreadPool job and take parts of whatever GEMM is posted. Every column is computed by the same kernel code
// whichever thread runs it, so results are bit-identical to an unsplit gemm_bias_cpu.
#pragma once

#include <atomic>
#include <cstdint>

#include "ops/gemm.h"

namespace mbfast {

class ColumnTeam {
 public:
  explicit ColumnTeam(int n_threads) : n_threads_(n_threads) {}

  // Leader: C = [A1 | A2] @ W + bias, returning once every part is done. Never waits for a helper to show up:
  // parts nobody has taken are run by the leader itself.
  void gemm(int M, const ops::GemmInput& A, const ops::PackedWeights& W, float* C, int ldc);
  // Helper: runs parts of the leader's GEMMs until finish().
  void help();
  // Leader: no more GEMMs; helpers return.
  void finish() { finished_.store(true, std::memory_order_release); }

 private:
  struct Job {
    int M = 0, ldc = 0, panels_per_part = 0;
    ops::GemmInput A;
    const ops::PackedWeights* W = nullptr;
    float* C = nullptr;
  };
  void run_parts();

  const int n_threads_;
  Job job_;  // written by the leader only while no part of the previous job is pending
  // job number << 32 | number of parts << 16 | next part to claim: one fetch_add claims a part of the current job,
  // and the part count travels with the claim, so a late helper never reads job_ of a finished job.
  alignas(64) std::atomic<uint64_t> ticket_{0};
  alignas(64) std::atomic<int> parts_done_{0};
  alignas(64) std::atomic<bool> finished_{false};
};

}  // namespace mbfast

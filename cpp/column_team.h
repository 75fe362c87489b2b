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

// Whether a one-chunk wave should use a ColumnTeam or run on the calling thread alone. Splitting pays when each core
// streams its share of the weights faster than one core streams them all; it loses when the other cores are busy
// with other work (measured: a one-row int8 step 2x slower than alone) or when the weights fit one core's cache.
// So both ways are timed and the faster one is kept, running kProbeCalls calls the other way every kPeriod calls
// to follow changes in load. Either way gives the same bits.
class SplitChooser {
 public:
  bool split_next();                               // the way to run the next one-chunk wave
  void record(bool split, double seconds_per_row);  // how long that wave took

 private:
  static constexpr uint64_t kPeriod = 192;
  static constexpr uint64_t kProbeCalls = 12;
  // calls right after a change of way are not timed: they find the helpers asleep (or newly busy)
  static constexpr int kSettleCalls = 4;
  static constexpr int kWindow = 16;  // timed calls per way the choice looks at (the median: spikes are common)
  struct Timings {
    double seconds_per_row[kWindow] = {};
    int count = 0;        // recorded so far (the ring holds the last kWindow)
    double median = 0.0;  // of the ring; 0 until measured
  };
  Timings timings_[2];  // [alone, split]
  uint64_t calls_ = 0;
  bool last_split_ = false;
  int same_way_ = 0;  // calls in a row run the way of the last one, minus one
};

}  // namespace mbfast

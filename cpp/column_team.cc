// ColumnTeam (see column_team.h).
#include "column_team.h"

#include <algorithm>

#include "spin_wait.h"

namespace mbfast {

namespace {

// Products smaller than this many weights run on the leader alone: a part must outweigh the hand-over (~0.2 us).
constexpr int64_t kMinSplitWeights = 16384;
// Parts per thread: more than one, so that when a helper runs slow (its core shared with another busy thread)
// the others take over the parts it has not claimed instead of waiting for it.
constexpr int kPartsPerThread = 2;

}  // namespace

void ColumnTeam::gemm(int M, const ops::GemmInput& A, const ops::PackedWeights& W, float* C, int ldc) {
  const int n_panels = (W.N + ops::kGemmPanel - 1) / ops::kGemmPanel;
  const int n_parts = std::min(kPartsPerThread * n_threads_, n_panels);
  if (n_parts < 2 || int64_t(W.K) * W.N < kMinSplitWeights) return ops::gemm_bias_cpu(M, A, W, C, ldc);
  job_ = Job{M, ldc, (n_panels + n_parts - 1) / n_parts, A, &W, C};
  parts_done_.store(0, std::memory_order_relaxed);
  const uint64_t number = (ticket_.load(std::memory_order_relaxed) >> 32) + 1;
  ticket_.store(number << 32 | uint64_t(n_parts) << 16, std::memory_order_release);
  run_parts();
  for (SpinWait wait; parts_done_.load(std::memory_order_acquire) < n_parts;) wait();
}

void ColumnTeam::run_parts() {
  while (true) {
    const uint64_t ticket = ticket_.fetch_add(1, std::memory_order_acq_rel);
    const int part = int(ticket & 0xffff), n_parts = int((ticket >> 16) & 0xffff);
    if (part >= n_parts) return;
    const Job& job = job_;  // stable: the leader waits for this part before posting another job
    const int n_begin = part * job.panels_per_part * ops::kGemmPanel;
    const int n_end = std::min(job.W->N, n_begin + job.panels_per_part * ops::kGemmPanel);
    ops::gemm_bias_cpu_columns(job.M, job.A, *job.W, job.C, job.ldc, n_begin, n_end);
    parts_done_.fetch_add(1, std::memory_order_release);
  }
}

void ColumnTeam::help() {
  uint64_t seen = 0;
  for (SpinWait wait;;) {
    const uint64_t number = ticket_.load(std::memory_order_acquire) >> 32;
    if (number != seen) {
      seen = number;
      run_parts();
    } else if (finished_.load(std::memory_order_acquire)) {
      return;
    } else {
      wait();
    }
  }
}

bool SplitChooser::split_next() {
  ++calls_;
  bool split;
  if (timings_[1].median == 0.0) {
    split = true;  // measure each way first
  } else if (timings_[0].median == 0.0) {
    split = false;
  } else {
    const bool faster_split = timings_[1].median < timings_[0].median;
    split = calls_ % kPeriod >= kPeriod - kProbeCalls ? !faster_split : faster_split;
  }
  same_way_ = split == last_split_ ? same_way_ + 1 : 0;
  last_split_ = split;
  return split;
}

void SplitChooser::record(bool split, double seconds_per_row) {
  if (same_way_ < kSettleCalls) return;
  Timings& timings = timings_[split];
  timings.seconds_per_row[timings.count++ % kWindow] = seconds_per_row;
  const int n = std::min(timings.count, kWindow);
  double sorted[kWindow];
  std::copy(timings.seconds_per_row, timings.seconds_per_row + n, sorted);
  std::nth_element(sorted, sorted + n / 2, sorted + n);
  timings.median = sorted[n / 2];
}

}  // namespace mbfast

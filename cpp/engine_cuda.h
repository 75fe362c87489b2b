// CudaState: band and central h, c of every slot of a StateStore held in GPU memory, the model weights on the same
// GPU, and the model step that advances them (engine_cuda.cc, kernels in ops/*_cuda.cu). The host keeps everything
// else (validation, window rows, obj_id -> slot map, scalar state, last outputs): Engine::advance plans a call
// exactly as on the CPU and hands the window rows over as a StepBatch. No CUDA types here, so the CPU-only build
// compiles every call site; there engine_cuda_none.cc makes create() throw "mbfast was built without CUDA".
//
// Dimension legend: n window rows of a call, S slots, B bands, L band layers, H band hidden, Lc central layers,
// Hc central hidden, P colour pairs, C classes, T regression targets.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine.h"
#include "model.h"

namespace mbfast {

// The window rows of one call in (wave, band) order: inside a wave each object appears once, so a run of rows of one
// wave and band is one batch of distinct slots for the band stack, and a whole wave one batch for the central stack.
struct StepBatch {
  struct Run {
    int64_t begin = 0, end = 0;  // rows [begin, end)
    int32_t wave = 0, band = 0;
  };
  std::vector<Run> runs;         // consecutive, waves ascending
  std::vector<int32_t> slot;     // (n,) StateStore slot of each row's object
  std::vector<float> window;     // (n, 4) eq. 2 window rows
  std::vector<float> dt;         // (n,) log10(1 + days since the object's previous window row), §3.5
  std::vector<float> colours;    // (n, P)
  int64_t size() const { return static_cast<int64_t>(slot.size()); }
};

// Number of CUDA devices this process can use; 0 without CUDA in the build, without a driver or without a GPU.
int cuda_device_count();

class CudaState {
 public:
  // Weights copied to device `options.index`. Throws std::runtime_error: "mbfast was built without CUDA",
  // "no CUDA device available" (none, or no driver), "CUDA device 3 not available (2 devices)".
  static std::unique_ptr<CudaState> create(std::shared_ptr<const Model> model, const DeviceOptions& options);
  ~CudaState();
  CudaState(const CudaState&) = delete;
  CudaState& operator=(const CudaState&) = delete;

  std::unique_ptr<CudaState> empty_like() const;  // no slots, the same device weights (Engine::classify)

  void resize(int64_t slots);                  // slots [old size, slots) start with zero h, c
  void move_slot(int64_t from, int64_t to);    // h, c of slot `from` copied onto slot `to`
  // One band step + one central step per row, in batch order; outputs (n, C), (n, Hc), (n, T) on the host.
  void run(const StepBatch& batch, float* probs, float* embedding, float* regression);
  void download(StateStore& store) const;      // fills the store's band/central h, c vectors (S slots)
  void upload(const StateStore& store);        // the store's h, c vectors become the device state

  struct Impl;

 private:
  explicit CudaState(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mbfast

// The stateful engine's API: Engine and the types of a call (rows, per-row statuses, outputs). It holds a state
// store of per-object recurrent state (state_store.h) and advances it by new observations (paper §3.5: each costs one
// band-model step and one central step): plan.h checks the rows, scheduler.h runs step.h on the CPU threads or
// engine_cuda.h on a GPU. No Python types here.
//
// Dimension legend: N rows of a call, S stored objects (slots), K objects asked about, B bands, L band layers,
// H band hidden, Lc central layers, Hc central hidden, C classes, T regression targets, P colour pairs.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model.h"
#include "ops/device.h"
#include "ops/gemm.h"
#include "state_store.h"

namespace mbfast {

// Per-row outcome of Engine::step; the codes and names are exported by _core and mirrored by mbfast/engine.py.
enum class Status : int8_t {
  kPredicted = 0,   // window row formed: band step + central step ran, outputs are for this row
  kWarmingUp = 1,   // applied, but its band has fewer than 3 observations: no window row yet (eq. 2)
  kDuplicate = 2,   // repeat of the band's last applied observation (same t, mag, err): ignored
  kLate = 3,        // t not after the last t of this object and band (and not a duplicate): ignored
  kInvalid = 4,     // NaN/inf in t, mag or err, err <= 0, |t| > 1e12 or |mag| > 1e4: ignored
};
constexpr int kNumStatus = 5;

// Bounds of a valid row (kInvalid beyond them): finite but absurd values would overflow fp32 inside the model and
// leave NaN in an object's state for good. They are far outside any survey's data: MJD, JD and Unix seconds all fit.
constexpr double kMaxAbsTime = 1e12;
constexpr float kMaxAbsMag = 1e4f;
// Observations counted per object and band: a row beyond is kInvalid (the int32 count never overflows), and a state
// file with more is refused.
constexpr int32_t kMaxObservations = 1000000000;
extern const char* const kStatusNames[kNumStatus];

// How band and central h, c are stored between steps (CPU only). kFp16: IEEE half, rounded after each step and
// widened to fp32 for the next (half the state memory and traffic; outputs drift from fp32 by ~1e-3).
enum class StateDtype { kFp32, kFp16 };

struct DeviceOptions {
  Device device = Device::kCpu;
  int index = 0;  // CUDA device ordinal
  // the GEMM weights and inputs: kFp32, kBf16 or kInt8 on the CPU, kFp32, kBf16 or kFp16 on CUDA
  ops::Precision precision = ops::Precision::kFp32;
  StateDtype state_dtype = StateDtype::kFp32;
};

// Version of the state file's byte layout (state_file.cc); mirrored by mbfast/engine.py STATE_FORMAT_VERSION.
// Format 2 dropped the per-object embedding (recomputed from central h); format 1 files are still read.
constexpr uint32_t kStateFormatVersion = 2;

enum class OnError { kRaise, kSkip };

// How an observation at exactly the band's last t is treated.
enum class RepeatPolicy {
  kStream,  // duplicate only if (t, mag, err) equals the last applied observation; otherwise late
  kTable,   // always a duplicate, keeping the first: the policy of reference.py preprocess_reference
};

// N observations in the order they are applied; all pointers hold N values.
struct Observations {
  int64_t n = 0;
  const int64_t* obj_id = nullptr;
  const int8_t* band = nullptr;   // index into ModelConfig::bands
  const double* t = nullptr;      // MJD, days; float64 until differenced
  const float* mag = nullptr;     // AB
  const float* err = nullptr;     // 1-sigma, mag
};

// Per-row outputs of a step; any pointer may be null. Rows that are not kPredicted are left untouched.
struct RowOutputs {
  int8_t* status = nullptr;      // (N,)
  float* probs = nullptr;        // (N, C)
  float* embedding = nullptr;    // (N, Hc)
  float* regression = nullptr;   // (N, T)
};

// Per-object outputs (predict, classify); objects without a prediction get NaN, n_obs counts applied observations.
struct ObjectOutputs {
  float* probs = nullptr;        // (K, C)
  float* embedding = nullptr;    // (K, Hc)
  float* regression = nullptr;   // (K, T)
  int32_t* n_obs = nullptr;      // (K, B)
};

class CpuScheduler;  // scheduler.h
class CudaState;     // engine_cuda.h

class Engine {
 public:
  // DeviceOptions{Device::kCuda}: throws std::runtime_error "mbfast was built without CUDA" or "no CUDA device
  // available" when it cannot be had.
  Engine(std::shared_ptr<const Model> model, int num_threads, const DeviceOptions& device = {});
  ~Engine();

  const Model& model() const { return *model_; }
  const DeviceOptions& device() const { return device_; }
  const char* cpu_kernel() const;  // the CPU GEMM kernel in use (ops::kernel_name); "" on CUDA
  int num_threads() const { return num_threads_; }
  int64_t size() const;
  size_t state_bytes_per_object() const { return store_.bytes_per_object(); }

  // Applies rows in order (the same object may repeat). Validates the whole call first: with kRaise the first
  // bad row throws std::invalid_argument ("row 17 (obj_id 4021): err must be > 0, got -0.02") and no state changes.
  void step(const Observations& rows, OnError on_error, RowOutputs outputs);

  // Whole light curves, rows sorted by (obj_id, t) with offsets (K + 1,); a fresh state per object, the engine's
  // own state untouched. Equals stepping the same rows in order (RepeatPolicy::kTable for equal t).
  void classify(const Observations& rows, const int64_t* offsets, int64_t n_objects, ObjectOutputs outputs);

  void predict(const int64_t* obj_ids, int64_t n, ObjectOutputs outputs) const;
  int64_t forget(const int64_t* obj_ids, int64_t n);  // returns how many were known
  // Forgets every object whose newest applied observation (any band) is earlier than t; returns how many. Bounds
  // the memory of a long-running stream: objects not seen for a while leave.
  int64_t forget_before(double t);
  std::vector<int64_t> object_ids() const;  // the objects held, in slot order

  void save_state(const std::string& path) const;
  void load_state(const std::string& path);

 private:
  // plan_rows -> commit_plan -> the step on this engine's device, for `store` (store_, or classify's own)
  void advance(StateStore& store, CudaState* cuda, const Observations& rows, OnError on_error, RepeatPolicy policy,
               RowOutputs outputs);
  int64_t forget_held(const int64_t* obj_ids, int64_t n);  // forget, with mutex_ held

  std::shared_ptr<const Model> model_;
  DeviceOptions device_;
  int num_threads_;
  std::unique_ptr<CudaState> cuda_;  // Device::kCuda only: the recurrent state of store_'s slots, on the GPU
  std::unique_ptr<CpuScheduler> cpu_;  // Device::kCpu only: the packed weights and the threads
  StateStore store_;
  mutable std::mutex mutex_;  // one call at a time: Python threads may share an Engine (the GIL is released)
};

// state_file.cc: versioned, CRC-checked, bound to the model file's CRC, written atomically; h and c as fp32 in the
// file, converted block by block for a store that keeps them as half. Every scalar is range-checked on reading.
// The store written holds its h, c on the host; the one read holds them as `storage` (kFp32 or kFp16).
void write_state_file(const std::string& path, const StateStore& store, const Model& model);
StateStore read_state_file(const std::string& path, const Model& model, RecurrentStorage storage);
void check_path(const std::string& path, const char* what);  // refuses a NUL inside: the OS would stop there

}  // namespace mbfast

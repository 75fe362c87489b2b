// The stateful engine: a store of per-object recurrent state and the step that advances it by new observations
// (paper §3.5: each observation costs one band-model step and one central step). No Python types here.
//
// Dimension legend: N rows of a call, S stored objects (slots), K objects asked about, B bands, L band layers,
// H band hidden, Lc central layers, Hc central hidden, C classes, T regression targets, P colour pairs.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "column_team.h"
#include "model.h"
#include "ops/gemm.h"
#include "slot_index.h"
#include "thread_pool.h"

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

// Where an Engine keeps band and central h, c and runs the model step. kCuda: in GPU memory (engine_cuda.h);
// validation, window rows, the obj_id -> slot map and the scalar state stay on the host either way.
enum class Device { kCpu, kCuda };

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

// Recurrent state of every object, one slot per object, in contiguous structure-of-arrays form so a batch can
// gather the rows it needs. Slots stay dense: forgetting an object moves the last slot into its place.
struct StateStore {
  // recurrent_on_host = false: band/central h and c are held by a CudaState, and those four vectors stay empty.
  // fp16_recurrent: h and c live in the *_fp16 vectors instead of the float ones (StateDtype::kFp16).
  explicit StateStore(const ModelConfig& config, bool recurrent_on_host = true, bool fp16_recurrent = false);

  int64_t size() const { return static_cast<int64_t>(obj_id.size()); }
  int32_t find(int64_t id) const;  // slot, or -1
  int32_t add(int64_t id);         // new zeroed slot (outputs NaN)
  bool remove(int64_t id);
  void reserve(int64_t n_objects);
  void release_unused();  // gives back capacity when at most a quarter of it is used (after forget)
  size_t bytes_per_object() const;  // array bytes of one slot (excludes the hash map entry)
  // Values per object in `embedding`: Hc when the recurrent state is on a GPU, else 0 (the CPU recomputes the
  // embedding from central h: 512 B per object less for the paper's shape).
  size_t embedding_width() const { return recurrent_on_host ? 0 : size_t(central_hidden); }

  int n_bands, band_layers, band_hidden, central_layers, central_hidden, n_classes, n_targets;
  bool recurrent_on_host;
  bool fp16_recurrent;
  SlotIndex slot_of;                    // obj_id -> slot
  std::vector<int64_t> obj_id;          // (S,)
  // per object and band
  std::vector<int32_t> count;           // (S, B) observations applied
  std::vector<double> last_t;           // (S, B) t of the last applied observation
  std::vector<double> mag_sum;          // (S, B) sum of applied mags (cumulative mean colours, Appendix B)
  std::vector<float> last_mag;          // (S, B)
  std::vector<float> last_err;          // (S, B) only for recognising duplicates
  std::vector<float> prev_log_dt;       // (S, B) log10 dt of the previous window row's newest pair
  std::vector<float> prev_dmag;         // (S, B) dmag of the previous window row's newest pair
  std::vector<float> band_hidden_state; // (S, B, L, H)
  std::vector<float> band_cell_state;   // (S, B, L, H)
  // per object
  std::vector<double> central_t;        // (S,) t of the last window row; the first observation's t before that
  std::vector<float> central_hidden_state;  // (S, Lc, Hc)
  std::vector<float> central_cell_state;    // (S, Lc, Hc)
  std::vector<uint8_t> has_prediction;  // (S,)
  std::vector<float> probs;             // (S, C) after the last window row
  std::vector<float> embedding;         // (S, embedding_width()) the last embedding, GPU engines only
  std::vector<float> regression;        // (S, T)
  // StateDtype::kFp16 only, in place of the four float h, c vectors above (same shapes)
  std::vector<uint16_t> band_hidden_fp16, band_cell_fp16, central_hidden_fp16, central_cell_fp16;
};

struct Workspace;  // per-thread scratch buffers, engine.cc
struct PackedModel;  // the weights packed for the CPU kernels (ops/gemm.h), engine.cc
class CudaState;   // engine_cuda.h

class Engine {
 public:
  // DeviceOptions{Device::kCuda}: throws std::runtime_error "mbfast was built without CUDA" or "no CUDA device
  // available" when it cannot be had.
  Engine(std::shared_ptr<const Model> model, int num_threads, const DeviceOptions& device = {});
  ~Engine();

  const Model& model() const { return *model_; }
  const DeviceOptions& device() const { return device_; }
  const char* cpu_kernel() const;  // the CPU GEMM kernel in use (ops::kernel_name); "" on CUDA
  int num_threads() const { return pool_.size(); }
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
  void advance(StateStore& store, CudaState* cuda, const Observations& rows, OnError on_error, RepeatPolicy policy,
               RowOutputs outputs);
  int64_t forget_held(const int64_t* obj_ids, int64_t n);  // forget, with mutex_ held
  void reserve_scratch() const;  // this thread's GEMM scratch for chunks of kChunkRows (allocation-free steps)

  std::shared_ptr<const Model> model_;
  DeviceOptions device_;
  std::unique_ptr<CudaState> cuda_;  // Device::kCuda only: the recurrent state of store_'s slots, on the GPU
  std::unique_ptr<const PackedModel> packed_;  // Device::kCpu only
  StateStore store_;
  ThreadPool pool_;
  std::vector<std::unique_ptr<Workspace>> workspaces_;  // one per pool worker
  SplitChooser split_chooser_;  // one-chunk waves: split over the threads or not (column_team.h)
  mutable std::mutex mutex_;  // one call at a time: Python threads may share an Engine (the GIL is released)
};

// state_file.cc: versioned, CRC-checked, bound to the model file's CRC, written atomically; h and c as fp32 in the
// file, converted block by block for a store that keeps them as half (`fp16_recurrent`). Every scalar is range-checked
// on reading.
void write_state_file(const std::string& path, const StateStore& store, const Model& model);
StateStore read_state_file(const std::string& path, const Model& model, bool fp16_recurrent);
void check_path(const std::string& path, const char* what);  // refuses a NUL inside: the OS would stop there

}  // namespace mbfast

// The Engine API (engine.h), entry points first, then what they call: advance (plan_rows -> commit_plan -> the step
// on the engine's device, scheduler.h) and the per-object outputs. The model maths is step.h, written once for the
// CPU and CUDA, mirroring mbfast/model/reference.py.
#include "engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "engine_cuda.h"
#include "plan.h"
#include "scheduler.h"
#include "step.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "model and state files are read as little-endian");

namespace mbfast {

const char* const kStatusNames[kNumStatus] = {"predicted", "warming_up", "duplicate", "late", "invalid"};

namespace {

constexpr int64_t kClassifyObjects = 16384;  // objects per classify pass (bounds its temporary state)

// The CPU kernels' precision: fp32, bf16 or int8 weights and GEMM inputs (no fp16 kernels).
ops::Precision cpu_precision(const DeviceOptions& device) {
  if (device.precision == ops::Precision::kFp16)
    throw std::invalid_argument("precision 'fp16' is only available on CUDA; the CPU runs 'fp32', 'bf16' or 'int8'");
  return device.precision;
}

RecurrentStorage recurrent_storage(const DeviceOptions& device) {
  if (device.state_dtype == StateDtype::kFp16 && device.device != Device::kCpu)
    throw std::invalid_argument("state_dtype 'fp16' is only available on the CPU");
  if (device.device == Device::kCuda) return RecurrentStorage::kDevice;
  return device.state_dtype == StateDtype::kFp16 ? RecurrentStorage::kFp16 : RecurrentStorage::kFp32;
}

// Row k of predict's or classify's outputs for object `slot` (-1: unknown, only n_obs = 0 is written); `hidden`
// is scratch for mix_embedding.
void object_outputs(const Model& model, const StateStore& store, int32_t slot, int64_t k, ObjectOutputs outputs,
                    std::vector<float>& hidden) {
  const int B = store.n_bands, C = store.n_classes, Hc = store.central_hidden, T = store.n_targets;
  for (int b = 0; b < B; ++b) outputs.n_obs[k * B + b] = slot >= 0 ? store.count[size_t(slot) * B + b] : 0;
  if (slot < 0) return;
  std::memcpy(outputs.probs + k * C, store.probs.data() + size_t(slot) * C, sizeof(float) * C);
  if (store.embedding_width())  // a GPU engine: its h is on the device, the store keeps the embedding
    std::memcpy(outputs.embedding + k * Hc, store.embedding.data() + size_t(slot) * Hc, sizeof(float) * Hc);
  else
    mix_embedding(model, store, slot, outputs.embedding + k * Hc, hidden);
  if (T) std::memcpy(outputs.regression + k * T, store.regression.data() + size_t(slot) * T, sizeof(float) * T);
}

}  // namespace

Engine::Engine(std::shared_ptr<const Model> model, int num_threads, const DeviceOptions& device)
    : model_(std::move(model)),
      device_(device),
      num_threads_(std::max(num_threads, 1)),
      cuda_(device.device == Device::kCuda ? CudaState::create(model_, device) : nullptr),
      cpu_(device.device == Device::kCpu ? std::make_unique<CpuScheduler>(model_, cpu_precision(device), num_threads_)
                                         : nullptr),
      store_(model_->config, recurrent_storage(device)) {}

Engine::~Engine() = default;

void Engine::step(const Observations& rows, OnError on_error, RowOutputs outputs) {
  std::lock_guard<std::mutex> lock(mutex_);
  advance(store_, cuda_.get(), rows, on_error, RepeatPolicy::kStream, outputs);
}

void Engine::classify(const Observations& rows, const int64_t* offsets, int64_t n_objects, ObjectOutputs outputs) {
  std::lock_guard<std::mutex> lock(mutex_);
  const ModelConfig& config = model_->config;
  if (n_objects < 0 || offsets[0] != 0 || offsets[n_objects] != rows.n)
    throw std::invalid_argument("offsets must start at 0 and end at the number of observations");
  for (int64_t k = 0; k < n_objects; ++k)
    if (offsets[k + 1] < offsets[k]) throw std::invalid_argument("offsets must be non-decreasing");
  std::unique_ptr<CudaState> cuda = cuda_ ? cuda_->empty_like() : nullptr;  // same weights, its own state
  std::vector<float> hidden;
  for (int64_t first = 0; first < n_objects; first += kClassifyObjects) {
    const int64_t last = std::min(n_objects, first + kClassifyObjects);
    StateStore store(config, store_.recurrent_storage());
    if (cuda) cuda->resize(0);
    Observations part = rows;
    const int64_t begin = offsets[first], end = offsets[last];
    part.n = end - begin;
    part.obj_id += begin;
    part.band += begin;
    part.t += begin;
    part.mag += begin;
    part.err += begin;
    advance(store, cuda.get(), part, OnError::kSkip, RepeatPolicy::kTable, RowOutputs{});
    for (int64_t k = first; k < last; ++k)
      object_outputs(*model_, store, offsets[k + 1] > offsets[k] ? store.find(rows.obj_id[offsets[k]]) : -1, k,
                     outputs, hidden);
  }
}

void Engine::predict(const int64_t* obj_ids, int64_t n, ObjectOutputs outputs) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<float> hidden;
  for (int64_t k = 0; k < n; ++k) object_outputs(*model_, store_, store_.find(obj_ids[k]), k, outputs, hidden);
}

int64_t Engine::forget(const int64_t* obj_ids, int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  return forget_held(obj_ids, n);
}

int64_t Engine::forget_before(double t) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t B = store_.n_bands;
  std::vector<int64_t> stale;
  for (size_t slot = 0; slot < size_t(store_.size()); ++slot) {
    double newest = -std::numeric_limits<double>::infinity();
    for (size_t b = 0; b < B; ++b)
      if (store_.count[slot * B + b] > 0) newest = std::max(newest, store_.last_t[slot * B + b]);
    if (newest < t) stale.push_back(store_.obj_id[slot]);
  }
  return forget_held(stale.data(), static_cast<int64_t>(stale.size()));
}

std::vector<int64_t> Engine::object_ids() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return store_.obj_id;
}

void Engine::save_state(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!cuda_) return write_state_file(path, store_, *model_);
  StateStore full = store_;  // the same file as a CPU engine writes: h, c copied back from the GPU
  cuda_->download(full);
  write_state_file(path, full, *model_);
}

void Engine::load_state(const std::string& path) {
  // fully read and checked before anything is replaced
  StateStore loaded = read_state_file(path, *model_, cuda_ ? RecurrentStorage::kFp32 : store_.recurrent_storage());
  std::lock_guard<std::mutex> lock(mutex_);
  if (cuda_) {  // h, c go to the GPU; the host keeps the scalars and the embeddings only
    cuda_->upload(loaded);
    const size_t Hc = loaded.central_hidden;
    loaded.embedding.resize(size_t(loaded.size()) * Hc);
    std::vector<float> hidden;
    for (int32_t slot = 0; slot < loaded.size(); ++slot)
      mix_embedding(*model_, loaded, slot, loaded.embedding.data() + slot * Hc, hidden);
    loaded.set_recurrent_storage(RecurrentStorage::kDevice);
  }
  store_ = std::move(loaded);
}

// ---------------------------------------------------------------------------------------------------------------
// What the entry points call
// ---------------------------------------------------------------------------------------------------------------

void Engine::advance(StateStore& store, CudaState* cuda, const Observations& rows, OnError on_error,
                     RepeatPolicy policy, RowOutputs outputs) {
  Plan plan = plan_rows(model_->config, store, rows, on_error, policy, outputs.status);
  // Everything the call needs is allocated before commit_plan writes the first value: a std::bad_alloc leaves the
  // state as it was, and the same rows are accepted when sent again (the workspaces were sized at construction).
  const int64_t slots = reserve_for_plan(plan, store);
  const std::vector<int32_t> order = run_order(plan);
  if (cuda) {
    try {
      cuda->resize(slots);  // new slots start from zero h, c
      CudaCall call(model_->config, order.size());
      commit_plan(plan, store);
      call.run(*cuda, plan, order, store, outputs);
    } catch (...) {
      cuda->resize(store.size());  // slots of a call that was not committed belong to no object
      throw;
    }
    return;
  }
  CpuScheduler::Call call = cpu_->prepare(plan, order);
  commit_plan(plan, store);
  cpu_->run(call, store, outputs);
}

int64_t Engine::forget_held(const int64_t* obj_ids, int64_t n) {
  int64_t removed = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int32_t slot = store_.find(obj_ids[k]);
    if (slot < 0) continue;
    const int64_t last = store_.size() - 1;
    removed += store_.remove(obj_ids[k]);
    if (cuda_ && slot != last) cuda_->move_slot(last, slot);  // the same hole filling as StateStore::remove
  }
  if (cuda_) cuda_->resize(store_.size());
  store_.release_unused();  // a later load_state then needs room for the new state only
  return removed;
}

const char* Engine::cpu_kernel() const { return cpu_ ? cpu_->kernel() : ""; }

int64_t Engine::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return store_.size();
}

}  // namespace mbfast

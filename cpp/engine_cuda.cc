// CudaState (see engine_cuda.h): the model weights and every slot's band/central h, c in GPU memory, and the model
// step over a StepBatch. Host C++ on the CUDA runtime API; the kernels are ops/*_cuda.cu. The step itself is step.h's
// band_chunk and central_chunk, the CPU's, over CudaBackend: a run of rows of one wave and band is one chunk for the
// band step, a whole wave (up to kMaxRows rows) one chunk for the central step; state rows are gathered and
// scattered through each row's slot.//
// Dimension legend: n rows of the batch, M rows of one kernel batch, S slots, B bands, L band layers, H band hidden,
// Lc central layers, Hc central hidden, P colour pairs, F final width (Hc + P + 1), C classes, T targets.
#include "engine_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "ops/gemm.h"
#include "ops/rowwise.h"
#include "step.h"

namespace mbfast {

namespace {

constexpr int64_t kMaxRows = 32768;   // rows per kernel batch: fills an H100; scratch ~200 MB for H = Hc = 64
constexpr int64_t kMinSlots = 1024;   // first allocation of the state arrays; they double from there

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
}

// cudaSetDevice for the duration of a call, so engines on different GPUs can share a thread.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

// count values of T in device memory (contents undefined until written); freed with the object.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t count) { allocate(count); }
  DeviceArray(DeviceArray&& other) noexcept : data_(other.data_), count_(other.count_) { other.data_ = nullptr; }
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  ~DeviceArray() {
    if (data_) cudaFree(data_);
  }
  T* data() const { return data_; }
  size_t size() const { return count_; }
  void ensure(size_t count) {  // at least count values; old contents are lost when it grows
    if (count > count_) allocate(count);
  }

 private:
  void allocate(size_t count) {
    if (data_) cudaFree(data_);
    data_ = nullptr;
    count_ = 0;
    if (count) check(cudaMalloc(reinterpret_cast<void**>(&data_), count * sizeof(T)), "cudaMalloc");
    count_ = count;
  }
  T* data_ = nullptr;
  size_t count_ = 0;
};

// Page-locked host memory, so host <-> device copies run asynchronously on the stream at full speed.
template <typename T>
class PinnedArray {
 public:
  PinnedArray() = default;
  PinnedArray(const PinnedArray&) = delete;
  ~PinnedArray() {
    if (data_) cudaFreeHost(data_);
  }
  T* data() const { return data_; }
  void ensure(size_t count) {
    if (count <= count_) return;
    if (data_) cudaFreeHost(data_);
    data_ = nullptr;
    count_ = 0;
    check(cudaMallocHost(reinterpret_cast<void**>(&data_), count * sizeof(T)), "cudaMallocHost");
    count_ = count;
  }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

DeviceArray<float> to_device(const std::vector<float>& values) {
  DeviceArray<float> out(values.size());
  if (!values.empty())
    check(cudaMemcpy(out.data(), values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");
  return out;
}

// The GPU kernels' precision: fp32, bf16 or fp16 weights (no int8 kernels).
ops::Precision gpu_dtype(ops::Precision precision) {
  if (precision == ops::Precision::kInt8)
    throw std::invalid_argument("precision 'int8' is only available on the CPU; CUDA runs 'fp32', 'bf16' or 'fp16'");
  return precision;
}

// ---------------------------------------------------------------------------------------------------------------
// The model on the device: every Dense and vector of the host Model uploaded, found by the host object's address
// (the Model is shared and immutable), as step.cc's PackedModel packs them for the CPU.
// ---------------------------------------------------------------------------------------------------------------

struct DeviceDense {
  DeviceArray<float> weight;    // (in, out) fp32
  DeviceArray<uint16_t> half;   // (in, out) bf16 or fp16 bits, for those precisions
  DeviceArray<float> bias;      // (out,)
  ops::CudaWeights view;        // what the GEMM reads
};

struct DeviceModel {
  int device = 0;
  ops::Precision precision = ops::Precision::kFp32;
  std::unordered_map<const Dense*, DeviceDense> dense;
  std::unordered_map<const std::vector<float>*, DeviceArray<float>> vectors;  // norms and layer mixes

  DeviceModel(const Model& model, int device_, ops::Precision precision_) : device(device_), precision(precision_) {
    auto add_stack = [&](const RecurrentStack& stack) {
      for (const Dense& gates : stack.gates) add(gates);
      add(stack.residual);
      for (const auto& values : stack.norm_weight) add(values);
      for (const auto& values : stack.norm_bias) add(values);
      add(stack.mix);
    };
    auto add_ffnn = [&](const Ffnn& ffnn) {
      for (const Dense& layer : ffnn.layers) add(layer);
      add(ffnn.out);
    };
    for (const RecurrentStack& stack : model.band_stacks) add_stack(stack);
    for (const auto& mix : model.translation_mix) add(mix);
    for (const auto& layers : model.translators)
      for (const Dense& layer : layers) add(layer);
    for (const auto& values : model.translator_norm_weight) add(values);
    for (const auto& values : model.translator_norm_bias) add(values);
    add_stack(model.central);
    add_ffnn(model.classifier);
    for (const Ffnn& regressor : model.regressors) add_ffnn(regressor);
    check(cudaDeviceSynchronize(), "weight upload");
  }

  const ops::CudaWeights& of(const Dense& host) const { return dense.at(&host).view; }
  const float* of(const std::vector<float>& host) const { return vectors.at(&host).data(); }

 private:
  void add(const Dense& host) {
    DeviceDense& out = dense[&host];
    out.weight = to_device(host.weight_t);
    out.bias = to_device(host.bias);
    const void* weight = out.weight.data();
    if (precision != ops::Precision::kFp32) {
      out.half = DeviceArray<uint16_t>(host.weight_t.size());
      ops::convert_weights_cuda(nullptr, static_cast<long long>(host.weight_t.size()), out.weight.data(),
                                out.half.data(), precision);
      weight = out.half.data();
    }
    out.view = ops::CudaWeights{host.in, host.out, precision, weight, out.bias.data()};
  }
  void add(const std::vector<float>& host) { vectors[&host] = to_device(host); }
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// CudaState
// ---------------------------------------------------------------------------------------------------------------

struct CudaState::Impl {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const DeviceModel> weights;
  cudaStream_t stream = nullptr;
  ops::CudaContext context;

  int64_t slots = 0, capacity = 0;
  DeviceArray<float> band_hidden, band_cell;        // (capacity, B, L, H)
  DeviceArray<float> central_hidden, central_cell;  // (capacity, Lc, Hc)

  // one call's rows
  DeviceArray<int32_t> slot;     // (n,)
  DeviceArray<float> window;     // (n, 4)
  DeviceArray<float> dt;         // (n,)
  DeviceArray<float> colours;    // (n, P)
  PinnedArray<char> staging_in;
  PinnedArray<float> probs_out, embedding_out, regression_out;  // (n, C), (n, Hc), (n, T)

  // scratch for one kernel batch of up to kMaxRows rows: the step's buffers and the band -> central hand-over
  DeviceArray<float> scratch[kScratchCount];
  DeviceArray<float> translated;  // (kMaxRows, Hc)

  Impl(std::shared_ptr<const Model> model_, std::shared_ptr<const DeviceModel> weights_)
      : model(std::move(model_)), weights(std::move(weights_)) {
    DeviceScope scope(weights->device);
    // a blocking stream: ordered with the synchronous cudaMemcpy calls of upload/download on the legacy stream
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    context.stream = stream;
    const ModelConfig& config = model->config;
    for (int buffer = 0; buffer < kScratchCount; ++buffer)
      scratch[buffer].ensure(std::max<size_t>(scratch_size(Scratch(buffer), config, kMaxRows), 1));
    translated.ensure(size_t(kMaxRows) * config.central_hidden);
  }

  ~Impl() {
    if (stream) {
      DeviceScope scope(weights->device);
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
  }

  size_t band_width() const {
    const ModelConfig& config = model->config;
    return size_t(config.n_bands()) * config.band_layers * config.band_hidden;
  }
  size_t central_width() const { return size_t(model->config.central_layers) * model->config.central_hidden; }

  void grow(int64_t needed) {
    if (needed <= capacity) return;
    const int64_t grown = std::max({needed, 2 * capacity, kMinSlots});
    auto regrow = [&](DeviceArray<float>& values, size_t width) {
      DeviceArray<float> bigger(grown * width);
      if (slots)
        check(cudaMemcpyAsync(bigger.data(), values.data(), slots * width * sizeof(float), cudaMemcpyDeviceToDevice,
                              stream), "state grow");
      check(cudaStreamSynchronize(stream), "state grow");
      values = std::move(bigger);
    };
    regrow(band_hidden, band_width());
    regrow(band_cell, band_width());
    regrow(central_hidden, central_width());
    regrow(central_cell, central_width());
    capacity = grown;
  }

  template <typename T>
  void send(const std::vector<T>& values, DeviceArray<T>& target, size_t& offset) {
    const size_t bytes = values.size() * sizeof(T);
    target.ensure(std::max<size_t>(values.size(), 1));
    if (!bytes) return;
    std::memcpy(staging_in.data() + offset, values.data(), bytes);
    check(cudaMemcpyAsync(target.data(), staging_in.data() + offset, bytes, cudaMemcpyHostToDevice, stream), "send");
    offset += (bytes + 255) / 256 * 256;
  }

  ChunkRows rows(int64_t begin, int64_t end) const {
    const int P = model->config.n_colours();
    return {begin, static_cast<int>(end - begin), slot.data() + begin, window.data() + begin * kRowWidth,
            dt.data() + begin, colours.data() + begin * P};
  }

  void run(const StepBatch& batch, float* probs, float* embedding, float* regression_host);
};

namespace {

// The GPU's step (step.h Backend): the state rows of the chunk gathered from and scattered to the device state
// arrays through each row's slot, the outputs copied into the pinned host arrays at the chunk's rows.
class CudaBackend {
 public:
  explicit CudaBackend(CudaState::Impl& state) : s_(state) {}

  const ops::CudaContext& context() const { return s_.context; }
  const ops::CudaWeights& weights(const Dense& dense) const { return s_.weights->of(dense); }
  const float* values(const std::vector<float>& values) const { return s_.weights->of(values); }
  float* scratch(Scratch buffer, size_t count) {
    s_.scratch[buffer].ensure(count);  // sized for kMaxRows at construction: never grows here
    return s_.scratch[buffer].data();
  }
  void read_band_state(const ChunkRows& rows, int band, float* hidden, float* cell) const {
    const int LH = band_state(), width = static_cast<int>(s_.band_width());
    ops::gather_rows(s_.context, rows.M, LH, s_.band_hidden.data(), rows.slot, width, band * LH, hidden, LH);
    ops::gather_rows(s_.context, rows.M, LH, s_.band_cell.data(), rows.slot, width, band * LH, cell, LH);
  }
  void write_band_state(const ChunkRows& rows, int band, const float* hidden, const float* cell) {
    const int LH = band_state(), width = static_cast<int>(s_.band_width());
    ops::scatter_rows(s_.context, rows.M, LH, hidden, LH, s_.band_hidden.data(), rows.slot, width, band * LH);
    ops::scatter_rows(s_.context, rows.M, LH, cell, LH, s_.band_cell.data(), rows.slot, width, band * LH);
  }
  void read_central_state(const ChunkRows& rows, float* hidden, float* cell) const {
    const int LHc = static_cast<int>(s_.central_width());
    ops::gather_rows(s_.context, rows.M, LHc, s_.central_hidden.data(), rows.slot, LHc, 0, hidden, LHc);
    ops::gather_rows(s_.context, rows.M, LHc, s_.central_cell.data(), rows.slot, LHc, 0, cell, LHc);
  }
  void write_central_state(const ChunkRows& rows, float* hidden, const float* cell) {
    const int LHc = static_cast<int>(s_.central_width());
    ops::scatter_rows(s_.context, rows.M, LHc, hidden, LHc, s_.central_hidden.data(), rows.slot, LHc, 0);
    ops::scatter_rows(s_.context, rows.M, LHc, cell, LHc, s_.central_cell.data(), rows.slot, LHc, 0);
  }
  void write_outputs(const ChunkRows& rows, const float* probs, int ld_probs, const float* embedding, int ld_embedding,
                     const float* regression) {
    const ModelConfig& config = s_.model->config;
    const size_t C = config.n_classes(), Hc = config.central_hidden, T = config.n_targets(), M = rows.M;
    check(cudaMemcpy2DAsync(s_.probs_out.data() + rows.first * C, C * sizeof(float), probs, ld_probs * sizeof(float),
                            C * sizeof(float), M, cudaMemcpyDeviceToHost, s_.stream), "probs");
    check(cudaMemcpy2DAsync(s_.embedding_out.data() + rows.first * Hc, Hc * sizeof(float), embedding,
                            ld_embedding * sizeof(float), Hc * sizeof(float), M, cudaMemcpyDeviceToHost, s_.stream),
          "embedding");
    if (T)
      check(cudaMemcpyAsync(s_.regression_out.data() + rows.first * T, regression, M * T * sizeof(float),
                            cudaMemcpyDeviceToHost, s_.stream), "regression");
  }

 private:
  int band_state() const { return s_.model->config.band_layers * s_.model->config.band_hidden; }
  CudaState::Impl& s_;
};

}  // namespace

void CudaState::Impl::run(const StepBatch& batch, float* probs, float* embedding, float* regression_host) {
  const ModelConfig& config = model->config;
  const int64_t n = batch.size();
  if (n == 0) return;
  const size_t C = config.n_classes(), Hc = config.central_hidden, T = config.n_targets();
  check(cudaStreamSynchronize(stream), "previous call");  // the staging buffers are free again
  staging_in.ensure((batch.slot.size() + batch.window.size() + batch.dt.size() + batch.colours.size()) * 4 + 4 * 256);
  probs_out.ensure(n * C);
  embedding_out.ensure(n * Hc);
  regression_out.ensure(std::max<size_t>(n * T, 1));
  size_t offset = 0;
  send(batch.slot, slot, offset);
  send(batch.window, window, offset);
  send(batch.dt, dt, offset);
  send(batch.colours, colours, offset);
  // waves in order (each reads the state the previous one wrote); a wave in batches of at most kMaxRows rows: every
  // run of one band in the batch through band_chunk, then the whole batch through central_chunk
  CudaBackend backend(*this);
  size_t run = 0;
  while (run < batch.runs.size()) {
    size_t wave_end = run;
    while (wave_end < batch.runs.size() && batch.runs[wave_end].wave == batch.runs[run].wave) ++wave_end;
    const int64_t first = batch.runs[run].begin, last = batch.runs[wave_end - 1].end;
    for (int64_t begin = first; begin < last; begin += kMaxRows) {
      const int64_t end = std::min(last, begin + kMaxRows);
      for (size_t r = run; r < wave_end; ++r) {
        const int64_t lo = std::max(begin, batch.runs[r].begin), hi = std::min(end, batch.runs[r].end);
        if (lo < hi)
          band_chunk(backend, *model, rows(lo, hi), batch.runs[r].band, translated.data() + (lo - begin) * Hc);
      }
      central_chunk(backend, *model, rows(begin, end), translated.data());
    }
    run = wave_end;
  }
  check(cudaStreamSynchronize(stream), "model step");
  std::memcpy(probs, probs_out.data(), n * C * sizeof(float));
  std::memcpy(embedding, embedding_out.data(), n * Hc * sizeof(float));
  if (T) std::memcpy(regression_host, regression_out.data(), n * T * sizeof(float));
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {  // no driver, or no device: not an error for the caller
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::unique_ptr<CudaState> CudaState::create(std::shared_ptr<const Model> model, const DeviceOptions& options) {
  const ops::Precision dtype = gpu_dtype(options.precision);  // refuses int8 before any GPU work
  const int count = cuda_device_count();
  if (count == 0)
    throw std::runtime_error("no CUDA device available: mbfast was built with CUDA, but the CUDA driver reports no "
                             "usable GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
  if (options.index < 0 || options.index >= count)
    throw std::runtime_error("CUDA device " + std::to_string(options.index) + " not available (" +
                             std::to_string(count) + " device" + (count == 1 ? "" : "s") + ")");
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, options.index), "cudaGetDeviceProperties");
  if (properties.major < 8)
    throw std::runtime_error(std::string("CUDA device ") + std::to_string(options.index) + " (" + properties.name +
                             ") has compute capability " + std::to_string(properties.major) + "." +
                             std::to_string(properties.minor) + "; mbfast's kernels need 8.0 or newer");
  DeviceScope scope(options.index);
  auto weights = std::make_shared<const DeviceModel>(*model, options.index, dtype);
  return std::unique_ptr<CudaState>(new CudaState(std::make_unique<Impl>(std::move(model), std::move(weights))));
}

CudaState::CudaState(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaState::~CudaState() = default;

std::unique_ptr<CudaState> CudaState::empty_like() const {
  return std::unique_ptr<CudaState>(new CudaState(std::make_unique<Impl>(impl_->model, impl_->weights)));
}

void CudaState::resize(int64_t slots) {
  Impl& s = *impl_;
  DeviceScope scope(s.weights->device);
  s.grow(slots);
  if (slots > s.slots) {  // new slots: zero h, c
    const int64_t added = slots - s.slots;
    check(cudaMemsetAsync(s.band_hidden.data() + s.slots * s.band_width(), 0,
                          added * s.band_width() * sizeof(float), s.stream), "zero state");
    check(cudaMemsetAsync(s.band_cell.data() + s.slots * s.band_width(), 0, added * s.band_width() * sizeof(float),
                          s.stream), "zero state");
    check(cudaMemsetAsync(s.central_hidden.data() + s.slots * s.central_width(), 0,
                          added * s.central_width() * sizeof(float), s.stream), "zero state");
    check(cudaMemsetAsync(s.central_cell.data() + s.slots * s.central_width(), 0,
                          added * s.central_width() * sizeof(float), s.stream), "zero state");
  }
  s.slots = slots;
}

void CudaState::move_slot(int64_t from, int64_t to) {
  Impl& s = *impl_;
  DeviceScope scope(s.weights->device);
  auto move = [&](DeviceArray<float>& values, size_t width) {
    check(cudaMemcpyAsync(values.data() + to * width, values.data() + from * width, width * sizeof(float),
                          cudaMemcpyDeviceToDevice, s.stream), "move slot");
  };
  move(s.band_hidden, s.band_width());
  move(s.band_cell, s.band_width());
  move(s.central_hidden, s.central_width());
  move(s.central_cell, s.central_width());
}

void CudaState::run(const StepBatch& batch, float* probs, float* embedding, float* regression) {
  DeviceScope scope(impl_->weights->device);
  impl_->run(batch, probs, embedding, regression);
}

void CudaState::download(StateStore& store) const {
  Impl& s = *impl_;
  DeviceScope scope(s.weights->device);
  check(cudaStreamSynchronize(s.stream), "download");
  store.set_recurrent_storage(RecurrentStorage::kFp32);  // the same store as a CPU engine's (save_state)
  auto copy = [&](const DeviceArray<float>& values, RecurrentArray& array, size_t width) {
    std::vector<float>& out = array.fp32();
    out.resize(size_t(s.slots) * width);
    if (!out.empty())
      check(cudaMemcpy(out.data(), values.data(), out.size() * sizeof(float), cudaMemcpyDeviceToHost), "download");
  };
  copy(s.band_hidden, store.band_hidden_state, s.band_width());
  copy(s.band_cell, store.band_cell_state, s.band_width());
  copy(s.central_hidden, store.central_hidden_state, s.central_width());
  copy(s.central_cell, store.central_cell_state, s.central_width());
}

void CudaState::upload(const StateStore& store) {
  Impl& s = *impl_;
  DeviceScope scope(s.weights->device);
  const int64_t slots = store.size();
  if (store.recurrent_storage() != RecurrentStorage::kFp32 ||
      store.band_hidden_state.size() != size_t(slots) * s.band_width() ||
      store.central_hidden_state.size() != size_t(slots) * s.central_width())
    throw std::logic_error("CudaState::upload: the store holds no recurrent state");
  check(cudaStreamSynchronize(s.stream), "upload");
  s.slots = 0;  // nothing to keep when growing
  s.grow(slots);
  auto copy = [&](DeviceArray<float>& values, const RecurrentArray& array) {
    const std::vector<float>& in = array.fp32();
    if (!in.empty())
      check(cudaMemcpy(values.data(), in.data(), in.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");
  };
  copy(s.band_hidden, store.band_hidden_state);
  copy(s.band_cell, store.band_cell_state);
  copy(s.central_hidden, store.central_hidden_state);
  copy(s.central_cell, store.central_cell_state);
  check(cudaDeviceSynchronize(), "upload");  // pageable copies may return before their DMA has finished
  s.slots = slots;
}

}  // namespace mbfast

// CudaState (see engine_cuda.h): the model weights and every slot's band/central h, c in GPU memory, and the model
// step over a StepBatch. Host C++ on the CUDA runtime API; the kernels are ops/*_cuda.cu. The maths is that of
// band_chunk and central_chunk in engine.cc (which mirror mbfast/reference.py ReferenceModel.step), reorganised for
// a GPU: a run of rows of one wave and band is one batch for the band stack and the translation, a whole wave (up to
// kMaxRows rows) one batch for the central stack and the heads; state rows are read and written in place through
// each row's slot.
//
// Dimension legend: n rows of the batch, M rows of one kernel batch, S slots, B bands, L band layers, H band hidden,
// Lc central layers, Hc central hidden, P colour pairs, F final width (Hc + P + 1), C classes, T targets.
#include "engine_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ops/gemm.h"
#include "ops/lstm_cell.h"
#include "ops/rowwise.h"

namespace mbfast {

namespace {

constexpr int64_t kMaxRows = 32768;   // rows per kernel batch: fills an H100; scratch ~170 MB for H = Hc = 64
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
// The model on the device: model.h's structures with device arrays
// ---------------------------------------------------------------------------------------------------------------

struct DeviceDense {
  int in = 0, out = 0;
  DeviceArray<float> weight;    // (in, out) fp32
  DeviceArray<uint16_t> half;   // (in, out) bf16 or fp16 bits, for those precisions
  DeviceArray<float> bias;      // (out,)
};

struct DeviceStack {
  int in = 0, hidden = 0, layers = 0;
  std::vector<DeviceDense> gates;
  DeviceDense residual;
  std::vector<DeviceArray<float>> norm_weight, norm_bias;
  DeviceArray<float> mix;
};

struct DeviceFfnn {
  std::vector<DeviceDense> layers;
  DeviceDense out;
};

struct DeviceModel {
  int device = 0;
  ops::Precision dtype = ops::Precision::kFp32;
  std::vector<DeviceStack> band_stacks;              // (B,)
  std::vector<DeviceArray<float>> translation_mix;   // (B,) each (L,)
  std::vector<std::vector<DeviceDense>> translators;
  std::vector<DeviceArray<float>> translator_norm_weight, translator_norm_bias;
  DeviceStack central;
  DeviceFfnn classifier;
  std::vector<DeviceFfnn> regressors;

  DeviceDense dense(const Dense& host) const {
    DeviceDense out;
    out.in = host.in;
    out.out = host.out;
    out.weight = to_device(host.weight_t);
    out.bias = to_device(host.bias);
    if (dtype != ops::Precision::kFp32) {
      out.half = DeviceArray<uint16_t>(host.weight_t.size());
      ops::convert_weights_cuda(nullptr, static_cast<long long>(host.weight_t.size()), out.weight.data(),
                                out.half.data(), dtype);
    }
    return out;
  }

  DeviceStack stack(const RecurrentStack& host) const {
    DeviceStack out;
    out.in = host.in;
    out.hidden = host.hidden;
    out.layers = host.layers;
    for (const Dense& gates : host.gates) out.gates.push_back(dense(gates));
    out.residual = dense(host.residual);
    for (const auto& values : host.norm_weight) out.norm_weight.push_back(to_device(values));
    for (const auto& values : host.norm_bias) out.norm_bias.push_back(to_device(values));
    out.mix = to_device(host.mix);
    return out;
  }

  DeviceFfnn ffnn(const Ffnn& host) const {
    DeviceFfnn out;
    for (const Dense& layer : host.layers) out.layers.push_back(dense(layer));
    out.out = dense(host.out);
    return out;
  }

  DeviceModel(const Model& model, int device_, ops::Precision dtype_) : device(device_), dtype(dtype_) {
    for (const RecurrentStack& host : model.band_stacks) band_stacks.push_back(stack(host));
    for (const auto& mix : model.translation_mix) translation_mix.push_back(to_device(mix));
    for (const auto& layers : model.translators) {
      translators.emplace_back();
      for (const Dense& layer : layers) translators.back().push_back(dense(layer));
    }
    for (const auto& values : model.translator_norm_weight) translator_norm_weight.push_back(to_device(values));
    for (const auto& values : model.translator_norm_bias) translator_norm_bias.push_back(to_device(values));
    central = stack(model.central);
    classifier = ffnn(model.classifier);
    for (const Ffnn& regressor : model.regressors) regressors.push_back(ffnn(regressor));
    check(cudaDeviceSynchronize(), "weight upload");
  }

  const void* weights(const DeviceDense& dense) const {
    return dtype == ops::Precision::kFp32 ? static_cast<const void*>(dense.weight.data())
                                         : static_cast<const void*>(dense.half.data());
  }
};

int widest_dense(const Model& model) {
  int widest = 0;
  auto visit = [&](const Dense& dense) { widest = std::max(widest, dense.out); };
  for (const auto& layers : model.translators)
    for (const Dense& dense : layers) visit(dense);
  for (const Dense& dense : model.classifier.layers) visit(dense);
  for (const Ffnn& regressor : model.regressors)
    for (const Dense& dense : regressor.layers) visit(dense);
  return widest;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// CudaState
// ---------------------------------------------------------------------------------------------------------------

struct CudaState::Impl {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const DeviceModel> weights;
  cudaStream_t stream = nullptr;

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

  // scratch for one kernel batch of up to kMaxRows rows
  DeviceArray<float> concat, gates, skip, next_in, band_layers, central_layers, mixed, ping, pong, central_in, final,
      logits, regression;

  Impl(std::shared_ptr<const Model> model_, std::shared_ptr<const DeviceModel> weights_)
      : model(std::move(model_)), weights(std::move(weights_)) {
    DeviceScope scope(weights->device);
    // a blocking stream: ordered with the synchronous cudaMemcpy calls of upload/download on the legacy stream
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    const ModelConfig& config = model->config;
    const size_t rows = kMaxRows, H = config.band_hidden, Hc = config.central_hidden;
    const size_t hidden = std::max(H, Hc);
    concat.ensure(rows * (std::max<size_t>({size_t(kRowWidth), hidden}) + hidden));
    gates.ensure(rows * 4 * hidden);
    skip.ensure(rows * hidden);
    next_in.ensure(rows * hidden);
    band_layers.ensure(rows * config.band_layers * H);
    central_layers.ensure(rows * config.central_layers * Hc);
    mixed.ensure(rows * H);
    ping.ensure(rows * std::max<size_t>(widest_dense(*model), 1));
    pong.ensure(rows * std::max<size_t>(widest_dense(*model), 1));
    central_in.ensure(rows * Hc);
    final.ensure(rows * config.final_width());
    logits.ensure(rows * config.n_classes());
    regression.ensure(rows * std::max(config.n_targets(), 1));
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

  // y (M, out; ldc) = x (M, in; lda) @ dense + bias, ReLU'd if relu
  void gemm(const DeviceDense& dense, int M, const float* x, int lda, float* y, int ldc, bool relu) {
    ops::gemm_bias_cuda(stream, M, dense.out, dense.in, x, lda, weights->weights(dense), weights->dtype,
                        dense.bias.data(), relu, y, ldc);
  }

  // Residual LayerNorm'd LSTM stack for M rows (engine.cc stack_step): x (M, in; ld_x); the h, c of row m's layer l
  // at state + slots[m] * slot_stride + offset + l * H, updated in place; new_hidden (M, L, H) gets every layer's h.
  void stack_step(const DeviceStack& stack, float eps, int M, const float* x, int ld_x, const int32_t* slot_of_row,
                  float* state_hidden, float* state_cell, long long slot_stride, long long offset,
                  float* new_hidden) {
    const int H = stack.hidden, L = stack.layers, LH = L * H;
    const float* layer_in = x;
    int ld_in = ld_x, in = stack.in;
    for (int layer = 0; layer < L; ++layer) {
      const int width = in + H;  // [x | h]: one GEMM computes W_ih x + W_hh h
      const long long at = offset + static_cast<long long>(layer) * H;
      ops::lstm_input_cuda(stream, M, in, H, layer_in, ld_in, state_hidden, slot_of_row, slot_stride, at,
                           concat.data());
      gemm(stack.gates[layer], M, concat.data(), width, gates.data(), 4 * H, false);
      ops::lstm_cell_cuda(stream, M, H, gates.data(), state_cell, state_hidden, slot_of_row, slot_stride, at,
                          new_hidden + static_cast<size_t>(layer) * H, LH);
      if (layer == L - 1) break;
      const float* skip_in = layer_in;  // later layers: the layer input is the skip connection
      int ld_skip = ld_in;
      if (layer == 0) {  // first residual projects the stack input to H
        gemm(stack.residual, M, x, ld_x, skip.data(), H, false);
        skip_in = skip.data();
        ld_skip = H;
      }
      ops::layer_norm_cuda(stream, M, H, skip_in, ld_skip, new_hidden + static_cast<size_t>(layer) * H, LH,
                           stack.norm_weight[layer].data(), stack.norm_bias[layer].data(), eps, next_in.data(), H);
      layer_in = next_in.data();
      ld_in = H;
      in = H;
    }
  }

  // [Linear(+folded BatchNorm) -> ReLU] x layers -> Linear: x (M, in; ld_x) -> out (M, ffnn.out.out; ld_out)
  void ffnn_forward(const DeviceFfnn& ffnn, int M, const float* x, int ld_x, float* out, int ld_out) {
    const float* input = x;
    int ld_in = ld_x;
    for (size_t layer = 0; layer < ffnn.layers.size(); ++layer) {
      const DeviceDense& dense = ffnn.layers[layer];
      float* output = (layer % 2 ? pong : ping).data();
      gemm(dense, M, input, ld_in, output, dense.out, true);
      input = output;
      ld_in = dense.out;
    }
    gemm(ffnn.out, M, input, ld_in, out, ld_out, false);
  }

  // Band step and translation of rows [begin, end) (one wave, one band) into central_in rows from begin - first.
  void band_part(int band, int64_t begin, int64_t end, int64_t first) {
    const ModelConfig& config = model->config;
    const DeviceModel& w = *weights;
    const int M = static_cast<int>(end - begin), L = config.band_layers, H = config.band_hidden;
    const int Hc = config.central_hidden;
    const auto eps = static_cast<float>(config.layernorm_eps);
    stack_step(w.band_stacks[band], eps, M, window.data() + begin * kRowWidth, kRowWidth, slot.data() + begin,
               band_hidden.data(), band_cell.data(), static_cast<long long>(band_width()),
               static_cast<long long>(band) * L * H, band_layers.data());
    // translation: the central model's mix of this band's layers (eq. 3), FFNN with ReLU, LayerNorm (§3.3)
    ops::layer_mix_cuda(stream, M, L, H, band_layers.data(), L * H, w.translation_mix[band].data(), mixed.data(), H);
    const float* input = mixed.data();
    int ld_in = H;
    for (size_t layer = 0; layer < w.translators[band].size(); ++layer) {
      float* output = (layer % 2 ? pong : ping).data();
      gemm(w.translators[band][layer], M, input, ld_in, output, Hc, true);
      input = output;
      ld_in = Hc;
    }
    ops::layer_norm_cuda(stream, M, Hc, input, ld_in, nullptr, 0, w.translator_norm_weight[band].data(),
                         w.translator_norm_bias[band].data(), eps, central_in.data() + (begin - first) * Hc, Hc);
  }

  // Central step and heads of rows [begin, end) (one wave); outputs copied into the pinned output arrays.
  void central_part(int64_t begin, int64_t end) {
    const ModelConfig& config = model->config;
    const DeviceModel& w = *weights;
    const int M = static_cast<int>(end - begin), Lc = config.central_layers, Hc = config.central_hidden;
    const int P = config.n_colours(), F = config.final_width(), C = config.n_classes(), T = config.n_targets();
    const auto eps = static_cast<float>(config.layernorm_eps);
    stack_step(w.central, eps, M, central_in.data(), Hc, slot.data() + begin, central_hidden.data(),
               central_cell.data(), static_cast<long long>(central_width()), 0, central_layers.data());
    // final representation [embedding, colours, multiband dt] (§3.5)
    ops::layer_mix_cuda(stream, M, Lc, Hc, central_layers.data(), Lc * Hc, w.central.mix.data(), final.data(), F);
    if (P)
      check(cudaMemcpy2DAsync(final.data() + Hc, F * sizeof(float), colours.data() + begin * P, P * sizeof(float),
                              P * sizeof(float), M, cudaMemcpyDeviceToDevice, stream), "colours");
    check(cudaMemcpy2DAsync(final.data() + Hc + P, F * sizeof(float), dt.data() + begin, sizeof(float),
                            sizeof(float), M, cudaMemcpyDeviceToDevice, stream), "dt");
    ffnn_forward(w.classifier, M, final.data(), F, logits.data(), C);
    ops::softmax_cuda(stream, M, C, logits.data(), C);
    for (int k = 0; k < T; ++k) ffnn_forward(w.regressors[k], M, final.data(), F, regression.data() + k, T);
    check(cudaMemcpyAsync(probs_out.data() + begin * C, logits.data(), size_t(M) * C * sizeof(float),
                          cudaMemcpyDeviceToHost, stream), "probs");
    check(cudaMemcpy2DAsync(embedding_out.data() + begin * Hc, Hc * sizeof(float), final.data(), F * sizeof(float),
                            Hc * sizeof(float), M, cudaMemcpyDeviceToHost, stream), "embedding");
    if (T)
      check(cudaMemcpyAsync(regression_out.data() + begin * T, regression.data(), size_t(M) * T * sizeof(float),
                            cudaMemcpyDeviceToHost, stream), "regression");
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

  void run(const StepBatch& batch, float* probs, float* embedding, float* regression_host) {
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
    // waves in order (each reads the state the previous one wrote); a wave in batches of at most kMaxRows rows
    size_t run = 0;
    while (run < batch.runs.size()) {
      size_t wave_end = run;
      while (wave_end < batch.runs.size() && batch.runs[wave_end].wave == batch.runs[run].wave) ++wave_end;
      const int64_t first = batch.runs[run].begin, last = batch.runs[wave_end - 1].end;
      for (int64_t begin = first; begin < last; begin += kMaxRows) {
        const int64_t end = std::min(last, begin + kMaxRows);
        for (size_t r = run; r < wave_end; ++r) {
          const int64_t lo = std::max(begin, batch.runs[r].begin), hi = std::min(end, batch.runs[r].end);
          if (lo < hi) band_part(batch.runs[r].band, lo, hi, begin);
        }
        central_part(begin, end);
      }
      run = wave_end;
    }
    check(cudaStreamSynchronize(stream), "model step");
    std::memcpy(probs, probs_out.data(), n * C * sizeof(float));
    std::memcpy(embedding, embedding_out.data(), n * Hc * sizeof(float));
    if (T) std::memcpy(regression_host, regression_out.data(), n * T * sizeof(float));
  }
};

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

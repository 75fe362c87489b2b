// Engine::step: validate and preprocess every row in order (cheap scalar state), then run the model rows in
// "waves" (wave k holds each object's k-th window row of the call), grouped by band into chunks whose recurrent
// state is gathered into contiguous (rows, H) buffers for batched gate GEMMs and scattered back.
// The model maths mirrors mbfast/reference.py (preprocess_reference for the window rows, ReferenceModel.step).
#include "engine.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <unordered_map>

#include "column_team.h"
#include "engine_cuda.h"
#include "ops/gemm.h"
#include "ops/lstm_cell.h"
#include "ops/rowwise.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "model and state files are read as little-endian");

namespace mbfast {

const char* const kStatusNames[kNumStatus] = {"predicted", "warming_up", "duplicate", "late", "invalid"};

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kChunkRows = 96;          // rows per gathered batch: 16 full 6-row GEMM tiles, all in L2
constexpr size_t kMinChunkRows = 6;     // a wave is spread over threads only down to one full GEMM tile each
constexpr int64_t kClassifyObjects = 16384;  // objects per classify pass (bounds its temporary state)

template <typename T>
void grow(std::vector<T>& values, size_t size, T fill) {
  values.resize(size, fill);
}

template <typename T>
void move_block(std::vector<T>& values, size_t width, size_t from, size_t to) {
  std::copy(values.begin() + from * width, values.begin() + (from + 1) * width, values.begin() + to * width);
}

template <typename T>
void shrink(std::vector<T>& values, size_t size) {
  values.resize(size);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// StateStore
// ---------------------------------------------------------------------------------------------------------------

StateStore::StateStore(const ModelConfig& config, bool recurrent_on_host, bool fp16_recurrent)
    : n_bands(config.n_bands()),
      band_layers(config.band_layers),
      band_hidden(config.band_hidden),
      central_layers(config.central_layers),
      central_hidden(config.central_hidden),
      n_classes(config.n_classes()),
      n_targets(config.n_targets()),
      recurrent_on_host(recurrent_on_host),
      fp16_recurrent(fp16_recurrent) {}

// fn(values, width) on the four h, c vectors the store keeps on the host: float or fp16, none when on a GPU.
template <typename Store, typename Fn>
void for_each_recurrent(Store& store, Fn&& fn) {
  if (!store.recurrent_on_host) return;
  const size_t band_state = size_t(store.n_bands) * store.band_layers * store.band_hidden;
  const size_t central_state = size_t(store.central_layers) * store.central_hidden;
  if (store.fp16_recurrent) {
    fn(store.band_hidden_fp16, band_state);
    fn(store.band_cell_fp16, band_state);
    fn(store.central_hidden_fp16, central_state);
    fn(store.central_cell_fp16, central_state);
  } else {
    fn(store.band_hidden_state, band_state);
    fn(store.band_cell_state, band_state);
    fn(store.central_hidden_state, central_state);
    fn(store.central_cell_state, central_state);
  }
}

int32_t StateStore::find(int64_t id) const { return slot_of.find(id); }

int32_t StateStore::add(int64_t id) {
  if (size() >= std::numeric_limits<int32_t>::max()) throw std::length_error("mbfast engine holds 2^31 objects");
  const auto slot = static_cast<int32_t>(size());
  const size_t s = static_cast<size_t>(slot) + 1;
  const size_t B = n_bands;
  obj_id.push_back(id);
  grow(count, s * B, 0);
  grow(last_t, s * B, 0.0);
  grow(mag_sum, s * B, 0.0);
  grow(last_mag, s * B, 0.0f);
  grow(last_err, s * B, 0.0f);
  grow(prev_log_dt, s * B, 0.0f);
  grow(prev_dmag, s * B, 0.0f);
  for_each_recurrent(*this, [&](auto& values, size_t width) { values.resize(s * width, 0); });
  grow(central_t, s, 0.0);
  grow(has_prediction, s, uint8_t{0});
  grow(probs, s * n_classes, kNaN);
  grow(embedding, s * embedding_width(), kNaN);
  grow(regression, s * n_targets, kNaN);
  slot_of.insert(id, slot);
  return slot;
}

bool StateStore::remove(int64_t id) {
  const int32_t found = slot_of.erase(id);
  if (found < 0) return false;
  const size_t slot = size_t(found), last = size() - 1;
  const size_t B = n_bands;
  if (slot != last) {  // keep slots dense: the last object moves into the hole
    move_block(obj_id, 1, last, slot);
    move_block(count, B, last, slot);
    move_block(last_t, B, last, slot);
    move_block(mag_sum, B, last, slot);
    move_block(last_mag, B, last, slot);
    move_block(last_err, B, last, slot);
    move_block(prev_log_dt, B, last, slot);
    move_block(prev_dmag, B, last, slot);
    // on a GPU the caller moves them on the device (Engine::forget)
    for_each_recurrent(*this, [&](auto& values, size_t width) { move_block(values, width, last, slot); });
    move_block(central_t, 1, last, slot);
    move_block(has_prediction, 1, last, slot);
    move_block(probs, size_t(n_classes), last, slot);
    move_block(embedding, embedding_width(), last, slot);
    move_block(regression, size_t(n_targets), last, slot);
    slot_of.assign(obj_id[slot], static_cast<int32_t>(slot));
  }
  shrink(obj_id, last);
  shrink(count, last * B);
  shrink(last_t, last * B);
  shrink(mag_sum, last * B);
  shrink(last_mag, last * B);
  shrink(last_err, last * B);
  shrink(prev_log_dt, last * B);
  shrink(prev_dmag, last * B);
  for_each_recurrent(*this, [&](auto& values, size_t width) { shrink(values, last * width); });
  shrink(central_t, last);
  shrink(has_prediction, last);
  shrink(probs, last * n_classes);
  shrink(embedding, last * embedding_width());
  shrink(regression, last * n_targets);
  return true;
}

void StateStore::reserve(int64_t n_objects) {
  const auto s = static_cast<size_t>(n_objects);
  const size_t B = n_bands;
  slot_of.reserve(s);
  obj_id.reserve(s);
  count.reserve(s * B);
  last_t.reserve(s * B);
  mag_sum.reserve(s * B);
  last_mag.reserve(s * B);
  last_err.reserve(s * B);
  prev_log_dt.reserve(s * B);
  prev_dmag.reserve(s * B);
  for_each_recurrent(*this, [&](auto& values, size_t width) { values.reserve(s * width); });
  central_t.reserve(s);
  has_prediction.reserve(s);
  probs.reserve(s * n_classes);
  embedding.reserve(s * embedding_width());
  regression.reserve(s * n_targets);
}

void StateStore::release_unused() {
  if (size_t(size()) * 4 > obj_id.capacity()) return;  // geometric: each release at least halves the capacity
  auto release = [](auto& values, size_t) { values.shrink_to_fit(); };
  obj_id.shrink_to_fit();
  count.shrink_to_fit();
  for (auto* values : {&last_t, &mag_sum, &central_t}) values->shrink_to_fit();
  for (auto* values : {&last_mag, &last_err, &prev_log_dt, &prev_dmag, &probs, &embedding, &regression})
    values->shrink_to_fit();
  for_each_recurrent(*this, release);
  has_prediction.shrink_to_fit();
}

// for a CPU engine with fp32 state, equals state_file.cc object_bytes: the file holds exactly these arrays
size_t StateStore::bytes_per_object() const {
  const size_t B = n_bands, recurrent = fp16_recurrent ? sizeof(uint16_t) : sizeof(float);
  return sizeof(int64_t) + B * (sizeof(int32_t) + 2 * sizeof(double) + 4 * sizeof(float)) +
         2 * recurrent * B * band_layers * band_hidden + sizeof(double) +
         2 * recurrent * central_layers * central_hidden + 1 +
         sizeof(float) * (n_classes + embedding_width() + n_targets);
}

// ---------------------------------------------------------------------------------------------------------------
// Preprocessing of one call (scalar state only): mirrors reference.py preprocess_reference, one row at a time
// ---------------------------------------------------------------------------------------------------------------

namespace {

struct BandScalars {
  int32_t count = 0;
  double last_t = 0.0, mag_sum = 0.0;
  float last_mag = 0.0f, last_err = 0.0f, prev_log_dt = 0.0f, prev_dmag = 0.0f;
};

// An object touched by the call: a private copy of its scalar state, committed only if the whole call is valid.
struct LocalObject {
  int64_t obj_id = 0;
  int32_t slot = -1;       // -1: not in the store yet
  bool applied = false;    // some row of the call was applied to it
  bool has_obs = false;    // it has at least one applied observation (central_t is set)
  int32_t n_tasks = 0;     // window rows so far in this call (the next one's wave)
  double central_t = 0.0;
};

// One window row to run through the model: a band step + a central step (paper §3.5).
struct Task {
  int64_t row = 0;
  int32_t local = 0;
  int32_t slot = 0;
  int32_t wave = 0;
  int32_t band = 0;
  float window[kRowWidth] = {};  // eq. 2: [log10 dt_prev, log10 dt, dmag_prev, dmag]
  float dt_central = 0.0f;       // log10(1 + days since the object's previous window row), §3.5
};

template <typename T>
std::string number_text(T value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string describe_row(int64_t row, int64_t obj_id) {
  return "row " + std::to_string(row) + " (obj_id " + std::to_string(obj_id) + ")";
}

struct Plan {
  std::vector<LocalObject> objects;
  std::vector<BandScalars> bands;      // (objects, B)
  std::vector<Task> tasks;
  std::vector<float> colours;          // (tasks, P)
};

// Validates and preprocesses every row in order against private copies of the touched objects' scalar state.
// Throws (kRaise) before anything is committed; `status` (N,) may be null.
Plan plan_rows(const ModelConfig& config, const StateStore& store, const Observations& rows, OnError on_error,
               RepeatPolicy policy, int8_t* status) {
  const int B = config.n_bands();
  Plan plan;
  SlotIndex local_of;  // obj_id -> index in plan.objects
  local_of.reserve(static_cast<size_t>(std::min<int64_t>(rows.n, 1 << 20)));
  auto reject = [&](int64_t row, Status code, const std::string& message) {
    if (on_error == OnError::kRaise) throw std::invalid_argument(describe_row(row, rows.obj_id[row]) + ": " + message);
    if (status) status[row] = static_cast<int8_t>(code);
  };
  for (int64_t row = 0; row < rows.n; ++row) {
    const int64_t id = rows.obj_id[row];
    const int band = rows.band[row];
    const double t = rows.t[row];
    const float mag = rows.mag[row], err = rows.err[row];
    if (band < 0 || band >= B)  // structural: mbfast/engine.py checks bands before calling
      throw std::invalid_argument(describe_row(row, id) + ": band must be in 0.." + std::to_string(B - 1) +
                                  ", got " + std::to_string(band));
    if (!std::isfinite(t)) {
      reject(row, Status::kInvalid, "t must be finite, got " + number_text(t));
      continue;
    }
    if (!std::isfinite(mag)) {
      reject(row, Status::kInvalid, "mag must be finite, got " + number_text(mag));
      continue;
    }
    if (!std::isfinite(err)) {
      reject(row, Status::kInvalid, "err must be finite, got " + number_text(err));
      continue;
    }
    if (!(err > 0.0f)) {
      reject(row, Status::kInvalid, "err must be > 0, got " + number_text(err));
      continue;
    }
    if (std::abs(t) > kMaxAbsTime) {
      reject(row, Status::kInvalid, "t must be within +-1e12 days, got " + number_text(t));
      continue;
    }
    if (std::abs(mag) > kMaxAbsMag) {
      reject(row, Status::kInvalid, "mag must be within +-10000, got " + number_text(mag));
      continue;
    }
    const auto next = static_cast<int32_t>(plan.objects.size());
    const int32_t local = local_of.insert(id, next);  // one probe: the object's index, new or not
    if (local == next) {
      LocalObject object;
      object.obj_id = id;
      object.slot = store.find(id);
      plan.bands.resize(plan.bands.size() + B);
      if (object.slot >= 0) {
        const size_t s = object.slot;
        object.has_obs = true;  // stored objects have had at least one observation applied
        object.central_t = store.central_t[s];
        for (int b = 0; b < B; ++b) {
          BandScalars& scalars = plan.bands[size_t(local) * B + b];
          const size_t i = s * B + b;
          scalars.count = store.count[i];
          scalars.last_t = store.last_t[i];
          scalars.mag_sum = store.mag_sum[i];
          scalars.last_mag = store.last_mag[i];
          scalars.last_err = store.last_err[i];
          scalars.prev_log_dt = store.prev_log_dt[i];
          scalars.prev_dmag = store.prev_dmag[i];
        }
      }
      plan.objects.push_back(object);
    }
    LocalObject& object = plan.objects[local];
    BandScalars* object_bands = &plan.bands[size_t(local) * B];
    BandScalars& scalars = object_bands[band];
    if (scalars.count > 0 && !(t > scalars.last_t)) {
      const bool same_t = t == scalars.last_t;
      const bool repeat = same_t && (policy == RepeatPolicy::kTable ||
                                     (mag == scalars.last_mag && err == scalars.last_err));
      if (repeat) {
        if (status) status[row] = static_cast<int8_t>(Status::kDuplicate);
      } else {
        reject(row, Status::kLate,
               "t must be after the last observation of band '" + config.bands[band] + "' (t=" +
                   number_text(scalars.last_t) + "), got " + number_text(t));
      }
      continue;
    }
    if (scalars.count >= kMaxObservations) {
      reject(row, Status::kInvalid, "band '" + config.bands[band] + "' of this object already has " +
                                        std::to_string(kMaxObservations) + " observations, the most the engine counts");
      continue;
    }
    // apply: the newest observation joins the band's window (eq. 2) and its cumulative mean (Appendix B)
    object.applied = true;
    if (!object.has_obs) {
      object.has_obs = true;
      object.central_t = t;  // first multiband dt counts from the object's first observation
    }
    scalars.count += 1;
    scalars.mag_sum += static_cast<double>(mag);
    const float log_dt = scalars.count >= 2 ? static_cast<float>(std::log10(t - scalars.last_t)) : 0.0f;
    const float dmag = scalars.count >= 2 ? static_cast<float>(static_cast<double>(mag) - scalars.last_mag) : 0.0f;
    if (scalars.count >= 3) {
      Task task;
      task.row = row;
      task.local = local;
      task.wave = object.n_tasks++;
      task.band = band;
      task.window[0] = scalars.prev_log_dt;
      task.window[1] = log_dt;
      task.window[2] = scalars.prev_dmag;
      task.window[3] = dmag;
      task.dt_central = static_cast<float>(std::log10(1.0 + std::max(t - object.central_t, 0.0)));
      object.central_t = t;
      plan.tasks.push_back(task);
      for (int a = 0; a < B; ++a) {  // lexicographic pairs (a, c), colour = mean[a] - mean[c], 0 if either unseen
        for (int c = a + 1; c < B; ++c) {
          const BandScalars& first = object_bands[a];
          const BandScalars& second = object_bands[c];
          plan.colours.push_back(first.count && second.count
                                     ? static_cast<float>(first.mag_sum / first.count - second.mag_sum / second.count)
                                     : 0.0f);
        }
      }
    }
    scalars.prev_log_dt = log_dt;
    scalars.prev_dmag = dmag;
    scalars.last_t = t;
    scalars.last_mag = mag;
    scalars.last_err = err;
    if (status) status[row] = static_cast<int8_t>(scalars.count >= 3 ? Status::kPredicted : Status::kWarmingUp);
  }
  return plan;
}

// Room in the store for the plan's new objects, so commit_plan allocates nothing; returns the store's size after
// the commit.
int64_t reserve_for_plan(const Plan& plan, StateStore& store) {
  int64_t n_new = 0;
  for (const LocalObject& object : plan.objects) n_new += object.applied && object.slot < 0;
  // grow geometrically: reserving the exact size on every call made each new object copy the whole store
  const int64_t needed = store.size() + n_new;
  // every array, not only obj_id: a reserve that failed half-way left some of them short
  store.reserve(needed > static_cast<int64_t>(store.obj_id.capacity()) ? std::max(needed, 2 * store.size()) : needed);
  return needed;
}

// Writes the plan's scalar state into the store (adding new objects) and resolves every task's slot. Allocates
// nothing once reserve_for_plan has run, so it cannot fail half-way.
void commit_plan(Plan& plan, StateStore& store) {
  const int B = store.n_bands;
  for (size_t local = 0; local < plan.objects.size(); ++local) {
    LocalObject& object = plan.objects[local];
    if (!object.applied) continue;
    if (object.slot < 0) object.slot = store.add(object.obj_id);
    const size_t s = object.slot;
    store.central_t[s] = object.central_t;
    for (int b = 0; b < B; ++b) {
      const BandScalars& scalars = plan.bands[local * B + b];
      const size_t i = s * B + b;
      store.count[i] = scalars.count;
      store.last_t[i] = scalars.last_t;
      store.mag_sum[i] = scalars.mag_sum;
      store.last_mag[i] = scalars.last_mag;
      store.last_err[i] = scalars.last_err;
      store.prev_log_dt[i] = scalars.prev_log_dt;
      store.prev_dmag[i] = scalars.prev_dmag;
    }
  }
  for (Task& task : plan.tasks) task.slot = plan.objects[task.local].slot;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Model step on a chunk of window rows of one band: mirrors reference.py ReferenceModel.step
// ---------------------------------------------------------------------------------------------------------------

// Every Dense of the model packed for the CPU kernels at the engine's precision (ops::pack_weights), found by
// address: the Model is shared and immutable, so its Dense objects outlive the engine's use of them.
struct PackedModel {
  ops::Precision precision = ops::Precision::kFp32;
  std::unordered_map<const Dense*, ops::PackedWeights> weights;
  int max_k = 0;  // the widest GEMM input (ops::reserve_gemm_scratch)

  PackedModel(const Model& model, ops::Precision precision_) : precision(precision_) {
    // k1: the width of the GEMM input's first block (stack_step reads the gates' [x | h] as two blocks)
    auto add = [&](const Dense& dense, int k1) {
      weights.emplace(&dense, ops::pack_weights(dense.in, dense.out, k1, dense.weight_t.data(), dense.bias.data(),
                                                precision, ops::cpu_kernel()));
      max_k = std::max(max_k, dense.in);
    };
    auto add_one = [&](const Dense& dense) { add(dense, dense.in); };
    auto add_stack = [&](const RecurrentStack& stack) {
      for (const Dense& dense : stack.gates) add(dense, dense.in - stack.hidden);
      add_one(stack.residual);
    };
    auto add_ffnn = [&](const Ffnn& ffnn) {
      for (const Dense& dense : ffnn.layers) add_one(dense);
      add_one(ffnn.out);
    };
    for (const RecurrentStack& stack : model.band_stacks) add_stack(stack);
    for (const auto& translator : model.translators)
      for (const Dense& dense : translator) add_one(dense);
    add_stack(model.central);
    add_ffnn(model.classifier);
    for (const Ffnn& regressor : model.regressors) add_ffnn(regressor);
  }

  const ops::PackedWeights& of(const Dense& dense) const { return weights.at(&dense); }
};

struct Workspace {
  std::vector<float> window, band_hidden, band_cell, gates, skip, layer_in, mixed, ping, pong;
  std::vector<float> central_hidden, central_cell, final, logits, target, column;
  ColumnTeam* team = nullptr;  // set while this thread leads a column-split step (Engine::advance)

  static float* sized(std::vector<float>& buffer, size_t size) {
    if (buffer.size() < size) buffer.resize(size);
    return buffer.data();
  }

  // Every buffer at its size for M rows (the sizes band_chunk, central_chunk, stack_step and ffnn_forward ask
  // for), so that a step of chunks of at most M rows allocates nothing once the state is being written.
  void reserve(const ModelConfig& config, size_t M) {
    const size_t L = config.band_layers, H = config.band_hidden, Lc = config.central_layers,
                 Hc = config.central_hidden, widest = std::max(H, Hc);
    const size_t hidden = std::max({Hc, size_t(config.classifier_hidden), size_t(config.regression_hidden)});
    sized(window, M * kRowWidth);
    sized(band_hidden, M * L * H);
    sized(band_cell, M * L * H);
    sized(gates, M * 4 * widest);
    sized(skip, M * widest);
    sized(layer_in, M * widest);
    sized(mixed, M * widest);
    sized(ping, M * hidden);
    sized(pong, M * hidden);
    sized(central_hidden, M * Lc * Hc);
    sized(central_cell, M * Lc * Hc);
    sized(final, M * config.final_width());
    sized(logits, M * config.n_classes());
    sized(target, M * std::max(config.n_targets(), 1));
    sized(column, M);
  }

  // C (M, W.N; stride ldc) = [A1 | A2] @ W + bias, split by columns over the team when there is one
  void gemm(int M, const ops::GemmInput& A, const ops::PackedWeights& W, float* C, int ldc) {
    if (team) team->gemm(M, A, W, C, ldc);
    else ops::gemm_bias_cpu(M, A, W, C, ldc);
  }
  void gemm(const PackedModel& packed, const Dense& dense, int M, const float* x, int lda, float* y, int ldc) {
    gemm(M, ops::GemmInput{x, lda, dense.in, nullptr, 0}, packed.of(dense), y, ldc);
  }
};

namespace {

// Residual LayerNorm'd LSTM stack, one step for M rows: x (M, in; stride ld_x); hidden, cell (M, L, H) gathered
// rows, updated in place. Mirrors reference.py ReferenceModel.stack_step.
void stack_step(const PackedModel& packed, const RecurrentStack& stack, float eps, int M, const float* x, int ld_x, float* hidden, float* cell,
                Workspace& ws) {
  const int H = stack.hidden, L = stack.layers, LH = L * H;
  const float* layer_in = x;
  int ld_in = ld_x, in = stack.in;
  float* gates = Workspace::sized(ws.gates, size_t(M) * 4 * H);
  float* skip = Workspace::sized(ws.skip, size_t(M) * H);
  float* next_in = Workspace::sized(ws.layer_in, size_t(M) * H);
  for (int layer = 0; layer < L; ++layer) {
    // [x | h] read in place, so one GEMM computes W_ih x + W_hh h
    const ops::GemmInput x_h{layer_in, ld_in, in, hidden + size_t(layer) * H, LH};
    ws.gemm(M, x_h, packed.of(stack.gates[layer]), gates, 4 * H);
    ops::lstm_cell_cpu(M, H, gates, 4 * H, cell + size_t(layer) * H, hidden + size_t(layer) * H, LH);
    if (layer == L - 1) break;
    if (layer == 0) {  // first residual projects the stack input to H
      ws.gemm(packed, stack.residual, M, x, ld_x, skip, H);
    } else {
      for (int m = 0; m < M; ++m) std::memcpy(skip + size_t(m) * H, layer_in + size_t(m) * ld_in, sizeof(float) * H);
    }
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < H; ++j) skip[size_t(m) * H + j] += hidden[size_t(m) * LH + size_t(layer) * H + j];
    ops::layer_norm_cpu(M, H, skip, H, stack.norm_weight[layer].data(), stack.norm_bias[layer].data(), eps, next_in, H);
    layer_in = next_in;
    ld_in = H;
    in = H;
  }
}

// [Linear(+folded BatchNorm) -> ReLU] x layers -> Linear: x (M, in; stride ld_x) -> out (M, ffnn.out.out).
void ffnn_forward(const PackedModel& packed, const Ffnn& ffnn, int M, const float* x, int ld_x, float* out, Workspace& ws) {
  const float* input = x;
  int ld_in = ld_x;
  for (size_t layer = 0; layer < ffnn.layers.size(); ++layer) {
    const Dense& dense = ffnn.layers[layer];
    float* output = Workspace::sized(layer % 2 ? ws.pong : ws.ping, size_t(M) * dense.out);
    ws.gemm(packed, dense, M, input, ld_in, output, dense.out);
    ops::relu_cpu(M, dense.out, output, dense.out);
    input = output;
    ld_in = dense.out;
  }
  ws.gemm(packed, ffnn.out, M, input, ld_in, out, ffnn.out.out);
}

// Asks for the cache lines of `size` bytes at `values` without waiting for them.
inline void prefetch(const void* values, size_t size) {
  const char* bytes = static_cast<const char*>(values);
  for (size_t offset = 0; offset < size; offset += 64) __builtin_prefetch(bytes + offset);
}

// One row of a recurrent state array of the store: `count` values from element `offset` of the float array, or
// of its fp16 twin when the store keeps 16-bit state (the other one is empty).
void read_state(const std::vector<float>& fp32, const std::vector<uint16_t>& fp16, size_t offset, size_t count,
                float* out) {
  if (fp16.empty()) std::memcpy(out, fp32.data() + offset, sizeof(float) * count);
  else ops::from_fp16_cpu(static_cast<int>(count), fp16.data() + offset, out);
}

void write_state(const float* values, size_t count, size_t offset, std::vector<float>& fp32,
                 std::vector<uint16_t>& fp16) {
  if (fp16.empty()) std::memcpy(fp32.data() + offset, values, sizeof(float) * count);
  else ops::to_fp16_cpu(static_cast<int>(count), values, fp16.data() + offset);
}

void prefetch_state(const std::vector<float>& fp32, const std::vector<uint16_t>& fp16, size_t offset, size_t count) {
  if (fp16.empty()) prefetch(fp32.data() + offset, sizeof(float) * count);
  else prefetch(fp16.data() + offset, sizeof(uint16_t) * count);
}

// The band step and translation for M tasks of the same band and wave (distinct objects): `translated` (M, Hc)
// receives each row's translated band embedding, the central step's input.
void band_chunk(const Model& model, const PackedModel& packed, StateStore& store, const Task* const* tasks, int M,
                float* translated, Workspace& ws) {
  const ModelConfig& config = model.config;
  const int band = tasks[0]->band;
  const int B = config.n_bands(), L = config.band_layers, H = config.band_hidden, Hc = config.central_hidden;
  const size_t LH = size_t(L) * H;
  const auto eps = static_cast<float>(config.layernorm_eps);

  // gather the band's state rows
  float* window = Workspace::sized(ws.window, size_t(M) * kRowWidth);
  float* band_hidden = Workspace::sized(ws.band_hidden, M * LH);
  float* band_cell = Workspace::sized(ws.band_cell, M * LH);
  constexpr int kAhead = 2;  // rows whose state is fetched while one is copied: slots are scattered in memory
  for (int m = 0; m < M; ++m) {
    if (m + kAhead < M) {
      const size_t ahead = (size_t(tasks[m + kAhead]->slot) * B + band) * LH;
      prefetch_state(store.band_hidden_state, store.band_hidden_fp16, ahead, LH);
      prefetch_state(store.band_cell_state, store.band_cell_fp16, ahead, LH);
    }
    const size_t state = (size_t(tasks[m]->slot) * B + band) * LH;
    std::memcpy(window + size_t(m) * kRowWidth, tasks[m]->window, sizeof(float) * kRowWidth);
    read_state(store.band_hidden_state, store.band_hidden_fp16, state, LH, band_hidden + m * LH);
    read_state(store.band_cell_state, store.band_cell_fp16, state, LH, band_cell + m * LH);
  }
  stack_step(packed, model.band_stacks[band], eps, M, window, kRowWidth, band_hidden, band_cell, ws);
  for (int m = 0; m < M; ++m) {
    const size_t state = (size_t(tasks[m]->slot) * B + band) * LH;
    write_state(band_hidden + m * LH, LH, state, store.band_hidden_state, store.band_hidden_fp16);
    write_state(band_cell + m * LH, LH, state, store.band_cell_state, store.band_cell_fp16);
  }

  // translation: the central model's mix of this band's layers (eq. 3), FFNN with ReLU, LayerNorm (§3.3)
  float* mixed = Workspace::sized(ws.mixed, size_t(M) * std::max(H, Hc));
  ops::layer_mix_cpu(M, L, H, band_hidden, model.translation_mix[band].data(), mixed, H);
  const float* input = mixed;
  int ld_in = H;
  for (size_t layer = 0; layer < model.translators[band].size(); ++layer) {
    const Dense& dense = model.translators[band][layer];
    float* output = Workspace::sized(layer % 2 ? ws.pong : ws.ping, size_t(M) * Hc);
    ws.gemm(packed, dense, M, input, ld_in, output, Hc);
    ops::relu_cpu(M, Hc, output, Hc);
    input = output;
    ld_in = Hc;
  }
  ops::layer_norm_cpu(M, Hc, input, ld_in, model.translator_norm_weight[band].data(),
                      model.translator_norm_bias[band].data(), eps, translated, Hc);
}

// The central step and the heads for M tasks of one wave, any bands (the central weights are shared by all bands,
// so small calls of several bands stream them once): `translated` (M, Hc) from band_chunk, `colours` (M, P).
void central_chunk(const Model& model, const PackedModel& packed, StateStore& store, const Task* const* tasks, int M,
                   const float* translated, const float* colours, RowOutputs outputs, Workspace& ws) {
  const ModelConfig& config = model.config;
  const int Lc = config.central_layers, Hc = config.central_hidden;
  const int C = config.n_classes(), T = config.n_targets(), P = config.n_colours(), F = config.final_width();
  const size_t LHc = size_t(Lc) * Hc;
  const auto eps = static_cast<float>(config.layernorm_eps);

  float* central_hidden = Workspace::sized(ws.central_hidden, M * LHc);
  float* central_cell = Workspace::sized(ws.central_cell, M * LHc);
  constexpr int kAhead = 2;  // as in band_chunk
  for (int m = 0; m < M; ++m) {
    if (m + kAhead < M) {
      const size_t ahead = size_t(tasks[m + kAhead]->slot) * LHc;
      prefetch_state(store.central_hidden_state, store.central_hidden_fp16, ahead, LHc);
      prefetch_state(store.central_cell_state, store.central_cell_fp16, ahead, LHc);
    }
    const size_t state = size_t(tasks[m]->slot) * LHc;
    read_state(store.central_hidden_state, store.central_hidden_fp16, state, LHc, central_hidden + m * LHc);
    read_state(store.central_cell_state, store.central_cell_fp16, state, LHc, central_cell + m * LHc);
  }
  stack_step(packed, model.central, eps, M, translated, Hc, central_hidden, central_cell, ws);
  for (int m = 0; m < M; ++m) {
    const size_t state = size_t(tasks[m]->slot) * LHc;
    write_state(central_hidden + m * LHc, LHc, state, store.central_hidden_state, store.central_hidden_fp16);
    write_state(central_cell + m * LHc, LHc, state, store.central_cell_state, store.central_cell_fp16);
    // 16-bit state: the heads see the stored (rounded) h, so predict's embedding, recomputed from it, is the same
    if (store.fp16_recurrent)
      read_state(store.central_hidden_state, store.central_hidden_fp16, state, LHc, central_hidden + m * LHc);
  }

  // final representation [embedding, colours, multiband dt] (§3.5) -> classifier softmax, regressors
  float* final = Workspace::sized(ws.final, size_t(M) * F);
  ops::layer_mix_cpu(M, Lc, Hc, central_hidden, model.central.mix.data(), final, F);
  for (int m = 0; m < M; ++m) {
    std::memcpy(final + size_t(m) * F + Hc, colours + size_t(m) * P, sizeof(float) * P);
    final[size_t(m) * F + Hc + P] = tasks[m]->dt_central;
  }
  float* logits = Workspace::sized(ws.logits, size_t(M) * C);
  ffnn_forward(packed, model.classifier, M, final, F, logits, ws);
  ops::softmax_cpu(M, C, logits, C);
  float* target = Workspace::sized(ws.target, size_t(M) * std::max(T, 1));
  for (int k = 0; k < T; ++k) {
    float* column = Workspace::sized(ws.column, size_t(M));
    ffnn_forward(packed, model.regressors[k], M, final, F, column, ws);
    for (int m = 0; m < M; ++m) target[size_t(m) * T + k] = column[m];
  }

  for (int m = 0; m < M; ++m) {
    const size_t slot = tasks[m]->slot;
    const int64_t row = tasks[m]->row;
    store.has_prediction[slot] = 1;
    std::memcpy(store.probs.data() + slot * C, logits + size_t(m) * C, sizeof(float) * C);
    if (T) std::memcpy(store.regression.data() + slot * T, target + size_t(m) * T, sizeof(float) * T);
    if (outputs.probs) std::memcpy(outputs.probs + row * C, logits + size_t(m) * C, sizeof(float) * C);
    if (outputs.embedding) std::memcpy(outputs.embedding + row * Hc, final + size_t(m) * F, sizeof(float) * Hc);
    if (outputs.regression && T)
      std::memcpy(outputs.regression + row * T, target + size_t(m) * T, sizeof(float) * T);
  }
}

// The CPU kernels' precision: fp32, bf16 or int8 weights and GEMM inputs (no fp16 kernels).
ops::Precision cpu_precision(const DeviceOptions& device) {
  if (device.precision == ops::Precision::kFp16)
    throw std::invalid_argument("precision 'fp16' is only available on CUDA; the CPU runs 'fp32', 'bf16' or 'int8'");
  return device.precision;
}

bool fp16_state(const DeviceOptions& device) {
  if (device.state_dtype == StateDtype::kFp16 && device.device != Device::kCpu)
    throw std::invalid_argument("state_dtype 'fp16' is only available on the CPU");
  return device.state_dtype == StateDtype::kFp16;
}

// The embedding of object `slot` from the central h its store holds on the host: its layers mixed with the central
// stack's softmax weights (eq. 3), which is what its last central step computed from the same h; NaN before its
// first prediction. Hc values to `out`; `hidden` (Lc x Hc) is scratch.
void mix_embedding(const Model& model, const StateStore& store, int32_t slot, float* out, std::vector<float>& hidden) {
  const int Lc = store.central_layers, Hc = store.central_hidden;
  if (!store.has_prediction[slot]) return std::fill(out, out + Hc, kNaN);
  hidden.resize(size_t(Lc) * Hc);
  read_state(store.central_hidden_state, store.central_hidden_fp16, size_t(slot) * Lc * Hc, hidden.size(),
             hidden.data());
  ops::layer_mix_cpu(1, Lc, Hc, hidden.data(), model.central.mix.data(), out, Hc);
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

// The call's buffers for the GPU step (engine_cuda.cc), allocated before the state is committed.
struct CudaBuffers {
  StepBatch batch;
  std::vector<float> probs, embedding, regression;  // (n, C), (n, Hc), (n, T)

  CudaBuffers(const ModelConfig& config, size_t n)
      : probs(n * config.n_classes()), embedding(n * config.central_hidden), regression(n * config.n_targets()) {
    batch.runs.reserve(n);
    batch.slot.resize(n);
    batch.window.resize(n * kRowWidth);
    batch.dt.resize(n);
    batch.colours.resize(n * config.n_colours());
  }
};

// The same step on a GPU: the call's window rows go over in (wave, band) order in one batch, the per-row outputs
// come back and are written to the store and the caller's arrays here.
void run_on_cuda(CudaState& cuda, const ModelConfig& config, StateStore& store, const Plan& plan,
                 const std::vector<int32_t>& order, CudaBuffers& buffers, RowOutputs outputs) {
  const int P = config.n_colours(), C = config.n_classes(), Hc = config.central_hidden, T = config.n_targets();
  const size_t n = order.size();
  StepBatch& batch = buffers.batch;
  for (size_t i = 0; i < n; ++i) {
    const Task& task = plan.tasks[order[i]];
    batch.slot[i] = task.slot;
    std::memcpy(batch.window.data() + i * kRowWidth, task.window, sizeof(float) * kRowWidth);
    batch.dt[i] = task.dt_central;
    std::memcpy(batch.colours.data() + i * P, plan.colours.data() + size_t(order[i]) * P, sizeof(float) * P);
    if (batch.runs.empty() || batch.runs.back().wave != task.wave || batch.runs.back().band != task.band)
      batch.runs.push_back({static_cast<int64_t>(i), static_cast<int64_t>(i), task.wave, task.band});
    batch.runs.back().end = static_cast<int64_t>(i) + 1;
  }
  float* probs = buffers.probs.data();
  float* embedding = buffers.embedding.data();
  float* regression = buffers.regression.data();
  cuda.run(batch, probs, embedding, regression);
  for (size_t i = 0; i < n; ++i) {  // waves ascend, so an object's last window row of the call is written last
    const Task& task = plan.tasks[order[i]];
    const size_t slot = task.slot;
    const int64_t row = task.row;
    store.has_prediction[slot] = 1;
    std::memcpy(store.probs.data() + slot * C, probs + i * C, sizeof(float) * C);
    std::memcpy(store.embedding.data() + slot * Hc, embedding + i * Hc, sizeof(float) * Hc);
    if (T) std::memcpy(store.regression.data() + slot * T, regression + i * T, sizeof(float) * T);
    if (outputs.probs) std::memcpy(outputs.probs + row * C, probs + i * C, sizeof(float) * C);
    if (outputs.embedding) std::memcpy(outputs.embedding + row * Hc, embedding + i * Hc, sizeof(float) * Hc);
    if (outputs.regression && T) std::memcpy(outputs.regression + row * T, regression + i * T, sizeof(float) * T);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------------------------------------------

Engine::Engine(std::shared_ptr<const Model> model, int num_threads, const DeviceOptions& device)
    : model_(std::move(model)),
      device_(device),
      cuda_(device.device == Device::kCuda ? CudaState::create(model_, device) : nullptr),
      packed_(device.device == Device::kCpu ? std::make_unique<const PackedModel>(*model_, cpu_precision(device))
                                            : nullptr),
      store_(model_->config, device.device == Device::kCpu, fp16_state(device)),
      pool_(std::max(num_threads, 1), [this] { reserve_scratch(); }) {
  for (int worker = 0; worker < pool_.size(); ++worker) {
    workspaces_.push_back(std::make_unique<Workspace>());
    workspaces_.back()->reserve(model_->config, kChunkRows);
  }
}

Engine::~Engine() = default;

void Engine::reserve_scratch() const {
  if (packed_) ops::reserve_gemm_scratch(kChunkRows, packed_->max_k);
}

const char* Engine::cpu_kernel() const {
  // the kernel the weights were packed for: bf16 on an AVX-512 CPU without vdpbf16ps runs the avx2 kernel, int8
  // runs avx512_vnni or portable
  return packed_ ? ops::kernel_name(packed_->of(model_->classifier.out).kernel) : "";
}

int64_t Engine::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return store_.size();
}

void Engine::advance(StateStore& store, CudaState* cuda, const Observations& rows, OnError on_error,
                     RepeatPolicy policy, RowOutputs outputs) {
  const ModelConfig& config = model_->config;
  Plan plan = plan_rows(config, store, rows, on_error, policy, outputs.status);
  // Everything the call needs is allocated before commit_plan writes the first value: a std::bad_alloc leaves the
  // state as it was, and the same rows are accepted when sent again (the workspaces were sized at construction).
  const int64_t slots = reserve_for_plan(plan, store);
  reserve_scratch();  // the calling thread's (the pool's workers sized theirs when they started)
  const size_t n = plan.tasks.size();
  // waves in order; inside a wave, tasks grouped by band (stable, so chunks follow row order)
  std::vector<int32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const Task& x = plan.tasks[a];
    const Task& y = plan.tasks[b];
    return x.wave != y.wave ? x.wave < y.wave : x.band < y.band;
  });
  if (cuda) {
    try {
      cuda->resize(slots);  // new slots start from zero h, c
      CudaBuffers buffers(config, n);
      commit_plan(plan, store);
      if (n) run_on_cuda(*cuda, config, store, plan, order, buffers, outputs);
    } catch (...) {
      cuda->resize(store.size());  // slots of a call that was not committed belong to no object
      throw;
    }
    return;
  }
  struct Chunk {
    size_t begin, end;  // into `order`
  };
  const int P = config.n_colours();
  const size_t Hc = config.central_hidden;
  std::vector<const Task*> task_ptrs(n);  // stay valid: commit_plan only sets the tasks' slots
  std::vector<float> colours(n * size_t(P));
  std::vector<float> translated(n * Hc);  // band_chunk -> central_chunk, in `order`
  std::vector<Chunk> band_chunks, central_chunks;  // one wave's; split_evenly makes at most rows + threads
  band_chunks.reserve(n + 1);
  central_chunks.reserve(n + size_t(pool_.size()));
  for (size_t i = 0; i < n; ++i) {
    task_ptrs[i] = &plan.tasks[order[i]];
    std::memcpy(colours.data() + i * P, plan.colours.data() + size_t(order[i]) * P, sizeof(float) * P);
  }
  commit_plan(plan, store);
  if (n == 0) return;
  // Rows [begin, end) as chunks of at most kChunkRows and of even sizes, as many as `threads` or a multiple of it
  // (a ragged last chunk would leave threads idle at the end of a phase) while each keeps a full 6-row GEMM tile.
  auto split_evenly = [](size_t begin, size_t end, int threads, std::vector<Chunk>& out) {
    const size_t rows = end - begin, T = size_t(threads);
    size_t n = (rows + kChunkRows - 1) / kChunkRows;
    n = n > T ? (n + T - 1) / T * T : std::min(T, std::max(n, rows / kMinChunkRows));
    for (size_t k = 0; k < n; ++k) out.push_back({begin + (end - begin) * k / n, begin + (end - begin) * (k + 1) / n});
  };
  // Runs fn(chunk, workspace) for every chunk: chunks spread over the threads, or a lone chunk split by columns
  // over all of them when `split` (ColumnTeam).
  auto run_phase = [&](const std::vector<Chunk>& chunks, bool split, auto&& fn) {
    if (chunks.size() != 1 || !split) {
      pool_.run(static_cast<int64_t>(chunks.size()),
                [&](int64_t item, int worker) { fn(chunks[item], *workspaces_[worker]); });
      return;
    }
    ColumnTeam team(pool_.size());
    pool_.run(pool_.size(), [&](int64_t item, int worker) {
      if (item > 0) return team.help();
      Workspace& ws = *workspaces_[worker];
      struct Lead {  // releases the helpers even when the step throws
        ColumnTeam& team;
        Workspace& ws;
        ~Lead() { ws.team = nullptr; team.finish(); }
      } lead{team, ws};
      ws.team = &team;
      fn(chunks[0], ws);
    });
  };
  size_t wave_begin = 0;
  while (wave_begin < order.size()) {
    const int wave = task_ptrs[wave_begin]->wave;
    size_t wave_end = wave_begin;
    while (wave_end < order.size() && task_ptrs[wave_end]->wave == wave) ++wave_end;
    band_chunks.clear();  // rows of one band (its own weights)
    for (size_t i = wave_begin; i < wave_end;) {
      size_t end = i;
      while (end < wave_end && task_ptrs[end]->band == task_ptrs[i]->band) ++end;
      split_evenly(i, end, 1, band_chunks);
      i = end;
    }
    central_chunks.clear();  // any rows of the wave: every band shares the central weights
    split_evenly(wave_begin, wave_end, pool_.size(), central_chunks);
    // a phase of one chunk (e.g. a one-row call) may split its products over the threads; timed to choose
    const bool lone = pool_.size() > 1 && (band_chunks.size() == 1 || central_chunks.size() == 1);
    const bool split = lone && split_chooser_.split_next();
    const auto start = std::chrono::steady_clock::now();
    auto run_band = [&](const Chunk& chunk, Workspace& ws) {
      band_chunk(*model_, *packed_, store, task_ptrs.data() + chunk.begin, static_cast<int>(chunk.end - chunk.begin),
                 translated.data() + chunk.begin * Hc, ws);
    };
    auto run_central = [&](const Chunk& chunk, Workspace& ws) {
      central_chunk(*model_, *packed_, store, task_ptrs.data() + chunk.begin, static_cast<int>(chunk.end - chunk.begin),
                    translated.data() + chunk.begin * Hc, colours.data() + chunk.begin * P, outputs, ws);
    };
    if (band_chunks.size() == 1 && central_chunks.size() == 1) {  // both phases in one hand-over to the threads
      run_phase(band_chunks, split, [&](const Chunk& chunk, Workspace& ws) {
        run_band(chunk, ws);
        run_central(central_chunks[0], ws);
      });
    } else {
      run_phase(band_chunks, split, run_band);
      run_phase(central_chunks, split, run_central);
    }
    if (lone) {
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      split_chooser_.record(split, took.count() / double(wave_end - wave_begin));
    }
    wave_begin = wave_end;
  }
}

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
    StateStore store(config, cuda == nullptr, store_.fp16_recurrent);
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

void Engine::save_state(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!cuda_) return write_state_file(path, store_, *model_);
  StateStore full = store_;  // the same file as a CPU engine writes: h, c copied back from the GPU
  cuda_->download(full);
  write_state_file(path, full, *model_);
}

void Engine::load_state(const std::string& path) {
  // fully read and checked before anything is replaced
  StateStore loaded = read_state_file(path, *model_, store_.fp16_recurrent);
  std::lock_guard<std::mutex> lock(mutex_);
  if (cuda_) {  // h, c go to the GPU; the host keeps the scalars and the embeddings only
    cuda_->upload(loaded);
    const size_t Hc = loaded.central_hidden;
    loaded.embedding.resize(size_t(loaded.size()) * Hc);
    std::vector<float> hidden;
    for (int32_t slot = 0; slot < loaded.size(); ++slot)
      mix_embedding(*model_, loaded, slot, loaded.embedding.data() + slot * Hc, hidden);
    loaded.recurrent_on_host = false;
    for (auto* values : {&loaded.band_hidden_state, &loaded.band_cell_state, &loaded.central_hidden_state,
                         &loaded.central_cell_state})
      std::vector<float>().swap(*values);
  }
  store_ = std::move(loaded);
}

}  // namespace mbfast

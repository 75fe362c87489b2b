// The engine's state store: every object's recurrent and scalar state, one slot per object, in structure-of-arrays
// form so a step can gather the rows it needs. Its arrays are listed once, in for_each_array; resize, slot moves,
// reserve, the byte count and the state file (state_file.cc) all go through that list. No model maths here.
//
// Dimension legend: S slots, B bands, L band layers, H band hidden, Lc central layers, Hc central hidden,
// C classes, T regression targets.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "model.h"
#include "ops/rowwise.h"
#include "slot_index.h"

namespace mbfast {

// Where and how band and central h, c are held between steps.
enum class RecurrentStorage : uint8_t {
  kFp32,    // host memory, float
  kFp16,    // host memory, IEEE half, widened to fp32 for each step (StateDtype::kFp16)
  kDevice,  // GPU memory, fp32, held by a CudaState (engine_cuda.h): nothing here
};

// One of the four h, c arrays of the store, (S, width) values in the storage mode it was made with.
class RecurrentArray {
 public:
  explicit RecurrentArray(RecurrentStorage storage) : storage_(storage) {}
  RecurrentStorage storage() const { return storage_; }
  // bytes of one value where it lives (the GPU holds fp32)
  size_t value_bytes() const { return storage_ == RecurrentStorage::kFp16 ? sizeof(uint16_t) : sizeof(float); }
  size_t size() const { return storage_ == RecurrentStorage::kFp16 ? fp16_.size() : fp32_.size(); }

  // `count` values from element `offset`, as fp32
  void read(size_t offset, size_t count, float* out) const {
    if (storage_ == RecurrentStorage::kFp16) ops::from_fp16_cpu(static_cast<int>(count), fp16_.data() + offset, out);
    else std::memcpy(out, fp32_.data() + offset, sizeof(float) * count);
  }
  void write(const float* values, size_t count, size_t offset) {
    if (storage_ == RecurrentStorage::kFp16) ops::to_fp16_cpu(static_cast<int>(count), values, fp16_.data() + offset);
    else std::memcpy(fp32_.data() + offset, values, sizeof(float) * count);
  }
  // asks for the cache lines of `count` values from `offset` without waiting for them
  void prefetch(size_t offset, size_t count) const {
    const char* bytes = storage_ == RecurrentStorage::kFp16 ? reinterpret_cast<const char*>(fp16_.data() + offset)
                                                            : reinterpret_cast<const char*>(fp32_.data() + offset);
    for (size_t at = 0; at < count * value_bytes(); at += 64) __builtin_prefetch(bytes + at);
  }

  // the host fp32 values (kFp32): CudaState::upload/download and the state file read them in place
  std::vector<float>& fp32() { return fp32_; }
  const std::vector<float>& fp32() const { return fp32_; }

  // the store's array operations (kDevice: nothing is held, so they do nothing)
  void resize(size_t count);  // new values are 0
  void reserve(size_t count);
  void shrink_to_fit();
  void move_block(size_t width, size_t from, size_t to);  // values of slot `from` copied onto slot `to`

 private:
  RecurrentStorage storage_;
  std::vector<float> fp32_;      // kFp32
  std::vector<uint16_t> fp16_;   // kFp16
};

// What for_each_array tells about each array besides the values.
struct ArrayInfo {
  const char* name;
  size_t width;        // values per slot
  bool nan_fill;       // a new slot starts at NaN (outputs before the first prediction), else at 0
  bool in_file;        // written to the state file (the GPU engines' embedding is not: it is recomputed)
};

// Recurrent state of every object, one slot per object. Slots stay dense: forgetting an object moves the last slot
// into its place.
struct StateStore {
  StateStore(const ModelConfig& config, RecurrentStorage storage);
  // the seven dimensions the state file stores (dims()), for checking a file's size before it meets a model
  StateStore(const std::vector<uint32_t>& dims, RecurrentStorage storage);

  int64_t size() const { return static_cast<int64_t>(obj_id.size()); }
  int32_t find(int64_t id) const { return slot_of.find(id); }  // slot, or -1
  int32_t add(int64_t id);         // new zeroed slot (outputs NaN)
  bool remove(int64_t id);
  void reserve(int64_t n_objects);
  void release_unused();  // gives back capacity when at most a quarter of it is used (after forget)
  size_t bytes_per_object() const;  // array bytes of one slot, wherever held (excludes the hash map entry)
  RecurrentStorage recurrent_storage() const { return band_hidden_state.storage(); }
  // Switches the four h, c arrays to `storage`, emptied (their values are the caller's to fill).
  void set_recurrent_storage(RecurrentStorage storage);
  // Values per object in `embedding`: Hc when the recurrent state is on a GPU, else 0 (the CPU recomputes the
  // embedding from central h: 512 B per object less for the paper's shape).
  size_t embedding_width() const {
    return recurrent_storage() == RecurrentStorage::kDevice ? size_t(central_hidden) : 0;
  }
  std::vector<uint32_t> dims() const;  // n_bands, band_layers, band_hidden, central_layers, central_hidden, C, T

  int n_bands, band_layers, band_hidden, central_layers, central_hidden, n_classes, n_targets;
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
  RecurrentArray band_hidden_state;     // (S, B, L, H)
  RecurrentArray band_cell_state;       // (S, B, L, H)
  // per object
  std::vector<double> central_t;        // (S,) t of the last window row; the first observation's t before that
  RecurrentArray central_hidden_state;  // (S, Lc, Hc)
  RecurrentArray central_cell_state;    // (S, Lc, Hc)
  std::vector<uint8_t> has_prediction;  // (S,)
  std::vector<float> probs;             // (S, C) after the last window row
  std::vector<float> embedding;         // (S, embedding_width()) the last embedding, GPU engines only
  std::vector<float> regression;        // (S, T)
};

// fn(values, info) for every array of the store, in the state file's order: the one list of the store's fields.
// `values` is a std::vector or a RecurrentArray.
template <typename Store, typename Fn>
void for_each_array(Store& store, Fn&& fn) {
  const size_t B = store.n_bands;
  const size_t band_state = B * store.band_layers * store.band_hidden;
  const size_t central_state = size_t(store.central_layers) * store.central_hidden;
  fn(store.obj_id, ArrayInfo{"obj_id", 1, false, true});
  fn(store.count, ArrayInfo{"count", B, false, true});
  fn(store.last_t, ArrayInfo{"last_t", B, false, true});
  fn(store.mag_sum, ArrayInfo{"mag_sum", B, false, true});
  fn(store.last_mag, ArrayInfo{"last_mag", B, false, true});
  fn(store.last_err, ArrayInfo{"last_err", B, false, true});
  fn(store.prev_log_dt, ArrayInfo{"prev_log_dt", B, false, true});
  fn(store.prev_dmag, ArrayInfo{"prev_dmag", B, false, true});
  fn(store.band_hidden_state, ArrayInfo{"band_hidden", band_state, false, true});
  fn(store.band_cell_state, ArrayInfo{"band_cell", band_state, false, true});
  fn(store.central_t, ArrayInfo{"central_t", 1, false, true});
  fn(store.central_hidden_state, ArrayInfo{"central_hidden", central_state, false, true});
  fn(store.central_cell_state, ArrayInfo{"central_cell", central_state, false, true});
  fn(store.has_prediction, ArrayInfo{"has_prediction", 1, false, true});
  fn(store.probs, ArrayInfo{"probs", size_t(store.n_classes), true, true});
  fn(store.embedding, ArrayInfo{"embedding", store.embedding_width(), true, false});
  fn(store.regression, ArrayInfo{"regression", size_t(store.n_targets), true, true});
}

}  // namespace mbfast

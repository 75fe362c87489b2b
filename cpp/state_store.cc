// StateStore (state_store.h): slots added, moved, reserved and counted through for_each_array, the one list of its
// arrays.
#include "state_store.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace mbfast {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

template <typename T>
void move_block(std::vector<T>& values, size_t width, size_t from, size_t to) {
  std::copy(values.begin() + from * width, values.begin() + (from + 1) * width, values.begin() + to * width);
}

void move_block(RecurrentArray& values, size_t width, size_t from, size_t to) { values.move_block(width, from, to); }

template <typename T>
void resize(std::vector<T>& values, size_t count, bool nan_fill) {
  if constexpr (std::is_same_v<T, float>) values.resize(count, nan_fill ? kNaN : 0.0f);
  else values.resize(count, T{0});
}

void resize(RecurrentArray& values, size_t count, bool) { values.resize(count); }

template <typename T>
size_t value_bytes(const std::vector<T>&) {
  return sizeof(T);
}

size_t value_bytes(const RecurrentArray& values) { return values.value_bytes(); }

}  // namespace

void RecurrentArray::resize(size_t count) {
  if (storage_ == RecurrentStorage::kFp32) fp32_.resize(count, 0.0f);
  if (storage_ == RecurrentStorage::kFp16) fp16_.resize(count, 0);
}

void RecurrentArray::reserve(size_t count) {
  if (storage_ == RecurrentStorage::kFp32) fp32_.reserve(count);
  if (storage_ == RecurrentStorage::kFp16) fp16_.reserve(count);
}

void RecurrentArray::shrink_to_fit() {
  fp32_.shrink_to_fit();
  fp16_.shrink_to_fit();
}

void RecurrentArray::move_block(size_t width, size_t from, size_t to) {
  if (storage_ == RecurrentStorage::kFp32) mbfast::move_block(fp32_, width, from, to);
  if (storage_ == RecurrentStorage::kFp16) mbfast::move_block(fp16_, width, from, to);
}

StateStore::StateStore(const ModelConfig& config, RecurrentStorage storage)
    : StateStore(std::vector<uint32_t>{uint32_t(config.n_bands()), uint32_t(config.band_layers),
                                       uint32_t(config.band_hidden), uint32_t(config.central_layers),
                                       uint32_t(config.central_hidden), uint32_t(config.n_classes()),
                                       uint32_t(config.n_targets())},
                 storage) {}

StateStore::StateStore(const std::vector<uint32_t>& dims, RecurrentStorage storage)
    : n_bands(int(dims.at(0))),
      band_layers(int(dims.at(1))),
      band_hidden(int(dims.at(2))),
      central_layers(int(dims.at(3))),
      central_hidden(int(dims.at(4))),
      n_classes(int(dims.at(5))),
      n_targets(int(dims.at(6))),
      band_hidden_state(storage),
      band_cell_state(storage),
      central_hidden_state(storage),
      central_cell_state(storage) {}

std::vector<uint32_t> StateStore::dims() const {
  return {uint32_t(n_bands), uint32_t(band_layers), uint32_t(band_hidden), uint32_t(central_layers),
          uint32_t(central_hidden), uint32_t(n_classes), uint32_t(n_targets)};
}

int32_t StateStore::add(int64_t id) {
  if (size() >= std::numeric_limits<int32_t>::max()) throw std::length_error("mbfast engine holds 2^31 objects");
  const auto slot = static_cast<int32_t>(size());
  const size_t s = static_cast<size_t>(slot) + 1;
  for_each_array(*this, [&](auto& values, const ArrayInfo& info) { resize(values, s * info.width, info.nan_fill); });
  obj_id[slot] = id;
  slot_of.insert(id, slot);
  return slot;
}

bool StateStore::remove(int64_t id) {
  const int32_t found = slot_of.erase(id);
  if (found < 0) return false;
  const size_t slot = size_t(found), last = size() - 1;
  for_each_array(*this, [&](auto& values, const ArrayInfo& info) {
    if (slot != last) move_block(values, info.width, last, slot);  // keep slots dense: the last one fills the hole
    resize(values, last * info.width, info.nan_fill);
  });
  if (slot != last) slot_of.assign(obj_id[slot], static_cast<int32_t>(slot));
  return true;
}

void StateStore::reserve(int64_t n_objects) {
  const auto s = static_cast<size_t>(n_objects);
  slot_of.reserve(s);
  // every array, not only obj_id: a reserve that failed half-way left some of them short
  for_each_array(*this, [&](auto& values, const ArrayInfo& info) { values.reserve(s * info.width); });
}

void StateStore::release_unused() {
  if (size_t(size()) * 4 > obj_id.capacity()) return;  // geometric: each release at least halves the capacity
  for_each_array(*this, [](auto& values, const ArrayInfo&) { values.shrink_to_fit(); });
}

// equals the state file's bytes per object (state_file.cc) for a host store with fp32 state
size_t StateStore::bytes_per_object() const {
  size_t bytes = 0;
  for_each_array(*this, [&](const auto& values, const ArrayInfo& info) { bytes += info.width * value_bytes(values); });
  return bytes;
}

void StateStore::set_recurrent_storage(RecurrentStorage storage) {
  for (RecurrentArray* values : {&band_hidden_state, &band_cell_state, &central_hidden_state, &central_cell_state})
    *values = RecurrentArray(storage);
}

}  // namespace mbfast

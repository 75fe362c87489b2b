// obj_id -> slot of the engine's state store (state_store.h StateStore), and obj_id -> object of one step call: an
// open-addressing hash table with linear probing over a power-of-two array of 16-byte (obj_id, slot) entries, at
// most 3/4 full (21-43 B per id). A lookup reads one or two adjacent cache lines and an insert allocates only when
// the table doubles, where std::unordered_map chased a bucket, then a node, and allocated a node per id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mbfast {

class SlotIndex {
 public:
  int32_t find(int64_t id) const;            // slot, or -1
  int32_t insert(int64_t id, int32_t slot);  // id's slot afterwards: `slot`, or the one it already had (kept)
  void assign(int64_t id, int32_t slot);     // new slot of a present id
  int32_t erase(int64_t id);                 // the slot id had, or -1 if absent
  void reserve(size_t n_ids);                // room for n_ids without rehashing
  size_t size() const { return size_; }

 private:
  struct Entry {
    int64_t id;
    int32_t slot;  // kEmpty: a free entry
  };
  static constexpr int32_t kEmpty = -1;

  size_t home(int64_t id) const;           // the entry a probe for id starts at
  size_t position(int64_t id) const;       // the entry holding id, or the free entry that ends its probe
  void rehash(size_t capacity);

  std::vector<Entry> entries_;  // capacity a power of two (or 0)
  size_t size_ = 0;
};

}  // namespace mbfast

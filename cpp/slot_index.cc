#include "slot_index.h"

#include <stdexcept>

namespace mbfast {

namespace {

// SplitMix64's finaliser: consecutive ids (the common case: survey candidate ids) spread over the whole table.
uint64_t mix(uint64_t value) {
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

}  // namespace

size_t SlotIndex::home(int64_t id) const { return mix(static_cast<uint64_t>(id)) & (entries_.size() - 1); }

size_t SlotIndex::position(int64_t id) const {
  const size_t mask = entries_.size() - 1;
  size_t at = home(id);
  while (entries_[at].slot != kEmpty && entries_[at].id != id) at = (at + 1) & mask;
  return at;
}

int32_t SlotIndex::find(int64_t id) const {
  if (size_ == 0) return -1;
  return entries_[position(id)].slot;  // kEmpty (-1) when absent
}

int32_t SlotIndex::insert(int64_t id, int32_t slot) {
  if (slot < 0) throw std::invalid_argument("SlotIndex::insert: slot must be >= 0");
  if (4 * (size_ + 1) > 3 * entries_.size()) rehash(entries_.empty() ? 16 : 2 * entries_.size());
  Entry& entry = entries_[position(id)];
  if (entry.slot != kEmpty) return entry.slot;
  entry = Entry{id, slot};
  ++size_;
  return slot;
}

void SlotIndex::assign(int64_t id, int32_t slot) {
  Entry* entry = size_ ? &entries_[position(id)] : nullptr;
  if (!entry || entry->slot == kEmpty) throw std::logic_error("SlotIndex::assign: id is not present");
  entry->slot = slot;
}

int32_t SlotIndex::erase(int64_t id) {
  if (size_ == 0) return -1;
  const size_t mask = entries_.size() - 1;
  size_t hole = position(id);
  const int32_t slot = entries_[hole].slot;
  if (slot == kEmpty) return -1;
  // Backward-shift deletion: move later entries of the run into the hole when their probe passes through it, so
  // every remaining id stays reachable from its home without tombstones.
  for (size_t next = (hole + 1) & mask; entries_[next].slot != kEmpty; next = (next + 1) & mask) {
    const size_t start = home(entries_[next].id);
    const bool passes_hole = hole <= next ? (start <= hole || start > next) : (start <= hole && start > next);
    if (passes_hole) {
      entries_[hole] = entries_[next];
      hole = next;
    }
  }
  entries_[hole].slot = kEmpty;
  --size_;
  return slot;
}

void SlotIndex::reserve(size_t n_ids) {
  size_t capacity = entries_.empty() ? 16 : entries_.size();
  while (4 * n_ids > 3 * capacity) capacity *= 2;
  if (capacity > entries_.size()) rehash(capacity);
}

void SlotIndex::rehash(size_t capacity) {
  std::vector<Entry> old(capacity, Entry{0, kEmpty});
  old.swap(entries_);
  for (const Entry& entry : old)
    if (entry.slot != kEmpty) entries_[position(entry.id)] = entry;
}

}  // namespace mbfast

// Table-driven CRC-32, one byte per step: fast enough for model and state files (hundreds of MB/s).
#include "crc32.h"

#include <array>

namespace mbfast {

namespace {

std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t value = byte;
    for (int bit = 0; bit < 8; ++bit) value = (value & 1u) ? (value >> 1) ^ 0xEDB88320u : value >> 1;
    table[byte] = value;
  }
  return table;
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = make_table();
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint32_t value = ~crc;
  for (size_t i = 0; i < size; ++i) value = table[(value ^ bytes[i]) & 0xFFu] ^ (value >> 8);
  return ~value;
}

}  // namespace mbfast

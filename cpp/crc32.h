// CRC-32 (the zlib / PNG polynomial 0xEDB88320), incremental, so C++ and Python's zlib.crc32 agree on file checksums.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mbfast {

// crc32_update(crc32_update(0, a), b) == crc32 of a followed by b, as zlib.crc32(b, zlib.crc32(a)).
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);

}  // namespace mbfast

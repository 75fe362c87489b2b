// The engine's state file: every object's recurrent and scalar state, so a stream can stop and continue
// bit-identically. Not a model file and not portable across models: it is bound to the model file's CRC.
//
// Byte layout (little-endian, kStateFormatVersion 2; docs/engine.md):
//   magic "MBFSTATE"  u32 format_version  u32 model_crc
//   u32 n_bands, band_layers, band_hidden, central_layers, central_hidden, n_classes, n_targets  u64 n_objects (S)
//   the StateStore arrays in for_each_array order (state_store.h: obj_id ... probs, regression), each S x its row
//   width, raw values; h and c as fp32. Format 1 also had the (S, Hc) embedding between probs and regression: read
//   and dropped.
//   u32 CRC-32 of every byte before it
// Written to a temp file in the same folder, fsync'ed, then renamed over the target: readers never see half a file.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "crc32.h"
#include "engine.h"
#include "ops/rowwise.h"

namespace mbfast {

namespace {

constexpr char kStateMagic[8] = {'M', 'B', 'F', 'S', 'T', 'A', 'T', 'E'};
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 7 * 4 + 8;

// Bytes of one object in the file, from the file's own dimensions (so size checks do not depend on the model): the
// store's arrays at fp32, plus the (Hc,) embedding format 1 kept.
uint64_t object_bytes(const std::vector<uint32_t>& dims, uint32_t version) {
  return StateStore(dims, RecurrentStorage::kFp32).bytes_per_object() + (version == 1 ? 4 * uint64_t(dims[4]) : 0);
}

constexpr size_t kBlock = size_t{1} << 16;  // values converted at a time between fp16 and the file's fp32

template <typename Values>
constexpr bool kRecurrent = std::is_same_v<std::decay_t<Values>, RecurrentArray>;

template <typename T>
std::string value_text(T value) {  // shortest text that reads back as the same value
  char buffer[64];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof(buffer), value).ptr);
}

// Every scalar of a read store within what Engine::step can produce: a file with a valid checksum can still be
// forged or written by a buggy tool, and a negative count or an infinite last t would poison every later step.
void check_ranges(const std::string& path, const StateStore& store, const ModelConfig& config) {
  const size_t B = store.n_bands, C = store.n_classes, T = store.n_targets;
  for (size_t slot = 0; slot < size_t(store.size()); ++slot) {
    const std::string where = path + ": corrupt: object " + std::to_string(store.obj_id[slot]) + " (slot " +
                              std::to_string(slot) + "): ";
    auto refuse = [&](const std::string& what, auto value, const std::string& range) {
      throw std::invalid_argument(where + what + " is " + value_text(value) + ", outside " + range);
    };
    bool observed = false;
    for (size_t b = 0; b < B; ++b) {
      const int32_t count = store.count[slot * B + b];
      if (count < 0 || count > kMaxObservations)
        refuse("count of band '" + config.bands[b] + "'", count, "0.." + std::to_string(kMaxObservations));
      observed |= count > 0;
    }
    if (!observed) throw std::invalid_argument(where + "no band has an observation");
    for (size_t b = 0; b < B; ++b) {
      const size_t i = slot * B + b;
      const std::string band = " of band '" + config.bands[b] + "'";
      const int32_t count = store.count[i];
      if (!(std::abs(store.last_t[i]) <= kMaxAbsTime)) refuse("last t" + band, store.last_t[i], "+-1e12");
      if (!(std::abs(store.last_mag[i]) <= kMaxAbsMag)) refuse("last mag" + band, store.last_mag[i], "+-10000");
      if (!(std::abs(store.mag_sum[i]) <= double(kMaxAbsMag) * count))
        refuse("mag sum" + band, store.mag_sum[i], "+-10000 x count");
      if (!(count == 0 ? store.last_err[i] == 0.0f : store.last_err[i] > 0.0f && std::isfinite(store.last_err[i])))
        refuse("last err" + band, store.last_err[i], count ? "(0, inf)" : "0 before the first observation");
      if (!std::isfinite(store.prev_log_dt[i])) refuse("previous log dt" + band, store.prev_log_dt[i], "finite values");
      if (!std::isfinite(store.prev_dmag[i])) refuse("previous dmag" + band, store.prev_dmag[i], "finite values");
    }
    if (!(std::abs(store.central_t[slot]) <= kMaxAbsTime)) refuse("central t", store.central_t[slot], "+-1e12");
    const uint8_t predicted = store.has_prediction[slot];
    if (predicted > 1) refuse("has_prediction", int(predicted), "0..1");
    for (size_t k = 0; k < C; ++k) {
      const float p = store.probs[slot * C + k];
      if (predicted ? !(p >= 0.0f && p <= 1.0f) : !std::isnan(p))
        refuse("probability " + std::to_string(k), p, predicted ? "0..1" : "NaN before the first prediction");
    }
    for (size_t k = 0; k < T; ++k) {
      const float value = store.regression[slot * T + k];
      if (predicted ? !std::isfinite(value) : !std::isnan(value))
        refuse("regression " + std::to_string(k), value, predicted ? "finite values" : "NaN before the first prediction");
    }
  }
}

// The first non-finite value of `count` recurrent values, or -1.
int64_t first_non_finite(const float* values, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
  return -1;
}

class FileWriter {
 public:
  FileWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  void write(const void* data, size_t size) {
    crc_ = crc32_update(crc_, data, size);
    const auto* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t written = ::write(fd_, bytes, size);
      if (written < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(path_ + ": write failed: " + std::strerror(errno));
      }
      bytes += written;
      size -= static_cast<size_t>(written);
    }
  }

  template <typename T>
  void put(T value) {
    write(&value, sizeof(T));
  }

  uint32_t crc() const { return crc_; }

 private:
  int fd_;
  std::string path_;
  uint32_t crc_ = 0;
};

class FileReader {
 public:
  explicit FileReader(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    if (!file_) throw std::invalid_argument(path + ": cannot open state file: " + std::strerror(errno));
    std::fseek(file_, 0, SEEK_END);
    size_ = static_cast<uint64_t>(std::ftell(file_));
    std::fseek(file_, 0, SEEK_SET);
  }
  ~FileReader() { std::fclose(file_); }

  void read(void* data, size_t size, const char* what) {
    if (size && std::fread(data, 1, size, file_) != size)
      throw std::invalid_argument(path_ + ": truncated while reading " + what);
  }

  template <typename T>
  T get(const char* what) {
    T value;
    read(&value, sizeof(T), what);
    return value;
  }

  uint64_t size() const { return size_; }

  // CRC-32 of every byte but the last four, compared with the last four.
  bool checksum_ok() {
    std::fseek(file_, 0, SEEK_SET);
    std::vector<char> buffer(1 << 20);
    uint64_t left = size_ - 4;
    uint32_t crc = 0;
    while (left > 0) {
      const size_t size = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
      read(buffer.data(), size, "checksum");
      crc = crc32_update(crc, buffer.data(), size);
      left -= size;
    }
    const auto stored = get<uint32_t>("checksum");
    std::fseek(file_, 0, SEEK_SET);
    return crc == stored;
  }

 private:
  std::string path_;
  std::FILE* file_;
  uint64_t size_ = 0;
};

std::string folder_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void check_path(const std::string& path, const char* what) {
  // the OS would read up to the NUL: save_state("night\0.state") wrote ./night
  if (path.find('\0') != std::string::npos)
    throw std::invalid_argument(std::string(what) + " path contains a NUL character");
}

void write_state_file(const std::string& path, const StateStore& store, const Model& model) {
  check_path(path, "state");
  // a unique name next to the target; mode 0666 minus the umask, as for any file the user writes
  static std::atomic<uint64_t> serial{0};
  const std::string temp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw std::runtime_error(path + ": cannot create a temp file next to it: " + std::strerror(errno));
  try {
    FileWriter writer(fd, temp);
    writer.write(kStateMagic, sizeof(kStateMagic));
    writer.put<uint32_t>(kStateFormatVersion);
    writer.put<uint32_t>(model.file_crc);
    for (uint32_t dim : store.dims()) writer.put<uint32_t>(dim);
    writer.put<uint64_t>(static_cast<uint64_t>(store.size()));
    std::vector<float> block;
    for_each_array(store, [&](const auto& values, const ArrayInfo& info) {
      if (!info.in_file) return;
      if constexpr (kRecurrent<decltype(values)>) {  // fp32 in the file; a half store converts block by block
        if (values.storage() == RecurrentStorage::kFp32)
          return writer.write(values.fp32().data(), values.size() * sizeof(float));
        block.resize(std::min(kBlock, values.size()));
        for (size_t i = 0; i < values.size(); i += kBlock) {
          const size_t n = std::min(kBlock, values.size() - i);
          values.read(i, n, block.data());
          writer.write(block.data(), n * sizeof(float));
        }
      } else {
        writer.write(values.data(), values.size() * sizeof(values[0]));
      }
    });
    const uint32_t crc = writer.crc();
    writer.write(&crc, sizeof(crc));
    if (::fsync(fd) != 0) throw std::runtime_error(path + ": fsync failed: " + std::strerror(errno));
    if (::close(fd) != 0) throw std::runtime_error(path + ": close failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(temp.c_str());
    throw std::runtime_error(path + ": cannot rename the temp file into place: " + reason);
  }
  const int folder = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (folder >= 0) {  // make the rename itself durable
    ::fsync(folder);
    ::close(folder);
  }
}

StateStore read_state_file(const std::string& path, const Model& model, RecurrentStorage storage) {
  check_path(path, "state");
  FileReader reader(path);
  char magic[sizeof(kStateMagic)] = {};
  if (reader.size() < sizeof(kStateMagic) + 4) throw std::invalid_argument(path + ": not an mbfast state file (too short)");
  reader.read(magic, sizeof(magic), "magic");
  if (std::memcmp(magic, kStateMagic, sizeof(magic)) != 0)
    throw std::invalid_argument(path + ": not an mbfast state file (bad magic)");
  const auto version = reader.get<uint32_t>("format version");
  if (version > kStateFormatVersion)
    throw std::invalid_argument(path + ": state file format " + std::to_string(version) +
                                " is newer than this mbfast (reads up to " + std::to_string(kStateFormatVersion) +
                                "); upgrade mbfast");
  if (version < 1) throw std::invalid_argument(path + ": state file format " + std::to_string(version) + " is unknown");
  if (reader.size() < kHeaderBytes + 4) throw std::invalid_argument(path + ": truncated state file header");
  StateStore store(model.config, storage);
  const auto model_crc = reader.get<uint32_t>("model checksum");
  std::vector<uint32_t> dims(7);
  for (uint32_t& dim : dims) dim = reader.get<uint32_t>("dimensions");
  const auto n_objects = reader.get<uint64_t>("object count");
  for (uint32_t dim : dims)
    if (dim > (1u << 20)) throw std::invalid_argument(path + ": corrupt: absurd state dimensions");
  const uint64_t per_object = object_bytes(dims, version);
  if (n_objects > reader.size() / per_object)
    throw std::invalid_argument(path + ": truncated or corrupt: header says " + std::to_string(n_objects) +
                                " objects, more than the file can hold");
  const uint64_t expected = kHeaderBytes + n_objects * per_object + 4;
  if (reader.size() != expected)
    throw std::invalid_argument(path + ": truncated or corrupt: " + std::to_string(n_objects) + " objects need " +
                                std::to_string(expected) + " bytes, the file has " + std::to_string(reader.size()));
  if (!reader.checksum_ok()) throw std::invalid_argument(path + ": checksum mismatch (state file corrupt)");
  if (model_crc != model.file_crc)
    throw std::invalid_argument(path + ": state was saved with a different model (model CRC " +
                                std::to_string(model_crc) + ", this engine's model " + model.path + " has CRC " +
                                std::to_string(model.file_crc) + ")");
  if (dims != store.dims()) throw std::invalid_argument(path + ": state dimensions do not match the model");
  std::vector<char> header(kHeaderBytes);
  reader.read(header.data(), header.size(), "header");
  std::vector<float> block;
  for_each_array(store, [&](auto& values, const ArrayInfo& info) {
    const size_t count = n_objects * info.width;
    if (!info.in_file) {  // format 1 held the (S, Hc) embedding here: read and dropped (recomputed from central h)
      if (version == 1) {
        block.resize(size_t(n_objects) * store.central_hidden);
        reader.read(block.data(), block.size() * sizeof(float), "state arrays");
      }
      return;
    }
    values.resize(count);
    if constexpr (kRecurrent<decltype(values)>) {  // h, c: finite (read block by block into a half store)
      const bool fp16 = values.storage() == RecurrentStorage::kFp16;
      if (!fp16) reader.read(values.fp32().data(), count * sizeof(float), "state arrays");
      block.resize(std::min(kBlock, count));
      for (size_t i = 0; i < count; i += kBlock) {
        const size_t n = std::min(kBlock, count - i);
        if (fp16) reader.read(block.data(), n * sizeof(float), "state arrays");
        const float* read = fp16 ? block.data() : values.fp32().data() + i;
        const int64_t bad = first_non_finite(read, n);
        if (bad >= 0) {
          const size_t slot = (i + size_t(bad)) / info.width;
          throw std::invalid_argument(path + ": corrupt: object " + std::to_string(store.obj_id[slot]) + " (slot " +
                                      std::to_string(slot) + "): recurrent state holds " + value_text(read[bad]));
        }
        if (fp16) values.write(read, n, i);
      }
    } else {
      reader.read(values.data(), count * sizeof(values[0]), "state arrays");
    }
  });
  check_ranges(path, store, model.config);
  store.slot_of.reserve(n_objects);
  for (uint64_t slot = 0; slot < n_objects; ++slot)
    if (store.slot_of.insert(store.obj_id[slot], static_cast<int32_t>(slot)) != static_cast<int32_t>(slot))
      throw std::invalid_argument(path + ": corrupt: obj_id " + std::to_string(store.obj_id[slot]) + " appears twice");
  return store;
}

}  // namespace mbfast

// The engine's state file: every object's recurrent and scalar state, so a stream can stop and continue
// bit-identically. Not a model file and not portable across models: it is bound to the model file's CRC.
//
// Byte layout (little-endian, kStateFormatVersion 2; docs/engine.md):
//   magic "MBFSTATE"  u32 format_version  u32 model_crc
//   u32 n_bands, band_layers, band_hidden, central_layers, central_hidden, n_classes, n_targets  u64 n_objects (S)
//   the StateStore arrays in declaration order (obj_id ... probs, regression), each S x its row width, raw values;
//   h and c as fp32. Format 1 also had the (S, Hc) embedding between probs and regression: read and dropped.
//   u32 CRC-32 of every byte before it
// Written to a temp file in the same folder, fsync'ed, then renamed over the target: readers never see half a file.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "crc32.h"
#include "engine.h"

namespace mbfast {

namespace {

constexpr char kStateMagic[8] = {'M', 'B', 'F', 'S', 'T', 'A', 'T', 'E'};
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 7 * 4 + 8;

// Applies `visit(vector, row_width)` to every array of the store, in file order; `format_1_embedding` (reading a
// format 1 file) takes the place of the embedding that format held.
template <typename Store, typename Visit>
void for_each_array(Store& store, Visit&& visit, std::vector<float>* format_1_embedding = nullptr) {
  const size_t B = store.n_bands;
  const size_t band_state = B * store.band_layers * store.band_hidden;
  const size_t central_state = size_t(store.central_layers) * store.central_hidden;
  visit(store.obj_id, 1);
  visit(store.count, B);
  visit(store.last_t, B);
  visit(store.mag_sum, B);
  visit(store.last_mag, B);
  visit(store.last_err, B);
  visit(store.prev_log_dt, B);
  visit(store.prev_dmag, B);
  visit(store.band_hidden_state, band_state);
  visit(store.band_cell_state, band_state);
  visit(store.central_t, 1);
  visit(store.central_hidden_state, central_state);
  visit(store.central_cell_state, central_state);
  visit(store.has_prediction, 1);
  visit(store.probs, size_t(store.n_classes));
  if (format_1_embedding) visit(*format_1_embedding, size_t(store.central_hidden));
  visit(store.regression, size_t(store.n_targets));
}

// Bytes of one object in the file, from the file's own dimensions (so size checks do not depend on the model).
uint64_t object_bytes(const std::vector<uint32_t>& dims, uint32_t version) {
  const uint64_t B = dims[0], L = dims[1], H = dims[2], Lc = dims[3], Hc = dims[4], C = dims[5], T = dims[6];
  const uint64_t embedding = version == 1 ? Hc : 0;
  return 8 + B * (4 + 8 + 8 + 4 * 4) + 2 * 4 * B * L * H + 8 + 2 * 4 * Lc * Hc + 1 + 4 * (C + embedding + T);
}

std::vector<uint32_t> dims_of(const StateStore& store) {
  return {uint32_t(store.n_bands), uint32_t(store.band_layers), uint32_t(store.band_hidden),
          uint32_t(store.central_layers), uint32_t(store.central_hidden), uint32_t(store.n_classes),
          uint32_t(store.n_targets)};
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

void write_state_file(const std::string& path, const StateStore& store, const Model& model) {
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
    for (uint32_t dim : dims_of(store)) writer.put<uint32_t>(dim);
    writer.put<uint64_t>(static_cast<uint64_t>(store.size()));
    for_each_array(store, [&](const auto& values, size_t) {
      writer.write(values.data(), values.size() * sizeof(values[0]));
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

StateStore read_state_file(const std::string& path, const Model& model) {
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
  StateStore store(model.config);
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
  if (dims != dims_of(store)) throw std::invalid_argument(path + ": state dimensions do not match the model");
  std::vector<char> header(kHeaderBytes);
  reader.read(header.data(), header.size(), "header");
  std::vector<float> format_1_embedding;
  for_each_array(store, [&](auto& values, size_t width) {
    values.resize(n_objects * width);
    reader.read(values.data(), values.size() * sizeof(values[0]), "state arrays");
  }, version == 1 ? &format_1_embedding : nullptr);
  store.slot_of.reserve(n_objects);
  for (uint64_t slot = 0; slot < n_objects; ++slot)
    if (store.slot_of.insert(store.obj_id[slot], static_cast<int32_t>(slot)) != static_cast<int32_t>(slot))
      throw std::invalid_argument(path + ": corrupt: obj_id " + std::to_string(store.obj_id[slot]) + " appears twice");
  return store;
}

}  // namespace mbfast

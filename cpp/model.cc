// Model file reader (byte layout documented at the top of mbfast/modelfile.py) and weight preparation.
// Mirrors mbfast/modelfile.py read_model for the checks and mbfast/layout.py weight_layout for the names.
#include "model.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "crc32.h"
#include "json.h"

namespace mbfast {

namespace {

constexpr char kMagic[8] = {'M', 'B', 'F', 'A', 'S', 'T', '\0', '\1'};
constexpr size_t kAlignment = 64;

struct Tensor {
  std::vector<uint64_t> shape;
  std::vector<float> values;  // copied out of the file bytes (no aliasing of the char buffer)
  const float* data() const { return values.data(); }
};

// Reads the model file front to back without holding it whole (a 3 GB file is not read before its magic is seen),
// refusing any read beyond `end` (the CRC's offset).
class FileReader {
 public:
  FileReader(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    if (!file_) throw std::invalid_argument(path + ": cannot open model file: " + std::strerror(errno));
    std::fseek(file_, 0, SEEK_END);
    const long size = std::ftell(file_);
    std::fseek(file_, 0, SEEK_SET);
    if (size < 0) {
      std::fclose(file_);
      throw std::invalid_argument(path + ": cannot open model file: not a regular file");
    }
    size_ = static_cast<uint64_t>(size);
    end_ = size_;
  }
  ~FileReader() { std::fclose(file_); }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  uint64_t size() const { return size_; }
  uint64_t offset() const { return offset_; }
  uint64_t left() const { return end_ - offset_; }
  void set_end(uint64_t end) { end_ = end; }

  void read(void* out, uint64_t size, const std::string& what) {
    if (size > left())
      throw std::invalid_argument(path_ + ": truncated while reading " + what + " at byte " + std::to_string(offset_));
    if (size && std::fread(out, 1, size, file_) != size)
      throw std::invalid_argument(path_ + ": read failed while reading " + what + " at byte " + std::to_string(offset_));
    offset_ += size;
  }

  std::string text(uint64_t size, const std::string& what) {
    if (size > left())  // checked before the string is allocated
      throw std::invalid_argument(path_ + ": truncated while reading " + what + " at byte " + std::to_string(offset_));
    std::string out(size, '\0');
    read(out.data(), size, what);
    return out;
  }

  template <typename T>
  T get(const std::string& what) {
    T value;
    read(&value, sizeof(T), what);  // little-endian host (static_assert in engine.cc)
    return value;
  }

  void align(uint64_t alignment) {
    const uint64_t padding = (alignment - offset_ % alignment) % alignment;
    if (padding > left()) throw std::invalid_argument(path_ + ": truncated in padding at byte " + std::to_string(offset_));
    std::fseek(file_, static_cast<long>(padding), SEEK_CUR);
    offset_ += padding;
  }

  // CRC-32 of every byte but the last four, streamed; leaves the reader where it was.
  uint32_t crc_of_body() {
    std::fseek(file_, 0, SEEK_SET);
    std::vector<char> buffer(1 << 20);
    uint32_t crc = 0;
    for (uint64_t left = size_ - 4; left > 0;) {
      const size_t size = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
      if (std::fread(buffer.data(), 1, size, file_) != size) throw std::invalid_argument(path_ + ": read failed");
      crc = crc32_update(crc, buffer.data(), size);
      left -= size;
    }
    std::fseek(file_, static_cast<long>(offset_), SEEK_SET);
    return crc;
  }

  uint32_t last_four() {
    uint32_t value = 0;
    std::fseek(file_, static_cast<long>(size_ - 4), SEEK_SET);
    if (std::fread(&value, 1, 4, file_) != 4) throw std::invalid_argument(path_ + ": read failed");
    std::fseek(file_, static_cast<long>(offset_), SEEK_SET);
    return value;
  }

 private:
  std::string path_;
  std::FILE* file_;
  uint64_t size_ = 0, end_ = 0, offset_ = 0;
};

const Json& field(const Json& object, const std::string& name) {
  auto found = object.object.find(name);
  if (found == object.object.end()) throw std::invalid_argument("model config has no field '" + name + "'");
  return found->second;
}

double number_field(const Json& object, const std::string& name) {
  const Json& value = field(object, name);
  if (value.type != Json::Type::Number) throw std::invalid_argument("model config field '" + name + "' must be a number");
  return value.number;
}

std::string number_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// A config value the maths divides by or takes the root of: finite and > 0.
double positive_field(const Json& object, const std::string& name) {
  const double value = number_field(object, name);
  if (!(std::isfinite(value) && value > 0.0))
    throw std::invalid_argument("model config field '" + name + "' must be a finite number > 0, got " +
                                number_text(value));
  return value;
}

int int_field(const Json& object, const std::string& name) {
  const Json& value = field(object, name);
  if (value.type != Json::Type::Number || value.number != std::floor(value.number) || value.number < 1 ||
      value.number > 1e6)
    throw std::invalid_argument("model config field '" + name + "' must be a positive integer");
  return static_cast<int>(value.number);
}


std::vector<std::string> strings_field(const Json& object, const std::string& name) {
  const Json& value = field(object, name);
  if (value.type != Json::Type::Array) throw std::invalid_argument("model config field '" + name + "' must be a list");
  std::vector<std::string> out;
  for (const Json& item : value.array) {
    if (item.type != Json::Type::String)
      throw std::invalid_argument("model config field '" + name + "' must hold strings");
    out.push_back(item.string);
  }
  return out;
}

ModelConfig parse_config(const std::string& text) {
  const Json root = parse_json(text);
  if (root.type != Json::Type::Object) throw std::invalid_argument("model config must be a JSON object");
  static const std::set<std::string> known(std::begin(kConfigFields), std::end(kConfigFields));
  for (const auto& item : root.object)
    if (!known.count(item.first))
      throw std::invalid_argument("model config has unknown field '" + item.first + "'; upgrade mbfast");
  ModelConfig config;
  config.survey = field(root, "survey").string;
  config.bands = strings_field(root, "bands");
  config.class_names = strings_field(root, "class_names");
  if (config.bands.empty() || config.bands.size() > 64)
    throw std::invalid_argument("model config must name 1 to 64 bands");
  if (config.class_names.size() < 2) throw std::invalid_argument("model config must name at least two classes");
  config.band_hidden = int_field(root, "band_hidden");
  config.band_layers = int_field(root, "band_layers");
  config.central_hidden = int_field(root, "central_hidden");
  config.central_layers = int_field(root, "central_layers");
  config.translation_layers = int_field(root, "translation_layers");
  config.classifier_hidden = int_field(root, "classifier_hidden");
  config.classifier_layers = int_field(root, "classifier_layers");
  config.band_head_hidden = int_field(root, "band_head_hidden");
  config.band_head_layers = int_field(root, "band_head_layers");
  config.regression_hidden = int_field(root, "regression_hidden");
  config.regression_layers = int_field(root, "regression_layers");
  config.layernorm_eps = positive_field(root, "layernorm_eps");
  config.batchnorm_eps = positive_field(root, "batchnorm_eps");
  const Json& targets = field(root, "regression_targets");
  if (targets.type != Json::Type::Array) throw std::invalid_argument("model config regression_targets must be a list");
  for (const Json& target : targets.array) {
    RegressionTarget parsed;
    parsed.name = field(target, "name").string;
    parsed.mean = number_field(target, "mean");
    parsed.std = positive_field(target, "std");
    if (!std::isfinite(parsed.mean))
      throw std::invalid_argument("model config field 'mean' of regression target '" + parsed.name +
                                  "' must be finite");
    config.regression_targets.push_back(parsed);
  }
  return config;
}

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

// Hands out tensors by layout name; collects every problem so one error lists them all (as check_tensors does).
// A config asking for far more than the file holds (band_layers=1000000 in a 670-byte file) stops after
// kMaxProblems, and nothing is allocated for a missing or mis-shaped tensor, so memory stays within the file's size.
class TensorTable {
 public:
  static constexpr size_t kMaxProblems = 100;

  TensorTable(std::map<std::string, Tensor> tensors, std::string source)
      : tensors_(std::move(tensors)), source_(std::move(source)) {}

  const float* take(const std::string& name, std::vector<uint64_t> shape) {
    auto found = tensors_.find(name);
    if (found == tensors_.end()) {
      problem("missing " + name + " " + shape_text(shape));
      return nullptr;
    }
    taken_.insert(name);
    if (found->second.shape != shape) {
      problem("mis-shaped " + name + ": expected " + shape_text(shape) + ", got " + shape_text(found->second.shape));
      return nullptr;
    }
    return found->second.data();
  }

  const std::string& source() const { return source_; }

  void finish() {
    for (const auto& item : tensors_)
      if (!taken_.count(item.first)) problems_.push_back("extra " + item.first);
    if (!problems_.empty()) fail("");
  }

 private:
  void problem(std::string text) {
    problems_.push_back(std::move(text));
    if (problems_.size() == kMaxProblems)
      fail("\n  (stopped after " + std::to_string(kMaxProblems) + " problems: the config asks for tensors the file "
           "does not hold)");
  }

  [[noreturn]] void fail(const std::string& tail) const {
    std::string message = source_ + ": model tensors do not match the layout:";
    for (const std::string& problem : problems_) message += "\n  " + problem;
    throw std::invalid_argument(message + tail);
  }

  std::map<std::string, Tensor> tensors_;
  std::string source_;
  std::set<std::string> taken_;
  std::vector<std::string> problems_;
};

// Missing tensors (nullptr) give empty values: TensorTable::finish then refuses the model.
std::vector<float> copy_vector(const float* data, size_t size) {
  return data ? std::vector<float>(data, data + size) : std::vector<float>();
}

std::vector<float> softmax(const float* logits, int size) {
  if (!logits) return {};
  std::vector<float> out(size, 0.0f);
  double top = logits[0], total = 0.0;
  for (int i = 1; i < size; ++i) top = std::max(top, static_cast<double>(logits[i]));
  std::vector<double> exps(size);
  for (int i = 0; i < size; ++i) total += exps[i] = std::exp(logits[i] - top);
  for (int i = 0; i < size; ++i) out[i] = static_cast<float>(exps[i] / total);
  return out;
}

// weight (out, in) PyTorch layout -> Dense with weight_t (in, out); per-output scale/shift applied in double.
Dense make_dense(const float* weight, const float* bias, int out, int in, const std::vector<double>& scale = {},
                 const std::vector<double>& shift = {}) {
  Dense dense;
  dense.in = in;
  dense.out = out;
  if (!weight) return dense;
  dense.weight_t.assign(static_cast<size_t>(in) * out, 0.0f);
  dense.bias.assign(out, 0.0f);
  for (int o = 0; o < out; ++o) {
    const double s = scale.empty() ? 1.0 : scale[o];
    for (int i = 0; i < in; ++i)
      dense.weight_t[static_cast<size_t>(i) * out + o] = static_cast<float>(weight[static_cast<size_t>(o) * in + i] * s);
    const double b = bias ? static_cast<double>(bias[o]) : 0.0;
    dense.bias[o] = static_cast<float>(b * s + (shift.empty() ? 0.0 : shift[o]));
  }
  return dense;
}

// mirrors layout.py recurrent_stack_layout
RecurrentStack take_stack(TensorTable& table, const std::string& prefix, int in, int hidden, int layers) {
  RecurrentStack stack;
  stack.in = in;
  stack.hidden = hidden;
  stack.layers = layers;
  const uint64_t gates = 4 * static_cast<uint64_t>(hidden);
  for (int layer = 0; layer < layers; ++layer) {
    const int layer_in = layer == 0 ? in : hidden;
    const std::string cell = prefix + ".lstm." + std::to_string(layer);
    const float* w_ih = table.take(cell + ".weight_ih_l0", {gates, static_cast<uint64_t>(layer_in)});
    const float* w_hh = table.take(cell + ".weight_hh_l0", {gates, static_cast<uint64_t>(hidden)});
    const float* b_ih = table.take(cell + ".bias_ih_l0", {gates});
    const float* b_hh = table.take(cell + ".bias_hh_l0", {gates});
    // one GEMM per layer: [x | h] (layer_in + H) @ [W_ih | W_hh]^T, bias b_ih + b_hh
    Dense dense;
    dense.in = layer_in + hidden;
    dense.out = static_cast<int>(gates);
    if (w_ih && w_hh && b_ih && b_hh) {
      dense.weight_t.assign(static_cast<size_t>(dense.in) * dense.out, 0.0f);
      dense.bias.assign(dense.out, 0.0f);
      for (int o = 0; o < dense.out; ++o) {
        for (int i = 0; i < layer_in; ++i)
          dense.weight_t[static_cast<size_t>(i) * dense.out + o] = w_ih[static_cast<size_t>(o) * layer_in + i];
        for (int i = 0; i < hidden; ++i)
          dense.weight_t[static_cast<size_t>(layer_in + i) * dense.out + o] = w_hh[static_cast<size_t>(o) * hidden + i];
        dense.bias[o] = static_cast<float>(static_cast<double>(b_ih[o]) + b_hh[o]);
      }
    }
    stack.gates.push_back(std::move(dense));
  }
  const float* residual_weight = table.take(prefix + ".residual.weight", {static_cast<uint64_t>(hidden),
                                                                          static_cast<uint64_t>(in)});
  const float* residual_bias = table.take(prefix + ".residual.bias", {static_cast<uint64_t>(hidden)});
  stack.residual = make_dense(residual_weight, residual_bias, hidden, in);
  for (int layer = 0; layer + 1 < layers; ++layer) {
    const std::string norm = prefix + ".norms." + std::to_string(layer);
    stack.norm_weight.push_back(copy_vector(table.take(norm + ".weight", {static_cast<uint64_t>(hidden)}), hidden));
    stack.norm_bias.push_back(copy_vector(table.take(norm + ".bias", {static_cast<uint64_t>(hidden)}), hidden));
  }
  stack.mix = softmax(table.take(prefix + ".mix", {static_cast<uint64_t>(layers)}), layers);
  return stack;
}

// mirrors layout.py batchnorm_ffnn_layout; BatchNorm (running stats) folded: W' = s W, b' = beta - s mean,
// s = gamma / sqrt(var + eps). `out_scale`/`out_shift` fold a regression target's z * std + mean.
Ffnn take_ffnn(TensorTable& table, const std::string& prefix, int in, int hidden, int layers, int out, double eps,
               double out_scale = 1.0, double out_shift = 0.0) {
  Ffnn ffnn;
  const auto h = static_cast<uint64_t>(hidden);
  for (int layer = 0; layer < layers; ++layer) {
    const int layer_in = layer == 0 ? in : hidden;
    const std::string name = prefix + ".layers." + std::to_string(layer);
    const float* weight = table.take(name + ".linear.weight", {h, static_cast<uint64_t>(layer_in)});
    const float* gamma = table.take(name + ".norm.weight", {h});
    const float* beta = table.take(name + ".norm.bias", {h});
    const float* mean = table.take(name + ".norm.running_mean", {h});
    const float* var = table.take(name + ".norm.running_var", {h});
    std::vector<double> scale, shift;
    if (gamma && beta && mean && var) {
      scale.resize(hidden);
      shift.resize(hidden);
      for (int j = 0; j < hidden; ++j) {
        if (!(static_cast<double>(var[j]) + eps > 0.0))
          throw std::invalid_argument(table.source() + ": " + name + ".norm.running_var holds " +
                                      number_text(var[j]) + " at index " + std::to_string(j) +
                                      ": BatchNorm needs running_var + batchnorm_eps > 0");
        scale[j] = gamma[j] / std::sqrt(static_cast<double>(var[j]) + eps);
        shift[j] = beta[j] - scale[j] * mean[j];
      }
    }
    ffnn.layers.push_back(make_dense(scale.empty() ? nullptr : weight, nullptr, hidden, layer_in, scale, shift));
  }
  const float* out_weight = table.take(prefix + ".out.weight", {static_cast<uint64_t>(out), h});
  const float* out_bias = table.take(prefix + ".out.bias", {static_cast<uint64_t>(out)});
  ffnn.out = make_dense(out_weight, out_bias, out, hidden, std::vector<double>(out, out_scale),
                        std::vector<double>(out, out_shift));
  return ffnn;
}

}  // namespace

Model load_model(const std::string& path) {
  if (path.find('\0') != std::string::npos) throw std::invalid_argument("model path contains a NUL character");
  FileReader reader(path);
  char magic[sizeof(kMagic)] = {};
  if (reader.size() < sizeof(kMagic)) throw std::invalid_argument(path + ": not an mbfast model file (bad magic)");
  reader.read(magic, sizeof(magic), "magic");
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0)
    throw std::invalid_argument(path + ": not an mbfast model file (bad magic)");
  const auto format_version = reader.get<uint32_t>("versions");
  const auto layout_revision = reader.get<uint32_t>("versions");
  if (format_version > kModelFormatVersion)
    throw std::invalid_argument(path + ": model file format " + std::to_string(format_version) +
                                " is newer than this mbfast (reads up to " + std::to_string(kModelFormatVersion) +
                                "); upgrade mbfast");
  if (layout_revision > kLayoutRevision)
    throw std::invalid_argument(path + ": model layout revision " + std::to_string(layout_revision) +
                                " is newer than this mbfast (reads up to " + std::to_string(kLayoutRevision) +
                                "); upgrade mbfast");
  if (reader.size() < reader.offset() + 4) throw std::invalid_argument(path + ": truncated");
  const uint32_t stored_crc = reader.last_four();
  if (reader.crc_of_body() != stored_crc)
    throw std::invalid_argument(path + ": checksum mismatch (file corrupt or truncated)");
  reader.set_end(reader.size() - 4);

  Model model;
  model.path = path;
  model.file_crc = stored_crc;
  const auto config_len = reader.get<uint64_t>("config length");
  model.config_json = reader.text(config_len, "config");
  try {
    model.config = parse_config(model.config_json);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(path + ": " + error.what());
  }
  const auto n_tensors = reader.get<uint32_t>("tensor count");
  std::map<std::string, Tensor> tensors;
  for (uint32_t index = 0; index < n_tensors; ++index) {
    const auto name_len = reader.get<uint16_t>("tensor name length");
    const std::string name = reader.text(name_len, "tensor name");
    const auto dtype = reader.get<uint8_t>("dtype of " + name);
    const auto ndim = reader.get<uint8_t>("dtype of " + name);
    if (dtype != 0)
      throw std::invalid_argument(path + ": tensor " + name + " has unknown dtype code " + std::to_string(dtype));
    Tensor tensor;
    uint64_t count = 1;
    for (int axis = 0; axis < ndim; ++axis) {
      const auto size = reader.get<uint64_t>("shape of " + name);
      if (size != 0 && count > reader.size() / size)
        throw std::invalid_argument(path + ": truncated: tensor " + name + " is larger than the file");
      tensor.shape.push_back(size);
      count *= size;
    }
    reader.align(kAlignment);
    if (4 * count > reader.left())  // before the values are allocated
      throw std::invalid_argument(path + ": truncated while reading data of " + name + " at byte " +
                                  std::to_string(reader.offset()));
    tensor.values.resize(count);
    reader.read(tensor.values.data(), 4 * count, "data of " + name);
    for (uint64_t i = 0; i < count; ++i)
      if (!std::isfinite(tensor.values[i]))
        throw std::invalid_argument(path + ": tensor " + name + " holds " + number_text(tensor.values[i]) +
                                    " at flat index " + std::to_string(i) + "; every weight must be finite");
    tensors[name] = std::move(tensor);
  }
  if (reader.left() != 0)
    throw std::invalid_argument(path + ": " + std::to_string(reader.left()) + " unexpected bytes after the tensors");

  // mirrors layout.py weight_layout, in the same order
  const ModelConfig& config = model.config;
  TensorTable table(std::move(tensors), path);
  const int n_bands = config.n_bands();
  for (int band = 0; band < n_bands; ++band) {
    const std::string prefix = "bands." + std::to_string(band);
    model.band_stacks.push_back(
        take_stack(table, prefix + ".stack", kRowWidth, config.band_hidden, config.band_layers));
    // the band head trains the band model (band_probs); inference outputs do not use it, so it is only checked
    take_ffnn(table, prefix + ".head", config.band_hidden, config.band_head_hidden, config.band_head_layers,
              config.n_classes(), config.batchnorm_eps);
  }
  const float* band_mix = table.take("central.band_mix", {static_cast<uint64_t>(n_bands),
                                                          static_cast<uint64_t>(config.band_layers)});
  const auto hc = static_cast<uint64_t>(config.central_hidden);
  for (int band = 0; band < n_bands; ++band) {
    model.translation_mix.push_back(
        softmax(band_mix ? band_mix + static_cast<size_t>(band) * config.band_layers : nullptr, config.band_layers));
    std::vector<Dense> layers;
    const std::string prefix = "central.translators." + std::to_string(band);
    for (int layer = 0; layer < config.translation_layers; ++layer) {
      const int layer_in = layer == 0 ? config.band_hidden : config.central_hidden;
      const std::string name = prefix + ".layers." + std::to_string(layer);
      const float* weight = table.take(name + ".weight", {hc, static_cast<uint64_t>(layer_in)});
      const float* bias = table.take(name + ".bias", {hc});
      layers.push_back(make_dense(weight, bias, config.central_hidden, layer_in));
    }
    model.translators.push_back(std::move(layers));
    model.translator_norm_weight.push_back(copy_vector(table.take(prefix + ".norm.weight", {hc}), hc));
    model.translator_norm_bias.push_back(copy_vector(table.take(prefix + ".norm.bias", {hc}), hc));
  }
  model.central = take_stack(table, "central.stack", config.central_hidden, config.central_hidden,
                             config.central_layers);
  model.classifier = take_ffnn(table, "central.classifier", config.final_width(), config.classifier_hidden,
                               config.classifier_layers, config.n_classes(), config.batchnorm_eps);
  for (int target = 0; target < config.n_targets(); ++target) {
    const RegressionTarget& spec = config.regression_targets[target];
    model.regressors.push_back(take_ffnn(table, "central.regressors." + std::to_string(target), config.final_width(),
                                         config.regression_hidden, config.regression_layers, 1, config.batchnorm_eps,
                                         spec.std, spec.mean));
  }
  table.finish();
  return model;
}

}  // namespace mbfast

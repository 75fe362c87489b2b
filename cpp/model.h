// The model file read into inference-ready weights: versions and CRC checked, every tensor asked for by its
// weight_layout name and shape (mbfast/layout.py), BatchNorm folded into the linear layers, LSTM biases summed,
// weights transposed to (in, out) for ops::gemm_bias_cpu. Not the training model: band heads are checked, not kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mbfast {

// Both must equal mbfast/layout.py FORMAT_VERSION / LAYOUT_REVISION (compared by tests/test_engine.py).
constexpr uint32_t kModelFormatVersion = 1;
constexpr uint32_t kLayoutRevision = 1;
constexpr int kRowWidth = 4;  // window row of eq. 2: [log10 dt_prev, log10 dt, dmag_prev, dmag]

struct RegressionTarget {
  std::string name;
  double mean = 0.0;
  double std = 1.0;
};

// mirrors mbfast/model/config.py ModelConfig (only what inference needs, plus what validation checks)
struct ModelConfig {
  std::string survey;
  std::vector<std::string> bands;
  std::vector<std::string> class_names;
  int band_hidden = 0, band_layers = 0;
  int central_hidden = 0, central_layers = 0;
  int translation_layers = 0;
  int classifier_hidden = 0, classifier_layers = 0;
  int band_head_hidden = 0, band_head_layers = 0;
  int regression_hidden = 0, regression_layers = 0;
  std::vector<RegressionTarget> regression_targets;
  double layernorm_eps = 1e-3, batchnorm_eps = 1e-3;

  int n_bands() const { return static_cast<int>(bands.size()); }
  int n_classes() const { return static_cast<int>(class_names.size()); }
  int n_colours() const { return n_bands() * (n_bands() - 1) / 2; }
  int n_targets() const { return static_cast<int>(regression_targets.size()); }
  int final_width() const { return central_hidden + n_colours() + 1; }  // [embedding, colours, dt] of §3.5
};

// Every field the model file's config may hold: ModelConfig's fields here and in Python (mbfast._core.CONFIG_FIELDS;
// tests/model/test_config.py checks they are the Python dataclass's). Any other field is refused at load.
inline constexpr const char* kConfigFields[] = {
    "survey", "bands", "class_names", "band_hidden", "band_layers", "central_hidden", "central_layers",
    "translation_layers", "classifier_hidden", "classifier_layers", "band_head_hidden", "band_head_layers",
    "regression_hidden", "regression_layers", "regression_targets", "n_skip", "layernorm_eps", "batchnorm_eps",
    "card"};  // card: the model card (what it learned from, metrics, limits), for people; not read here

// y (M, out) = x (M, in) @ weight_t + bias; weight_t is (in, out) row-major.
struct Dense {
  int in = 0, out = 0;
  std::vector<float> weight_t;  // (in, out)
  std::vector<float> bias;      // (out,)
};

// Residual LayerNorm'd LSTM stack (paper §3.2); mirrors reference.py ReferenceModel.stack_step.
struct RecurrentStack {
  int in = 0, hidden = 0, layers = 0;
  std::vector<Dense> gates;                      // (L,) [x | h] (in_l + H) -> 4H, b_ih + b_hh
  Dense residual;                                // in -> H, the first skip connection
  std::vector<std::vector<float>> norm_weight;   // (L - 1, H)
  std::vector<std::vector<float>> norm_bias;     // (L - 1, H)
  std::vector<float> mix;                        // (L,) softmax of stack.mix: the stack's embedding (eq. 3)
};

// [Linear -> BatchNorm (running stats, folded) -> ReLU] x layers -> Linear.
struct Ffnn {
  std::vector<Dense> layers;
  Dense out;
};

struct Model {
  ModelConfig config;
  std::string config_json;
  std::string path;
  uint32_t file_crc = 0;  // CRC-32 stored at the end of the model file; state files are bound to it

  std::vector<RecurrentStack> band_stacks;               // (B,)
  std::vector<std::vector<float>> translation_mix;       // (B, L) softmax of central.band_mix[b]
  std::vector<std::vector<Dense>> translators;           // (B, translation_layers), ReLU after each
  std::vector<std::vector<float>> translator_norm_weight;  // (B, Hc)
  std::vector<std::vector<float>> translator_norm_bias;    // (B, Hc)
  RecurrentStack central;
  Ffnn classifier;                                       // final_width -> C logits
  std::vector<Ffnn> regressors;                          // (T,) final_width -> 1, z * std + mean folded in
};

// Reads, validates and prepares a model file. Throws std::invalid_argument with the path and every problem found
// (bad magic, newer format or layout, checksum, truncation, missing/extra/mis-shaped tensors).
Model load_model(const std::string& path);

}  // namespace mbfast

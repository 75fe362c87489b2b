// mbfast._core: pybind11 bindings only convert (NumPy in, NumPy out, C++ exceptions to Python).
// No model maths here; see cpp/engine.h. mbfast/engine.py is the public face and checks inputs before calling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "engine.h"
#include "engine_cuda.h"
#include "ops/gemm.h"
#include "model.h"

namespace py = pybind11;

namespace {

template <size_t N>
py::tuple precision_names(const mbfast::ops::Precision (&precisions)[N]) {
  py::tuple names(N);
  for (size_t i = 0; i < N; ++i) names[i] = mbfast::ops::precision_name(precisions[i]);
  return names;
}

py::dict build_info() {
  py::dict info;
  info["version"] = MBFAST_VERSION;
  info["compiler"] = MBFAST_CXX_COMPILER;
#ifdef MBFAST_WITH_CUDA
  info["cuda"] = true;
  info["cuda_architectures"] = MBFAST_CUDA_ARCHS;
#else
  info["cuda"] = false;
  info["cuda_architectures"] = "";
#endif
  info["simd"] = mbfast::ops::kernel_name(mbfast::ops::best_cpu_kernel());  // what the CPU runs at best
  info["cpu_kernel"] = mbfast::ops::kernel_name(mbfast::ops::cpu_kernel());  // after MBFAST_KERNEL
  info["cpu_precisions"] = precision_names(mbfast::ops::kCpuPrecisions);
  return info;
}

template <typename T>
using Array = py::array_t<T, py::array::c_style>;  // no forcecast: engine.py converts, we only check

template <typename T>
const T* column(const py::array& values, int64_t n, const char* name) {
  if (!py::isinstance<Array<T>>(values) || values.ndim() != 1 || values.shape(0) != n)
    throw std::invalid_argument(std::string(name) + " must be a C-contiguous 1-d array of " +
                                py::str(py::dtype::of<T>()).cast<std::string>() + " with " + std::to_string(n) +
                                " values");
  return static_cast<const T*>(values.data());
}

template <typename T>
Array<T> filled(std::initializer_list<py::ssize_t> shape, T value) {
  Array<T> out(shape);
  std::fill(out.mutable_data(), out.mutable_data() + out.size(), value);
  return out;
}

mbfast::Observations observations(const py::array& obj_id, const py::array& band, const py::array& t,
                                  const py::array& mag, const py::array& err) {
  mbfast::Observations rows;
  rows.n = obj_id.ndim() == 1 ? obj_id.shape(0) : -1;
  rows.obj_id = column<int64_t>(obj_id, rows.n, "obj_id");
  rows.band = column<int8_t>(band, rows.n, "band");
  rows.t = column<double>(t, rows.n, "t");
  rows.mag = column<float>(mag, rows.n, "mag");
  rows.err = column<float>(err, rows.n, "err");
  return rows;
}

py::dict object_outputs_dict(const mbfast::ModelConfig& config, int64_t n, mbfast::ObjectOutputs& outputs) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto probs = filled<float>({n, config.n_classes()}, nan);
  auto embedding = filled<float>({n, config.central_hidden}, nan);
  auto regression = filled<float>({n, config.n_targets()}, nan);
  auto n_obs = filled<int32_t>({n, config.n_bands()}, 0);
  outputs.probs = probs.mutable_data();
  outputs.embedding = embedding.mutable_data();
  outputs.regression = regression.mutable_data();
  outputs.n_obs = n_obs.mutable_data();
  py::dict result;
  result["probs"] = probs;
  result["embedding"] = embedding;
  result["regression"] = regression;
  result["n_obs"] = n_obs;
  return result;
}

// "cpu", "cuda" (device 0) or "cuda:N"; mbfast/engine.py checks the spelling first, this is the last guard.
mbfast::Device device_kind(const std::string& name, int& index) {
  if (name == "cpu") return mbfast::Device::kCpu;
  if (name == "cuda") return mbfast::Device::kCuda;
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() < 9 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos) {
    index = std::stoi(name.substr(5));
    return mbfast::Device::kCuda;
  }
  throw std::invalid_argument("device must be 'cpu', 'cuda' or 'cuda:N', got '" + name + "'");
}

void register_engine(py::module_& m) {
  py::class_<mbfast::Engine>(m, "Engine")
      .def(py::init([](const std::string& path, int num_threads, const std::string& precision,
                       const std::string& device_name, const std::string& state_dtype) {
             mbfast::DeviceOptions device;
             device.device = device_kind(device_name, device.index);
             device.precision = mbfast::ops::parse_precision(precision);
             if (state_dtype == "fp16") device.state_dtype = mbfast::StateDtype::kFp16;
             else if (state_dtype != "fp32")
               throw std::invalid_argument("state_dtype must be 'fp32' or 'fp16', got '" + state_dtype + "'");
             std::shared_ptr<const mbfast::Model> model;
             {
               py::gil_scoped_release release;
               model = std::make_shared<const mbfast::Model>(mbfast::load_model(path));
             }
             if (num_threads < 1)
               throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(num_threads));
             py::gil_scoped_release release;  // packs the weights
             return std::make_unique<mbfast::Engine>(std::move(model), num_threads, device);
           }),
           py::arg("path"), py::arg("num_threads"), py::arg("precision") = "fp32", py::arg("device") = "cpu",
           py::arg("state_dtype") = "fp32")
      .def_property_readonly("state_dtype", [](const mbfast::Engine& e) {
        return e.device().state_dtype == mbfast::StateDtype::kFp16 ? "fp16" : "fp32";
      })
      .def_property_readonly("device", [](const mbfast::Engine& e) {
        const mbfast::DeviceOptions& device = e.device();
        return device.device == mbfast::Device::kCuda ? "cuda:" + std::to_string(device.index) : std::string("cpu");
      })
      .def_property_readonly("cpu_kernel", &mbfast::Engine::cpu_kernel)
      .def_property_readonly("precision",
                             [](const mbfast::Engine& e) { return mbfast::ops::precision_name(e.device().precision); })
      .def_property_readonly("config_json", [](const mbfast::Engine& e) { return e.model().config_json; })
      .def_property_readonly("model_path", [](const mbfast::Engine& e) { return e.model().path; })
      .def_property_readonly("model_crc", [](const mbfast::Engine& e) { return e.model().file_crc; })
      .def_property_readonly("num_threads", &mbfast::Engine::num_threads)
      .def_property_readonly("state_bytes_per_object", &mbfast::Engine::state_bytes_per_object)
      .def("__len__", &mbfast::Engine::size)
      .def(
          "step",
          [](mbfast::Engine& engine, const py::array& obj_id, const py::array& band, const py::array& t,
             const py::array& mag, const py::array& err, bool skip_errors, bool want_probs, bool want_embedding,
             bool want_regression) {
            const mbfast::Observations rows = observations(obj_id, band, t, mag, err);
            const mbfast::ModelConfig& config = engine.model().config;
            const float nan = std::numeric_limits<float>::quiet_NaN();
            const int64_t n = rows.n;
            auto status = filled<int8_t>({n}, static_cast<int8_t>(mbfast::Status::kInvalid));
            py::dict result;
            mbfast::RowOutputs outputs;
            outputs.status = status.mutable_data();
            result["status"] = status;
            if (want_probs) {
              auto probs = filled<float>({n, config.n_classes()}, nan);
              outputs.probs = probs.mutable_data();
              result["probs"] = probs;
            }
            if (want_embedding) {
              auto embedding = filled<float>({n, config.central_hidden}, nan);
              outputs.embedding = embedding.mutable_data();
              result["embedding"] = embedding;
            }
            if (want_regression) {
              auto regression = filled<float>({n, config.n_targets()}, nan);
              outputs.regression = regression.mutable_data();
              result["regression"] = regression;
            }
            {
              py::gil_scoped_release release;
              engine.step(rows, skip_errors ? mbfast::OnError::kSkip : mbfast::OnError::kRaise, outputs);
            }
            return result;
          },
          py::arg("obj_id"), py::arg("band"), py::arg("t"), py::arg("mag"), py::arg("err"), py::arg("skip_errors"),
          py::arg("probs"), py::arg("embedding"), py::arg("regression"))
      .def(
          "classify",
          [](mbfast::Engine& engine, const py::array& obj_id, const py::array& band, const py::array& t,
             const py::array& mag, const py::array& err, const py::array& offsets) {
            const mbfast::Observations rows = observations(obj_id, band, t, mag, err);
            const int64_t n_objects = offsets.ndim() == 1 ? offsets.shape(0) - 1 : -1;
            if (n_objects < 0) throw std::invalid_argument("offsets must be a 1-d array with at least one value");
            const int64_t* offset_values = column<int64_t>(offsets, n_objects + 1, "offsets");
            mbfast::ObjectOutputs outputs;
            py::dict result = object_outputs_dict(engine.model().config, n_objects, outputs);
            {
              py::gil_scoped_release release;
              engine.classify(rows, offset_values, n_objects, outputs);
            }
            return result;
          },
          py::arg("obj_id"), py::arg("band"), py::arg("t"), py::arg("mag"), py::arg("err"), py::arg("offsets"))
      .def(
          "predict",
          [](const mbfast::Engine& engine, const py::array& obj_ids) {
            const int64_t n = obj_ids.ndim() == 1 ? obj_ids.shape(0) : -1;
            const int64_t* ids = column<int64_t>(obj_ids, n, "obj_ids");
            mbfast::ObjectOutputs outputs;
            py::dict result = object_outputs_dict(engine.model().config, n, outputs);
            {
              py::gil_scoped_release release;
              engine.predict(ids, n, outputs);
            }
            return result;
          },
          py::arg("obj_ids"))
      .def(
          "forget",
          [](mbfast::Engine& engine, const py::array& obj_ids) {
            const int64_t n = obj_ids.ndim() == 1 ? obj_ids.shape(0) : -1;
            const int64_t* ids = column<int64_t>(obj_ids, n, "obj_ids");
            py::gil_scoped_release release;
            return engine.forget(ids, n);
          },
          py::arg("obj_ids"))
      .def("forget_before", &mbfast::Engine::forget_before, py::arg("t"), py::call_guard<py::gil_scoped_release>())
      .def("object_ids",
           [](const mbfast::Engine& engine) {
             std::vector<int64_t> ids;
             {
               py::gil_scoped_release release;
               ids = engine.object_ids();
             }
             return py::array_t<int64_t>(static_cast<py::ssize_t>(ids.size()), ids.data());
           })
      .def("save_state", &mbfast::Engine::save_state, py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def("load_state", &mbfast::Engine::load_state, py::arg("path"), py::call_guard<py::gil_scoped_release>());
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mbfast native core (private; use the mbfast package)";
  m.def("build_info", &build_info, "What this build compiled: CUDA kernels, SIMD level, compiler.");
  m.def("cuda_device_count", &mbfast::cuda_device_count,
        "CUDA devices usable now: 0 in a build without CUDA, without a driver or without a GPU.");
  m.attr("MODEL_FORMAT_VERSION") = mbfast::kModelFormatVersion;
  m.attr("LAYOUT_REVISION") = mbfast::kLayoutRevision;
  m.attr("STATE_FORMAT_VERSION") = mbfast::kStateFormatVersion;
  py::dict status_codes;
  for (int code = 0; code < mbfast::kNumStatus; ++code) status_codes[mbfast::kStatusNames[code]] = code;
  m.attr("STATUS_CODES") = status_codes;
  m.attr("CPU_PRECISIONS") = precision_names(mbfast::ops::kCpuPrecisions);
  m.attr("CUDA_PRECISIONS") = precision_names(mbfast::ops::kCudaPrecisions);
  py::tuple config_fields(std::size(mbfast::kConfigFields));
  for (size_t i = 0; i < config_fields.size(); ++i) config_fields[i] = mbfast::kConfigFields[i];
  m.attr("CONFIG_FIELDS") = config_fields;
  register_engine(m);
}

// mbfast._core: pybind11 bindings only convert (NumPy in, NumPy out, C++ exceptions to Python).
// No model maths here; see cpp/engine.h.
#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

namespace {

std::string simd_level() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return "avx512_bf16";
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse2";
#else
  return "portable";
#endif
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
  info["simd"] = simd_level();
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mbfast native core (private; use the mbfast package)";
  m.def("build_info", &build_info, "What this build compiled: CUDA kernels, SIMD level, compiler.");
}

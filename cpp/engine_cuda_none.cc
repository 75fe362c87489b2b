// CudaState in a build without CUDA (MBFAST_CUDA=OFF or no nvcc): every call site compiles, create() refuses.
#include <stdexcept>

#include "engine_cuda.h"

namespace mbfast {

struct CudaState::Impl {};

int cuda_device_count() { return 0; }

std::unique_ptr<CudaState> CudaState::create(std::shared_ptr<const Model>, const DeviceOptions&) {
  throw std::runtime_error("mbfast was built without CUDA; rebuild with nvcc on the PATH to use device='cuda'");
}

CudaState::CudaState(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaState::~CudaState() = default;

// Unreachable: no CudaState exists in this build.
std::unique_ptr<CudaState> CudaState::empty_like() const { return nullptr; }
void CudaState::resize(int64_t) {}
void CudaState::move_slot(int64_t, int64_t) {}
void CudaState::run(const StepBatch&, float*, float*, float*) {}
void CudaState::download(StateStore&) const {}
void CudaState::upload(const StateStore&) {}

}  // namespace mbfast

// The devices the model ops run on, and what an op call needs of its device. Every op has one signature per device,
// overloaded on the context (ops/<op>.h declares both, <op>_cpu.cc and <op>_cuda.cu define them), so the model step
// (step.h) is written once and picks the device by the context it holds. No CUDA types here: a CPU-only build
// compiles every call site.
#pragma once

struct CUstream_st;  // cudaStream_t

namespace mbfast {

class ColumnTeam;  // column_team.h

// Where an Engine keeps band and central h, c and runs the model step. kCuda: in GPU memory (engine_cuda.h);
// validation, window rows, the obj_id -> slot map and the scalar state stay on the host either way.
enum class Device { kCpu, kCuda };

namespace ops {

// CPU ops run on the calling thread; its GEMMs split by columns over a team when this thread leads one.
struct CpuContext {
  ColumnTeam* team = nullptr;
};

// CUDA ops are queued on a stream; every pointer they get is device memory.
struct CudaContext {
  CUstream_st* stream = nullptr;
};

}  // namespace ops
}  // namespace mbfast

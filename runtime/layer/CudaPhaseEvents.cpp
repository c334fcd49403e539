// The CUDA backend of EventPhaseClock: plain timing events (no blocking-sync
// flag: resolve() waits on them once per step). Built on CUDA configurations
// only (runtime/layer/CMakeLists.txt), so the CPU build has no CUDA dependency.
#include <cuda_runtime.h>

#include "kernels/cuda/CudaRuntime.hpp"
#include "runtime/layer/EventPhaseClock.hpp"

namespace moe {

namespace {

class CudaPhaseEvents final : public PhaseEventBackend {
 public:
  Event create() override {
    cudaEvent_t e = nullptr;
    MOE_CUDA_CHECK(cudaEventCreate(&e));
    return e;
  }
  void destroy(Event e) noexcept override { cudaEventDestroy(static_cast<cudaEvent_t>(e)); }
  void record(Event e, Stream s) override {
    MOE_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(e), static_cast<cudaStream_t>(s)));
  }
  void synchronize(Event e) override { MOE_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(e))); }
  double elapsed_ms(Event from, Event to) override {
    float ms = 0.0f;
    MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(from), static_cast<cudaEvent_t>(to)));
    return static_cast<double>(ms);
  }
};

}  // namespace

std::unique_ptr<PhaseEventBackend> make_cuda_phase_events() { return std::make_unique<CudaPhaseEvents>(); }

}  // namespace moe

#include "runtime/layer/LayerClock.hpp"

#include "kernels/KernelTypes.hpp"
#include "runtime/layer/EventPhaseClock.hpp"

namespace moe {

#if defined(KOKKOS_ENABLE_CUDA) && defined(MOE_LAYER_CUDA_EVENTS)

std::unique_ptr<PhaseClock> make_layer_clock(Communicator& comm) {
  return std::make_unique<EventPhaseClock>(make_cuda_phase_events(), ExecSpace().cuda_stream(), comm.device_stream());
}

PhaseClockNames layer_clock_names() { return {"cuda_event", "cuda_event", "cuda_event"}; }

#else

std::unique_ptr<PhaseClock> make_layer_clock(Communicator& /*comm*/) { return std::make_unique<HostPhaseClock>(); }

PhaseClockNames layer_clock_names() { return HostPhaseClock().names(); }

#endif

}  // namespace moe

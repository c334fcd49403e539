#pragma once
// Which PhaseClock the layer times its phases with: CUDA events
// (EventPhaseClock) when the build has CUDA and the kernels run on the device
// (a Kokkos-CUDA build), the host clocks (HostPhaseClock) otherwise.

#include <memory>

#include "comm/Communicator.hpp"
#include "runtime/layer/PhaseTimer.hpp"

namespace moe {

/// A new clock for one layer: events on Kokkos' CUDA stream and on
/// comm.device_stream(), or the host clocks.
std::unique_ptr<PhaseClock> make_layer_clock(Communicator& comm);

/// The names of the clocks make_layer_clock() uses on this build (for the
/// timeline's header and the JSON report, before any layer exists).
PhaseClockNames layer_clock_names();

}  // namespace moe

#pragma once
// A start-up check that the Kokkos build runs kernels correctly on this
// device: one tiny kernel of each policy kind the runtime launches (range,
// row-major 2-D range, team) and a view fill, each result read back and
// compared on the host. A Kokkos built with a combination that compiles but
// miscomputes (see docs/gpu.md, "Kernel self-check") is then refused with one
// line instead of producing wrong outputs and plausible timings.

#include <string>

namespace moe {

/// Empty when every kernel computed what it should, else one line naming the
/// first kernel kind that did not and what it wrote. Kokkos must be
/// initialised. Costs a few microseconds on the host and a few kernel
/// launches on a GPU.
std::string kernel_self_check();

}  // namespace moe

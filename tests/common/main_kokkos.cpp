// GoogleTest main with Kokkos initialised around the tests.
//
// A build whose Kokkos has a device backend (the Kokkos-CUDA build) cannot
// initialise Kokkos where no device is usable: a GPU-less build machine runs
// its tests against the CUDA toolkit's stub driver (scripts/test). There the
// tests that need Kokkos skip with the reason (NeedsKokkos.hpp) and the
// host-only tests (plans, layouts, the memory model, parsing) still run.
#include <cstdio>
#include <string>

#include <Kokkos_Core.hpp>
#include <gtest/gtest.h>

#include "tests/common/NeedsKokkos.hpp"

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace {
// Empty when Kokkos can be initialised, else why not.
std::string device_unusable() {
#if defined(KOKKOS_ENABLE_CUDA)
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("no usable CUDA device: ") + cudaGetErrorString(err);
  if (count == 0) return "no CUDA device";
#endif
  return "";
}
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const std::string reason = device_unusable();
  if (!reason.empty()) {
    moe_test::set_no_kokkos_reason(reason);
    std::fprintf(stderr, "test: Kokkos not initialised (%s); tests that need it skip\n", reason.c_str());
    return RUN_ALL_TESTS();
  }
  Kokkos::ScopeGuard kokkos(argc, argv);
  return RUN_ALL_TESTS();
}

#pragma once
// Tests that need Kokkos (views, kernels, the expert FFN) derive their suite
// from NeedsKokkos: where main_kokkos.cpp could not initialise Kokkos (a
// device build on a machine without a usable device) they skip with the
// reason instead of aborting the whole binary.
//
//   class Kernels : public moe_test::NeedsKokkos {};
//   TEST_F(Kernels, GatherScatterCombine) { ... }

#include <string>
#include <utility>

#include <Kokkos_Core.hpp>
#include <gtest/gtest.h>

namespace moe_test {

inline std::string& no_kokkos_reason() {
  static std::string reason;
  return reason;
}
inline void set_no_kokkos_reason(std::string r) { no_kokkos_reason() = std::move(r); }

class NeedsKokkos : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Kokkos::is_initialized()) GTEST_SKIP() << "needs Kokkos, not initialised: " << no_kokkos_reason();
  }
};

}  // namespace moe_test

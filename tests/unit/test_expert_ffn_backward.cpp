// The activation backward kernel against central finite differences of the
// activation in double, for SwiGLU and gpt-oss (the clamp binding on some
// elements), with and without the gate/up biases.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ExpertFfnBackward.hpp"
#include "tests/common/NeedsKokkos.hpp"

using namespace moe;

namespace {

// Views and kernels: skips where Kokkos could not be initialised (a device
// build whose CUDA driver is the stub library; NeedsKokkos.hpp).
class ExpertFfnBackward : public moe_test::NeedsKokkos {};

double activation_double(double g, double u, bool gpt_oss, double limit, double alpha) {
  if (gpt_oss) {
    g = std::min(g, limit);
    u = std::clamp(u, -limit, limit);
    return (u + 1.0) * g / (1.0 + std::exp(-alpha * g));
  }
  return g / (1.0 + std::exp(-g)) * u;
}

}  // namespace

TEST_F(ExpertFfnBackward, ActivationBackwardMatchesFiniteDifferences) {
  const int64_t n = 13, H = 17;
  const double limit = 7.0, alpha = 1.702, h = 1e-6, margin = 1e-3;
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> u(-9.0f, 9.0f);  // beyond the clamp
  Matrix gu("gu", n, 2 * H), dact("dact", n, H), dgu("dgu", n, 2 * H);
  Vector bias("bias", 2 * H);
  auto gu_h = Kokkos::create_mirror_view(gu);
  auto dact_h = Kokkos::create_mirror_view(dact);
  auto bias_h = Kokkos::create_mirror_view(bias);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 2 * H; ++j) gu_h(i, j) = u(rng);
    for (int64_t j = 0; j < H; ++j) dact_h(i, j) = u(rng) / 9.0f;
  }
  for (int64_t j = 0; j < 2 * H; ++j) bias_h(j) = 0.1f * u(rng);
  Kokkos::deep_copy(gu, gu_h);
  Kokkos::deep_copy(dact, dact_h);
  Kokkos::deep_copy(bias, bias_h);
  for (const bool gpt_oss : {false, true})
    for (const bool with_bias : {false, true}) {
      const ActivationParams p{gpt_oss, static_cast<float>(limit), static_cast<float>(alpha)};
      swiglu_activation_backward(gu, with_bias ? bias.data() : nullptr, p, dact, dgu);
      ExecSpace().fence();
      auto got = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), dgu);
      int bound = 0, checked = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < H; ++j) {
          const double g = double(gu_h(i, j)) + (with_bias ? bias_h(j) : 0.0);
          const double v = double(gu_h(i, H + j)) + (with_bias ? bias_h(H + j) : 0.0);
          if (gpt_oss && (std::abs(g - limit) < margin || std::abs(std::abs(v) - limit) < margin)) continue;
          bound += gpt_oss && (g > limit || std::abs(v) > limit);
          ++checked;
          const double dg = (activation_double(g + h, v, gpt_oss, limit, alpha) -
                             activation_double(g - h, v, gpt_oss, limit, alpha)) /
                            (2 * h);
          const double du = (activation_double(g, v + h, gpt_oss, limit, alpha) -
                             activation_double(g, v - h, gpt_oss, limit, alpha)) /
                            (2 * h);
          const double want_g = dact_h(i, j) * dg, want_u = dact_h(i, j) * du;
          ASSERT_NEAR(got(i, j), want_g, 1e-5 * (1.0 + std::abs(want_g)))
              << "gpt_oss " << gpt_oss << " bias " << with_bias << " gate " << i << "," << j;
          ASSERT_NEAR(got(i, H + j), want_u, 1e-5 * (1.0 + std::abs(want_u)))
              << "gpt_oss " << gpt_oss << " bias " << with_bias << " up " << i << "," << j;
        }
      EXPECT_GT(checked, n * H / 2);
      if (gpt_oss) {
        EXPECT_GT(bound, 0) << "the clamp never binds: the test does not cover it";
      }
    }
}

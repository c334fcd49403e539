#include <cmath>

#include <gtest/gtest.h>

#include "runtime/common/Rng.hpp"
#include "runtime/harness/Reference.hpp"
#include "runtime/layer/ExpertStore.hpp"

using namespace moe;

// D = H = 1 makes the expert a scalar function we can write out by hand.
TEST(Reference, ScalarExpertByHand) {
  ModelShape s;
  s.num_experts = 2;
  s.hidden = 1;
  s.ffn = 1;
  s.top_k = 2;
  const uint64_t seed = 9;
  const auto sc = weight_scales(s);
  auto w = [&](Stream st, int e, int i, float scale) { return double(synthetic_value(seed, st, 0, e, i, scale)); };
  const std::vector<double> x = {0.7, -1.3};
  const std::vector<int32_t> ids = {1, 0, 1, 1};
  const std::vector<double> gates = {0.6, 0.4, 0.5, 0.5};
  const auto slots = reference_slot_outputs(s, 0, seed, x, ids, gates);
  for (int slot = 0; slot < 4; ++slot) {
    const int e = ids[slot];
    const double xt = x[slot / 2];
    const double g = xt * w(Stream::ExpertGateUp, e, 0, sc.w_gu), u = xt * w(Stream::ExpertGateUp, e, 1, sc.w_gu);
    const double y = g / (1 + std::exp(-g)) * u * w(Stream::ExpertDown, e, 0, sc.w_d);
    EXPECT_NEAR(slots[slot], gates[slot] * y, 1e-12);
  }
  const auto out = reference_combine(slots, 2, 2, 1);
  EXPECT_NEAR(out[0], slots[0] + slots[1], 1e-15);
  const std::vector<uint8_t> keep = {1, 0, 0, 1};
  EXPECT_NEAR(reference_combine(slots, 2, 2, 1, keep)[1], slots[3], 1e-15);
}

TEST(Reference, RelativeErrorIsMaxDiffOverMaxRef) {
  EXPECT_DOUBLE_EQ(max_relative_error(std::vector<double>{1.0, 2.5}, std::vector<double>{1.0, 2.0}), 0.25);
  EXPECT_DOUBLE_EQ(max_relative_error(std::vector<double>{0.0}, std::vector<double>{0.0}), 0.0);
}

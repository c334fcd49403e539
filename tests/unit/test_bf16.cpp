// moe::bf16 against an independent rounding: the two bf16 neighbours of a
// float compared by their exact distances in double (IEEE round to nearest,
// ties to the even last bit, overflow past the largest finite bf16 + half an
// ulp to infinity), no bit tricks shared with kernels/Bf16.hpp.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

#include "kernels/Bf16.hpp"
#include "runtime/harness/Reference.hpp"

namespace moe {
namespace bf16_test {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The value of a bf16 bit pattern with an unbounded exponent: 0x7f80 (the
// first pattern past the largest finite one) counts as 2^128.
double bf16_value(uint16_t b) {
  const int sign = (b & 0x8000) ? -1 : 1;
  const int exp = (b >> 7) & 0xff;
  const int mant = b & 0x7f;
  if (exp == 0) return sign * std::ldexp(mant, -126 - 7);
  return sign * std::ldexp(128 + mant, exp - 127 - 7);
}

// Independent RNE of a finite float to bf16 bits.
uint16_t reference_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t lo = static_cast<uint16_t>(u >> 16);  // toward zero
  if ((u & 0xffff) == 0) return lo;
  const uint16_t hi = static_cast<uint16_t>(lo + 1);  // away from zero (may be the infinity pattern)
  const double x = static_cast<double>(f);
  const double dlo = std::abs(x - bf16_value(lo)), dhi = std::abs(bf16_value(hi) - x);
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(Bf16, MatchesIndependentRoundingOnASweepOfFiniteFloats) {
  int64_t checked = 0;
  for (uint64_t u = 0; u <= 0xffffffffull; u += 65537 * 7 + 3) {  // an odd stride: every low-bit pattern occurs
    const float f = from_bits(static_cast<uint32_t>(u));
    if (!std::isfinite(f)) continue;
    ASSERT_EQ(to_bf16(f).bits, reference_round(f)) << std::hex << "float bits 0x" << u;
    ++checked;
  }
  EXPECT_GT(checked, 9000);
}

TEST(Bf16, TiesGoToEven) {
  EXPECT_EQ(to_bf16(from_bits(0x3f808000u)).bits, 0x3f80);  // even stays
  EXPECT_EQ(to_bf16(from_bits(0x3f818000u)).bits, 0x3f82);  // odd goes up
  EXPECT_EQ(to_bf16(from_bits(0xbf818000u)).bits, 0xbf82);  // symmetric in sign
  EXPECT_EQ(to_bf16(from_bits(0x3f808001u)).bits, 0x3f81);  // above the tie
  EXPECT_EQ(to_bf16(from_bits(0x3f807fffu)).bits, 0x3f80);  // below the tie
  for (uint32_t u : {0x3f808000u, 0x3f818000u, 0x40a28000u, 0x00018000u})
    EXPECT_EQ(to_bf16(from_bits(u)).bits, reference_round(from_bits(u)));
}

TEST(Bf16, OverflowGoesToInfinity) {
  EXPECT_EQ(to_bf16(std::numeric_limits<float>::max()).bits, 0x7f80);
  EXPECT_EQ(to_bf16(-std::numeric_limits<float>::max()).bits, 0xff80);
  EXPECT_EQ(to_bf16(from_bits(0x7f7f7fffu)).bits, 0x7f7f);  // just below the tie: largest finite bf16
  EXPECT_EQ(to_bf16(from_bits(0x7f7f8000u)).bits, 0x7f80);  // the tie rounds to even: infinity
  EXPECT_EQ(to_bf16(INFINITY).bits, 0x7f80);
  EXPECT_EQ(to_bf16(-INFINITY).bits, 0xff80);
  EXPECT_TRUE(std::isinf(to_float(to_bf16(3.4e38f))));
}

TEST(Bf16, NanStaysNanWithItsSign) {
  for (uint32_t u : {0x7fc00000u, 0x7f800001u, 0x7fffffffu, 0xffc00000u, 0xff800001u, 0x7f80ffffu}) {
    const bf16 b = to_bf16(from_bits(u));
    EXPECT_TRUE(std::isnan(to_float(b))) << std::hex << u;
    EXPECT_EQ(b.bits & 0x8000, (u >> 16) & 0x8000) << std::hex << u;
    EXPECT_EQ(b.bits & 0x40, 0x40) << "quiet";
  }
  EXPECT_EQ(to_bf16(from_bits(0x7f810000u)).bits, 0x7fc1);  // payload's top bits kept
}

TEST(Bf16, SubnormalsAndZeros) {
  EXPECT_EQ(to_bf16(from_bits(0x00008000u)).bits, 0x0000);  // tie to even zero
  EXPECT_EQ(to_bf16(from_bits(0x00018000u)).bits, 0x0002);  // tie to even
  EXPECT_EQ(to_bf16(from_bits(0x00008001u)).bits, 0x0001);  // smallest subnormal bf16
  EXPECT_EQ(to_bf16(from_bits(0x00007fffu)).bits, 0x0000);
  EXPECT_EQ(to_bf16(from_bits(0x007fffffu)).bits, 0x0080);  // largest subnormal float: smallest normal bf16
  EXPECT_EQ(to_bf16(from_bits(0x80008001u)).bits, 0x8001);
  EXPECT_EQ(to_bf16(0.0f).bits, 0x0000);
  EXPECT_EQ(to_bf16(-0.0f).bits, 0x8000);
  for (uint32_t u = 0; u < 0x00800000u; u += 0x1234)
    ASSERT_EQ(to_bf16(from_bits(u)).bits, reference_round(from_bits(u))) << std::hex << u;
}

TEST(Bf16, WideningIsExactAndRoundTrips) {
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const bf16 h{static_cast<uint16_t>(b)};
    const float f = to_float(h);
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    ASSERT_EQ(u, b << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(to_bf16(f).bits, b);
    }
    if (std::isfinite(f)) {
      ASSERT_EQ(bf16_value(static_cast<uint16_t>(b)), static_cast<double>(f));
    }
  }
  EXPECT_EQ(round_to_bf16(1.0f + 1.0f / 512.0f), 1.0f);  // half an ulp of 1: tie to even
}

// The reference's rounding (runtime/harness/Reference.cpp, from the
// definition in double) and moe::to_bf16 (bit arithmetic) agree.
TEST(Bf16, ReferenceRoundingAgrees) {
  for (uint64_t u = 0; u <= 0xffffffffull; u += 65537 * 5 + 1) {
    const float f = from_bits(static_cast<uint32_t>(u));
    if (std::isnan(f)) continue;
    ASSERT_EQ(reference_round_bf16(f), static_cast<double>(to_float(to_bf16(f)))) << std::hex << "0x" << u;
  }
  EXPECT_EQ(reference_round_bf16(1.0 + 1.0 / 256), 1.0);                      // a tie: to the even 1
  EXPECT_EQ(reference_round_bf16(1.0 + 1.0 / 256 + 1e-12), 1.0 + 1.0 / 128);  // just above it: up
  EXPECT_TRUE(std::isinf(reference_round_bf16(3.4e38)));
}

}  // namespace bf16_test
}  // namespace moe

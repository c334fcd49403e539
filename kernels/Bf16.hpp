#pragma once
// moe::bf16: the project's 16-bit brain-float storage type (Kokkos 3.4 has no
// bf16, Kokkos 4.x's differs by backend). A trivially copyable struct holding
// the upper 16 bits of an IEEE-754 binary32; conversion from float rounds to
// nearest, ties to even (overflow goes to infinity, subnormals round like any
// other value, NaN stays NaN with its sign and top payload bits, made quiet),
// widening to float is exact. Only storage: all arithmetic is done in float.
// Usable in Kokkos kernels on every backend (memcpy is the device-safe bit cast).

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <Kokkos_Core.hpp>

namespace moe {

struct bf16 {
  uint16_t bits;
};
static_assert(sizeof(bf16) == 2 && std::is_trivially_copyable_v<bf16> && std::is_standard_layout_v<bf16>);

KOKKOS_INLINE_FUNCTION uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

KOKKOS_INLINE_FUNCTION float float_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// float -> bf16, round to nearest even.
KOKKOS_INLINE_FUNCTION bf16 to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)  // NaN: keep sign and payload's top bits, set the quiet bit
    return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // ties go to the even upper half
  return bf16{static_cast<uint16_t>((u + rounding) >> 16)};
}

/// bf16 -> float, exact.
KOKKOS_INLINE_FUNCTION float to_float(bf16 b) { return float_from_bits(static_cast<uint32_t>(b.bits) << 16); }

/// The float nearest to f that a bf16 holds (f rounded through bf16).
KOKKOS_INLINE_FUNCTION float round_to_bf16(float f) { return to_float(to_bf16(f)); }

}  // namespace moe

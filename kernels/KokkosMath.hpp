#pragma once
// Math functions that work with Kokkos 3.4 (only in Kokkos::Experimental) and
// Kokkos 4.x (only in Kokkos::).
#include <Kokkos_Core.hpp>

namespace moe::kmath {

#if KOKKOS_VERSION >= 40000
KOKKOS_INLINE_FUNCTION float exp(float x) { return Kokkos::exp(x); }
KOKKOS_INLINE_FUNCTION double exp(double x) { return Kokkos::exp(x); }
#else
KOKKOS_INLINE_FUNCTION float exp(float x) { return Kokkos::Experimental::exp(x); }
KOKKOS_INLINE_FUNCTION double exp(double x) { return Kokkos::Experimental::exp(x); }
#endif

/// exp for the activation's hot loop: Cody-Waite range reduction and a
/// degree-6 polynomial (relative error ~2e-7 on [-87, 88]), branch-free so
/// that the compiler vectorises the loop around it; libm's expf does not
/// vectorise without -ffast-math and made the activation cost as much as the
/// GEMMs on small experts. On GPUs the hardware exp is used.
KOKKOS_INLINE_FUNCTION float fast_exp(float x) {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return exp(x);
#else
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round to nearest with the 1.5 * 2^23 trick: vectorises without SSE4.1's
  // roundps (floorf would be a libm call on baseline x86-64).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // Scale by 2^n through the exponent bits.
  union {
    int i;
    float f;
  } scale;
  scale.i = (static_cast<int>(n) + 127) << 23;
  return p * scale.f;
#endif
}

KOKKOS_INLINE_FUNCTION float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
KOKKOS_INLINE_FUNCTION float min(float a, float b) { return a < b ? a : b; }
KOKKOS_INLINE_FUNCTION float max(float a, float b) { return a > b ? a : b; }

}  // namespace moe::kmath

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

KOKKOS_INLINE_FUNCTION float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }
KOKKOS_INLINE_FUNCTION float min(float a, float b) { return a < b ? a : b; }
KOKKOS_INLINE_FUNCTION float max(float a, float b) { return a > b ? a : b; }

}  // namespace moe::kmath

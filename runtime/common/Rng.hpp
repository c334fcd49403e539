#pragma once
// Counter-based random numbers: a value is a pure function of its key, so any
// rank can regenerate any expert's weights or any token's routing without
// communication, and results do not depend on the number of ranks.

#include <cstdint>

// Host-and-device annotation for the generators (used inside Kokkos kernels).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define MOE_HD __host__ __device__
#else
#define MOE_HD
#endif

namespace moe {

/// SplitMix64 finaliser: a good 64-bit mix of one word.
MOE_HD inline constexpr uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// Hash of a key made of several words.
MOE_HD inline constexpr uint64_t hash_key(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0, uint64_t e = 0) {
  uint64_t h = mix64(a);
  h = mix64(h ^ b);
  h = mix64(h ^ c);
  h = mix64(h ^ d);
  return mix64(h ^ e);
}

/// Uniform double in [0, 1) from a 64-bit hash (53 random bits).
MOE_HD inline constexpr double to_unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// Streams that keep the different uses of the seed apart.
enum class Stream : uint64_t {
  RouterWeights = 1,
  ExpertGateUp = 2,
  ExpertDown = 3,
  ExpertBias = 4,
  Tokens = 5,
  Routing = 6,
  Drift = 7,
  OutputGrad = 8,  // the backward's output gradient G (docs/backward.md)
};

/// Synthetic parameter or activation value: uniform in [-scale, scale), a pure
/// function of (seed, stream, a, b, index).
MOE_HD inline constexpr float synthetic_value(uint64_t seed, Stream stream, uint64_t a, uint64_t b, uint64_t index,
                                              float scale) {
  const double u = to_unit(hash_key(seed, static_cast<uint64_t>(stream), a, b, index));
  return static_cast<float>((2.0 * u - 1.0) * scale);
}

}  // namespace moe

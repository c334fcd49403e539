#pragma once
// Random load vectors for the property tests: N a multiple of P, and a mix of
// shapes that exercise LLEP's branches (zeros, one hot expert, all equal,
// heavy tails, a few hot experts, small counts where m matters).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace moe::test {

struct LoadCase {
  int P = 1;
  std::vector<int64_t> loads;
};

inline LoadCase random_load_case(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> pick_p(1, 64);
  LoadCase c;
  c.P = pick_p(rng);
  const int max_m = 512 / c.P;
  const int M = std::uniform_int_distribution<int>(1, std::min(max_m, 16))(rng);
  const int N = c.P * M;
  c.loads.assign(N, 0);
  const int64_t scale = std::vector<int64_t>{10, 100, 1000, 10000, 100000}[rng() % 5];
  std::uniform_int_distribution<int64_t> uni(0, scale);
  switch (rng() % 7) {
    case 0:  // uniform
      for (auto& l : c.loads) l = uni(rng);
      break;
    case 1:  // uniform with many zeros
      for (auto& l : c.loads) l = rng() % 3 == 0 ? uni(rng) : 0;
      break;
    case 2:  // one hot expert
      for (auto& l : c.loads) l = uni(rng) / 50;
      c.loads[rng() % N] = scale * 20;
      break;
    case 3:  // all equal
      for (auto& l : c.loads) l = scale;
      break;
    case 4: {  // zipf-like, in a random expert order
      const double s = 0.5 + static_cast<double>(rng() % 100) / 50.0;
      std::vector<int> perm(N);
      for (int e = 0; e < N; ++e) perm[e] = e;
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int i = 0; i < N; ++i)
        c.loads[perm[i]] = static_cast<int64_t>(static_cast<double>(scale) * 10.0 / std::pow(i + 1.0, s));
      break;
    }
    case 5:  // a few hot experts on the same rank
      for (auto& l : c.loads) l = uni(rng) / 10;
      for (int i = 0; i < M; ++i) c.loads[i] += scale * 5;
      break;
    default:  // all zero but maybe one
      if (rng() % 2) c.loads[rng() % N] = uni(rng);
      break;
  }
  return c;
}

}  // namespace moe::test

// expert_ffn_bf16 and combine_slots_bf16 against double-precision loops on the
// same bf16-rounded inputs: the only differences allowed are the fp32 sums
// and the final rounding of each output to bf16 (half an ulp: 2^-9 relative).
// Tiles and panels that do not divide the sizes, SwiGLU and gpt-oss.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/Bf16Kernels.hpp"
#include "kernels/ExpertFfnBf16.hpp"

using namespace moe;

namespace bf16_ffn_test {

using HostBf16 = Kokkos::View<bf16**, Kokkos::LayoutRight, Kokkos::HostSpace>;

// A random matrix already rounded to bf16: the device words (rows x cols/2)
// and the values in double.
struct Bf16Input {
  Matrix words;
  std::vector<double> values;
};

Bf16Input random_bf16(std::mt19937& rng, int64_t n, int64_t m, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  HostBf16 h("h", static_cast<size_t>(n), static_cast<size_t>(m));
  Bf16Input in{Matrix("words", static_cast<size_t>(n), static_cast<size_t>(m / 2)), {}};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      h(i, j) = to_bf16(u(rng));
      in.values.push_back(to_float(h(i, j)));
    }
  Kokkos::deep_copy(bf16_rows(UnmanagedMatrix(in.words.data(), in.words.extent(0), in.words.extent(1))), h);
  return in;
}

std::vector<double> host_values(const Matrix& words) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), words);
  const bf16* b = reinterpret_cast<const bf16*>(h.data());
  std::vector<double> v(h.span() * 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = to_float(b[i]);
  return v;
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }

struct Case {
  int64_t n, tile, panel;
  bool gpt_oss;
};

void expect_matches_double(const Case& c) {
  SCOPED_TRACE(::testing::Message() << "n=" << c.n << " tile=" << c.tile << " panel=" << c.panel
                                    << " gpt_oss=" << c.gpt_oss);
  const int64_t D = 24, H = 20;
  std::mt19937 rng(static_cast<uint32_t>(c.n * 31 + c.tile * 7 + c.panel + c.gpt_oss));
  Bf16Input x = random_bf16(rng, c.n, D, 2.0f), w_gu = random_bf16(rng, D, 2 * H, 0.8f),
            w_d = random_bf16(rng, H, D, 0.3f), b = random_bf16(rng, 1, 2 * H + D, 0.5f);
  const bf16* bias = reinterpret_cast<const bf16*>(b.words.data());
  const Bf16ExpertWeights w{bf16_rows(ConstUnmanagedMatrix(w_gu.words)), bf16_rows(ConstUnmanagedMatrix(w_d.words)),
                            c.gpt_oss ? bias : nullptr, c.gpt_oss ? bias + 2 * H : nullptr};
  const ActivationParams p{c.gpt_oss, 7.0f, 1.702f};
  Matrix x_wide("x_wide", c.tile, D), gu("gu", c.tile, 2 * H), act("act", c.tile, H);
  Matrix panel("panel", 1, std::max(D, H) * c.panel), out_panel("out_panel", c.tile, c.panel);
  Matrix y("y", c.n, D / 2);
  expert_ffn_bf16(bf16_rows(ConstUnmanagedMatrix(x.words)), w, p, Bf16FfnWorkspaces{x_wide, gu, act, panel, out_panel},
                  bf16_rows(UnmanagedMatrix(y)));
  const std::vector<double> got = host_values(y);
  double max_ref = 0.0, max_err = 0.0;
  for (int64_t i = 0; i < c.n; ++i) {
    std::vector<double> a(H);
    for (int64_t j = 0; j < H; ++j) {
      double g = c.gpt_oss ? b.values[j] : 0.0, u = c.gpt_oss ? b.values[H + j] : 0.0;
      for (int64_t d = 0; d < D; ++d) {
        g += x.values[i * D + d] * w_gu.values[d * 2 * H + j];
        u += x.values[i * D + d] * w_gu.values[d * 2 * H + H + j];
      }
      if (c.gpt_oss) {
        g = std::min(g, 7.0);
        u = std::clamp(u, -7.0, 7.0);
        a[j] = (u + 1.0) * g / (1.0 + std::exp(-1.702 * g));
      } else {
        a[j] = silu(g) * u;
      }
    }
    for (int64_t d = 0; d < D; ++d) {
      double ref = c.gpt_oss ? b.values[2 * H + d] : 0.0;
      for (int64_t j = 0; j < H; ++j) ref += a[j] * w_d.values[j * D + d];
      const double e = std::abs(got[i * D + d] - ref);
      EXPECT_LE(e, std::abs(ref) * (1.0 / 256) + 1e-5) << "row " << i << " col " << d;
      max_err = std::max(max_err, e);
      max_ref = std::max(max_ref, std::abs(ref));
    }
  }
  if (c.n == 0) return;
  EXPECT_GT(max_ref, 0.1);
  EXPECT_LE(max_err / max_ref, 1.0 / 256);
}

TEST(ExpertFfnBf16, MatchesDoubleOnRoundedInputs) {
  for (const Case& c : {Case{7, 3, 5, false}, Case{7, 3, 5, true}, Case{9, 16, 256, false}, Case{5, 2, 40, true},
                        Case{1, 1, 1, true}, Case{0, 1, 4, false}})
    expect_matches_double(c);
}

TEST(ExpertFfnBf16, PanelColumns) {
  EXPECT_EQ(bf16_panel_cols(128, 256), 256);
  EXPECT_EQ(bf16_panel_cols(24, 20), 40);
  EXPECT_EQ(bf16_panel_cols(300, 8), 256);
  EXPECT_EQ(bf16_panel_floats(24, 20), 24 * 40);
}

TEST(ExpertFfnBf16, CombineAccumulatesInFloatAndRoundsOnce) {
  const int64_t B = 3, K = 2, D = 6;
  std::mt19937 rng(5);
  Bf16Input ya = random_bf16(rng, 4, D, 3.0f), yb = random_bf16(rng, 2, D, 3.0f);
  const std::vector<int64_t> ra_h = {0, -1, 3, 1, -1, 2}, rb_h = {-1, 1, -1, -1, -1, -1};  // slot 4 dropped
  const std::vector<float> gates_h = {0.25f, 0.75f, 0.6f, 0.4f, 0.5f, 0.5f};
  IndexVector ra("ra", ra_h.size()), rb("rb", rb_h.size());
  Vector gates("gates", gates_h.size());
  Kokkos::deep_copy(ra, Kokkos::View<const int64_t*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                            ra_h.data(), ra_h.size()));
  Kokkos::deep_copy(rb, Kokkos::View<const int64_t*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                            rb_h.data(), rb_h.size()));
  Kokkos::deep_copy(gates, Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                               gates_h.data(), gates_h.size()));
  Matrix out("out", B, D / 2);
  combine_slots_bf16(SlotOutputs{ya.words, ra, yb.words, rb}, gates, K, bf16_rows(UnmanagedMatrix(out)));
  const std::vector<double> got = host_values(out);
  for (int64_t t = 0; t < B; ++t)
    for (int64_t d = 0; d < D; ++d) {
      float acc = 0.0f;  // the fp32 sum in slot order, rounded once
      for (int64_t k = 0; k < K; ++k) {
        const size_t s = static_cast<size_t>(t * K + k);
        if (ra_h[s] >= 0)
          acc += gates_h[s] * static_cast<float>(ya.values[ra_h[s] * D + d]);
        else if (rb_h[s] >= 0)
          acc += gates_h[s] * static_cast<float>(yb.values[rb_h[s] * D + d]);
      }
      EXPECT_EQ(got[t * D + d], static_cast<double>(round_to_bf16(acc))) << t << "," << d;
    }
}

}  // namespace bf16_ffn_test

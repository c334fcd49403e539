// expert_ffn in row tiles (workspaces smaller than the block) against the
// one-shot computation (workspaces of the whole block): equal within float
// rounding, on sizes that do not divide by the tile.
#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <type_traits>

#include <gtest/gtest.h>

#include "kernels/ExpertFfn.hpp"
#include "tests/common/NeedsKokkos.hpp"

using namespace moe;

namespace {
Matrix random_matrix(std::mt19937& rng, int64_t n, int64_t m, float scale) {
  Matrix a(std::string("a"), static_cast<size_t>(n), static_cast<size_t>(m));
  auto h = Kokkos::create_mirror_view(a);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) h(i, j) = u(rng);
  Kokkos::deep_copy(a, h);
  return a;
}

Vector random_vector(std::mt19937& rng, int64_t n, float scale) {
  Vector v(std::string("v"), static_cast<size_t>(n));
  auto h = Kokkos::create_mirror_view(v);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < n; ++i) h(i) = u(rng);
  Kokkos::deep_copy(v, h);
  return v;
}

struct Case {
  int64_t n, tile;
  bool gpt_oss;
};

void expect_tiled_matches_one_shot(const Case& c) {
  SCOPED_TRACE(::testing::Message() << "n=" << c.n << " tile=" << c.tile << " gpt_oss=" << c.gpt_oss);
  const int64_t D = 24, H = 40;
  std::mt19937 rng(static_cast<uint32_t>(c.n * 131 + c.tile * 7 + c.gpt_oss));
  Matrix x = random_matrix(rng, c.n, D, 2.0f);
  Matrix w_gu = random_matrix(rng, D, 2 * H, 1.0f);  // large enough that gpt-oss's clamp triggers
  Matrix w_d = random_matrix(rng, H, D, 0.3f);
  Vector b_gu = random_vector(rng, 2 * H, 0.5f), b_d = random_vector(rng, D, 0.5f);
  const ExpertWeightsView w{w_gu, w_d, c.gpt_oss ? b_gu.data() : nullptr, c.gpt_oss ? b_d.data() : nullptr};
  const ActivationParams p{c.gpt_oss, 7.0f, 1.702f};

  // One shot: workspaces of the whole block (at least one row).
  const int64_t full = std::max<int64_t>(c.n, 1);
  Matrix gu_full("gu_full", full, 2 * H), act_full("act_full", full, H), y_ref("y_ref", c.n, D);
  expert_ffn(x, w, p, gu_full, act_full, y_ref);

  // Tiled: workspaces of min(n, tile) rows (at least one), y prefilled with
  // garbage that must be overwritten.
  const int64_t ws = std::max<int64_t>(ffn_workspace_rows(c.n, c.tile), 1);
  EXPECT_EQ(ffn_workspace_rows(c.n, c.tile), std::min(c.n, c.tile));
  Matrix gu_ws("gu_ws", ws, 2 * H), act_ws("act_ws", ws, H), y("y", c.n, D);
  Kokkos::deep_copy(y, 1e30f);
  expert_ffn(x, w, p, gu_ws, act_ws, y);

  auto hy = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y);
  auto href = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y_ref);
  for (int64_t i = 0; i < c.n; ++i)
    for (int64_t d = 0; d < D; ++d)
      ASSERT_NEAR(hy(i, d), href(i, d), 1e-5f * (1.0f + std::abs(href(i, d)))) << "row " << i << " col " << d;
}
}  // namespace

// Views and kernels: skips where Kokkos could not be initialised (NeedsKokkos.hpp).
class ExpertFfnTiled : public moe_test::NeedsKokkos {};

TEST_F(ExpertFfnTiled, MatchesOneShotSwiglu) {
  for (const Case c : {Case{37, 8, false}, Case{37, 37, false}, Case{5, 16, false}, Case{64, 16, false},
                       Case{33, 1, false}, Case{0, 8, false}})
    expect_tiled_matches_one_shot(c);
}

TEST_F(ExpertFfnTiled, MatchesOneShotGptOssWithBiases) {
  for (const Case c : {Case{37, 8, true}, Case{5, 16, true}, Case{100, 32, true}, Case{0, 4, true}})
    expect_tiled_matches_one_shot(c);
}

TEST_F(ExpertFfnTiled, TileIsTheSmallerWorkspace) {
  // act_ws shorter than gu_ws: the tile is act_ws's row count, not an overrun.
  std::mt19937 rng(5);
  const int64_t n = 19, D = 8, H = 12;
  Matrix x = random_matrix(rng, n, D, 1.0f), w_gu = random_matrix(rng, D, 2 * H, 1.0f),
         w_d = random_matrix(rng, H, D, 1.0f);
  const ExpertWeightsView w{w_gu, w_d, nullptr, nullptr};
  Matrix gu_full("gu", n, 2 * H), act_full("act", n, H), y_ref("y_ref", n, D);
  expert_ffn(x, w, ActivationParams{}, gu_full, act_full, y_ref);
  Matrix gu_ws("gu_ws", 7, 2 * H), act_ws("act_ws", 3, H), y("y", n, D);
  expert_ffn(x, w, ActivationParams{}, gu_ws, act_ws, y);
  auto hy = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y);
  auto href = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y_ref);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < D; ++d) ASSERT_NEAR(hy(i, d), href(i, d), 1e-5f * (1.0f + std::abs(href(i, d))));
}

TEST_F(ExpertFfnTiled, EmptyWorkspaceForNonEmptyBlockThrows) {
  std::mt19937 rng(6);
  Matrix x = random_matrix(rng, 3, 4, 1.0f), w_gu = random_matrix(rng, 4, 10, 1.0f),
         w_d = random_matrix(rng, 5, 4, 1.0f);
  Matrix gu_ws("gu_ws", 0, 10), act_ws("act_ws", 0, 5), y("y", 3, 4);
  EXPECT_THROW(expert_ffn(x, ExpertWeightsView{w_gu, w_d, nullptr, nullptr}, ActivationParams{}, gu_ws, act_ws, y),
               std::invalid_argument);
}

TEST_F(ExpertFfnTiled, RowRangesStayContiguousLayoutRight) {
  // The GEMM operands must stay LayoutRight to reach the BLAS (a LayoutStride
  // view falls back to a kernel ten times slower). Kokkos::subview with a row
  // range keeps LayoutRight; row_block builds the same view explicitly.
  Matrix m("m", 10, 6);
  auto sub = Kokkos::subview(m, Kokkos::make_pair(2, 7), Kokkos::ALL());
  static_assert(std::is_same_v<decltype(sub)::array_layout, Kokkos::LayoutRight>);
  static_assert(std::is_same_v<decltype(row_block(UnmanagedMatrix(m), 2, 5))::array_layout, Kokkos::LayoutRight>);
  const UnmanagedMatrix rb = row_block(UnmanagedMatrix(m), 2, 5);
  EXPECT_EQ(rb.data(), sub.data());
  EXPECT_EQ(rb.stride(0), 6u);
  EXPECT_EQ(rb.extent(0), 5u);
}

TEST(FfnTileRows, DefaultTileIsPositive) {
  for (const auto& [D, H] : {std::pair<int64_t, int64_t>{128, 256}, {2048, 2048}, {2880, 2880}, {2048, 768}}) {
    const int64_t t = default_ffn_tile_rows(D, H);
    EXPECT_GE(t, 1);
    EXPECT_EQ(ffn_workspace_rows(100000, t), t);
    EXPECT_EQ(ffn_workspace_rows(3, t), std::min<int64_t>(3, t));
  }
  EXPECT_EQ(ffn_workspace_rows(10, 0), 1);
}

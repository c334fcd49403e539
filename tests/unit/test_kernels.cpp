// Kokkos kernels against plain loops in double.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ExpertFfn.hpp"
#include "kernels/Gemm.hpp"
#include "kernels/KernelSelfCheck.hpp"
#include "kernels/Permute.hpp"
#include "kernels/RouterKernels.hpp"
#include "tests/common/NeedsKokkos.hpp"

using namespace moe;

namespace {
Matrix random_matrix(std::mt19937& rng, int64_t n, int64_t m, float scale = 1.0f) {
  Matrix a(std::string("a"), static_cast<size_t>(n), static_cast<size_t>(m));
  auto h = Kokkos::create_mirror_view(a);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) h(i, j) = u(rng);
  Kokkos::deep_copy(a, h);
  return a;
}

// Host copies of device views: the tests set up and read data on the host, so
// they also run on a Kokkos-CUDA build.
template <class V>
auto host(const V& v) {
  return Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
}
template <class V, class F>
V device_from(const char* label, size_t n, F fill) {
  V v(std::string(label), n);
  auto h = Kokkos::create_mirror_view(v);
  for (size_t i = 0; i < n; ++i) h(i) = fill(i);
  Kokkos::deep_copy(v, h);
  return v;
}

void expect_ffn_matches(bool gpt_oss) {
  std::mt19937 rng(gpt_oss ? 2 : 1);
  const int64_t n = 37, D = 24, H = 40;
  Matrix x = random_matrix(rng, n, D, 2.0f);
  Matrix w_gu = random_matrix(rng, D, 2 * H, 1.0f);  // large enough that the clamp triggers
  Matrix w_d = random_matrix(rng, H, D, 0.3f);
  const Vector b_gu = device_from<Vector>("b_gu", 2 * H, [](size_t j) { return 0.01f * static_cast<float>(j); });
  const Vector b_d = device_from<Vector>("b_d", D, [](size_t j) { return -0.02f * static_cast<float>(j); });
  Matrix gu("gu", n, 2 * H), act("act", n, H), y("y", n, D);
  ExpertWeightsView w{w_gu, w_d, gpt_oss ? b_gu.data() : nullptr, gpt_oss ? b_d.data() : nullptr};
  ActivationParams p{gpt_oss, 7.0f, 1.702f};
  expert_ffn(x, w, p, gu, act, y);
  const auto hx = host(x), hw_gu = host(w_gu), hw_d = host(w_d), hy = host(y);
  const auto hb_gu = host(b_gu), hb_d = host(b_d);
  int clamped = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> a(H);
    for (int64_t j = 0; j < H; ++j) {
      double g = gpt_oss ? hb_gu(j) : 0.0, u = gpt_oss ? hb_gu(j + H) : 0.0;
      for (int64_t d = 0; d < D; ++d) {
        g += double(hx(i, d)) * hw_gu(d, j);
        u += double(hx(i, d)) * hw_gu(d, j + H);
      }
      if (gpt_oss) {
        clamped += (g > 7.0 || std::abs(u) > 7.0);
        g = std::min(g, 7.0);
        u = std::clamp(u, -7.0, 7.0);
        a[j] = (u + 1.0) * g / (1.0 + std::exp(-1.702 * g));
      } else {
        a[j] = g / (1.0 + std::exp(-g)) * u;
      }
    }
    for (int64_t d = 0; d < D; ++d) {
      double ref = gpt_oss ? hb_d(d) : 0.0;
      for (int64_t j = 0; j < H; ++j) ref += a[j] * hw_d(j, d);
      ASSERT_NEAR(hy(i, d), ref, 1e-4 * (1.0 + std::abs(ref))) << "row " << i << " col " << d;
    }
  }
  if (gpt_oss) {
    EXPECT_GT(clamped, 0) << "test data never exercised the clamp";
  }
}
}  // namespace

// Views and kernels: skips where Kokkos could not be initialised (NeedsKokkos.hpp).
class Kernels : public moe_test::NeedsKokkos {};

TEST_F(Kernels, GemmMatchesLoops) {
  std::mt19937 rng(3);
  Matrix a = random_matrix(rng, 17, 9), b = random_matrix(rng, 9, 13), c("c", 17, 13);
  gemm_nn(a, b, c);
  const auto ha = host(a), hb = host(b), hc = host(c);
  for (int i = 0; i < 17; ++i)
    for (int j = 0; j < 13; ++j) {
      double ref = 0;
      for (int k = 0; k < 9; ++k) ref += double(ha(i, k)) * hb(k, j);
      ASSERT_NEAR(hc(i, j), ref, 1e-5);
    }
}

// The backward's GEMMs: every transpose combination, with beta 0 and beta 1
// (accumulation), against a double loop; an empty inner dimension leaves
// beta * C.
TEST_F(Kernels, TransposedGemmMatchesLoops) {
  std::mt19937 rng(5);
  const int m = 11, n = 7, k = 5;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.0f, 1.0f}) {
        Matrix a = ta ? random_matrix(rng, k, m) : random_matrix(rng, m, k);
        Matrix b = tb ? random_matrix(rng, n, k) : random_matrix(rng, k, n);
        Matrix c = random_matrix(rng, m, n);
        const auto c0 = host(c);
        auto c_before = Kokkos::create_mirror(c0);
        Kokkos::deep_copy(c_before, c0);
        gemm(ta != 0, tb != 0, a, b, c, beta);
        const auto ha = host(a), hb = host(b), hc = host(c);
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double ref = beta * double(c_before(i, j));
            for (int q = 0; q < k; ++q) ref += double(ta ? ha(q, i) : ha(i, q)) * double(tb ? hb(j, q) : hb(q, j));
            ASSERT_NEAR(hc(i, j), ref, 1e-5) << "ta " << ta << " tb " << tb << " beta " << beta;
          }
      }
  // gemm_tn over zero rows (a rank without tokens): C = beta * C.
  Matrix a0("a0", 0, 3), b0("b0", 0, 4), c = random_matrix(rng, 3, 4);
  gemm_tn(a0, b0, c);
  const auto hc = host(c);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) ASSERT_EQ(hc(i, j), 0.0f);
}

TEST_F(Kernels, SwigluExpertMatchesLoops) { expect_ffn_matches(false); }
TEST_F(Kernels, GptOssExpertMatchesLoops) { expect_ffn_matches(true); }

TEST_F(Kernels, GatherScatterCombine) {
  std::mt19937 rng(4);
  const int64_t B = 6, K = 2, D = 5;
  Matrix y = random_matrix(rng, B * K, D);
  std::vector<int64_t> p(B * K);
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  const IndexVector perm = device_from<IndexVector>("perm", B * K, [&](size_t i) { return p[i]; });
  Matrix g("g", B * K, D), back("back", B * K, D);
  gather_rows(y, perm, g);
  scatter_rows(g, perm, back);
  const auto hy = host(y), hg = host(g), hback = host(back);
  for (int64_t i = 0; i < B * K; ++i)
    for (int64_t d = 0; d < D; ++d) {
      ASSERT_EQ(hg(i, d), hy(p[i], d));
      ASSERT_EQ(hback(i, d), hy(i, d));
    }
  // combine: slot (t,k) -> row perm(t*K+k), slot (2,1) dropped.
  const auto gate = [](size_t i) { return 0.1f * static_cast<float>(i + 1); };
  const Vector gates = device_from<Vector>("gates", B * K, gate);
  const IndexVector rows = device_from<IndexVector>(
      "rows", B * K, [&](size_t i) { return i == static_cast<size_t>(2 * K + 1) ? int64_t{-1} : p[i]; });
  Matrix out("out", B, D);
  const IndexVector none = device_from<IndexVector>("none", B * K, [](size_t) { return int64_t{-1}; });
  combine_slots(SlotOutputs{y, rows, y, none}, gates, K, out);
  const auto hout = host(out);
  for (int64_t t = 0; t < B; ++t)
    for (int64_t d = 0; d < D; ++d) {
      double ref = 0;
      for (int64_t k = 0; k < K; ++k) {
        if (!(t == 2 && k == 1)) ref += gate(t * K + k) * hy(p[t * K + k], d);
      }
      ASSERT_NEAR(hout(t, d), ref, 1e-6);
    }
}

// The two-source combine (returned rows and rows computed on the rank) and
// copy_rows, against loops: odd slots read the second matrix, slot 3 neither.
TEST_F(Kernels, CopyRowsAndTwoSourceCombine) {
  std::mt19937 rng(5);
  const int64_t B = 5, K = 2, D = 3;
  Matrix a = random_matrix(rng, B * K, D), b = random_matrix(rng, B * K, D);
  std::vector<int64_t> p(B * K);
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  const IndexVector src = device_from<IndexVector>("src", 4, [&](size_t i) { return p[i]; });
  const IndexVector dst = device_from<IndexVector>("dst", 4, [&](size_t i) { return p[B * K - 1 - i]; });
  Matrix c("c", B * K, D);
  copy_rows(a, src, c, dst);
  const auto ha = host(a), hb = host(b), hc = host(c);
  for (size_t i = 0; i < 4; ++i)
    for (int64_t d = 0; d < D; ++d) ASSERT_EQ(hc(p[B * K - 1 - i], d), ha(p[i], d));

  const auto gate = [](size_t i) { return 0.25f * static_cast<float>(i + 1); };
  const Vector gates = device_from<Vector>("gates", B * K, gate);
  const auto in_a = [&](size_t s) { return s % 2 == 0 && s != 3; };
  const auto in_b = [&](size_t s) { return s % 2 == 1 && s != 3; };
  const IndexVector ra = device_from<IndexVector>("ra", B * K, [&](size_t s) { return in_a(s) ? p[s] : -1; });
  const IndexVector rb = device_from<IndexVector>("rb", B * K, [&](size_t s) { return in_b(s) ? p[s] : -1; });
  Matrix out("out", B, D);
  combine_slots(SlotOutputs{a, ra, b, rb}, gates, K, out);
  const auto hout = host(out);
  for (int64_t t = 0; t < B; ++t)
    for (int64_t d = 0; d < D; ++d) {
      double ref = 0;
      for (int64_t k = 0; k < K; ++k) {
        const size_t s = static_cast<size_t>(t * K + k);
        if (in_a(s)) ref += gate(s) * ha(p[s], d);
        if (in_b(s)) ref += gate(s) * hb(p[s], d);
      }
      ASSERT_NEAR(hout(t, d), ref, 1e-6);
    }
}

TEST_F(Kernels, TopKAndChosenSoftmax) {
  std::mt19937 rng(5);
  const int64_t B = 50, N = 12;
  const int K = 4;
  Matrix logits_dev = random_matrix(rng, B, N);
  auto logits = host(logits_dev);
  logits(0, 3) = logits(0, 7) = 5.0f;  // a tie: the smaller id comes first
  Kokkos::deep_copy(logits_dev, logits);
  ExpertIdVector ids_dev("ids", B * K);
  Vector gates_dev("gates", B * K);
  topk_experts(logits_dev, K, ids_dev);
  chosen_softmax(logits_dev, ids_dev, K, gates_dev);
  const auto ids = host(ids_dev);
  const auto gates = host(gates_dev);
  EXPECT_EQ(ids(0), 3);
  EXPECT_EQ(ids(1), 7);
  for (int64_t t = 0; t < B; ++t) {
    std::vector<int> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits(t, a) > logits(t, b); });
    double denom = 0;
    for (int k = 0; k < K; ++k) denom += std::exp(static_cast<double>(logits(t, order[k])));
    double sum = 0;
    for (int k = 0; k < K; ++k) {
      ASSERT_EQ(ids(t * K + k), order[k]);
      ASSERT_NEAR(gates(t * K + k), std::exp(static_cast<double>(logits(t, order[k]))) / denom, 1e-6);
      sum += gates(t * K + k);
    }
    ASSERT_NEAR(sum, 1.0, 1e-6);
  }
}

// The start-up check of moe-ep (kernels/KernelSelfCheck.hpp) passes where the
// kernels above pass; on a miscomputing Kokkos build both fail.
TEST_F(Kernels, SelfCheckPassesOnThisBuild) { EXPECT_EQ(kernel_self_check(), ""); }

// The device activation's element formula, on the host (no Kokkos needed):
// gate column j, up column H + j and their biases b_gu[j], b_gu[H + j],
// against double loops. The first GPU run found the device kernel reading
// the up bias at b_gu[j + 1] (a per-element call reused the row loop with
// H = 1); the host rows were right, so only a test of this formula catches it
// where there is no GPU.
TEST(SwigluElement, MatchesLoopsWithAndWithoutBiases) {
  std::mt19937 rng(9);
  const int64_t H = 19;
  std::uniform_real_distribution<float> u(-9.0f, 9.0f);  // beyond the clamp
  std::vector<float> row(2 * H), bias(2 * H);
  for (auto& x : row) x = u(rng);
  for (auto& x : bias) x = 0.1f * u(rng);
  for (const bool gpt_oss : {false, true})
    for (const bool with_bias : {false, true}) {
      const ActivationParams p{gpt_oss, 7.0f, 1.702f};
      for (int64_t j = 0; j < H; ++j) {
        double g = row[j] + (with_bias ? bias[j] : 0.0), up = row[H + j] + (with_bias ? bias[H + j] : 0.0);
        double ref;
        if (gpt_oss) {
          g = std::min(g, 7.0);
          up = std::clamp(up, -7.0, 7.0);
          ref = (up + 1.0) * g / (1.0 + std::exp(-1.702 * g));
        } else {
          ref = g / (1.0 + std::exp(-g)) * up;
        }
        const float got = swiglu_element(row.data(), with_bias ? bias.data() : nullptr, j, H, p);
        ASSERT_NEAR(got, ref, 1e-5 * (1.0 + std::abs(ref)))
            << "gpt_oss " << gpt_oss << " bias " << with_bias << " j " << j;
      }
    }
}

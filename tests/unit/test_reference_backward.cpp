// The reference backward (the oracle of the runtime backward, issue 12) is
// itself checked here: every gradient against central finite differences of
// L = <Y, G> in double on random small shapes, both activations, with and
// without dropped slots, the gpt-oss clamp active and inactive.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "runtime/common/Rng.hpp"
#include "runtime/harness/Reference.hpp"
#include "runtime/harness/ReferenceBackward.hpp"

using namespace moe;

namespace {

constexpr double kTolerance = 1e-6;   // max |got - fd| / max |fd| per tensor
constexpr double kStep = 1e-6;        // FD step, relative to the tensor's largest entry
constexpr double kKinkMargin = 1e-4;  // |g - limit|, |u -+ limit| at least this (steps move them by ~1e-6)

/// Uniform in [-1, 1) from a key (the test's own stream of randomness).
double uniform(uint64_t seed, uint64_t a, uint64_t b) { return 2.0 * to_unit(hash_key(seed, 0x7e57, a, b)) - 1.0; }
int64_t pick(uint64_t seed, uint64_t a, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(hash_key(seed, 0x91c4, a) % static_cast<uint64_t>(hi - lo + 1));
}

struct BackwardCase {
  ModelShape shape;
  int layer = 0;
  uint64_t seed = 0;
  std::vector<double> x, grad_out;
  std::vector<int32_t> ids;
  std::vector<uint8_t> keep;
  std::string name;
};

/// Case c: activation, dropped slots and the gpt-oss clamp alternate; the
/// shape, the layer, the tokens, the ids and G are drawn from the seed.
BackwardCase make_case(int c, uint64_t seed) {
  BackwardCase k;
  ModelShape& s = k.shape;
  const bool gpt_oss = c % 2 == 1, drop = (c / 2) % 2 == 1, clamp = (c / 4) % 2 == 1;
  s.activation = gpt_oss ? Activation::GptOss : Activation::SwiGLU;
  s.hidden = static_cast<int>(pick(seed, 1, 6, 8));
  s.ffn = static_cast<int>(pick(seed, 2, 4, 6));
  s.num_experts = static_cast<int>(pick(seed, 3, 4, 6));
  // K = 1 (every gate 1, no router gradient) in a quarter of the cases.
  s.top_k = c % 4 == 0 ? 1 : static_cast<int>(pick(seed, 4, 2, 3));
  if (c == 13) s.top_k = 3;  // this case repeats an expert within a token
  s.tokens = pick(seed, 5, 3, 5);
  // A small limit clamps a good part of g and u (their spread is about 0.6);
  // the default 7 never does at these scales.
  s.swiglu_limit = gpt_oss && clamp ? 0.3f : 7.0f;
  k.layer = static_cast<int>(pick(seed, 6, 0, 2));
  k.seed = seed;
  const int64_t T = s.tokens, D = s.hidden, K = s.top_k, N = s.num_experts;
  k.x.resize(static_cast<size_t>(T * D));
  k.grad_out.resize(k.x.size());
  for (int64_t i = 0; i < T * D; ++i) {
    k.x[i] = 1.7 * uniform(seed, 10, i);
    k.grad_out[i] = uniform(seed, 11, i);
  }
  k.ids.resize(static_cast<size_t>(T * K));
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int32_t> perm(static_cast<size_t>(N));
    for (int32_t e = 0; e < N; ++e) perm[e] = e;
    for (int64_t i = 0; i < K; ++i) std::swap(perm[i], perm[pick(seed, 100 + t * 8 + i, i, N - 1)]);
    for (int64_t i = 0; i < K; ++i) k.ids[t * K + i] = perm[i];
    if (c == 13) k.ids[t * K + 1] = k.ids[t * K];
  }
  if (drop) {
    k.keep.resize(k.ids.size());
    for (size_t i = 0; i < k.keep.size(); ++i) k.keep[i] = uniform(seed, 12, i) > -0.4 ? 1 : 0;
    k.keep[0] = 0;
    k.keep[k.keep.size() - 1] = 1;
  }
  k.name = "case " + std::to_string(c) + " seed " + std::to_string(seed) + " (" + activation_name(s.activation) +
           ", D=" + std::to_string(D) + " H=" + std::to_string(s.ffn) + " N=" + std::to_string(N) +
           " K=" + std::to_string(K) + " T=" + std::to_string(T) + (drop ? ", dropped slots" : "") +
           (gpt_oss ? (clamp ? ", clamp active" : ", clamp inactive") : "") + ")";
  return k;
}

bool slot_kept(const BackwardCase& k, int64_t slot) { return k.keep.empty() || k.keep[slot] != 0; }

/// For gpt-oss: the smallest distance of a kept slot's g or u to a kink of the
/// clamp, and how many g and u are clamped.
struct ClampStats {
  double margin = std::numeric_limits<double>::infinity();
  int clamped_g = 0, clamped_u = 0;
};
ClampStats clamp_stats(const BackwardCase& k, const ReferenceLayerWeights& w) {
  const ModelShape& s = k.shape;
  const int64_t D = s.hidden, H = s.ffn, K = s.top_k;
  const double lim = s.swiglu_limit;
  ClampStats st;
  for (int64_t slot = 0; slot < static_cast<int64_t>(k.ids.size()); ++slot) {
    if (!slot_kept(k, slot)) continue;
    const int64_t e = k.ids[slot];
    for (int64_t j = 0; j < 2 * H; ++j) {
      double h = w.b_gu[e * 2 * H + j];
      for (int64_t d = 0; d < D; ++d) h += k.x[(slot / K) * D + d] * w.w_gu[e * D * 2 * H + d * 2 * H + j];
      if (j < H) {
        st.margin = std::min(st.margin, std::abs(h - lim));
        st.clamped_g += h > lim ? 1 : 0;
      } else {
        st.margin = std::min({st.margin, std::abs(h - lim), std::abs(h + lim)});
        st.clamped_u += std::abs(h) > lim ? 1 : 0;
      }
    }
  }
  return st;
}

/// A case whose kept g and u all stay kKinkMargin away from the clamp's kinks
/// (only gpt-oss can fail that): the first of a few seeds from `base`.
BackwardCase make_smooth_case(int c, uint64_t base) {
  for (uint64_t seed = base; seed < base + 50; ++seed) {
    BackwardCase k = make_case(c, seed);
    if (k.shape.activation != Activation::GptOss) return k;
    if (clamp_stats(k, reference_layer_weights(k.shape, k.layer, k.seed)).margin > kKinkMargin) return k;
  }
  throw std::runtime_error("no seed keeps the clamp's kinks away from the FD points");
}

double dot(std::span<const double> a, std::span<const double> b) {
  double acc = 0.0;
  for (size_t i = 0; i < a.size(); ++i) acc += a[i] * b[i];
  return acc;
}

/// Central differences of f with respect to every entry of theta (perturbed in
/// place, restored). The step is kStep times the tensor's largest entry, and
/// the difference is divided by the step actually taken after rounding.
std::vector<double> finite_differences(std::vector<double>& theta, const std::function<double()>& f) {
  double scale = 0.0;
  for (double v : theta) scale = std::max(scale, std::abs(v));
  if (scale == 0.0) scale = 1.0;  // SwiGLU's biases are zero
  std::vector<double> grad(theta.size());
  for (size_t i = 0; i < theta.size(); ++i) {
    const double old = theta[i];
    const double plus = old + kStep * scale, minus = old - kStep * scale;
    theta[i] = plus;
    const double lp = f();
    theta[i] = minus;
    const double lm = f();
    theta[i] = old;
    grad[i] = (lp - lm) / (plus - minus);
  }
  return grad;
}

/// The worst error per tensor over all cases, printed for the record.
std::map<std::string, double>& worst() {
  static std::map<std::string, double> w;
  return w;
}

double check_tensor(const std::string& tensor, const std::vector<double>& got, const std::vector<double>& fd,
                    const std::string& where) {
  double max_fd = 0.0;
  for (double v : fd) max_fd = std::max(max_fd, std::abs(v));
  const double err = max_relative_error(got, fd);
  EXPECT_LE(err, kTolerance) << tensor << " in " << where << " (max |fd| " << max_fd << ")";
  worst()[tensor] = worse_error(worst()[tensor], err);
  return err;
}

/// The FD gradients of L = <Y, G> with respect to every weight tensor and x.
struct FdGradients {
  std::vector<double> dx, dw_r, dw_gu, dw_d, db_gu, db_d;
};
FdGradients fd_gradients(const ModelShape& s, const BackwardCase& k, const ReferenceLayerWeights& weights) {
  ReferenceLayerWeights w = weights;
  std::vector<double> x = k.x;
  const auto loss = [&] { return dot(reference_backward(s, w, x, k.ids, k.keep, k.grad_out).y, k.grad_out); };
  FdGradients fd;
  fd.dx = finite_differences(x, loss);
  fd.dw_r = finite_differences(w.w_r, loss);
  fd.dw_gu = finite_differences(w.w_gu, loss);
  fd.dw_d = finite_differences(w.w_d, loss);
  fd.db_gu = finite_differences(w.b_gu, loss);
  fd.db_d = finite_differences(w.b_d, loss);
  return fd;
}

constexpr int kCases = 16;

}  // namespace

TEST(ReferenceBackward, GradientsMatchCentralFiniteDifferences) {
  worst().clear();
  int clamp_active_cases = 0, clamp_inactive_cases = 0;
  for (int c = 0; c < kCases; ++c) {
    const BackwardCase k = make_smooth_case(c, 1000 + 97 * static_cast<uint64_t>(c));
    SCOPED_TRACE(k.name);
    const ReferenceLayerWeights w = reference_layer_weights(k.shape, k.layer, k.seed);
    if (k.shape.activation == Activation::GptOss) {
      const ClampStats st = clamp_stats(k, w);
      if (k.shape.swiglu_limit < 1.0f) {
        EXPECT_GT(st.clamped_g, 0);  // the clamp is exercised on both halves
        EXPECT_GT(st.clamped_u, 0);
        ++clamp_active_cases;
      } else {
        EXPECT_EQ(st.clamped_g + st.clamped_u, 0);
        ++clamp_inactive_cases;
      }
    }
    const ReferenceBackward r = reference_backward(k.shape, w, k.x, k.ids, k.keep, k.grad_out);
    const FdGradients fd = fd_gradients(k.shape, k, w);
    check_tensor("dx", r.dx, fd.dx, k.name);
    check_tensor("dW_r", r.dw_r, fd.dw_r, k.name);
    check_tensor("dW_gu", r.dw_gu, fd.dw_gu, k.name);
    check_tensor("dW_d", r.dw_d, fd.dw_d, k.name);
    check_tensor("db_gu", r.db_gu, fd.db_gu, k.name);
    check_tensor("db_d", r.db_d, fd.db_d, k.name);

    // The gate-weight gradient against FD through the forward reference
    // itself (Y is linear in the gates, given the slot's expert output).
    std::vector<double> gates = r.gates;
    const auto gate_loss = [&] {
      const auto slots = reference_slot_outputs(k.shape, k.layer, k.seed, k.x, k.ids, gates);
      return dot(reference_combine(slots, k.shape.tokens, k.shape.top_k, k.shape.hidden, k.keep), k.grad_out);
    };
    check_tensor("d_gates", r.d_gates, finite_differences(gates, gate_loss), k.name);

    // The router gradient is not trivially zero where it should not be (K = 1
    // makes every gate 1: no gradient through the router).
    double max_dwr = 0.0;
    for (double v : fd.dw_r) max_dwr = std::max(max_dwr, std::abs(v));
    if (k.shape.top_k > 1) {
      EXPECT_GT(max_dwr, 1e-3);
    } else {
      EXPECT_EQ(max_dwr, 0.0);
    }
  }
  EXPECT_GE(clamp_active_cases, 2);
  EXPECT_GE(clamp_inactive_cases, 2);
  for (const auto& [tensor, err] : worst()) std::printf("  max relative error %-7s %.2e\n", tensor.c_str(), err);
}

TEST(ReferenceBackward, ForwardAgreesWithTheForwardReference) {
  double worst_y = 0.0;
  for (int c = 0; c < kCases; ++c) {
    const BackwardCase k = make_case(c, 5000 + 31 * static_cast<uint64_t>(c));
    SCOPED_TRACE(k.name);
    const ReferenceBackward r = reference_backward(k.shape, k.layer, k.seed, k.x, k.ids, k.keep, k.grad_out);
    const auto slots = reference_slot_outputs(k.shape, k.layer, k.seed, k.x, k.ids, r.gates);
    const auto y = reference_combine(slots, k.shape.tokens, k.shape.top_k, k.shape.hidden, k.keep);
    const double err = max_relative_error(r.y, y);
    EXPECT_LE(err, 1e-12);
    worst_y = worse_error(worst_y, err);
    // The gates are the softmax over the chosen logits: positive, summing to 1.
    for (int64_t t = 0; t < k.shape.tokens; ++t) {
      double sum = 0.0;
      for (int i = 0; i < k.shape.top_k; ++i) sum += r.gates[t * k.shape.top_k + i];
      EXPECT_NEAR(sum, 1.0, 1e-14);
    }
    // Dropped slots have no gate-weight gradient.
    for (size_t slot = 0; slot < k.ids.size(); ++slot)
      if (!slot_kept(k, static_cast<int64_t>(slot))) {
        EXPECT_EQ(r.d_gates[slot], 0.0);
      }
  }
  std::printf("  max relative error Y vs reference_slot_outputs + reference_combine %.2e\n", worst_y);
}

// The check can fail: analytic gradients of a slightly different layer (alpha
// off by 0.1%, or the clamp ignored) are caught against the FD of the true one,
// as is one entry off by 1e-5 relative.
TEST(ReferenceBackward, FiniteDifferenceCheckCatchesWrongDerivatives) {
  const BackwardCase k = make_smooth_case(7, 7000);  // gpt-oss, dropped slots, clamp active
  ASSERT_EQ(k.shape.activation, Activation::GptOss);
  ASSERT_LT(k.shape.swiglu_limit, 1.0f);
  const ReferenceLayerWeights w = reference_layer_weights(k.shape, k.layer, k.seed);
  const FdGradients fd = fd_gradients(k.shape, k, w);

  ModelShape alpha_off = k.shape;
  alpha_off.swiglu_alpha *= 1.001f;
  const ReferenceBackward a = reference_backward(alpha_off, w, k.x, k.ids, k.keep, k.grad_out);
  EXPECT_GT(max_relative_error(a.dw_gu, fd.dw_gu), 100 * kTolerance);

  ModelShape no_clamp = k.shape;
  no_clamp.swiglu_limit = 1e6f;
  const ReferenceBackward b = reference_backward(no_clamp, w, k.x, k.ids, k.keep, k.grad_out);
  EXPECT_GT(max_relative_error(b.dw_gu, fd.dw_gu), 0.01);
  EXPECT_GT(max_relative_error(b.dx, fd.dx), 0.01);

  std::vector<double> off = reference_backward(k.shape, w, k.x, k.ids, k.keep, k.grad_out).dw_d;
  const auto big =
      std::max_element(off.begin(), off.end(), [](double p, double q) { return std::abs(p) < std::abs(q); });
  *big *= 1.0 + 1e-5;
  EXPECT_GT(max_relative_error(off, fd.dw_d), kTolerance);
}

TEST(ReferenceBackward, RejectsInconsistentInputs) {
  const BackwardCase k = make_case(0, 11);
  const std::vector<double> short_g(k.grad_out.begin(), k.grad_out.end() - 1);
  EXPECT_THROW(reference_backward(k.shape, k.layer, k.seed, k.x, k.ids, k.keep, short_g), std::invalid_argument);
  std::vector<int32_t> bad_ids = k.ids;
  bad_ids[0] = k.shape.num_experts;
  EXPECT_THROW(reference_backward(k.shape, k.layer, k.seed, k.x, bad_ids, k.keep, k.grad_out), std::invalid_argument);
  const std::vector<uint8_t> short_keep(k.ids.size() - 1, 1);
  EXPECT_THROW(reference_backward(k.shape, k.layer, k.seed, k.x, k.ids, short_keep, k.grad_out), std::invalid_argument);
}

#include "runtime/harness/Reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "runtime/common/Rng.hpp"
#include "runtime/layer/ExpertStore.hpp"

namespace moe {

namespace {
double silu(double g) { return g / (1.0 + std::exp(-g)); }
}  // namespace

double reference_round_bf16(double x) {
  if (x == 0.0 || !std::isfinite(x)) return x;
  // 8 significant bits (bf16's 7 stored + the implicit one), never finer than
  // the subnormal step 2^-133; nearbyint rounds ties to even.
  const int e = std::max(std::ilogb(x), -126);
  const double step = std::ldexp(1.0, e - 7);
  const double r = std::nearbyint(x / step) * step;
  return std::abs(r) >= std::ldexp(1.0, 128) ? std::copysign(INFINITY, x) : r;
}

double reference_stored(const ModelShape& s, double x) { return s.dtype == DType::BF16 ? reference_round_bf16(x) : x; }

void reference_expert_weights(const ModelShape& s, int layer, uint64_t seed, int expert, std::span<double> w_gu,
                              std::span<double> w_d, std::span<double> b_gu, std::span<double> b_d) {
  const int64_t D = s.hidden, H = s.ffn;
  if (static_cast<int64_t>(w_gu.size()) != D * 2 * H || static_cast<int64_t>(w_d.size()) != H * D ||
      static_cast<int64_t>(b_gu.size()) != 2 * H || static_cast<int64_t>(b_d.size()) != D)
    throw std::invalid_argument("reference_expert_weights: spans do not match the shape");
  const WeightScales sc = weight_scales(s);
  const bool gpt_oss = s.activation == Activation::GptOss;
  const uint64_t L = static_cast<uint64_t>(layer), E = static_cast<uint64_t>(expert);
  for (int64_t i = 0; i < D * 2 * H; ++i) w_gu[i] = synthetic_value(seed, Stream::ExpertGateUp, L, E, i, sc.w_gu);
  for (int64_t i = 0; i < H * D; ++i) w_d[i] = synthetic_value(seed, Stream::ExpertDown, L, E, i, sc.w_d);
  for (int64_t i = 0; i < 2 * H; ++i)
    b_gu[i] = gpt_oss ? synthetic_value(seed, Stream::ExpertBias, L, E, i, sc.bias) : 0.0;
  for (int64_t i = 0; i < D; ++i)
    b_d[i] = gpt_oss ? synthetic_value(seed, Stream::ExpertBias, L, E, 2 * H + i, sc.bias) : 0.0;
  if (s.dtype == DType::F32) return;
  for (auto part : {w_gu, w_d, b_gu, b_d})
    for (double& w : part) w = reference_round_bf16(w);
}

double reference_activation(const ModelShape& s, double g, double u) {
  if (s.activation != Activation::GptOss) return silu(g) * u;
  g = std::min<double>(g, s.swiglu_limit);
  u = std::clamp<double>(u, -s.swiglu_limit, s.swiglu_limit);
  return (u + 1.0) * g / (1.0 + std::exp(-static_cast<double>(s.swiglu_alpha) * g));
}

std::vector<double> reference_slot_outputs(const ModelShape& s, int layer, uint64_t seed, std::span<const double> x,
                                           std::span<const int32_t> expert_ids, std::span<const double> gates) {
  const int64_t D = s.hidden, H = s.ffn, K = s.top_k;
  const int64_t T = static_cast<int64_t>(x.size()) / D;
  if (static_cast<int64_t>(expert_ids.size()) != T * K || gates.size() != expert_ids.size())
    throw std::invalid_argument("reference: inputs have inconsistent sizes");
  std::vector<double> y(static_cast<size_t>(T * K * D), 0.0);
  std::vector<double> w_gu(static_cast<size_t>(D * 2 * H)), w_d(static_cast<size_t>(H * D)), b_gu(2 * H), b_d(D);
  std::vector<double> gu(2 * H), act(H);
  // Expert by expert so that its weights are generated once and stay in cache.
  for (int e = 0; e < s.num_experts; ++e) {
    bool used = false;
    for (int32_t id : expert_ids) used = used || id == e;
    if (!used) continue;
    reference_expert_weights(s, layer, seed, e, w_gu, w_d, b_gu, b_d);
    for (int64_t slot = 0; slot < T * K; ++slot) {
      if (expert_ids[slot] != e) continue;
      const double* xt = &x[(slot / K) * D];
      std::copy(b_gu.begin(), b_gu.end(), gu.begin());
      for (int64_t d = 0; d < D; ++d)
        for (int64_t j = 0; j < 2 * H; ++j) gu[j] += xt[d] * w_gu[d * 2 * H + j];
      for (int64_t j = 0; j < H; ++j) act[j] = reference_activation(s, gu[j], gu[H + j]);
      double* yt = &y[slot * D];
      for (int64_t d = 0; d < D; ++d) yt[d] = b_d[d];
      for (int64_t j = 0; j < H; ++j)
        for (int64_t d = 0; d < D; ++d) yt[d] += act[j] * w_d[j * D + d];
      for (int64_t d = 0; d < D; ++d) yt[d] = reference_stored(s, yt[d]) * gates[slot];
    }
  }
  return y;
}

std::vector<double> reference_combine(std::span<const double> slot_outputs, int64_t tokens, int top_k, int64_t hidden,
                                      std::span<const uint8_t> keep) {
  std::vector<double> out(static_cast<size_t>(tokens * hidden), 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int k = 0; k < top_k; ++k) {
      const int64_t slot = t * top_k + k;
      if (!keep.empty() && !keep[slot]) continue;
      for (int64_t d = 0; d < hidden; ++d) out[t * hidden + d] += slot_outputs[slot * hidden + d];
    }
  return out;
}

double max_relative_error(std::span<const double> out, std::span<const double> ref) {
  if (out.size() != ref.size()) throw std::invalid_argument("max_relative_error: sizes differ");
  double max_diff = 0.0, max_ref = 0.0;
  bool has_nan = false, has_inf = false;
  for (size_t i = 0; i < out.size(); ++i) {
    has_nan = has_nan || std::isnan(out[i]);
    has_inf = has_inf || std::isinf(out[i]);
    max_diff = std::max(max_diff, std::abs(out[i] - ref[i]));
    max_ref = std::max(max_ref, std::abs(ref[i]));
  }
  if (has_nan) return std::numeric_limits<double>::quiet_NaN();
  if (has_inf) return std::numeric_limits<double>::infinity();
  if (max_ref == 0.0) return max_diff;
  return max_diff / max_ref;
}

double worse_error(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  return std::max(a, b);
}

}  // namespace moe

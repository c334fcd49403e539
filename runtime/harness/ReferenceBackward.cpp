#include "runtime/harness/ReferenceBackward.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "runtime/common/Rng.hpp"
#include "runtime/harness/Reference.hpp"
#include "runtime/layer/ExpertStore.hpp"

namespace moe {

namespace {
double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }
}  // namespace

ReferenceLayerWeights reference_layer_weights(const ModelShape& s, int layer, uint64_t seed) {
  const int64_t D = s.hidden, H = s.ffn, N = s.num_experts;
  const WeightScales sc = weight_scales(s);
  const uint64_t L = static_cast<uint64_t>(layer);
  ReferenceLayerWeights w;
  w.w_r.resize(static_cast<size_t>(D * N));
  w.w_gu.resize(static_cast<size_t>(N * D * 2 * H));
  w.w_d.resize(static_cast<size_t>(N * H * D));
  w.b_gu.resize(static_cast<size_t>(N * 2 * H));
  w.b_d.resize(static_cast<size_t>(N * D));
  // As Router's init_router_weights: key (RouterWeights, layer, 0, d*N + e).
  for (int64_t i = 0; i < D * N; ++i)
    w.w_r[i] = synthetic_value(seed, Stream::RouterWeights, L, 0, static_cast<uint64_t>(i), sc.router);
  // As reference_slot_outputs (and ExpertStore).
  for (int e = 0; e < N; ++e)
    reference_expert_weights(s, layer, seed, e, std::span(w.w_gu).subspan(e * D * 2 * H, D * 2 * H),
                             std::span(w.w_d).subspan(e * H * D, H * D), std::span(w.b_gu).subspan(e * 2 * H, 2 * H),
                             std::span(w.b_d).subspan(e * D, D));
  return w;
}

ReferenceBackward reference_backward(const ModelShape& s, const ReferenceLayerWeights& w, std::span<const double> x,
                                     std::span<const int32_t> expert_ids, std::span<const uint8_t> keep,
                                     std::span<const double> grad_out) {
  const int64_t D = s.hidden, H = s.ffn, K = s.top_k, N = s.num_experts;
  const int64_t T = static_cast<int64_t>(x.size()) / D;
  if (static_cast<int64_t>(x.size()) != T * D || static_cast<int64_t>(expert_ids.size()) != T * K ||
      grad_out.size() != x.size() || (!keep.empty() && keep.size() != expert_ids.size()))
    throw std::invalid_argument("reference_backward: inputs have inconsistent sizes");
  if (static_cast<int64_t>(w.w_r.size()) != D * N || static_cast<int64_t>(w.w_gu.size()) != N * D * 2 * H ||
      static_cast<int64_t>(w.w_d.size()) != N * H * D || static_cast<int64_t>(w.b_gu.size()) != N * 2 * H ||
      static_cast<int64_t>(w.b_d.size()) != N * D)
    throw std::invalid_argument("reference_backward: weights do not match the shape");
  for (int32_t id : expert_ids)
    if (id < 0 || id >= N) throw std::invalid_argument("reference_backward: expert id out of range");
  const bool gpt_oss = s.activation == Activation::GptOss;
  const double limit = s.swiglu_limit, alpha = s.swiglu_alpha;

  ReferenceBackward r;
  r.y.assign(static_cast<size_t>(T * D), 0.0);
  r.gates.assign(static_cast<size_t>(T * K), 0.0);
  r.d_gates.assign(static_cast<size_t>(T * K), 0.0);
  r.d_logits.assign(static_cast<size_t>(T * N), 0.0);
  r.dx.assign(static_cast<size_t>(T * D), 0.0);
  r.dw_r.assign(w.w_r.size(), 0.0);
  r.dw_gu.assign(w.w_gu.size(), 0.0);
  r.dw_d.assign(w.w_d.size(), 0.0);
  r.db_gu.assign(w.b_gu.size(), 0.0);
  r.db_d.assign(w.b_d.size(), 0.0);

  std::vector<double> logits(static_cast<size_t>(N)), h(static_cast<size_t>(2 * H)), act(static_cast<size_t>(H));
  std::vector<double> z(static_cast<size_t>(D)), dz(static_cast<size_t>(D)), dh(static_cast<size_t>(2 * H));
  for (int64_t t = 0; t < T; ++t) {
    const double* xt = &x[t * D];
    const double* gt = &grad_out[t * D];
    double* dxt = &r.dx[t * D];
    double* yt = &r.y[t * D];

    // Router logits l_t = x_t W_r and the softmax over the K chosen logits
    // (max-shifted, as chosen_softmax does).
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t d = 0; d < D; ++d) acc += xt[d] * w.w_r[d * N + n];
      logits[n] = acc;
    }
    double mx = logits[expert_ids[t * K]];
    for (int64_t k = 1; k < K; ++k) mx = std::max(mx, logits[expert_ids[t * K + k]]);
    double sum = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      r.gates[t * K + k] = std::exp(logits[expert_ids[t * K + k]] - mx);
      sum += r.gates[t * K + k];
    }
    for (int64_t k = 0; k < K; ++k) r.gates[t * K + k] /= sum;

    for (int64_t k = 0; k < K; ++k) {
      const int64_t slot = t * K + k;
      if (!keep.empty() && !keep[slot]) continue;  // dropped: no output, d_gates stays 0
      const int64_t e = expert_ids[slot];
      const double* wgu = &w.w_gu[e * D * 2 * H];
      const double* wd = &w.w_d[e * H * D];
      const double* bgu = &w.b_gu[e * 2 * H];
      const double* bd = &w.b_d[e * D];
      const double p = r.gates[slot];

      // Forward, in the order of reference_slot_outputs (so Y agrees with it).
      std::copy(bgu, bgu + 2 * H, h.begin());
      for (int64_t d = 0; d < D; ++d)
        for (int64_t j = 0; j < 2 * H; ++j) h[j] += xt[d] * wgu[d * 2 * H + j];
      for (int64_t j = 0; j < H; ++j) act[j] = reference_activation(s, h[j], h[H + j]);
      for (int64_t d = 0; d < D; ++d) z[d] = bd[d];
      for (int64_t j = 0; j < H; ++j)
        for (int64_t d = 0; d < D; ++d) z[d] += act[j] * wd[j * D + d];
      for (int64_t d = 0; d < D; ++d) yt[d] += z[d] * p;

      // dL/dp_s = <z_s, G_t>: the gate-weight gradient.
      double dp = 0.0;
      for (int64_t d = 0; d < D; ++d) dp += z[d] * gt[d];
      r.d_gates[slot] = dp;

      // Down projection: z = a W_d + b_d, dz = p G_t.
      for (int64_t d = 0; d < D; ++d) dz[d] = p * gt[d];
      double* dwd = &r.dw_d[e * H * D];
      double* dbd = &r.db_d[e * D];
      for (int64_t d = 0; d < D; ++d) dbd[d] += dz[d];
      for (int64_t j = 0; j < H; ++j) {
        double da = 0.0;  // da_j = sum_d W_d[j, d] dz_d
        for (int64_t d = 0; d < D; ++d) {
          dwd[j * D + d] += act[j] * dz[d];
          da += wd[j * D + d] * dz[d];
        }
        // Activation.
        const double g = h[j], u = h[H + j];
        if (gpt_oss) {
          // a = (uc + 1) gc sigmoid(alpha gc). d/dgc [gc sigmoid(alpha gc)] =
          // sigmoid(alpha gc) + alpha gc sigmoid(alpha gc) (1 - sigmoid(alpha gc)).
          // The clamps pass the gradient where the value is unchanged
          // (std::min(g, limit) returns g when g <= limit, std::clamp returns u
          // when -limit <= u <= limit) and block it where clamped.
          const double gc = std::min<double>(g, limit), uc = std::clamp<double>(u, -limit, limit);
          const double sg = sigmoid(alpha * gc);
          dh[j] = g <= limit ? da * (uc + 1.0) * (sg + alpha * gc * sg * (1.0 - sg)) : 0.0;
          dh[H + j] = (u >= -limit && u <= limit) ? da * gc * sg : 0.0;  // d/du (u + 1) = 1
        } else {
          // a = silu(g) u, silu(g) = g sigmoid(g), silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))).
          const double sg = sigmoid(g);
          dh[j] = da * u * sg * (1.0 + g * (1.0 - sg));
          dh[H + j] = da * g * sg;
        }
      }

      // Gate/up projection: h = x_t W_gu + b_gu.
      double* dwgu = &r.dw_gu[e * D * 2 * H];
      double* dbgu = &r.db_gu[e * 2 * H];
      for (int64_t j = 0; j < 2 * H; ++j) dbgu[j] += dh[j];
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j < 2 * H; ++j) {
          dwgu[d * 2 * H + j] += xt[d] * dh[j];
          acc += wgu[d * 2 * H + j] * dh[j];
        }
        dxt[d] += acc;
      }
    }

    // Softmax over the K chosen logits: dp_i/dl_j = p_i (delta_ij - p_j), so
    // dL/dl_j = p_j (dp_j - sum_i p_i dp_i). Slots of a token that name the
    // same expert accumulate into its one logit. Dropped slots have dp = 0 but
    // still receive a gradient (their logit is in the denominator).
    double mean = 0.0;
    for (int64_t k = 0; k < K; ++k) mean += r.gates[t * K + k] * r.d_gates[t * K + k];
    double* dlt = &r.d_logits[t * N];
    for (int64_t k = 0; k < K; ++k) dlt[expert_ids[t * K + k]] += r.gates[t * K + k] * (r.d_gates[t * K + k] - mean);
    // Router projection: l_t = x_t W_r.
    for (int64_t d = 0; d < D; ++d) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        r.dw_r[d * N + n] += xt[d] * dlt[n];
        acc += w.w_r[d * N + n] * dlt[n];
      }
      dxt[d] += acc;
    }
  }
  return r;
}

ReferenceBackward reference_backward(const ModelShape& shape, int layer, uint64_t seed, std::span<const double> x,
                                     std::span<const int32_t> expert_ids, std::span<const uint8_t> keep,
                                     std::span<const double> grad_out) {
  return reference_backward(shape, reference_layer_weights(shape, layer, seed), x, expert_ids, keep, grad_out);
}

}  // namespace moe

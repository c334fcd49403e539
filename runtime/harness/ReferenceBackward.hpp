#pragma once
// The double-precision reference backward of one MoE layer: the oracle the
// runtime's backward pass is checked against (issue 12). Like Reference.hpp it
// is one simple loop per token-slot, every expert local, no Kokkos, no BLAS.
// It is itself checked against central finite differences
// (tests/unit/test_reference_backward.cpp).
//
// Forward (token t, slot s = t*K + k, expert e = ids[s], keep flag m_s):
//   l_t   = x_t W_r                                    (N router logits)
//   p_s   = exp(l_t[e_s]) / sum_k' exp(l_t[e_t,k'])    (softmax over the K chosen,
//                                                       dropped slots included)
//   h_s   = x_t W_gu[e] + b_gu[e]      g = h[0:H], u = h[H:2H]
//   a_s   = silu(g) * u                                 (SwiGLU)
//         = (uc + 1) * gc * sigmoid(alpha gc)           (gpt-oss; gc = min(g, limit),
//                                                        uc = clamp(u, -limit, limit))
//   z_s   = a_s W_d[e] + b_d[e]
//   Y_t   = sum_k m_s p_s z_s
// Loss L = <Y, G> (G: the output gradient, T x D). Backward, per slot:
//   dp_s  = m_s <z_s, G_t>                  (the gate-weight gradient)
//   dz_s  = m_s p_s G_t;  dW_d[e] += a_s^T dz_s;  db_d[e] += dz_s
//   da_s  = W_d[e] dz_s
//   SwiGLU:  dg = da u silu'(g), silu'(g) = s(g) (1 + g (1 - s(g))), s = sigmoid;
//            du = da silu(g)
//   gpt-oss: dg = da (uc + 1) [s(alpha gc) + alpha gc s(alpha gc)(1 - s(alpha gc))]
//                 where g <= limit, 0 where clamped;
//            du = da gc s(alpha gc) where |u| <= limit, 0 where clamped
//   dh_s  = [dg, du];  dW_gu[e] += x_t^T dh_s;  db_gu[e] += dh_s;  dx_t += W_gu[e] dh_s
// and per token, through the softmax restricted to the K chosen
// (dp_i/dl_j = p_i (delta_ij - p_j) over the token's slots i, j):
//   dl_t[e_j] += p_j (dp_j - sum_i p_i dp_i);  dW_r += x_t^T dl_t;  dx_t += W_r dl_t
// The expert ids are inputs (the top-K choice is piecewise constant: no
// gradient flows through it). A dropped slot (keep flag 0) contributes no
// output and no expert gradient, but its logit still enters the softmax's
// denominator, so it still receives a router gradient. SwiGLU has no biases
// (they are zero); db_gu and db_d are still returned for it (the gradient a
// bias would get), and a SwiGLU backward has no use for them.

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/common/ModelConfig.hpp"

namespace moe {

/// One layer's weights in double. Expert e's block starts at e times the
/// per-expert size; row-major like the forward reference.
struct ReferenceLayerWeights {
  std::vector<double> w_r;   // D x N
  std::vector<double> w_gu;  // N x [D x 2H] (columns 0..H-1 gate, H..2H-1 up)
  std::vector<double> w_d;   // N x [H x D]
  std::vector<double> b_gu;  // N x [2H] (zero for SwiGLU)
  std::vector<double> b_d;   // N x [D]  (zero for SwiGLU)
};

/// The weights regenerated from the seed exactly as Router (W_r) and
/// reference_slot_outputs (experts, biases) generate them.
ReferenceLayerWeights reference_layer_weights(const ModelShape& shape, int layer, uint64_t seed);

/// The forward output, the gates and every gradient of L = <Y, G>; the
/// gradient of a weight has that weight's layout.
struct ReferenceBackward {
  std::vector<double> y;         // T x D, the forward output
  std::vector<double> gates;     // T*K, softmax over the chosen logits
  std::vector<double> d_gates;   // T*K, dL/dp_s = m_s <z_s, G_t>
  std::vector<double> d_logits;  // T x N, zero outside the chosen experts
  std::vector<double> dx;        // T x D, the expert paths and the router path
  std::vector<double> dw_r;      // D x N
  std::vector<double> dw_gu;     // N x [D x 2H]
  std::vector<double> dw_d;      // N x [H x D]
  std::vector<double> db_gu;     // N x [2H]
  std::vector<double> db_d;      // N x [D]
};

/// x: T x D; expert_ids: T*K; keep: T*K flags, empty = every slot kept;
/// grad_out: T x D. Throws std::invalid_argument on inconsistent sizes or an
/// expert id out of range.
ReferenceBackward reference_backward(const ModelShape& shape, const ReferenceLayerWeights& weights,
                                     std::span<const double> x, std::span<const int32_t> expert_ids,
                                     std::span<const uint8_t> keep, std::span<const double> grad_out);

/// The same with the weights regenerated from (layer, seed).
ReferenceBackward reference_backward(const ModelShape& shape, int layer, uint64_t seed, std::span<const double> x,
                                     std::span<const int32_t> expert_ids, std::span<const uint8_t> keep,
                                     std::span<const double> grad_out);

}  // namespace moe

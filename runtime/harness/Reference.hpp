#pragma once
// The independent single-process reference: every expert local, one simple
// loop per token-slot in double precision, weights regenerated from the seed.
// No Kokkos, no BLAS, no dispatch: it shares only the synthetic generators.

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/common/ModelConfig.hpp"

namespace moe {

/// Expert `expert`'s weights in double, generated from the seed as
/// ExpertStore generates them: w_gu (D x 2H), w_d (H x D), b_gu (2H) and b_d
/// (D); the biases are zero for SwiGLU. Every span has exactly that size.
/// With shape.dtype bf16, rounded to bf16 as ExpertStore stores them.
void reference_expert_weights(const ModelShape& shape, int layer, uint64_t seed, int expert, std::span<double> w_gu,
                              std::span<double> w_d, std::span<double> b_gu, std::span<double> b_d);

/// x rounded to the nearest bf16 value (ties to even, past the largest
/// finite bf16 to infinity), computed in double from the definition: what the
/// reference rounds with --dtype bf16, independent of kernels/Bf16.hpp.
double reference_round_bf16(double x);
/// x as the runtime stores it in shape.dtype: x itself for fp32, rounded for bf16.
double reference_stored(const ModelShape& shape, double x);

/// The activation of one element in double: gate g and up u (biases added),
/// SwiGLU silu(g) u, or gpt-oss's (clamp(u) + 1) min(g, limit) sigmoid(alpha min(g, limit)).
double reference_activation(const ModelShape& shape, double g, double u);

/// Per-slot expert outputs g * FFN_e(x_t) in double, [slot][D], for all tokens
/// of all ranks (x: T x D, expert_ids and gates: T*K). With shape.dtype bf16
/// FFN_e(x_t) is rounded to bf16 before the gate multiplies it, as the
/// runtime stores and sends it (x is taken as given: the runtime's bf16 tokens).
std::vector<double> reference_slot_outputs(const ModelShape& shape, int layer, uint64_t seed, std::span<const double> x,
                                           std::span<const int32_t> expert_ids, std::span<const double> gates);

/// out(t) = sum over k of slot outputs whose keep flag is set (all when keep is empty).
std::vector<double> reference_combine(std::span<const double> slot_outputs, int64_t tokens, int top_k, int64_t hidden,
                                      std::span<const uint8_t> keep = {});

/// max |out - ref| / max |ref| (0 when both are zero). NaN when `out` holds a
/// NaN, +inf when it holds an infinity (a result that is not a number is never
/// reported as a small error).
double max_relative_error(std::span<const double> out, std::span<const double> ref);

/// The worse of two errors for a running maximum: NaN when either is NaN,
/// else the larger (std::max would drop a NaN in its second argument).
double worse_error(double a, double b);

}  // namespace moe

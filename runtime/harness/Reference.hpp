#pragma once
// The independent single-process reference: every expert local, one simple
// loop per token-slot in double precision, weights regenerated from the seed.
// No Kokkos, no BLAS, no dispatch: it shares only the synthetic generators.

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/common/ModelConfig.hpp"

namespace moe {

/// Per-slot expert outputs g * FFN_e(x_t) in double, [slot][D], for all tokens
/// of all ranks (x: T x D, expert_ids and gates: T*K).
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

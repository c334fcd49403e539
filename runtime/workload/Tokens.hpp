#pragma once
// The synthetic token activations every run starts from.

#include <cstdint>

#include "kernels/KernelTypes.hpp"
#include "runtime/common/ModelConfig.hpp"

namespace moe {

/// Fills this rank's token activations for (step, layer): a pure function of
/// (seed, step, layer, global token index), so results do not depend on P.
void generate_tokens(const ModelShape& shape, uint64_t seed, int step, int layer, int64_t token_offset,
                     const Matrix& x);

/// Fills this rank's output gradient G (the backward's dL/dY for the loss
/// L = <Y, G>, docs/backward.md) for (step, layer): uniform in [-1, 1), a pure
/// function of (seed, step, layer, global token index) like the tokens.
void generate_output_grad(uint64_t seed, int step, int layer, int64_t token_offset, const Matrix& g);

/// The same value on the host (the reference regenerates G with it).
float output_grad_value(uint64_t seed, int step, int layer, int64_t token, int64_t d);

}  // namespace moe

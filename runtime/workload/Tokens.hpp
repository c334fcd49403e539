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

}  // namespace moe

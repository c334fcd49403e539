#pragma once
// Row permutations between the runtime's buffers (token order, send order,
// receive order, expert-major order) and the gate-weighted combine.

#include "kernels/KernelTypes.hpp"

namespace moe {

/// dst(i, :) = src(index(i), :) for every row i of dst.
void gather_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& index, const UnmanagedMatrix& dst);

/// dst(index(i), :) = src(i, :) for every row i of src (index is injective).
void scatter_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& index, const UnmanagedMatrix& dst);

/// out(t, :) = sum_k gates(t*K + k) * y(slot_row(t*K + k), :), skipping
/// slot_row < 0 (dropped slots contribute zero).
void combine_slots(const ConstUnmanagedMatrix& y, const ConstIndexVector& slot_row, const ConstVector& gates, int top_k,
                   const UnmanagedMatrix& out);

}  // namespace moe

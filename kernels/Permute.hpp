#pragma once
// Row permutations between the runtime's buffers (token order, send order,
// receive order, expert-major order) and the gate-weighted combine.

#include "kernels/KernelTypes.hpp"

namespace moe {

/// dst(i, :) = src(index(i), :) for every row i of dst.
void gather_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& index, const UnmanagedMatrix& dst);

/// dst(index(i), :) = src(i, :) for every row i of src (index is injective).
void scatter_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& index, const UnmanagedMatrix& dst);

/// dst(dst_index(i), :) = src(src_index(i), :) for every i (dst_index is injective).
void copy_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& src_index, const UnmanagedMatrix& dst,
               const ConstIndexVector& dst_index);

/// Where the outputs of a rank's slots are: each slot's row in one of two
/// matrices (the rows returned by the all-to-all, and the rows computed on
/// the rank itself), -1 in the one that does not hold it.
struct SlotOutputs {
  ConstUnmanagedMatrix y_a;
  ConstIndexVector row_a;
  ConstUnmanagedMatrix y_b;
  ConstIndexVector row_b;
};

/// out(t, :) = sum_k gates(t*K + k) * y(slot t*K + k), the slot's row taken
/// from y_a where row_a >= 0, else from y_b where row_b >= 0, else zero (a
/// dropped slot). An empty `gates` weighs every slot 1 (the backward's
/// input-gradient combine: the gate is already in the slot's gradient).
void combine_slots(const SlotOutputs& y, const ConstVector& gates, int top_k, const UnmanagedMatrix& out);

/// The backward's gate-weight gradients: d_gates(t*K + k) = <y(slot), g(t, :)>
/// with the slot's row found as in combine_slots (0 for a dropped slot).
void slot_row_dots(const SlotOutputs& y, const ConstUnmanagedMatrix& g, int top_k, const Vector& d_gates);

/// The backward's output-gradient rows: for every slot s = t*K + k with
/// row(s) >= 0, dst(row(s), :) = gates(s) * g(t, :).
void scatter_gated_rows(const ConstUnmanagedMatrix& g, const ConstVector& gates, int top_k, const ConstIndexVector& row,
                        const UnmanagedMatrix& dst);

}  // namespace moe

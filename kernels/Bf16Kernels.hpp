#pragma once
// Kernels on bf16 storage (kernels/Bf16.hpp): widening to fp32, rounding
// fp32 to bf16, and the gate-weighted combine of bf16 slot outputs
// accumulated in fp32. bf16 rows live in the runtime's fp32-word buffers, two
// elements per word (an even number of columns, as --dtype bf16 requires of
// --hidden), so exchange buffers, workspaces and messages stay untyped words
// and their byte counts follow the element size.

#include "kernels/Bf16.hpp"
#include "kernels/KernelTypes.hpp"
#include "kernels/Permute.hpp"

namespace moe {

using Bf16Matrix = Kokkos::View<bf16**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using ConstBf16Matrix =
    Kokkos::View<const bf16**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

/// The bf16 matrix (rows x 2*cols) stored in a matrix of fp32 words (rows x cols).
inline Bf16Matrix bf16_rows(const UnmanagedMatrix& words) {
  return Bf16Matrix(reinterpret_cast<bf16*>(words.data()), words.extent(0), 2 * words.extent(1));
}
inline ConstBf16Matrix bf16_rows(const ConstUnmanagedMatrix& words) {
  return ConstBf16Matrix(reinterpret_cast<const bf16*>(words.data()), words.extent(0), 2 * words.extent(1));
}

/// dst = src rounded to bf16 (same shape).
void narrow_to_bf16(const ConstUnmanagedMatrix& src, const Bf16Matrix& dst);
/// n values at src rounded to bf16 at dst (device pointers).
void narrow_to_bf16(const float* src, int64_t n, bf16* dst);
/// dst = src widened to fp32 (same shape).
void widen_from_bf16(const ConstBf16Matrix& src, const UnmanagedMatrix& dst);

/// dst (rows x nc) = columns [c0, c0 + nc) of src widened to fp32, nc = dst.extent(1).
void widen_columns(const ConstBf16Matrix& src, int64_t c0, const UnmanagedMatrix& dst);

/// combine_slots on bf16 slot outputs (y_a, y_b hold bf16 rows in fp32 words):
/// out(t, :) = sum_k gates(s) * y(slot s) accumulated in fp32, then rounded
/// to bf16 into `out` (bf16 rows).
void combine_slots_bf16(const SlotOutputs& y, const ConstVector& gates, int top_k, const Bf16Matrix& out);

}  // namespace moe

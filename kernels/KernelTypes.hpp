#pragma once
// View types shared by the kernels and the runtime. Memory and execution
// spaces come from Kokkos' defaults (Serial on host, CUDA on a CUDA build),
// never from #ifdefs in algorithm code.

#include <cstdint>

#include <Kokkos_Core.hpp>

namespace moe {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using MemSpace = ExecSpace::memory_space;

/// 2-D iteration over a row-major (LayoutRight) matrix: the column index j is
/// the fastest on every backend (Iterate::Right for the tiles and inside them),
/// so on CUDA neighbouring threads read neighbouring floats (coalesced) and on
/// the host the inner loop walks contiguous memory. The default, Rank<2>, is
/// Iterate::Left on CUDA: uncoalesced over row-major views.
using RowMajorPolicy2D =
    Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2, Kokkos::Iterate::Right, Kokkos::Iterate::Right>>;

/// Row-major matrices: rows are token-slots (or weight rows), contiguous, which
/// is what the BLAS-backed GEMM needs (a LayoutStride view would not reach it).
using Matrix = Kokkos::View<float**, Kokkos::LayoutRight, MemSpace>;
using ConstMatrix = Kokkos::View<const float**, Kokkos::LayoutRight, MemSpace>;
using UnmanagedMatrix = Kokkos::View<float**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using ConstUnmanagedMatrix =
    Kokkos::View<const float**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using Vector = Kokkos::View<float*, MemSpace>;
using ConstVector = Kokkos::View<const float*, MemSpace>;
using IndexVector = Kokkos::View<int64_t*, MemSpace>;
using ConstIndexVector = Kokkos::View<const int64_t*, MemSpace>;
using ExpertIdVector = Kokkos::View<int32_t*, MemSpace>;

/// Rows [begin, begin + count) of a row-major matrix as an unmanaged view
/// (contiguous, so GEMMs on it still go to the vendor BLAS).
inline UnmanagedMatrix row_block(const Matrix& m, int64_t begin, int64_t count) {
  return UnmanagedMatrix(m.data() + begin * static_cast<int64_t>(m.extent(1)), static_cast<size_t>(count), m.extent(1));
}
inline UnmanagedMatrix row_block(const UnmanagedMatrix& m, int64_t begin, int64_t count) {
  return UnmanagedMatrix(m.data() + begin * static_cast<int64_t>(m.extent(1)), static_cast<size_t>(count), m.extent(1));
}
inline ConstUnmanagedMatrix row_block(const ConstUnmanagedMatrix& m, int64_t begin, int64_t count) {
  return ConstUnmanagedMatrix(m.data() + begin * static_cast<int64_t>(m.extent(1)), static_cast<size_t>(count),
                              m.extent(1));
}

}  // namespace moe

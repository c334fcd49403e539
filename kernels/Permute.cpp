#include "kernels/Permute.hpp"

namespace moe {

void gather_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& index, const UnmanagedMatrix& dst) {
  const int64_t n = static_cast<int64_t>(dst.extent(0));
  const int64_t D = static_cast<int64_t>(dst.extent(1));
  if (n == 0) return;
  Kokkos::parallel_for(
      "moe::gather_rows", RowMajorPolicy2D({0, 0}, {n, D}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { dst(i, j) = src(index(i), j); });
}

void scatter_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& index, const UnmanagedMatrix& dst) {
  const int64_t n = static_cast<int64_t>(src.extent(0));
  const int64_t D = static_cast<int64_t>(src.extent(1));
  if (n == 0) return;
  Kokkos::parallel_for(
      "moe::scatter_rows", RowMajorPolicy2D({0, 0}, {n, D}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { dst(index(i), j) = src(i, j); });
}

void combine_slots(const ConstUnmanagedMatrix& y, const ConstIndexVector& slot_row, const ConstVector& gates, int top_k,
                   const UnmanagedMatrix& out) {
  const int64_t B = static_cast<int64_t>(out.extent(0));
  const int64_t D = static_cast<int64_t>(out.extent(1));
  if (B == 0) return;
  const int64_t K = top_k;
  Kokkos::parallel_for(
      "moe::combine_slots", RowMajorPolicy2D({0, 0}, {B, D}), KOKKOS_LAMBDA(const int64_t t, const int64_t j) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t row = slot_row(t * K + k);
          if (row >= 0) acc += gates(t * K + k) * y(row, j);
        }
        out(t, j) = acc;
      });
}

}  // namespace moe

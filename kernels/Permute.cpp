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

void copy_rows(const ConstUnmanagedMatrix& src, const ConstIndexVector& src_index, const UnmanagedMatrix& dst,
               const ConstIndexVector& dst_index) {
  const int64_t n = static_cast<int64_t>(src_index.extent(0));
  const int64_t D = static_cast<int64_t>(dst.extent(1));
  if (n == 0) return;
  Kokkos::parallel_for(
      "moe::copy_rows", RowMajorPolicy2D({0, 0}, {n, D}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { dst(dst_index(i), j) = src(src_index(i), j); });
}

void combine_slots(const SlotOutputs& y, const ConstVector& gates, int top_k, const UnmanagedMatrix& out) {
  const int64_t B = static_cast<int64_t>(out.extent(0));
  const int64_t D = static_cast<int64_t>(out.extent(1));
  if (B == 0) return;
  const int64_t K = top_k;
  const ConstUnmanagedMatrix ya = y.y_a, yb = y.y_b;
  const ConstIndexVector ra = y.row_a, rb = y.row_b;
  const bool weighted = gates.extent(0) > 0;
  Kokkos::parallel_for(
      "moe::combine_slots", RowMajorPolicy2D({0, 0}, {B, D}), KOKKOS_LAMBDA(const int64_t t, const int64_t j) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t * K + k;
          const float w = weighted ? gates(s) : 1.0f;
          if (ra(s) >= 0)
            acc += w * ya(ra(s), j);
          else if (rb(s) >= 0)
            acc += w * yb(rb(s), j);
        }
        out(t, j) = acc;
      });
}

void slot_row_dots(const SlotOutputs& y, const ConstUnmanagedMatrix& g, int top_k, const Vector& d_gates) {
  const int64_t S = static_cast<int64_t>(d_gates.extent(0));
  const int64_t D = static_cast<int64_t>(g.extent(1));
  if (S == 0) return;
  const int64_t K = top_k;
  const ConstUnmanagedMatrix ya = y.y_a, yb = y.y_b;
  const ConstIndexVector ra = y.row_a, rb = y.row_b;
  Kokkos::parallel_for(
      "moe::slot_row_dots", Kokkos::RangePolicy<ExecSpace>(0, S), KOKKOS_LAMBDA(const int64_t s) {
        const int64_t t = s / K;
        float acc = 0.0f;
        if (ra(s) >= 0)
          for (int64_t j = 0; j < D; ++j) acc += ya(ra(s), j) * g(t, j);
        else if (rb(s) >= 0)
          for (int64_t j = 0; j < D; ++j) acc += yb(rb(s), j) * g(t, j);
        d_gates(s) = acc;
      });
}

void scatter_gated_rows(const ConstUnmanagedMatrix& g, const ConstVector& gates, int top_k, const ConstIndexVector& row,
                        const UnmanagedMatrix& dst) {
  const int64_t S = static_cast<int64_t>(row.extent(0));
  const int64_t D = static_cast<int64_t>(g.extent(1));
  if (S == 0 || D == 0) return;
  const int64_t K = top_k;
  Kokkos::parallel_for(
      "moe::scatter_gated_rows", RowMajorPolicy2D({0, 0}, {S, D}), KOKKOS_LAMBDA(const int64_t s, const int64_t j) {
        if (row(s) >= 0) dst(row(s), j) = gates(s) * g(s / K, j);
      });
}

}  // namespace moe

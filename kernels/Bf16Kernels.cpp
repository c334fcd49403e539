#include "kernels/Bf16Kernels.hpp"

namespace moe {

void narrow_to_bf16(const ConstUnmanagedMatrix& src, const Bf16Matrix& dst) {
  const int64_t n = static_cast<int64_t>(src.extent(0)), m = static_cast<int64_t>(src.extent(1));
  if (n == 0 || m == 0) return;
  Kokkos::parallel_for(
      "moe::narrow_to_bf16", RowMajorPolicy2D({0, 0}, {n, m}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { dst(i, j) = to_bf16(src(i, j)); });
}

void narrow_to_bf16(const float* src, int64_t n, bf16* dst) {
  Kokkos::parallel_for(
      "moe::narrow_to_bf16", Kokkos::RangePolicy<ExecSpace>(0, n),
      KOKKOS_LAMBDA(const int64_t i) { dst[i] = to_bf16(src[i]); });
}

void widen_from_bf16(const ConstBf16Matrix& src, const UnmanagedMatrix& dst) {
  const int64_t n = static_cast<int64_t>(src.extent(0)), m = static_cast<int64_t>(src.extent(1));
  if (n == 0 || m == 0) return;
  Kokkos::parallel_for(
      "moe::widen_from_bf16", RowMajorPolicy2D({0, 0}, {n, m}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { dst(i, j) = to_float(src(i, j)); });
}

void widen_columns(const ConstBf16Matrix& src, int64_t c0, const UnmanagedMatrix& dst) {
  const int64_t n = static_cast<int64_t>(dst.extent(0)), m = static_cast<int64_t>(dst.extent(1));
  if (n == 0 || m == 0) return;
  Kokkos::parallel_for(
      "moe::widen_columns", RowMajorPolicy2D({0, 0}, {n, m}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { dst(i, j) = to_float(src(i, c0 + j)); });
}

void combine_slots_bf16(const SlotOutputs& y, const ConstVector& gates, int top_k, const Bf16Matrix& out) {
  const int64_t B = static_cast<int64_t>(out.extent(0));
  const int64_t D = static_cast<int64_t>(out.extent(1));
  if (B == 0) return;
  const int64_t K = top_k;
  const ConstBf16Matrix ya = bf16_rows(y.y_a), yb = bf16_rows(y.y_b);
  const ConstIndexVector ra = y.row_a, rb = y.row_b;
  Kokkos::parallel_for(
      "moe::combine_slots_bf16", RowMajorPolicy2D({0, 0}, {B, D}), KOKKOS_LAMBDA(const int64_t t, const int64_t j) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t * K + k;
          if (ra(s) >= 0)
            acc += gates(s) * to_float(ya(ra(s), j));
          else if (rb(s) >= 0)
            acc += gates(s) * to_float(yb(rb(s), j));
        }
        out(t, j) = to_bf16(acc);
      });
}

}  // namespace moe

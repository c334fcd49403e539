#include "kernels/ExpertFfnBackward.hpp"

namespace moe {

void swiglu_activation_backward(const ConstUnmanagedMatrix& gu, const float* b_gu, const ActivationParams& p,
                                const ConstUnmanagedMatrix& dact, const UnmanagedMatrix& dgu) {
  const int64_t n = static_cast<int64_t>(dact.extent(0));
  const int64_t H = static_cast<int64_t>(dact.extent(1));
  if (n == 0 || H == 0) return;
  Kokkos::parallel_for(
      "moe::swiglu_backward", RowMajorPolicy2D({0, 0}, {n, H}), KOKKOS_LAMBDA(const int64_t i, const int64_t j) {
        float g = gu(i, j), u = gu(i, H + j);
        if (b_gu) {
          g += b_gu[j];
          u += b_gu[H + j];
        }
        const GateUpGrad d = activate_gate_up_grad(g, u, p);
        dgu(i, j) = dact(i, j) * d.d_gate;
        dgu(i, H + j) = dact(i, j) * d.d_up;
      });
}

void add_column_sums(const ConstUnmanagedMatrix& m, float* out) {
  const int64_t n = static_cast<int64_t>(m.extent(0));
  const int64_t cols = static_cast<int64_t>(m.extent(1));
  if (n == 0 || cols == 0) return;
  Kokkos::parallel_for(
      "moe::add_column_sums", Kokkos::RangePolicy<ExecSpace>(0, cols), KOKKOS_LAMBDA(const int64_t j) {
        float acc = 0.0f;
        for (int64_t i = 0; i < n; ++i) acc += m(i, j);
        out[j] += acc;
      });
}

void add_to(float* dst, const float* src, int64_t n) {
  if (n == 0) return;
  Kokkos::parallel_for(
      "moe::add_to", Kokkos::RangePolicy<ExecSpace>(0, n), KOKKOS_LAMBDA(const int64_t i) { dst[i] += src[i]; });
}

}  // namespace moe

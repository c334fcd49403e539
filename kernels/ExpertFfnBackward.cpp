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

}  // namespace moe

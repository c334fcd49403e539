#include "ExpertFfn.hpp"

#include "Gemm.hpp"
#include "KokkosMath.hpp"

namespace moe {

void swiglu_activation(const ConstUnmanagedMatrix& gu, const float* b_gu, const ActivationParams& p,
                       const UnmanagedMatrix& act) {
  const int64_t n = static_cast<int64_t>(act.extent(0));
  const int64_t H = static_cast<int64_t>(act.extent(1));
  if (n == 0) return;
  const bool gpt_oss = p.gpt_oss;
  const float limit = p.limit;
  const float alpha = p.alpha;
  Kokkos::parallel_for(
      "moe::swiglu", Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>>({0, 0}, {n, H}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) {
        float g = gu(i, j);
        float u = gu(i, j + H);
        if (b_gu != nullptr) {
          g += b_gu[j];
          u += b_gu[j + H];
        }
        if (gpt_oss) {
          // gpt-oss: clamp, then glu = g * sigmoid(alpha * g), out = (u + 1) * glu.
          g = kmath::min(g, limit);
          u = kmath::max(kmath::min(u, limit), -limit);
          act(i, j) = (u + 1.0f) * (g * kmath::sigmoid(alpha * g));
        } else {
          act(i, j) = g * kmath::sigmoid(g) * u;
        }
      });
}

void add_row_bias(const UnmanagedMatrix& y, const float* bias) {
  const int64_t n = static_cast<int64_t>(y.extent(0));
  const int64_t D = static_cast<int64_t>(y.extent(1));
  if (n == 0 || bias == nullptr) return;
  Kokkos::parallel_for(
      "moe::add_row_bias", Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>>({0, 0}, {n, D}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { y(i, j) += bias[j]; });
}

void expert_ffn(const ConstUnmanagedMatrix& x, const ExpertWeightsView& w, const ActivationParams& p,
                const UnmanagedMatrix& gu_ws, const UnmanagedMatrix& act_ws, const UnmanagedMatrix& y) {
  const int64_t n = static_cast<int64_t>(x.extent(0));
  if (n == 0) return;
  UnmanagedMatrix gu = row_block(gu_ws, 0, n);
  UnmanagedMatrix act = row_block(act_ws, 0, n);
  gemm_nn(x, w.w_gu, gu);
  swiglu_activation(gu, w.b_gu, p, act);
  gemm_nn(act, w.w_d, y);
  add_row_bias(y, w.b_d);
}

}  // namespace moe

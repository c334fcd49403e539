#include "kernels/RouterKernels.hpp"

#include "kernels/KokkosMath.hpp"

namespace moe {

void topk_experts(const ConstUnmanagedMatrix& logits, int top_k, const ExpertIdVector& expert_ids) {
  const int64_t B = static_cast<int64_t>(logits.extent(0));
  const int N = static_cast<int>(logits.extent(1));
  const int K = top_k;
  Kokkos::parallel_for(
      "moe::topk_experts", Kokkos::RangePolicy<ExecSpace>(0, B), KOKKOS_LAMBDA(const int64_t t) {
        // The k-th pick is the best element strictly after the (k-1)-th pick in
        // the order (logit desc, id asc): O(K*N), no scratch memory.
        float prev_v = 0.0f;
        int prev_e = -1;
        for (int k = 0; k < K; ++k) {
          int best = -1;
          float best_v = 0.0f;
          for (int e = 0; e < N; ++e) {
            const float v = logits(t, e);
            const bool after_prev = prev_e < 0 || v < prev_v || (v == prev_v && e > prev_e);
            if (!after_prev) continue;
            if (best < 0 || v > best_v) {
              best = e;
              best_v = v;
            }
          }
          expert_ids(t * K + k) = best;
          prev_v = best_v;
          prev_e = best;
        }
      });
}

void chosen_softmax(const ConstUnmanagedMatrix& logits, const ExpertIdVector& expert_ids, int top_k,
                    const Vector& gates) {
  const int64_t B = static_cast<int64_t>(logits.extent(0));
  const int K = top_k;
  Kokkos::parallel_for(
      "moe::chosen_softmax", Kokkos::RangePolicy<ExecSpace>(0, B), KOKKOS_LAMBDA(const int64_t t) {
        float mx = logits(t, expert_ids(t * K));
        for (int k = 1; k < K; ++k) mx = kmath::max(mx, logits(t, expert_ids(t * K + k)));
        float sum = 0.0f;
        for (int k = 0; k < K; ++k) {
          const float g = kmath::exp(logits(t, expert_ids(t * K + k)) - mx);
          gates(t * K + k) = g;
          sum += g;
        }
        for (int k = 0; k < K; ++k) gates(t * K + k) /= sum;
      });
}

void chosen_softmax_backward(const ConstVector& gates, const ConstVector& d_gates, const ExpertIdVector& expert_ids,
                             int top_k, const UnmanagedMatrix& d_logits) {
  const int64_t B = static_cast<int64_t>(d_logits.extent(0));
  const int64_t N = static_cast<int64_t>(d_logits.extent(1));
  if (B == 0) return;
  const int64_t K = top_k;
  Kokkos::parallel_for(
      "moe::chosen_softmax_backward", Kokkos::RangePolicy<ExecSpace>(0, B), KOKKOS_LAMBDA(const int64_t t) {
        for (int64_t e = 0; e < N; ++e) d_logits(t, e) = 0.0f;
        float mean = 0.0f;
        for (int64_t k = 0; k < K; ++k) mean += gates(t * K + k) * d_gates(t * K + k);
        // A token that names one expert twice adds both slots into its one logit.
        for (int64_t k = 0; k < K; ++k)
          d_logits(t, expert_ids(t * K + k)) += gates(t * K + k) * (d_gates(t * K + k) - mean);
      });
}

}  // namespace moe

#pragma once
// One expert's feed-forward block on a contiguous block of token-slots:
//   gu  = x * W_gu (+ b_gu)        [n x 2H]  (gate columns [0, H), up [H, 2H))
//   act = silu(gate) * up          [n x H]   (or the gpt-oss clamped variant)
//   y   = act * W_d (+ b_d)        [n x D]
// The two GEMMs go to the vendor BLAS through gemm_nn; the activation is one
// Kokkos kernel.

#include "kernels/KernelTypes.hpp"

namespace moe {

struct ExpertWeightsView {
  ConstUnmanagedMatrix w_gu;  // D x 2H
  ConstUnmanagedMatrix w_d;   // H x D
  const float* b_gu = nullptr;  // 2H, gpt-oss only (device pointer)
  const float* b_d = nullptr;   // D, gpt-oss only (device pointer)
};

struct ActivationParams {
  bool gpt_oss = false;  // clamp + alpha variant of gpt-oss
  float limit = 7.0f;
  float alpha = 1.702f;
};

/// gu (n x 2H) -> act (n x H), adding b_gu first when given.
void swiglu_activation(const ConstUnmanagedMatrix& gu, const float* b_gu, const ActivationParams& p,
                       const UnmanagedMatrix& act);

/// y += bias broadcast over rows.
void add_row_bias(const UnmanagedMatrix& y, const float* bias);

/// Runs the whole expert block; gu_ws (>= n x 2H) and act_ws (>= n x H) are
/// caller-owned workspaces (row blocks of them are used).
void expert_ffn(const ConstUnmanagedMatrix& x, const ExpertWeightsView& w, const ActivationParams& p,
                const UnmanagedMatrix& gu_ws, const UnmanagedMatrix& act_ws, const UnmanagedMatrix& y);

}  // namespace moe

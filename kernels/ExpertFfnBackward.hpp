#pragma once
// The elementwise backward of the expert activation (docs/backward.md): given
// the gate/up pre-activations (as the forward's gate/up GEMM wrote them, the
// biases not yet added) and the gradient of the activation, the gradient of
// the gate and up pre-activations. The clamp of the gpt-oss variant passes no
// gradient where it binds.

#include "kernels/ExpertFfn.hpp"
#include "kernels/KernelTypes.hpp"
#include "kernels/KokkosMath.hpp"

namespace moe {

/// d act / d g and d act / d u of activate_gate_up at (g, u) (biases added).
struct GateUpGrad {
  float d_gate, d_up;
};

KOKKOS_INLINE_FUNCTION GateUpGrad activate_gate_up_grad(float g, float u, const ActivationParams& p) {
  if (p.gpt_oss) {
    const float gc = clamp_gate(g, p);
    const float uc = clamp_up(u, p);
    const float s = kmath::sigmoid(p.alpha * gc);
    const float glu = gc * s;
    const float d_glu = s + p.alpha * gc * s * (1.0f - s);
    return {g < p.limit ? (uc + 1.0f) * d_glu : 0.0f, (u > -p.limit && u < p.limit) ? glu : 0.0f};
  }
  const float s = kmath::sigmoid(g);
  return {u * s * (1.0f + g * (1.0f - s)), g * s};
}

/// gu (n x 2H, pre-bias), dact (n x H) -> dgu (n x 2H): dgu(i, j) = dact(i, j)
/// * d act / d g, dgu(i, H + j) = dact(i, j) * d act / d u, with b_gu (2H,
/// device pointer) added to the pre-activations first when given.
void swiglu_activation_backward(const ConstUnmanagedMatrix& gu, const float* b_gu, const ActivationParams& p,
                                const ConstUnmanagedMatrix& dact, const UnmanagedMatrix& dgu);

/// out[j] += sum over rows i of m(i, j) (a bias gradient; out: device pointer).
void add_column_sums(const ConstUnmanagedMatrix& m, float* out);

/// dst[i] += src[i] for i < n (device pointers): a partial gradient summed in.
void add_to(float* dst, const float* src, int64_t n);

}  // namespace moe

#pragma once
// The GEMMs the expert kernels use: C = op(A) * op(B) + beta * C, row-major
// fp32, op() the identity or the transpose (the backward pass needs A^T B and
// A B^T; nothing is copied, the BLAS reads the operands transposed). Backends: Kokkos Kernels' KokkosBlas::gemm (BLAS
// TPL) on host builds (GemmKokkosBlas.cpp); cuBLAS on CUDA builds (GemmCublas.cpp).

#include "kernels/KernelTypes.hpp"

namespace moe {

/// C (m x n) = op(A) (m x k) * op(B) (k x n) + beta * C, all three stored
/// row-major; op(X) = X^T when the flag is set (A stored k x m, B n x k).
void gemm(bool trans_a, bool trans_b, const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B,
          const UnmanagedMatrix& C, float beta = 0.0f);

/// C (m x n) = A (m x k) * B (k x n) + beta * C. All three row-major.
inline void gemm_nn(const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B, const UnmanagedMatrix& C,
                    float beta = 0.0f) {
  gemm(false, false, A, B, C, beta);
}

/// C (m x n) = A^T * B + beta * C with A stored k x m, B k x n (weight gradients).
inline void gemm_tn(const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B, const UnmanagedMatrix& C,
                    float beta = 0.0f) {
  gemm(true, false, A, B, C, beta);
}
/// C (m x n) = A * B^T + beta * C with A stored m x k, B n x k (input gradients).
inline void gemm_nt(const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B, const UnmanagedMatrix& C,
                    float beta = 0.0f) {
  gemm(false, true, A, B, C, beta);
}

/// Name of the GEMM backend compiled in (for reports).
const char* gemm_backend();

}  // namespace moe

#pragma once
// The one GEMM the expert kernels use: C = A * B + beta * C, row-major fp32.
// Backends: Kokkos Kernels' KokkosBlas::gemm (BLAS TPL) on host builds
// (GemmKokkosBlas.cpp); cuBLAS on CUDA builds (GemmCublas.cpp).

#include "kernels/KernelTypes.hpp"

namespace moe {

/// C (m x n) = A (m x k) * B (k x n) + beta * C. All three row-major.
void gemm_nn(const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B, const UnmanagedMatrix& C, float beta = 0.0f);

/// Name of the GEMM backend compiled in (for reports).
const char* gemm_backend();

}  // namespace moe

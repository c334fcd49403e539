// GEMM through Kokkos Kernels. With the BLAS TPL (Debian's build, or a
// cluster's) row-major float views go to the vendor sgemm.
#include <KokkosBlas3_gemm.hpp>

#include "kernels/Gemm.hpp"

namespace moe {

void gemm(bool trans_a, bool trans_b, const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B,
          const UnmanagedMatrix& C, float beta) {
  if (C.extent(0) == 0 || C.extent(1) == 0) return;
  const size_t k = trans_a ? A.extent(0) : A.extent(1);
  if (k == 0) {  // an empty sum: C = beta * C (the BLAS may not be called with k = 0)
    if (beta != 1.0f)
      Kokkos::parallel_for(
          "moe::gemm_scale",
          RowMajorPolicy2D({0, 0}, {static_cast<int64_t>(C.extent(0)), static_cast<int64_t>(C.extent(1))}),
          KOKKOS_LAMBDA(const int64_t i, const int64_t j) { C(i, j) = beta == 0.0f ? 0.0f : beta * C(i, j); });
    return;
  }
  KokkosBlas::gemm(trans_a ? "T" : "N", trans_b ? "T" : "N", 1.0f, A, B, beta, C);
}

const char* gemm_backend() { return "KokkosBlas::gemm (BLAS TPL)"; }

}  // namespace moe

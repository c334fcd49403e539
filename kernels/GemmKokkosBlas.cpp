// GEMM through Kokkos Kernels. With the BLAS TPL (Debian's build, or a
// cluster's) row-major float views go to the vendor sgemm.
#include <KokkosBlas3_gemm.hpp>

#include "kernels/Gemm.hpp"

namespace moe {

void gemm_nn(const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B, const UnmanagedMatrix& C, float beta) {
  if (C.extent(0) == 0 || C.extent(1) == 0) return;
  KokkosBlas::gemm("N", "N", 1.0f, A, B, beta, C);
}

const char* gemm_backend() { return "KokkosBlas::gemm (BLAS TPL)"; }

}  // namespace moe

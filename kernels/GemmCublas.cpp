// GEMM through cuBLAS on Kokkos-CUDA builds: the views live in device memory
// and the call is issued on Kokkos' default CUDA stream, so it is ordered with
// the Kokkos kernels around it without extra fences. fp32 in, fp32 out, full
// fp32 (no TF32). On a CUDA configuration with a Serial Kokkos (CI) this file
// is compiled but not linked (views are host memory there), so it keeps
// compiling against the Kokkos API.
#include "kernels/Gemm.hpp"
#include "kernels/cuda/CublasGemm.hpp"

namespace moe {

void gemm(bool trans_a, bool trans_b, const ConstUnmanagedMatrix& A, const ConstUnmanagedMatrix& B,
          const UnmanagedMatrix& C, float beta) {
  const int64_t m = static_cast<int64_t>(C.extent(0)), n = static_cast<int64_t>(C.extent(1));
  const int64_t k = static_cast<int64_t>(trans_a ? A.extent(0) : A.extent(1));
  if (m == 0 || n == 0) return;
  cuda::Stream stream = nullptr;
#ifdef KOKKOS_ENABLE_CUDA
  stream = ExecSpace().cuda_stream();
#endif
  cuda::gemm_f32(stream, m, n, k, A.data(), static_cast<int64_t>(A.stride(0)), B.data(),
                 static_cast<int64_t>(B.stride(0)), C.data(), static_cast<int64_t>(C.stride(0)), beta, trans_a,
                 trans_b);
}

const char* gemm_backend() { return "cuBLAS (fp32)"; }

}  // namespace moe

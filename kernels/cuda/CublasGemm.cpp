#include "kernels/cuda/CublasGemm.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <string>

#include <climits>
#include <cublas_v2.h>

namespace moe::cuda {

namespace {
void check_cublas(cublasStatus_t s, const char* call, const std::string& detail = {}) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  int dev = -1;
  if (cudaGetDevice(&dev) != cudaSuccess) dev = -1;
  throw CudaError(std::string(call) + " failed on GPU " + std::to_string(dev) + ": " + cublasGetStatusName(s) + " (" +
                  cublasGetStatusString(s) + ")" + (detail.empty() ? "" : ", " + detail));
}

cudaDataType_t to_cuda(DType t) {
  switch (t) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    case DType::F16:
      return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw CudaError(std::string("cuBLAS GEMM: ") + what + " = " + std::to_string(v) + " does not fit an int");
  return static_cast<int>(v);
}

void gemm_ex(cublasHandle_t h, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B, int64_t ldb,
             void* C, int64_t ldc, DType ab, DType c, float alpha, float beta, bool trans_a = false,
             bool trans_b = false) {
  if (m == 0 || n == 0) return;
  if (ab == DType::F32 && c != DType::F32)
    throw CudaError("cuBLAS GEMM: fp32 operands need an fp32 result (asked for " + std::string(dtype_name(c)) + ")");
  // Column-major view: C^T (n x m) = op(B)^T (n x k) * op(A)^T (k x m). A
  // row-major X read column-major is X^T, so op(X)^T is X read as stored
  // (CUBLAS_OP_N) when op is the identity and transposed (CUBLAS_OP_T) when
  // op is the transpose.
  const cublasStatus_t s =
      cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(n, "n"),
                   to_int(m, "m"), to_int(k, "k"), &alpha, B, to_cuda(ab), to_int(std::max<int64_t>(1, ldb), "ldb"), A,
                   to_cuda(ab), to_int(std::max<int64_t>(1, lda), "lda"), &beta, C, to_cuda(c),
                   to_int(std::max<int64_t>(1, ldc), "ldc"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (s != CUBLAS_STATUS_SUCCESS)
    check_cublas(s, "cublasGemmEx",
                 "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " " +
                     dtype_name(ab) + "->" + dtype_name(c));
}
}  // namespace

Blas::Blas(Stream stream) {
  cublasHandle_t h = nullptr;
  check_cublas(cublasCreate(&h), "cublasCreate");
  handle_ = h;
  set_stream(stream);
  // Full fp32 for fp32 operands (no TF32 shortcut): the exactness bar is 1e-5.
  check_cublas(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

Blas::~Blas() {
  if (handle_) cublasDestroy(handle_);
}

void Blas::set_stream(Stream stream) { check_cublas(cublasSetStream(handle_, stream), "cublasSetStream"); }

void Blas::gemm(int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B, int64_t ldb, void* C,
                int64_t ldc, DType ab, DType c, float alpha, float beta) {
  gemm_ex(handle_, m, n, k, A, lda, B, ldb, C, ldc, ab, c, alpha, beta);
}

void gemm_f32(Stream stream, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb,
              float* C, int64_t ldc, float beta, bool trans_a, bool trans_b) {
  // One handle per thread and device, created on first use and kept for the
  // life of the process (destroying it after the CUDA context is torn down at
  // exit would fail).
  thread_local std::map<int, cublasHandle_t> handles;
  const int dev = current_device();
  cublasHandle_t& h = handles[dev];
  if (!h) {
    check_cublas(cublasCreate(&h), "cublasCreate");
    check_cublas(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  check_cublas(cublasSetStream(h, stream), "cublasSetStream");
  gemm_ex(h, m, n, k, A, lda, B, ldb, C, ldc, DType::F32, DType::F32, 1.0f, beta, trans_a, trans_b);
}

}  // namespace moe::cuda

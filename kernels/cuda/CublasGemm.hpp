#pragma once
// cuBLAS GEMMs on row-major matrices, with a dtype: fp32 operands (full fp32,
// no TF32), or bf16/fp16 operands with fp32 accumulation (cublasGemmEx,
// CUBLAS_COMPUTE_32F). Row-major C = A * B is the column-major product
// C^T = B^T * A^T, so the operands are passed swapped and nothing is copied.
// Usable without Kokkos: raw device pointers and a stream.

#include <cstdint>

#include "kernels/cuda/CudaRuntime.hpp"

struct CUstream_st;
struct cublasContext;

namespace moe::cuda {

using Stream = CUstream_st*;  // cudaStream_t

class Blas {
 public:
  /// A cuBLAS handle on the current device issuing on `stream` (nullptr: the
  /// legacy default stream).
  explicit Blas(Stream stream = nullptr);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  void set_stream(Stream stream);

  /// Row-major C (m x n) = alpha * A (m x k) * B (k x n) + beta * C, with A and
  /// B of type `ab` and C of type `c` (fp32 operands need an fp32 C); lda, ldb,
  /// ldc are row strides in elements. Throws CudaError naming cublasGemmEx.
  void gemm(int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B, int64_t ldb, void* C,
            int64_t ldc, DType ab, DType c, float alpha = 1.0f, float beta = 0.0f);

 private:
  cublasContext* handle_ = nullptr;
};

/// fp32 row-major GEMM C (m x n) = op(A) (m x k) * op(B) (k x n) + beta * C on
/// `stream` with a cached handle per thread and device: the backend of gemm_nn
/// and gemm on Kokkos-CUDA builds (kernels/GemmCublas.cpp). op(X) = X^T when
/// the flag is set (A then stored k x m, B n x k); lda, ldb, ldc are the
/// stored matrices' row strides.
void gemm_f32(Stream stream, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb,
              float* C, int64_t ldc, float beta, bool trans_a = false, bool trans_b = false);

}  // namespace moe::cuda

#pragma once
// The elementwise kernels of one expert block on the GPU, for any dtype of
// the GEMM path (fp32, bf16, fp16 storage; arithmetic in fp32). The GEMMs are
// cuBLAS (CublasGemm.hpp). Every launch is checked.

#include <cstdint>

#include "kernels/cuda/CublasGemm.hpp"

namespace moe::cuda {

struct SwigluParams {
  bool gpt_oss = false;  // gpt-oss variant: clamp at limit, glu = g * sigmoid(alpha * g), out = (u + 1) * glu
  float limit = 7.0f;
  float alpha = 1.702f;
};

/// dst[i] = src[i] converted, n elements.
void convert(const void* src, DType src_type, void* dst, DType dst_type, int64_t n, Stream stream);

/// gu (rows x 2H, gate columns [0, H), up [H, 2H)) -> act (rows x H), adding
/// the fp32 bias b_gu (2H, may be null) first. gu and act are of type t.
void swiglu(const void* gu, const float* b_gu, void* act, DType t, int64_t rows, int64_t H, const SwigluParams& p,
            Stream stream);

/// y (rows x D, type t) += bias (fp32, D) on every row.
void add_row_bias(void* y, DType t, const float* bias, int64_t rows, int64_t D, Stream stream);

/// Uniform values in [-scale, scale) from a counter-based hash of (seed, i).
void fill_uniform(void* dst, DType t, int64_t n, uint64_t seed, float scale, Stream stream);

}  // namespace moe::cuda

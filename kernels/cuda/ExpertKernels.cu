#include <cuda_runtime.h>

#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/ExpertKernels.hpp"

namespace moe::cuda {

namespace {

template <class T>
struct Elem;
template <>
struct Elem<float> {
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
};
template <>
struct Elem<__nv_bfloat16> {
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};
template <>
struct Elem<__half> {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half_rn(v); }
};

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

void check_launch(const char* kernel) { check_cuda_code(static_cast<int>(cudaGetLastError()), kernel); }

// Calls f.template operator()<T>() with the C++ type of dtype t.
template <class F>
void dispatch(DType t, F&& f) {
  switch (t) {
    case DType::F32:
      f(float{});
      break;
    case DType::BF16:
      f(__nv_bfloat16{});
      break;
    case DType::F16:
      f(__half{});
      break;
  }
}

template <class S, class D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = Elem<D>::store(Elem<S>::load(src[i]));
}

__device__ inline float sigmoidf_(float x) { return 1.0f / (1.0f + __expf(-x)); }

template <class T>
__global__ void swiglu_kernel(const T* __restrict__ gu, const float* __restrict__ b_gu, T* __restrict__ act,
                              int64_t rows, int64_t H, SwigluParams p) {
  const int64_t n = rows * H;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n; idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = idx / H, j = idx - i * H;
    float g = Elem<T>::load(gu[i * 2 * H + j]);
    float u = Elem<T>::load(gu[i * 2 * H + H + j]);
    if (b_gu != nullptr) {
      g += b_gu[j];
      u += b_gu[H + j];
    }
    float a;
    if (p.gpt_oss) {
      g = fminf(g, p.limit);
      u = fmaxf(fminf(u, p.limit), -p.limit);
      a = (u + 1.0f) * (g * sigmoidf_(p.alpha * g));
    } else {
      a = g * sigmoidf_(g) * u;
    }
    act[idx] = Elem<T>::store(a);
  }
}

template <class T>
__global__ void add_bias_kernel(T* __restrict__ y, const float* __restrict__ bias, int64_t rows, int64_t D) {
  const int64_t n = rows * D;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n; idx += int64_t{gridDim.x} * blockDim.x)
    y[idx] = Elem<T>::store(Elem<T>::load(y[idx]) + bias[idx % D]);
}

__device__ inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

template <class T>
__global__ void fill_kernel(T* __restrict__ dst, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const double u = static_cast<double>(mix64(mix64(seed) ^ static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
    dst[i] = Elem<T>::store(static_cast<float>((2.0 * u - 1.0) * scale));
  }
}

}  // namespace

void convert(const void* src, DType src_type, void* dst, DType dst_type, int64_t n, Stream stream) {
  if (n <= 0) return;
  dispatch(src_type, [&](auto s) {
    using S = decltype(s);
    dispatch(dst_type, [&](auto d) {
      using D = decltype(d);
      convert_kernel<S, D><<<grid_for(n), kThreads, 0, stream>>>(static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
  check_launch("convert kernel launch");
}

void swiglu(const void* gu, const float* b_gu, void* act, DType t, int64_t rows, int64_t H, const SwigluParams& p,
            Stream stream) {
  if (rows <= 0 || H <= 0) return;
  dispatch(t, [&](auto v) {
    using T = decltype(v);
    swiglu_kernel<T><<<grid_for(rows * H), kThreads, 0, stream>>>(static_cast<const T*>(gu), b_gu, static_cast<T*>(act),
                                                                  rows, H, p);
  });
  check_launch("swiglu kernel launch");
}

void add_row_bias(void* y, DType t, const float* bias, int64_t rows, int64_t D, Stream stream) {
  if (rows <= 0 || D <= 0 || bias == nullptr) return;
  dispatch(t, [&](auto v) {
    using T = decltype(v);
    add_bias_kernel<T><<<grid_for(rows * D), kThreads, 0, stream>>>(static_cast<T*>(y), bias, rows, D);
  });
  check_launch("add_row_bias kernel launch");
}

void fill_uniform(void* dst, DType t, int64_t n, uint64_t seed, float scale, Stream stream) {
  if (n <= 0) return;
  dispatch(t, [&](auto v) {
    using T = decltype(v);
    fill_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(dst), n, seed, scale);
  });
  check_launch("fill_uniform kernel launch");
}

}  // namespace moe::cuda

#include "kernels/cuda/CudaRuntime.hpp"

#include <cuda_runtime.h>

#include <cstdio>

namespace moe::cuda {

DType parse_dtype(const std::string& text) {
  if (text == "fp32" || text == "f32" || text == "float32") return DType::F32;
  if (text == "bf16" || text == "bfloat16") return DType::BF16;
  if (text == "fp16" || text == "f16" || text == "half") return DType::F16;
  throw std::invalid_argument("--dtype: unknown type '" + text + "' (valid: bf16, fp16, fp32)");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "fp32";
    case DType::BF16:
      return "bf16";
    case DType::F16:
      return "fp16";
  }
  return "?";
}

std::size_t dtype_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device"/"no driver" error
    return 0;
  }
  return n;
}

bool set_device(int device) {
  if (cudaSetDevice(device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return true;
}

int current_device() {
  int d = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

std::string device_description(int device) {
  cudaDeviceProp prop{};
  MOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  char buf[320];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

void device_memory(std::size_t& free_bytes, std::size_t& total_bytes) {
  MOE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
}

namespace {
cudaMemoryType memory_type(const void* p) {
  if (p == nullptr) return cudaMemoryTypeUnregistered;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return cudaMemoryTypeUnregistered;
  }
  return attr.type;
}
}  // namespace

bool is_device_pointer(const void* p) { return memory_type(p) == cudaMemoryTypeDevice; }

bool is_device_accessible(const void* p) {
  const cudaMemoryType t = memory_type(p);
  return t == cudaMemoryTypeDevice || t == cudaMemoryTypeManaged;
}

void check_cuda_code(int code, const char* call) {
  if (code == static_cast<int>(cudaSuccess)) return;
  const auto err = static_cast<cudaError_t>(code);
  int dev = -1;
  if (cudaGetDevice(&dev) != cudaSuccess) dev = -1;
  cudaGetLastError();
  throw CudaError(std::string(call) + " failed on GPU " + std::to_string(dev) + ": " + cudaGetErrorString(err) + " (" +
                  cudaGetErrorName(err) + ")");
}

}  // namespace moe::cuda

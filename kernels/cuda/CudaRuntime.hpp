#pragma once
// Small CUDA runtime helpers shared by the CUDA parts: the element types of
// the GEMM path, checked calls that turn a failure into one line naming the
// call, and device queries that work (returning "no device") on machines
// without a GPU or driver. C++17 and free of CUDA headers, so that plain C++
// code can include it.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace moe::cuda {

/// A CUDA, cuBLAS or kernel-launch failure. The message is one line naming the
/// call, the device and the error; the launcher adds the rank and host.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Element type of GEMM operands and activations.
enum class DType { F32, BF16, F16 };

/// "fp32" | "bf16" | "fp16"; throws std::invalid_argument naming --dtype otherwise.
DType parse_dtype(const std::string& text);
const char* dtype_name(DType t);
std::size_t dtype_bytes(DType t);

/// Visible CUDA devices; 0 (never an exception) when there is no device or no
/// driver, as on CI machines.
int device_count();
/// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" for a device.
std::string device_description(int device);
/// Bytes free and total on the current device.
void device_memory(std::size_t& free_bytes, std::size_t& total_bytes);
/// Whether `p` is device memory (not managed); false for host memory (pinned
/// or not), for null, and when CUDA is unavailable. What the MPI staging asks.
bool is_device_pointer(const void* p);
/// Whether a kernel or NCCL can use `p` directly: device or managed memory.
bool is_device_accessible(const void* p);
/// Makes `device` current (and, since CUDA 12, creates its primary context);
/// false (never an exception) when that fails.
bool set_device(int device);
/// Current device (checked).
int current_device();

/// Throws CudaError "<call> failed on GPU <d>: <error string> (<name>)" unless
/// `code` (a cudaError_t) is cudaSuccess.
void check_cuda_code(int code, const char* call);

}  // namespace moe::cuda

/// Checks a CUDA runtime call: MOE_CUDA_CHECK(cudaMalloc(&p, n)).
#define MOE_CUDA_CHECK(call) ::moe::cuda::check_cuda_code(static_cast<int>(call), #call)

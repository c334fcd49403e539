// The CUDA DeviceLayer of the staged MPI path (DeviceLayer.hpp).
#include <cuda_runtime.h>
#include <mpi.h>

#include <string>

#include "comm/Communicator.hpp"
#include "comm/DeviceLayer.hpp"

namespace moe {

namespace {

class CudaDeviceLayer final : public DeviceLayer {
 public:
  CudaDeviceLayer() {
    check(cudaGetDevice(&device_), "cudaGetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }
  ~CudaDeviceLayer() override {
    if (stream_) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }
  CudaDeviceLayer(const CudaDeviceLayer&) = delete;
  CudaDeviceLayer& operator=(const CudaDeviceLayer&) = delete;

  bool is_device(const void* p) override {
    if (p == nullptr) return false;
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
      cudaGetLastError();  // host memory on old runtimes, or no device: not staged
      return false;
    }
    return attr.type == cudaMemoryTypeDevice;
  }
  void* alloc_pinned(size_t bytes) override {
    void* p = nullptr;
    check(cudaMallocHost(&p, bytes), "cudaMallocHost");
    return p;
  }
  void free_pinned(void* p) override { cudaFreeHost(p); }
  void copy_to_host_async(void* host, const void* device, size_t bytes) override {
    check(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
  }
  void copy_to_device_async(void* device, const void* host, size_t bytes) override {
    check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
  }
  void synchronize() override { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

 private:
  void check(cudaError_t e, const char* call) const {
    if (e == cudaSuccess) return;
    cudaGetLastError();
    int rank = -1, initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int len = 0;
    if (initialized) MPI_Get_processor_name(name, &len);
    throw CommError(std::string(call) + " failed on rank " + std::to_string(rank) + " (" +
                    std::string(name, static_cast<size_t>(len)) + ", GPU " + std::to_string(device_) +
                    "): " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
  }

  int device_ = -1;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceLayer> make_cuda_device_layer() { return std::make_unique<CudaDeviceLayer>(); }

}  // namespace moe

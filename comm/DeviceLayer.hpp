#pragma once
// The few device operations the staged MPI path (StagedMpiCommunicator) needs,
// behind an interface: the CUDA implementation (CudaDeviceLayer.cpp, CUDA
// builds only) and a fake in the tests, which checks the ordering of copies,
// stream waits and MPI calls on machines without a GPU. Free of CUDA headers.

#include <cstddef>
#include <memory>

namespace moe {

class DeviceLayer {
 public:
  virtual ~DeviceLayer() = default;
  /// Whether `p` is device memory (MPI cannot read it; it is staged).
  virtual bool is_device(const void* p) = 0;
  /// Pinned (page-locked) host memory: asynchronous copies to and from it never
  /// block the host. Throws CommError on failure.
  virtual void* alloc_pinned(size_t bytes) = 0;
  virtual void free_pinned(void* p) = 0;
  /// Asynchronous copies on the layer's own stream; `host` is always pinned.
  virtual void copy_to_host_async(void* host, const void* device, size_t bytes) = 0;
  virtual void copy_to_device_async(void* device, const void* host, size_t bytes) = 0;
  /// Waits for the layer's stream. Throws CommError on a device error.
  virtual void synchronize() = 0;
};

#ifdef MOE_HAVE_NCCL
/// The CUDA device layer: a non-blocking stream of its own on the current
/// device (so that its copies neither wait for nor hold up other streams, as
/// the legacy default stream would), cudaMallocHost, cudaPointerGetAttributes.
std::unique_ptr<DeviceLayer> make_cuda_device_layer();
#endif

}  // namespace moe

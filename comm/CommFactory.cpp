#include "comm/CommFactory.hpp"

#include <cstdlib>
#include <stdexcept>

#include "comm/DeviceSelect.hpp"
#include "comm/MpiCommunicator.hpp"
#ifdef MOE_HAVE_NCCL
#include "comm/DeviceLayer.hpp"
#include "comm/NcclCommunicator.hpp"
#include "comm/StagedMpiCommunicator.hpp"
#include "kernels/cuda/CudaRuntime.hpp"
#endif

namespace moe {

namespace {
int g_preselected_device = -1;
}

std::optional<int> local_rank_from_env(const char* (*getenv_fn)(const char*)) {
  auto get = [&](const char* name) -> const char* { return getenv_fn ? getenv_fn(name) : std::getenv(name); };
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                          "PMI_LOCAL_RANK", "PALS_LOCAL_RANKID", "SLURM_LOCALID"}) {
    const char* v = get(var);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && r >= 0 && r < (1L << 20)) return static_cast<int>(r);
  }
  return std::nullopt;
}

int select_device_before_mpi_init() {
#ifdef MOE_HAVE_NCCL
  const auto local = local_rank_from_env();
  if (!local) return -1;
  const int n = cuda::device_count();  // 0, never an exception, without a device or driver
  if (n <= 0) return -1;
  const int dev = *local % n;
  if (!cuda::set_device(dev)) return -1;
  g_preselected_device = dev;
  return dev;
#else
  return -1;
#endif
}

int preselected_device() { return g_preselected_device; }

std::vector<std::string> comm_backends() {
#if defined(MOE_HAVE_NCCL) && defined(MOE_KOKKOS_HAS_CUDA)
  return {"mpi", "nccl"};
#else
  return {"mpi"};
#endif
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  if (backend == "mpi") {
#if defined(MOE_HAVE_NCCL) && defined(MOE_KOKKOS_HAS_CUDA)
    // The runtime's buffers are device memory: stage them through host, so that
    // no CUDA-aware MPI is needed and several ranks can share a GPU.
    return std::make_unique<StagedMpiCommunicator>(std::make_unique<MpiCommunicator>(MPI_COMM_WORLD),
                                                   make_cuda_device_layer());
#else
    return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
#endif
  }
  if (backend == "nccl") {
#if defined(MOE_HAVE_NCCL) && defined(MOE_KOKKOS_HAS_CUDA)
    return std::make_unique<NcclCommunicator>(MPI_COMM_WORLD);
#else
    // A run on NCCL whose kernels run on the host is not a GPU run: refuse it.
    throw std::invalid_argument(
        "--comm nccl needs the Kokkos-CUDA build (scripts/build --kokkos-cuda PATH); this binary runs kernels on "
        "the host");
#endif
  }
  std::string valid;
  for (const auto& b : comm_backends()) valid += (valid.empty() ? "" : ", ") + b;
  throw std::invalid_argument("--comm: backend '" + backend + "' is not available in this build (valid: " + valid +
                              ")");
}

}  // namespace moe

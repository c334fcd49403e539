#include "comm/CommFactory.hpp"

#include <stdexcept>

#include "comm/MpiCommunicator.hpp"
#ifdef MOE_HAVE_NCCL
#include "comm/NcclCommunicator.hpp"
#include "comm/StagedMpiCommunicator.hpp"
#endif

namespace moe {

std::vector<std::string> comm_backends() {
#ifdef MOE_HAVE_NCCL
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
    return std::make_unique<StagedMpiCommunicator>(std::make_unique<MpiCommunicator>(MPI_COMM_WORLD));
#else
    return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
#endif
  }
#ifdef MOE_HAVE_NCCL
  if (backend == "nccl") return std::make_unique<NcclCommunicator>(MPI_COMM_WORLD);
#endif
  std::string valid;
  for (const auto& b : comm_backends()) valid += (valid.empty() ? "" : ", ") + b;
  throw std::invalid_argument("--comm: backend '" + backend + "' is not available in this build (valid: " + valid +
                              (backend == "nccl" ? "; configure with -DMOE_ENABLE_CUDA=ON for nccl)" : ")"));
}

}  // namespace moe

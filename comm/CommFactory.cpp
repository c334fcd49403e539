#include "CommFactory.hpp"

#include <stdexcept>

#include "MpiCommunicator.hpp"

namespace moe {

std::vector<std::string> comm_backends() { return {"mpi"}; }

std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  if (backend == "mpi") return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
  std::string valid;
  for (const auto& b : comm_backends()) valid += (valid.empty() ? "" : ", ") + b;
  throw std::invalid_argument("--comm: backend '" + backend + "' is not available in this build (valid: " + valid +
                              (backend == "nccl" ? "; configure with -DMOE_ENABLE_CUDA=ON for nccl)" : ")"));
}

}  // namespace moe

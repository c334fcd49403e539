#pragma once
// Creates the communicator a run asked for with --comm.
#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.hpp"

namespace moe {

/// Backends compiled into this build ("mpi", and "nccl" on CUDA builds).
std::vector<std::string> comm_backends();

/// Collective over MPI_COMM_WORLD. Throws std::invalid_argument naming --comm
/// and the valid backends for an unknown or unavailable backend.
std::unique_ptr<Communicator> make_communicator(const std::string& backend);

}  // namespace moe

#pragma once
// Creates the communicator a run asked for with --comm.
#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.hpp"

namespace moe {

/// Backends this build can run ("mpi", and "nccl" on Kokkos-CUDA builds: NCCL
/// with kernels on the host is refused, see make_communicator).
std::vector<std::string> comm_backends();

/// Collective over MPI_COMM_WORLD. Throws std::invalid_argument naming --comm
/// and the valid backends for an unknown or unavailable backend; for "nccl" on
/// a build whose Kokkos runs kernels on the host, the one line
/// "--comm nccl needs the Kokkos-CUDA build (scripts/build --kokkos-cuda PATH);
/// this binary runs kernels on the host".
std::unique_ptr<Communicator> make_communicator(const std::string& backend);

}  // namespace moe

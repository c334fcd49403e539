#pragma once
// What a process knows about its place in the job before and around MPI.
#include <functional>

namespace moe::app {

/// The rank the launcher gave this process (Open MPI, PMIx, Slurm, MPICH),
/// read from the environment; 0 when started without a launcher.
int launch_rank();

/// Initialises MPI (and Kokkos), runs `body`, and finalises. Exceptions from
/// `body` become one line on stderr; an error that only some ranks can see
/// aborts the job so that no rank hangs waiting for the others.
int run_with_mpi(int argc, char** argv, const std::function<int()>& body);

}  // namespace moe::app

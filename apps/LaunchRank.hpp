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

/// Runs a command that needs no MPI (plan, trace, emulate): InputError becomes
/// one line and exit 2, any other error one line and exit 1.
int run_without_mpi(const std::function<int()>& body);

}  // namespace moe::app

#include "apps/LaunchRank.hpp"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <Kokkos_Core.hpp>
#include <climits>

#include "apps/Commands.hpp"
#include "apps/SizeChecks.hpp"
#include "comm/Communicator.hpp"
#include "comm/DeviceSelect.hpp"
#include "kernels/KernelSelfCheck.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"

namespace moe::app {

int launch_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* v = std::getenv(var)) return std::atoi(v);
  }
  return 0;
}

namespace {
std::string host_name() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, static_cast<size_t>(len));
}

// An error not every rank sees: report it with where it happened and abort the
// whole job, so that no other rank waits forever in a collective.
[[noreturn]] void abort_job(int rank, const std::string& what, int code) {
  std::fprintf(stderr, "moe-ep: error on rank %d (%s): %s\n", rank, host_name().c_str(), what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

// False (after one line from the lowest failing rank) when this Kokkos build
// miscomputes on some rank's device: every rank checks and all agree, so that
// all of them exit and none waits in a collective.
bool kernels_sound(int rank) {
  const std::string why = moe::kernel_self_check();
  int first_bad = why.empty() ? INT_MAX : rank;
  MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first_bad == rank) {
    std::fprintf(stderr,
                 "moe-ep: error on rank %d (%s): kernel self-check failed: %s; this Kokkos build miscomputes on this "
                 "device (docs/gpu.md, \"Kernel self-check\")\n",
                 rank, host_name().c_str(), why.c_str());
    std::fflush(stderr);
  }
  return first_bad == INT_MAX;
}
}  // namespace

int run_with_mpi(int argc, char** argv, const std::function<int()>& body) {
  // GPU builds: the node-local rank picks its GPU before MPI_Init, so that a
  // CUDA-aware MPI creates its context there and not on GPU 0 in every rank.
  moe::select_device_before_mpi_init();
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int code = 0;
  {
    // Kokkos after MPI (each rank picks its device from its node-local rank on GPUs).
    Kokkos::ScopeGuard kokkos(argc, argv);
    try {
      code = kernels_sound(rank) ? body() : 1;
    } catch (const moe::InputError& e) {
      if (!e.collective()) abort_job(rank, e.what(), kExitBadInput);
      if (rank == 0) std::fprintf(stderr, "moe-ep: %s\n", e.what());
      code = kExitBadInput;
    } catch (const moe::OutputError& e) {
      // A write error on an output (--json, --timeline): one line, exit 1.
      if (!e.collective()) abort_job(rank, e.what(), 1);
      if (rank == 0) std::fprintf(stderr, "moe-ep: %s\n", e.what());
      code = 1;
    } catch (const moe::CommError& e) {
      abort_job(rank, e.what(), 3);
    } catch (const std::exception& e) {
      if (is_allocation_failure(e))
        abort_job(rank, allocation_failure(e, "--tokens, --top-k, --hidden, --ffn, --experts, --layers"),
                  kExitBadInput);
      abort_job(rank, e.what(), 1);
    }
  }
  MPI_Finalize();
  return code;
}

int run_without_mpi(const std::function<int()>& body) {
  try {
    return body();
  } catch (const moe::InputError& e) {
    std::fprintf(stderr, "moe-ep: %s\n", e.what());
    return kExitBadInput;
  } catch (const moe::OutputError& e) {
    std::fprintf(stderr, "moe-ep: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    if (is_allocation_failure(e)) {
      std::fprintf(stderr, "moe-ep: %s\n",
                   allocation_failure(e, "--tokens, --top-k, --hidden, --ffn, --experts").c_str());
      return kExitBadInput;
    }
    std::fprintf(stderr, "moe-ep: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace moe::app

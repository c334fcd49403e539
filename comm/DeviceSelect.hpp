#pragma once
// Which GPU a rank uses, chosen before MPI_Init: a CUDA-aware MPI creates a
// CUDA context on the current device during MPI_Init, so a rank that chose
// its GPU only afterwards would leave a context (and memory) on GPU 0 behind,
// on every rank. The node-local rank comes from the launcher's environment.
// Free of CUDA headers: on builds without CUDA, nothing is selected.

#include <optional>

namespace moe {

/// The node-local rank from the launcher's environment, first found of
/// OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), MV2_COMM_WORLD_LOCAL_RANK (MVAPICH),
/// MPI_LOCALRANKID (MPICH, Intel MPI), PMI_LOCAL_RANK, PALS_LOCAL_RANKID, and
/// SLURM_LOCALID (srun) last: mpirun inside a batch job inherits the batch
/// step's SLURM_LOCALID, so the MPI launcher's own variable wins.
/// `getenv` is injectable for tests.
std::optional<int> local_rank_from_env(const char* (*getenv_fn)(const char*) = nullptr);

/// On CUDA builds with at least one visible device: sets the current device
/// to local_rank % device_count before MPI_Init and returns it; else -1 (no
/// local rank in the environment, no device, or no CUDA in this build: the
/// post-MPI_Init choice from MPI_Comm_split_type stays the fallback).
int select_device_before_mpi_init();

/// What select_device_before_mpi_init chose in this process, or -1.
int preselected_device();

}  // namespace moe

# Sourced by the scripts: repository root, build directory, MPI-as-root and
# one-BLAS-thread-per-rank settings.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${MOE_BUILD_DIR:-$ROOT/build}"
# Open MPI refuses root without these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Several ranks per node must each use one BLAS thread, or they fight for cores.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Quiet Open MPI's warnings about missing high-speed transports on laptops/CI.
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader,tcp}"
export OMPI_MCA_rmaps_base_oversubscribe="${OMPI_MCA_rmaps_base_oversubscribe:-1}"
# GNU nproc obeys OMP_NUM_THREADS, which is 1 above: ask without it.
jobs_for_build() { local n; n=$(env -u OMP_NUM_THREADS nproc 2>/dev/null || echo 2); echo "$n"; }
# CTest -j: twice the cores. The multi-rank tests spend much of their time in
# process start-up, mpiexec and MPI waits (ranks yield their core, below), so
# the cores stay busy only with more than one test per core: on 2 cores the
# suite without clang-tidy took 297 s at -j4 and 373 s at -j2 (docs/testing.md).
jobs_for_tests() { echo $(($(jobs_for_build) * 2)); }
# mpi_yield_if_oversubscribed RANKS: with more ranks than cores, ranks waiting in
# MPI yield their core (sched_yield) instead of busy-polling it, so the ranks that
# compute get the cores: Open MPI's mpi_yield_when_idle (docs/slurm.md). A value
# already in the environment wins (OMPI_MCA_mpi_yield_when_idle=0 to compare).
mpi_yield_if_oversubscribed() {
  if [ "$1" -gt "$(jobs_for_build)" ]; then
    export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
  fi
}

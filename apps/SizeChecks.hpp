#pragma once
// Up-front size checks of every subcommand (docs/reliability.md): each product
// that sizes a buffer is computed with overflow checks, and a configuration
// whose buffers cannot exist (overflow, or more than --mem-budget or the
// machine's memory) is refused with one line naming the flags and the limit,
// before anything is allocated. An allocation that fails anyway is described
// in one line naming what was allocated and the flags that size it.

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "runtime/common/ModelConfig.hpp"

namespace moe {
struct RunConfig;
}

namespace moe::app {

/// Physical memory of this machine in bytes (0 when unknown).
int64_t physical_memory_bytes();

/// "12.3 GiB" / "60.0 MiB".
std::string bytes_text(int64_t bytes);

/// The memory a rank may use and how to name it: --mem-budget when given,
/// else the machine's memory shared by the ranks on it.
struct MemoryLimit {
  int64_t bytes = 0;  // 0: unknown (no memory check)
  std::string text;   // "--mem-budget 60 MiB", "this machine's 23.4 GiB of memory shared by 4 ranks"
};

/// compare/run: sums of --tokens-per-rank, tokens x K, the worst-case buffers
/// of any plan on any rank (no overflow), and the least any plan needs on the
/// busiest rank against `limit` (plus --check's reference on rank 0). Throws
/// InputError naming the flags; every rank reaches the same verdict when they
/// are given the same limits. `limit` bounds the runtime's buffers
/// (--mem-budget, or `machine`); `machine` bounds rank 0's buffers plus
/// --check's reference (which --mem-budget does not count).
void check_run_sizes(const RunConfig& cfg, int num_ranks, const MemoryLimit& limit, const MemoryLimit& machine);

/// trace: tokens x ranks, tokens x K and the per-step id buffer against memory.
void check_trace_sizes(const ModelShape& shape, const std::vector<int64_t>& tokens_per_rank, int steps, int layers);

/// plan: the load matrix (ranks x experts) and the sampled ids (tokens x K).
void check_plan_sizes(const ModelShape& shape, int ranks, bool from_scenario);

/// emulate: ranks x tokens x K slots and the host runner's worst-case buffers.
void check_emulate_sizes(const ModelShape& shape, int ranks);

/// One line for an allocation that failed (std::bad_alloc, Kokkos): what was
/// being allocated (the Kokkos label when known) and the flags that size it.
std::string allocation_failure(const std::exception& e, const std::string& fallback_flags);

/// True when `e` is an allocation failure (std::bad_alloc or Kokkos' "failed
/// to allocate" runtime error).
bool is_allocation_failure(const std::exception& e);

}  // namespace moe::app

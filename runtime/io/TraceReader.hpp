#pragma once
// Routing traces (docs/traces.md): recorded top-K expert ids per token, per
// layer, per step, replayed by `--scenario trace:FILE.h5`.
//
// Format: dataset /expert_ids, integer, dims [steps, layers, tokens, K], tokens
// in global order (rank 0's tokens first, then rank 1's, ...); optional
// /gates, float, same dims (checked, not used: the runtime takes the gate
// weights from its own router, as for the synthetic scenarios); optional root
// attributes num_experts and top_k (checked against the run when present).

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/common/ModelConfig.hpp"

namespace moe {

/// The extent of a trace as stored.
struct TraceDims {
  int64_t steps = 0;
  int64_t layers = 0;
  int64_t tokens = 0;  // tokens per (step, layer), all ranks together
  int64_t top_k = 0;
  bool has_gates = false;
};

class TraceReader {
 public:
  /// Opens `path` and checks its structure against the run's shape (K, N).
  /// Throws InputError (collective: every rank opening the same file sees the
  /// same error) whose one-line message names the file and the dataset.
  TraceReader(const std::string& path, const ModelShape& shape);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  const TraceDims& dims() const;

  /// Checks that the trace holds `steps` x `layers` x `total_tokens` and that
  /// every expert id in that region is in [0, N); reads the region one
  /// (step, layer) at a time. Throws InputError (collective) naming the
  /// dataset and the index of the first bad value.
  void validate(int steps, int layers, int64_t total_tokens) const;

  /// Expert ids of tokens [token_offset, token_offset + tokens) at (step,
  /// layer), t*K + k order. Throws InputError (not collective) when the range
  /// is outside the trace or an id is out of range.
  void read(int step, int layer, int64_t token_offset, int64_t tokens, std::span<int32_t> expert_ids) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Opens the trace and validates it for a run of `steps` x `layers` over
/// `total_tokens` tokens per (step, layer); throws InputError (collective).
void validate_trace(const std::string& path, const ModelShape& shape, int steps, int layers, int64_t total_tokens);

/// What a trace file says about its source (root attributes).
struct TraceMeta {
  int num_experts = 0;
  int top_k = 0;
  std::string source;  // e.g. "moe-ep trace (synthetic: ...)"
  std::string tool_version;
  std::vector<int64_t> tokens_per_rank;  // empty: not recorded
  using Value = std::variant<int64_t, uint64_t, double, std::string>;
  std::vector<std::pair<std::string, Value>> attributes;  // further scalars
};

/// Fills the expert ids of one (step, layer): tokens x K, t*K + k order.
using TraceSlabFill = std::function<void(int step, int layer, std::span<int32_t> expert_ids)>;

/// Writes a trace of steps x layers x total_tokens x K ids (docs/traces.md),
/// one (step, layer) slab at a time from `fill`. Throws std::runtime_error
/// on I/O errors.
void write_trace(const std::string& path, int steps, int layers, int64_t total_tokens, const TraceMeta& meta,
                 const TraceSlabFill& fill);

}  // namespace moe

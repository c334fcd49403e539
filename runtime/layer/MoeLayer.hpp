#pragma once
// One MoE layer under expert parallelism on one rank: its router, its native
// experts, and the forward step that runs whatever plan a policy emits.

#include <cstdint>

#include "comm/Communicator.hpp"
#include "runtime/layer/DispatchLayout.hpp"
#include "kernels/ExpertFfn.hpp"
#include "runtime/layer/ExpertStore.hpp"
#include "runtime/layer/MemoryModel.hpp"
#include "runtime/layer/MemoryTracker.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "policies/Policy.hpp"
#include "runtime/layer/Router.hpp"
#include "runtime/layer/StepRecord.hpp"

namespace moe {

/// A per-rank memory budget the plan must fit before it runs.
struct StepBudget {
  int64_t bytes = 0;
  PolicyParams params;  // to re-plan LLEP with a lower alpha
  int num_layers = 1;   // layers whose weights are resident
};

/// What a forward step leaves behind besides the output (for checks and reports).
struct StepTrace {
  Routing routing;
  LoadMatrix loads;
  Plan plan;
  std::vector<int64_t> slot_row;  // per local slot: -1 when dropped
  bool executed = true;           // false when the plan did not fit the budget
  std::string oom_reason;
  double alpha_used = 0.0;        // LLEP under a budget
};

class MoeLayer {
 public:
  MoeLayer(const ModelShape& shape, int layer, uint64_t seed, ExpertIdSource source, Communicator& comm,
           MemoryTracker& tracker);

  /// route -> count -> all-gather counts -> plan -> permute -> all-to-all ->
  /// weights -> experts -> reverse all-to-all -> un-permute and combine.
  /// x: this rank's tokens (B x D); out: B x D.
  /// With a budget, a plan that does not fit on some rank is not executed
  /// (trace->executed = false, on every rank alike).
  StepRecord forward(const Matrix& x, const RoutingKey& key, const PlacementPolicy& policy, const Matrix& out,
                     StepTrace* trace = nullptr, const StepBudget* budget = nullptr);

  const ModelShape& shape() const { return shape_; }
  const ExpertStore& experts() const { return experts_; }

 private:
  ModelShape shape_;
  Communicator& comm_;
  MemoryTracker& tracker_;
  Router router_;
  ExpertStore experts_;
  ActivationParams act_;
};

}  // namespace moe

#pragma once
// One MoE layer under expert parallelism on one rank: its router, its native
// experts, and the forward step that runs whatever plan a policy emits.
//
// forward() reads as its stages (Megatron-Core's MoELayer shape):
//   route -> plan (-> fit the budget) -> [place resident replicas]
//   -> start weight transfers -> dispatch
//   -> finish weight transfers -> expert compute -> combine
// Each stage is one method below; the state a step carries between stages is
// a StepState (MoeLayerState.hpp).
//
// With LayerOptions::backward, forward() keeps what the backward needs (the
// routing, the expert-major inputs, the gate/up pre-activations, the slot
// outputs and the imported weights; no GEMM is recomputed) and backward()
// runs the backward of L = <out, grad_out> on the same plan
// (MoeLayerBackward.cpp, docs/backward.md):
//   output-gradient dispatch -> expert backward -> [weight-gradient return
//   posted] -> input-gradient combine -> router backward -> weight-gradient
//   return finished (partial gradients summed on the native rank)

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/Communicator.hpp"
#include "kernels/ExpertFfn.hpp"
#include "policies/Policy.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/DispatchLayout.hpp"
#include "runtime/layer/ExpertStore.hpp"
#include "runtime/layer/LayerOptions.hpp"
#include "runtime/layer/LayerWorkspaces.hpp"
#include "runtime/layer/MemoryModel.hpp"
#include "runtime/layer/MemoryTracker.hpp"
#include "runtime/layer/PhaseTimer.hpp"
#include "runtime/layer/Router.hpp"
#include "runtime/layer/StepRecord.hpp"

namespace moe {

/// A per-rank memory budget the plan must fit before it runs.
struct StepBudget {
  int64_t bytes = 0;
  int num_layers = 1;  // layers whose weights are resident
};

/// What a forward step leaves behind besides the output (for checks and reports).
struct StepTrace {
  Routing routing;
  LoadMatrix loads;
  Plan plan;
  std::vector<int64_t> slot_row;  // per local slot: -1 when dropped
  bool executed = true;           // false when the plan did not fit the budget
  std::string oom_reason;
  std::optional<double> alpha_used;  // a policy that re-planned to fit: the parameter it used
};

class MoeLayer {
 public:
  /// `workspaces`: the step buffers, shared by all layers of the rank.
  MoeLayer(const ModelShape& shape, int layer, uint64_t seed, ExpertIdSource source, Communicator& comm,
           MemoryTracker& tracker, LayerWorkspaces& workspaces, const LayerOptions& options = {});
  ~MoeLayer();
  MoeLayer(const MoeLayer&) = delete;
  MoeLayer& operator=(const MoeLayer&) = delete;

  /// One forward step. x: this rank's tokens (B x D); out: B x D.
  /// With a budget, a plan that does not fit on some rank is not executed
  /// (trace->executed = false, on every rank alike).
  StepRecord forward(const Matrix& x, const RoutingKey& key, PlacementPolicy& policy, const Matrix& out,
                     StepTrace* trace = nullptr, const StepBudget* budget = nullptr);

  /// The backward of the last forward (which must have run with
  /// LayerOptions::backward and been executed): x and grad_out as the
  /// forward's x and out's gradient (B x D), dx (B x D) receives dL/dx.
  /// Afterwards expert_grads() holds this step's gradients of the native
  /// experts, partial gradients of other ranks summed in, and router_grad()
  /// the router's, summed over all ranks. Returns the forward's record with
  /// the backward phases, bytes and the step's peak added.
  StepRecord backward(const Matrix& x, const Matrix& grad_out, const Matrix& dx);
  /// Whether a saved forward awaits its backward.
  bool has_saved_forward() const { return saved_ != nullptr; }
  /// Native experts' gradients, packed like their weights (num_native x packed_floats).
  const Matrix& expert_grads() const { return grad_native_.view(); }
  /// dL/dW_r (D x N), summed over ranks.
  const Matrix& router_grad() const { return grad_router_.view(); }

  const ModelShape& shape() const { return shape_; }
  const ExpertStore& experts() const { return experts_; }

 private:
  struct StepState;
  void route(const Matrix& x, const RoutingKey& key, StepState& st);
  void plan(PlacementPolicy& policy, StepState& st);
  bool fit_budget(const PlacementPolicy& policy, const StepBudget& budget, StepState& st);
  void lay_out(StepState& st);
  void place_replicas(StepState& st);
  void start_weight_transfers(StepState& st);
  void dispatch(const Matrix& x, StepState& st);
  void finish_weight_transfers(StepState& st);
  void compute_experts(StepState& st);
  void compute_experts_bf16(StepState& st, int64_t tile);
  void combine(const Matrix& out, StepState& st);
  void count_traffic(StepState& st);
  // Backward stages (MoeLayerBackward.cpp).
  void grad_dispatch(const Matrix& grad_out, StepState& st);
  void expert_backward(StepState& st);
  void start_grad_return(StepState& st);
  void grad_combine(const Matrix& dx, StepState& st);
  void router_backward(const Matrix& x, const Matrix& dx, StepState& st);
  void finish_grad_return(StepState& st);
  void count_grad_traffic(StepState& st);

  ModelShape shape_;
  int layer_;
  Communicator& comm_;
  MemoryTracker& tracker_;
  LayerOptions options_;
  Router router_;
  ExpertStore experts_;
  ActivationParams act_;
  std::vector<int> node_of_rank_;
  LayerWorkspaces& ws_;                // step buffers that persist across steps, shared by the rank's layers
  IndexVector layout_dev_;             // the step's dispatch layout indices, one packed copy
  std::unique_ptr<StepState> saved_;   // --backward: the forward step awaiting its backward
  TrackedMatrix grad_native_;          // --backward: num_native x packed_floats
  TrackedMatrix grad_router_;          // --backward: D x N
  std::unique_ptr<PhaseClock> clock_;  // times the phases (LayerClock.hpp)
};

}  // namespace moe

#pragma once
// What one layer step carries from stage to stage (MoeLayer.cpp's forward
// stages, MoeLayerBackward.cpp's backward stages). Private to the layer.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/layer/MoeLayer.hpp"

namespace moe {

struct MoeLayer::StepState {
  StepRecord rec;
  Routing routing;
  std::vector<int64_t> local_counts;  // this rank's slots per expert
  LoadMatrix loads;
  Plan plan;
  std::optional<double> alpha_used;
  std::string oom_reason;
  DispatchLayout layout;    // every slot's destination (for checks and traces)
  ExchangeLayout exchange;  // what runs: own rows bypass the all-to-all
  // Device copies of the exchange layout's index arrays (views into layout_dev_).
  ConstIndexVector send_token, recv_compute_row, local_token, local_compute_row, slot_send_row, slot_compute_row;
  std::vector<int64_t> layout_host;  // their packed host source, alive until the copy is done
  std::vector<P2PMessage> weight_sends, weight_recvs;
  // Alive from dispatch to combine (to the end of the backward when it is
  // saved): the exchanged rows and the expert-major blocks. After the
  // combine, `send` holds the outputs z_s of this rank's slots computed
  // elsewhere and `y_experts` those of the slots computed here.
  Workspace::Lease send, recv, x_experts, y_experts;

  // --backward: the forward keeps the step (MoeLayer::saved_) and also the
  // gate/up pre-activations of every computed row (total_recv x 2H).
  bool save = false;
  Workspace::Lease saved_gu;
  // The backward's own state.
  TrackedVector d_gates;                         // dL/dgate per local slot
  TrackedMatrix d_logits;                        // dL/dlogits (B x N), allocated before the gradient return starts
  std::map<int, float*> grad_rows;               // foreign expert -> its partial gradient (packed)
  Workspace::Lease grad_foreign, grad_incoming;  // packed gradient rows
  std::vector<int> incoming_experts;             // the expert of each incoming row
  std::vector<P2PMessage> grad_sends, grad_recvs;

  PhaseTimes& T() { return rec.times; }
};

}  // namespace moe

#pragma once
// The step buffers of one rank's MoE layers (Workspace.hpp). Layers run one
// at a time and a step releases every lease before it returns, so all layers
// of a rank share one set: what stays allocated is the largest step's use of
// any layer (what peak_bytes reports), not that times the number of layers.

#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/MemoryTracker.hpp"
#include "runtime/layer/Workspace.hpp"

namespace moe {

struct LayerWorkspaces {
  LayerWorkspaces(MemoryTracker& tracker, const ModelShape& shape)
      : send(tracker, "dispatch_send", shape.hidden),
        recv(tracker, "dispatch_recv", shape.hidden),
        expert_in(tracker, "expert_in", shape.hidden),
        expert_out(tracker, "expert_out", shape.hidden),
        gate_up(tracker, "gate_up", 2 * shape.ffn),
        activation(tracker, "activation", shape.ffn),
        imported_experts(tracker, "imported_expert", shape.expert_weight_bytes() / int64_t{sizeof(float)}),
        saved_gate_up(tracker, "saved_gate_up", 2 * shape.ffn),
        grad_foreign(tracker, "grad_foreign_expert", shape.expert_weight_bytes() / int64_t{sizeof(float)}),
        grad_incoming(tracker, "grad_incoming_expert", shape.expert_weight_bytes() / int64_t{sizeof(float)}) {}

  Workspace send, recv;             // rows that cross ranks
  Workspace expert_in, expert_out;  // expert-major blocks
  Workspace gate_up, activation;    // the expert FFN's row tile
  Workspace imported_experts;       // one row of packed weights per imported expert
  // --backward only (never leased otherwise):
  Workspace saved_gate_up;  // the forward's gate/up pre-activations of every computed row
  Workspace grad_foreign;   // partial gradients of the non-native experts computed here, packed
  Workspace grad_incoming;  // partial gradients of native experts received from other ranks
};

}  // namespace moe

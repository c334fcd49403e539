#pragma once
// The step buffers of one rank's MoE layers (Workspace.hpp). Layers run one
// at a time and a step releases every lease before it returns, so all layers
// of a rank share one set: what stays allocated is the largest step's use of
// any layer (what peak_bytes reports), not that times the number of layers.

#include "kernels/ExpertFfnBf16.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/MemoryTracker.hpp"
#include "runtime/layer/Workspace.hpp"

namespace moe {

struct LayerWorkspaces {
  LayerWorkspaces(MemoryTracker& tracker, const ModelShape& shape)
      : send(tracker, "dispatch_send", shape.row_words()),
        recv(tracker, "dispatch_recv", shape.row_words()),
        expert_in(tracker, "expert_in", shape.row_words()),
        expert_out(tracker, "expert_out", shape.row_words()),
        gate_up(tracker, "gate_up", 2 * shape.ffn),
        activation(tracker, "activation", shape.ffn),
        imported_experts(tracker, "imported_expert", shape.expert_weight_bytes() / int64_t{sizeof(float)}),
        saved_gate_up(tracker, "saved_gate_up", 2 * shape.ffn),
        grad_foreign(tracker, "grad_foreign_expert", shape.expert_weight_bytes() / int64_t{sizeof(float)}),
        grad_incoming(tracker, "grad_incoming_expert", shape.expert_weight_bytes() / int64_t{sizeof(float)}),
        wide_in(tracker, "bf16_wide_in", shape.hidden),
        weight_panel(tracker, "bf16_weight_panel", bf16_panel_floats(shape.hidden, shape.ffn)),
        panel_out(tracker, "bf16_panel_out", bf16_panel_cols(shape.hidden, shape.ffn)) {}

  // Token rows in the run's dtype (ModelShape::row_words fp32 words each).
  Workspace send, recv;             // rows that cross ranks
  Workspace expert_in, expert_out;  // expert-major blocks
  Workspace gate_up, activation;    // the expert FFN's row tile
  Workspace imported_experts;       // one row of packed weights per imported expert
  // --backward only (never leased otherwise):
  Workspace saved_gate_up;  // the forward's gate/up pre-activations of every computed row
  Workspace grad_foreign;   // partial gradients of the non-native experts computed here, packed
  Workspace grad_incoming;  // partial gradients of native experts received from other ranks
  // --dtype bf16 only (kernels/ExpertFfnBf16.hpp): the tile's input widened
  // to fp32, one widened weight panel (one row), and the panel's product.
  Workspace wide_in, weight_panel, panel_out;
};

}  // namespace moe

#pragma once
// What one rank measured in one layer-step: a row of the HDF5 timeline, a
// record of the all-gather behind the comparison table, and the per-rank
// totals of the JSON. The counters are declared once, in MOE_STEP_COUNTERS:
// a new per-step metric is one line there (docs/timeline-format.md, "Adding a
// metric"); the schema (StepMetrics.hpp) derives every use from that list.

#include <cstdint>

#include "runtime/layer/PhaseTimer.hpp"

// X(name, aggregation over layer-steps, unit, description). All int64_t.
#define MOE_STEP_COUNTERS(X)                                                                               \
  X(slots_routed, Sum, "token-slots", "this rank's token-slots (tokens x K)")                              \
  X(slots_native, Sum, "token-slots", "slots computed of this rank's native experts")                      \
  X(slots_foreign, Sum, "token-slots", "slots computed of experts not native here (imported or resident)") \
  X(experts_imported, Sum, "experts", "expert weights received for the step")                              \
  X(slots_dropped, Sum, "token-slots", "this rank's slots the plan dropped")                               \
  X(bytes_tokens_sent, Sum, "bytes", "token rows sent to other ranks (dispatch + combine)")                \
  X(bytes_tokens_recv, Sum, "bytes", "token rows received from other ranks (dispatch + combine)")          \
  X(bytes_weights_sent, Sum, "bytes", "expert weights sent to other ranks")                                \
  X(bytes_weights_recv, Sum, "bytes", "expert weights received from other ranks")                          \
  X(bytes_tokens_sent_inter_node, Sum, "bytes", "part of bytes_tokens_sent that went to another node")     \
  X(bytes_weights_sent_inter_node, Sum, "bytes", "part of bytes_weights_sent that went to another node")   \
  X(experts_placed, Sum, "experts", "resident replicas received (a stateful policy's re-placement)")       \
  X(bytes_resident, Max, "bytes", "resident replicas held here, all layers (stateful policies)")           \
  X(peak_bytes, Max, "bytes", "runtime buffers live at the step's peak (tracked allocator)")               \
  X(bytes_saved, Max, "bytes", "activations the forward kept for the backward (--backward; tracked)")      \
  X(bytes_grad_tokens_sent, Sum, "bytes",                                                                  \
    "gradient rows sent to other ranks (output-gradient dispatch + input-gradient combine)")               \
  X(bytes_grad_weights_sent, Sum, "bytes", "partial expert weight gradients sent to their native ranks")   \
  X(bytes_grad_weights_recv, Sum, "bytes", "partial expert weight gradients received from other ranks")    \
  X(bytes_router_grad, Sum, "bytes", "router weight gradient contributed to the all-reduce (P > 1)")

namespace moe {

struct StepRecord {
#define MOE_DECLARE_COUNTER(name, agg, unit, desc) int64_t name = 0;
  MOE_STEP_COUNTERS(MOE_DECLARE_COUNTER)
#undef MOE_DECLARE_COUNTER
  PhaseTimes times;  // per phase: wall and busy seconds, start time

  int64_t slots_computed() const { return slots_native + slots_foreign; }
  double busy_s() const { return times.busy_total(); }
};

}  // namespace moe

#pragma once
// What one rank measured in one layer-step: a row of the HDF5 timeline and
// the input of the comparison table.

#include <cstdint>

#include "runtime/layer/PhaseTimer.hpp"

namespace moe {

struct StepRecord {
  int64_t slots_routed = 0;        // this rank's token-slots (B * K)
  int64_t slots_native = 0;        // computed slots of native experts
  int64_t slots_foreign = 0;       // computed slots of imported experts
  int64_t experts_imported = 0;
  int64_t slots_dropped = 0;       // this rank's slots dropped by the plan
  int64_t bytes_tokens_sent = 0;   // to other ranks, dispatch + combine
  int64_t bytes_tokens_recv = 0;
  int64_t bytes_weights_sent = 0;
  int64_t bytes_weights_recv = 0;
  PhaseTimes times;                // wall (and busy) seconds per phase
  int64_t peak_bytes = 0;          // runtime buffers live at the step's peak

  int64_t slots_computed() const { return slots_native + slots_foreign; }
  double busy_s() const { return times.busy_total(); }
};

}  // namespace moe

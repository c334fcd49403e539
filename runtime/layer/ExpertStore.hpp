#pragma once
// The expert weights a rank holds: its native experts (generated from the
// seed), the experts it imports for one step under a plan, and the replicas a
// stateful policy keeps resident here between steps (one set per policy). Each expert is
// one packed buffer [W_gu (D x 2H) | W_d (H x D) | b_gu (2H) | b_d (D)] so that
// a weight transfer is a single message. With --dtype bf16 the buffer holds
// bf16 elements, two per fp32 word: packed_floats() counts words.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/ExpertFfn.hpp"
#include "kernels/ExpertFfnBf16.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/layer/MemoryTracker.hpp"
#include "runtime/layer/Workspace.hpp"

namespace moe {

class ExpertStore {
 public:
  /// `imports`: where imported experts' weights are received (one row each;
  /// shared by the rank's layers, LayerWorkspaces.hpp).
  ExpertStore(const ModelShape& shape, int layer, uint64_t seed, int rank, int num_ranks, MemoryTracker& tracker,
              Workspace& imports);

  int64_t packed_floats() const { return packed_floats_; }
  int64_t packed_bytes() const { return packed_floats_ * static_cast<int64_t>(sizeof(float)); }
  bool is_native(int expert) const { return expert >= first_native_ && expert < first_native_ + num_native_; }
  bool has(int expert) const {
    return is_native(expert) || imports_.count(expert) > 0 || (active_ && active_->count(expert) > 0);
  }

  /// Packed weights of a native or imported expert (device pointer).
  const float* packed(int expert) const;
  ExpertWeightsView view(int expert) const;
  /// The same expert's weights as bf16 (--dtype bf16 only).
  Bf16ExpertWeights bf16_view(int expert) const;

  /// Room for this step's imported experts, one row each of the grow-only
  /// imports workspace, which persists across steps (no allocation once the count has
  /// been seen: on a CPU no fresh pages to fault in under the transfer, on a
  /// GPU no cudaMalloc/free per step). The tracker counts the rows while they
  /// are held, exactly as separate buffers would be. Returns where each
  /// expert's packed weights must be received, in the order given.
  std::vector<float*> hold_imports(const std::vector<int>& experts);
  /// Drops the imported experts (end of a step); the buffer stays.
  void clear_imports() {
    imports_.clear();
    import_rows_ = Workspace::Lease();
  }
  int num_imported() const { return static_cast<int>(imports_.size()); }

  /// Makes `policy`'s resident replicas the experts in `wanted`: frees the
  /// ones no longer wanted and allocates room for the new ones, returned as
  /// (expert, where its packed weights must be received). From then on,
  /// packed()/view() also find `policy`'s replicas. Their bytes are counted by
  /// the ResidentLedger, not the step's tracker (they persist across steps).
  std::vector<std::pair<int, float*>> set_resident(const std::string& policy, const std::vector<int>& wanted);
  /// Which policy's resident replicas packed()/view() see (none: "").
  void use_resident(const std::string& policy);

 private:
  ModelShape shape_;
  int first_native_ = 0;
  int num_native_ = 0;
  int64_t packed_floats_ = 0;
  MemoryTracker* tracker_;
  TrackedMatrix native_;                 // num_native x packed_floats
  Workspace* import_ws_;                 // grow-only, one row per imported expert
  Workspace::Lease import_rows_;         // this step's rows of it
  std::map<int, const float*> imports_;  // expert -> its row
  MemoryTracker resident_tracker_;       // not the step's: the ledger counts replicas per policy
  std::map<std::string, std::map<int, TrackedVector>> resident_;
  const std::map<int, TrackedVector>* active_ = nullptr;
};

/// The activation's parameters for a model shape (SwiGLU or gpt-oss's variant).
inline ActivationParams activation_params(const ModelShape& s) {
  return {s.activation == Activation::GptOss, s.swiglu_limit, s.swiglu_alpha};
}

/// Where each part of one packed expert starts, in floats: [W_gu (D x 2H) |
/// W_d (H x D) | b_gu (2H) | b_d (D)]; the biases are there for gpt-oss only
/// (`biases`), so for SwiGLU the buffer ends at b_gu. An expert's gradient
/// is packed the same way.
struct PackedLayout {
  int64_t w_gu = 0, w_d = 0, b_gu = 0, b_d = 0, floats = 0;
  bool biases = false;
};
PackedLayout packed_layout(const ModelShape& shape);

/// Views of the parts of one packed expert at `packed` (elements of T: float
/// or bf16 weights, float gradients): View's matrices w_gu (D x 2H) and w_d
/// (H x D) of type Matrix, and bias pointers b_gu, b_d for gpt-oss.
template <class View, class Matrix, class T>
View packed_view(T* packed, const ModelShape& shape) {
  const auto D = static_cast<size_t>(shape.hidden), H = static_cast<size_t>(shape.ffn);
  const PackedLayout l = packed_layout(shape);
  View v;
  v.w_gu = Matrix(packed + l.w_gu, D, 2 * H);
  v.w_d = Matrix(packed + l.w_d, H, D);
  if (l.biases) {
    v.b_gu = packed + l.b_gu;
    v.b_d = packed + l.b_d;
  }
  return v;
}

/// The views of one expert's packed weights (device pointer `packed`).
ExpertWeightsView packed_expert_view(const float* packed, const ModelShape& shape);

/// Fills one expert's packed weights from the seed (what ExpertStore holds);
/// used by the runtime and, on the host in double, by the reference.
void generate_expert_packed(const ModelShape& shape, int layer, uint64_t seed, int expert, float* packed_device);

/// Element scales of the synthetic weights (1/sqrt(fan_in) for matrices).
struct WeightScales {
  float w_gu, w_d, bias, router, token;
};
WeightScales weight_scales(const ModelShape& shape);

}  // namespace moe

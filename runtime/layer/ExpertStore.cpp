#include "runtime/layer/ExpertStore.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <string>

#include "runtime/common/Rng.hpp"

namespace moe {

WeightScales weight_scales(const ModelShape& s) {
  return WeightScales{1.0f / std::sqrt(static_cast<float>(s.hidden)), 1.0f / std::sqrt(static_cast<float>(s.ffn)), 0.1f,
                      1.0f / std::sqrt(static_cast<float>(s.hidden)), std::sqrt(3.0f)};
}

namespace {
// fp32 words of one packed expert (bf16: two elements per word).
int64_t packed_size(const ModelShape& s) { return s.expert_weight_bytes() / static_cast<int64_t>(sizeof(float)); }
}  // namespace

void generate_expert_packed(const ModelShape& shape, int layer, uint64_t seed, int expert, float* packed) {
  const int64_t n_gu = int64_t{shape.hidden} * 2 * shape.ffn;
  const int64_t n_d = int64_t{shape.ffn} * shape.hidden;
  const int64_t n = shape.expert_weight_elements();
  const WeightScales sc = weight_scales(shape);
  const uint64_t L = static_cast<uint64_t>(layer), E = static_cast<uint64_t>(expert);
  Kokkos::parallel_for(
      "moe::generate_expert", Kokkos::RangePolicy<ExecSpace>(0, n), KOKKOS_LAMBDA(const int64_t i) {
        float v;
        if (i < n_gu)
          v = synthetic_value(seed, Stream::ExpertGateUp, L, E, static_cast<uint64_t>(i), sc.w_gu);
        else if (i < n_gu + n_d)
          v = synthetic_value(seed, Stream::ExpertDown, L, E, static_cast<uint64_t>(i - n_gu), sc.w_d);
        else
          v = synthetic_value(seed, Stream::ExpertBias, L, E, static_cast<uint64_t>(i - n_gu - n_d), sc.bias);
        packed[i] = v;
      });
}

ExpertStore::ExpertStore(const ModelShape& shape, int layer, uint64_t seed, int rank, int num_ranks,
                         MemoryTracker& tracker, Workspace& imports)
    : shape_(shape),
      first_native_(rank * (shape.num_experts / num_ranks)),
      num_native_(shape.num_experts / num_ranks),
      packed_floats_(packed_size(shape)),
      tracker_(&tracker),
      native_(tracker, "native_experts", num_native_, packed_floats_),
      import_ws_(&imports) {
  if (shape.dtype == DType::BF16) {
    // Generated in fp32 (the same values as an fp32 run), then rounded: the
    // fp32 copy is the constructor's, untracked and gone before any step.
    Vector wide(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("expert_fp32")),
                static_cast<size_t>(shape.expert_weight_elements()));
    for (int i = 0; i < num_native_; ++i) {
      generate_expert_packed(shape_, layer, seed, first_native_ + i, wide.data());
      narrow_to_bf16(wide.data(), shape.expert_weight_elements(),
                     reinterpret_cast<bf16*>(native_.view().data() + i * packed_floats_));
    }
  } else {
    for (int i = 0; i < num_native_; ++i)
      generate_expert_packed(shape_, layer, seed, first_native_ + i, native_.view().data() + i * packed_floats_);
  }
  Kokkos::fence();
}

const float* ExpertStore::packed(int expert) const {
  if (is_native(expert)) return native_.view().data() + (expert - first_native_) * packed_floats_;
  if (auto it = imports_.find(expert); it != imports_.end()) return it->second;
  if (active_)
    if (auto it = active_->find(expert); it != active_->end()) return it->second.view().data();
  throw std::logic_error("expert " + std::to_string(expert) + " is neither native, imported nor resident on this rank");
}

ExpertWeightsView ExpertStore::view(int expert) const { return packed_expert_view(packed(expert), shape_); }

Bf16ExpertWeights ExpertStore::bf16_view(int expert) const {
  return packed_view<Bf16ExpertWeights, ConstBf16Matrix>(reinterpret_cast<const bf16*>(packed(expert)), shape_);
}

PackedLayout packed_layout(const ModelShape& shape) {
  const int64_t D = shape.hidden, H = shape.ffn;
  PackedLayout l;
  l.w_d = D * 2 * H;
  l.b_gu = l.w_d + H * D;
  l.b_d = l.b_gu + 2 * H;
  l.biases = shape.activation == Activation::GptOss;
  l.floats = l.biases ? l.b_d + D : l.b_gu;
  return l;
}

ExpertWeightsView packed_expert_view(const float* p, const ModelShape& shape) {
  return packed_view<ExpertWeightsView, ConstUnmanagedMatrix>(p, shape);
}

std::vector<std::pair<int, float*>> ExpertStore::set_resident(const std::string& policy,
                                                              const std::vector<int>& wanted) {
  auto& held = resident_[policy];
  for (auto it = held.begin(); it != held.end();)
    it = std::find(wanted.begin(), wanted.end(), it->first) == wanted.end() ? held.erase(it) : std::next(it);
  std::vector<std::pair<int, float*>> arriving;
  for (int e : wanted) {
    auto [it, inserted] = held.try_emplace(e, resident_tracker_, "resident_expert", packed_floats_);
    if (inserted) arriving.emplace_back(e, it->second.view().data());
  }
  active_ = &held;
  return arriving;
}

void ExpertStore::use_resident(const std::string& policy) {
  auto it = resident_.find(policy);
  active_ = it == resident_.end() ? nullptr : &it->second;
}

std::vector<float*> ExpertStore::hold_imports(const std::vector<int>& experts) {
  clear_imports();
  import_rows_ = import_ws_->lease(static_cast<int64_t>(experts.size()));
  std::vector<float*> rows;
  for (size_t i = 0; i < experts.size(); ++i) {
    float* row = import_rows_.view().data() + static_cast<int64_t>(i) * packed_floats_;
    if (!imports_.emplace(experts[i], row).second)
      throw std::logic_error("expert " + std::to_string(experts[i]) + " imported twice in one step");
    rows.push_back(row);
  }
  return rows;
}

}  // namespace moe

#include "runtime/layer/Router.hpp"

#include "kernels/Bf16Kernels.hpp"
#include "kernels/Gemm.hpp"
#include "kernels/RouterKernels.hpp"
#include "runtime/common/Rng.hpp"
#include "runtime/layer/ExpertStore.hpp"

namespace moe {

namespace detail {
// A named free function, not the constructor: nvcc rejects an extended
// (__host__ __device__) lambda whose enclosing function's address cannot be
// taken (a constructor), so KOKKOS_LAMBDA cannot live there on CUDA builds.
void init_router_weights(const Matrix& w, const ModelShape& shape, int layer, uint64_t seed) {
  const int64_t N = shape.num_experts;
  const float scale = weight_scales(shape).router;
  const uint64_t L = static_cast<uint64_t>(layer);
  Kokkos::parallel_for(
      "moe::router_init", RowMajorPolicy2D({0, 0}, {int64_t{shape.hidden}, N}),
      KOKKOS_LAMBDA(const int64_t d, const int64_t e) {
        w(d, e) = synthetic_value(seed, Stream::RouterWeights, L, 0, static_cast<uint64_t>(d * N + e), scale);
      });
  ExecSpace().fence();
}
}  // namespace detail

Router::Router(const ModelShape& shape, int layer, uint64_t seed, ExpertIdSource source, MemoryTracker& tracker)
    : shape_(shape),
      source_(std::move(source)),
      tracker_(&tracker),
      w_r_(tracker, "router_weights", shape.hidden, shape.num_experts) {
  detail::init_router_weights(w_r_.view(), shape, layer, seed);
}

Routing Router::route(const Matrix& x, const RoutingKey& key) const {
  const int64_t B = static_cast<int64_t>(x.extent(0));
  const int K = shape_.top_k;
  Routing r;
  r.expert_ids.assign(static_cast<size_t>(B * K), 0);
  r.expert_ids_dev = ExpertIdVector(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("expert_ids")),
                                    static_cast<size_t>(B * K));
  r.gates = Vector(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("gates")), static_cast<size_t>(B * K));
  if (B == 0) return r;
  // bf16 tokens (two per word) are widened for the fp32 router GEMM; the
  // fp32 copy lives for the routing stage only (MemoryModel.cpp counts it).
  TrackedMatrix wide;
  if (shape_.dtype == DType::BF16) {
    wide = TrackedMatrix(*tracker_, "router_input", B, shape_.hidden);
    widen_from_bf16(bf16_rows(ConstUnmanagedMatrix(x)), wide.view());
  }
  TrackedMatrix logits(*tracker_, "router_logits", B, shape_.num_experts);
  gemm_nn(shape_.dtype == DType::BF16 ? wide.view() : x, w_r_.view(), logits.view());
  auto ids_host = Kokkos::create_mirror_view(r.expert_ids_dev);
  if (source_) {
    source_(key, B, std::span<int32_t>(r.expert_ids.data(), r.expert_ids.size()));
    for (size_t i = 0; i < r.expert_ids.size(); ++i) ids_host(i) = r.expert_ids[i];
    Kokkos::deep_copy(r.expert_ids_dev, ids_host);
  } else {
    topk_experts(logits.view(), K, r.expert_ids_dev);
    Kokkos::deep_copy(ids_host, r.expert_ids_dev);
    for (size_t i = 0; i < r.expert_ids.size(); ++i) r.expert_ids[i] = ids_host(i);
  }
  chosen_softmax(logits.view(), r.expert_ids_dev, K, r.gates);
  ExecSpace().fence();
  return r;
}

}  // namespace moe

#include "runtime/workload/Tokens.hpp"

#include "runtime/common/Rng.hpp"
#include "runtime/layer/ExpertStore.hpp"

namespace moe {

void generate_tokens(const ModelShape& shape, uint64_t seed, int step, int layer, int64_t token_offset,
                     const Matrix& x) {
  const int64_t B = static_cast<int64_t>(x.extent(0));
  const int64_t D = static_cast<int64_t>(x.extent(1));
  if (B == 0) return;
  const float scale = weight_scales(shape).token;
  const uint64_t S = static_cast<uint64_t>(step), L = static_cast<uint64_t>(layer);
  Kokkos::parallel_for(
      "moe::generate_tokens", RowMajorPolicy2D({0, 0}, {B, D}), KOKKOS_LAMBDA(const int64_t t, const int64_t d) {
        x(t, d) = synthetic_value(seed, Stream::Tokens, S * 65536 + L, static_cast<uint64_t>(token_offset + t),
                                  static_cast<uint64_t>(d), scale);
      });
  ExecSpace().fence();
}

void generate_output_grad(uint64_t seed, int step, int layer, int64_t token_offset, const Matrix& g) {
  const int64_t B = static_cast<int64_t>(g.extent(0));
  const int64_t D = static_cast<int64_t>(g.extent(1));
  if (B == 0) return;
  const uint64_t S = static_cast<uint64_t>(step), L = static_cast<uint64_t>(layer);
  Kokkos::parallel_for(
      "moe::generate_output_grad", RowMajorPolicy2D({0, 0}, {B, D}), KOKKOS_LAMBDA(const int64_t t, const int64_t d) {
        g(t, d) = synthetic_value(seed, Stream::OutputGrad, S * 65536 + L, static_cast<uint64_t>(token_offset + t),
                                  static_cast<uint64_t>(d), 1.0f);
      });
  ExecSpace().fence();
}

float output_grad_value(uint64_t seed, int step, int layer, int64_t token, int64_t d) {
  return synthetic_value(seed, Stream::OutputGrad, static_cast<uint64_t>(step) * 65536 + static_cast<uint64_t>(layer),
                         static_cast<uint64_t>(token), static_cast<uint64_t>(d), 1.0f);
}

}  // namespace moe

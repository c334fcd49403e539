#include "kernels/ExpertFfn.hpp"

#include <stdexcept>

#include "kernels/Gemm.hpp"
#include "kernels/KokkosMath.hpp"

namespace moe {

namespace {
// One row of the activation. Plain pointers and no branches inside the loop,
// so that host compilers vectorise it (with -fno-trapping-math, see CMake).
template <bool GptOss, bool Bias>
KOKKOS_INLINE_FUNCTION void activate_row(const float* __restrict g_row, const float* __restrict u_row,
                                         const float* __restrict b_gu, float* __restrict a_row, int64_t H, float limit,
                                         float alpha) {
  for (int64_t j = 0; j < H; ++j) {
    float g = g_row[j];
    float u = u_row[j];
    if constexpr (Bias) {
      g += b_gu[j];
      u += b_gu[j + H];
    }
    if constexpr (GptOss) {
      // gpt-oss: clamp, then glu = g * sigmoid(alpha * g), out = (u + 1) * glu.
      g = g > limit ? limit : g;
      u = u > limit ? limit : (u < -limit ? -limit : u);
      a_row[j] = (u + 1.0f) * (g * kmath::sigmoid(alpha * g));
    } else {
      a_row[j] = g * kmath::sigmoid(g) * u;
    }
  }
}

// Host builds compile the row loop for AVX-512, AVX2 and baseline x86-64 and
// pick one at load time: the activation's exp would otherwise cost a large
// share of a small expert's GEMM time (docs/performance.md).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__) && !defined(__clang__)
#define MOE_HOST_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOE_HOST_CLONES
#endif

MOE_HOST_CLONES void activate_rows_host(const float* gu, int64_t ld_gu, const float* b_gu, float* act, int64_t rows,
                                        int64_t H, bool gpt_oss, float limit, float alpha) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* g_row = gu + i * ld_gu;
    float* a_row = act + i * H;
    if (gpt_oss && b_gu)
      activate_row<true, true>(g_row, g_row + H, b_gu, a_row, H, limit, alpha);
    else if (gpt_oss)
      activate_row<true, false>(g_row, g_row + H, b_gu, a_row, H, limit, alpha);
    else if (b_gu)
      activate_row<false, true>(g_row, g_row + H, b_gu, a_row, H, limit, alpha);
    else
      activate_row<false, false>(g_row, g_row + H, b_gu, a_row, H, limit, alpha);
  }
}

// One team per row, the row's columns over the team's threads (coalesced).
// The arithmetic is swiglu_element's (tested against the host rows). Unused
// (discarded branch) where views live in host memory.
[[maybe_unused]] void activate_device(const ConstUnmanagedMatrix& gu, const float* b_gu, const ActivationParams& p,
                                      const UnmanagedMatrix& act) {
  const int64_t n = static_cast<int64_t>(act.extent(0));
  const int64_t H = static_cast<int64_t>(act.extent(1));
  using Team = Kokkos::TeamPolicy<ExecSpace>::member_type;
  Kokkos::parallel_for(
      "moe::swiglu", Kokkos::TeamPolicy<ExecSpace>(static_cast<int>(n), Kokkos::AUTO), KOKKOS_LAMBDA(const Team& team) {
        const int64_t i = team.league_rank();
        const float* gu_row = &gu(i, 0);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, H),
                             [&](const int64_t j) { act(i, j) = swiglu_element(gu_row, b_gu, j, H, p); });
      });
}
}  // namespace

void swiglu_activation(const ConstUnmanagedMatrix& gu, const float* b_gu, const ActivationParams& p,
                       const UnmanagedMatrix& act) {
  const int64_t n = static_cast<int64_t>(act.extent(0));
  const int64_t H = static_cast<int64_t>(act.extent(1));
  if (n == 0) return;
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible) {
    // Chunks of rows so that a threaded host backend still spreads the work.
    constexpr int64_t kRows = 32;
    const int64_t ld = static_cast<int64_t>(gu.extent(1));
    const float* g = gu.data();
    float* a = act.data();
    const bool gpt_oss = p.gpt_oss;
    const float limit = p.limit, alpha = p.alpha;
    Kokkos::parallel_for("moe::swiglu",
                         Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, (n + kRows - 1) / kRows),
                         [=](const int64_t c) {
                           const int64_t first = c * kRows;
                           const int64_t rows = n - first < kRows ? n - first : kRows;
                           activate_rows_host(g + first * ld, ld, b_gu, a + first * H, rows, H, gpt_oss, limit, alpha);
                         });
  } else {
    activate_device(gu, b_gu, p, act);
  }
}

void add_row_bias(const UnmanagedMatrix& y, const float* bias) {
  const int64_t n = static_cast<int64_t>(y.extent(0));
  const int64_t D = static_cast<int64_t>(y.extent(1));
  if (n == 0 || bias == nullptr) return;
  Kokkos::parallel_for(
      "moe::add_row_bias", RowMajorPolicy2D({0, 0}, {n, D}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { y(i, j) += bias[j]; });
}

int64_t default_ffn_tile_rows(int64_t hidden, int64_t ffn) {
  (void)hidden;
  (void)ffn;
  return kDefaultFfnTileRows;
}

int64_t ffn_workspace_rows(int64_t block_rows, int64_t tile_rows) {
  if (tile_rows < 1) tile_rows = 1;
  return block_rows < tile_rows ? (block_rows < 0 ? 0 : block_rows) : tile_rows;
}

void expert_ffn(const ConstUnmanagedMatrix& x, const ExpertWeightsView& w, const ActivationParams& p,
                const UnmanagedMatrix& gu_ws, const UnmanagedMatrix& act_ws, const UnmanagedMatrix& y) {
  const int64_t n = static_cast<int64_t>(x.extent(0));
  if (n == 0) return;
  const int64_t ws_rows = static_cast<int64_t>(gu_ws.extent(0) < act_ws.extent(0) ? gu_ws.extent(0) : act_ws.extent(0));
  if (ws_rows < 1) throw std::invalid_argument("moe::expert_ffn: empty workspace for a non-empty block");
  const int64_t tile = ws_rows < n ? ws_rows : n;
  // Row tiles: each tile's gate/up block (tile x 2H) and activation (tile x H)
  // are produced and consumed while still in cache. Every operand is a row
  // range of a row-major matrix, hence contiguous LayoutRight: the GEMMs stay
  // on the BLAS path.
  for (int64_t r0 = 0; r0 < n; r0 += tile) {
    const int64_t t = n - r0 < tile ? n - r0 : tile;
    const UnmanagedMatrix gu = row_block(gu_ws, 0, t);
    const UnmanagedMatrix act = row_block(act_ws, 0, t);
    const UnmanagedMatrix y_t = row_block(y, r0, t);
    gemm_nn(row_block(x, r0, t), w.w_gu, gu);
    swiglu_activation(gu, w.b_gu, p, act);
    gemm_nn(act, w.w_d, y_t);
    add_row_bias(y_t, w.b_d);
  }
}

}  // namespace moe

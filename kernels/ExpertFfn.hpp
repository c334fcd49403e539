#pragma once
// One expert's feed-forward block on a contiguous block of token-slots:
//   gu  = x * W_gu (+ b_gu)        [n x 2H]  (gate columns [0, H), up [H, 2H))
//   act = silu(gate) * up          [n x H]   (or the gpt-oss clamped variant)
//   y   = act * W_d (+ b_d)        [n x D]
// The two GEMMs go to the vendor BLAS through gemm_nn; the activation is one
// Kokkos kernel. The block is computed in row tiles of the workspaces' row
// count, so the workspaces are bounded by the tile, not by the block.

#include "kernels/KernelTypes.hpp"
#include "kernels/KokkosMath.hpp"

namespace moe {

struct ExpertWeightsView {
  ConstUnmanagedMatrix w_gu;    // D x 2H
  ConstUnmanagedMatrix w_d;     // H x D
  const float* b_gu = nullptr;  // 2H, gpt-oss only (device pointer)
  const float* b_d = nullptr;   // D, gpt-oss only (device pointer)
};

struct ActivationParams {
  bool gpt_oss = false;  // clamp + alpha variant of gpt-oss
  float limit = 7.0f;
  float alpha = 1.702f;
};

/// gpt-oss's clamps (the backward's gradient follows them): the gate from
/// above, the up from both sides.
KOKKOS_INLINE_FUNCTION float clamp_gate(float g, const ActivationParams& p) { return g > p.limit ? p.limit : g; }
KOKKOS_INLINE_FUNCTION float clamp_up(float u, const ActivationParams& p) {
  return u > p.limit ? p.limit : (u < -p.limit ? -p.limit : u);
}

/// The activation of one element: gate g, up u (biases already added).
KOKKOS_INLINE_FUNCTION float activate_gate_up(float g, float u, const ActivationParams& p) {
  if (p.gpt_oss) {
    // gpt-oss: clamp, then glu = g * sigmoid(alpha * g), out = (u + 1) * glu.
    g = clamp_gate(g, p);
    u = clamp_up(u, p);
    return (u + 1.0f) * (g * kmath::sigmoid(p.alpha * g));
  }
  return g * kmath::sigmoid(g) * u;
}

/// Element j of one activation row as the device kernel computes it: gate
/// column j and up column H + j of the row `gu_row` (2H floats), plus their
/// biases b_gu[j] and b_gu[H + j] when b_gu is given. Host-callable, so that
/// the device kernel's indexing is tested on machines without a GPU.
KOKKOS_INLINE_FUNCTION float swiglu_element(const float* gu_row, const float* b_gu, int64_t j, int64_t H,
                                            const ActivationParams& p) {
  float g = gu_row[j], u = gu_row[H + j];
  if (b_gu) {
    g += b_gu[j];
    u += b_gu[H + j];
  }
  return activate_gate_up(g, u, p);
}

/// gu (n x 2H) -> act (n x H), adding b_gu first when given.
void swiglu_activation(const ConstUnmanagedMatrix& gu, const float* b_gu, const ActivationParams& p,
                       const UnmanagedMatrix& act);

/// y += bias broadcast over rows.
void add_row_bias(const UnmanagedMatrix& y, const float* bias);

/// Default rows per tile, chosen by measurement (OpenBLAS, one thread, AMD EPYC
/// with 1 MiB L2 per core and 32 MiB L3; docs/performance.md, "Expert FFN row
/// tile"): at D = H = 2048, D = H = 2880 (gpt-oss) and D = 2048, H = 768
/// (qwen3) the tiled FFN is within 1-2% of the plain sgemm pair for tiles of
/// 512 ... 8192 rows and loses 2-5% at 256 and 8-16% at 64 (each GEMM call
/// re-packs the expert's weights). 512 is the smallest tile on the plateau:
/// its gate/up and activation blocks (512 x 3H floats, 17 MiB at H = 2880)
/// stay in L3 between the GEMMs.
inline constexpr int64_t kDefaultFfnTileRows = 512;

/// Default row tile for an expert of hidden size D = `hidden` and intermediate
/// size H = `ffn` (kDefaultFfnTileRows for every measured shape; the shape is
/// an argument so that a later measurement can make it shape-dependent).
int64_t default_ffn_tile_rows(int64_t hidden, int64_t ffn);

/// Rows the workspaces need for a largest block of `block_rows` rows computed
/// in tiles of `tile_rows`: min(block_rows, tile_rows) (tile_rows < 1 counts
/// as 1). gu_ws needs that many rows x 2H, act_ws that many rows x H.
int64_t ffn_workspace_rows(int64_t block_rows, int64_t tile_rows);

/// Runs the whole expert block y = FFN(x) (x: n x D, y: n x D) in row tiles of
/// T = min(gu_ws.extent(0), act_ws.extent(0)) rows: for each tile, the gate/up
/// GEMM into gu_ws's first rows (T x 2H), the activation into act_ws's first
/// rows (T x H), and the down GEMM into the tile's rows of y. The workspaces
/// are caller-owned and need only min(n, tile) rows (ffn_workspace_rows);
/// workspaces of >= n rows compute the block in one tile. Results equal the
/// one-shot computation within float rounding (the BLAS may block the sums
/// differently). n = 0 does nothing; n > 0 with an empty workspace aborts.
void expert_ffn(const ConstUnmanagedMatrix& x, const ExpertWeightsView& w, const ActivationParams& p,
                const UnmanagedMatrix& gu_ws, const UnmanagedMatrix& act_ws, const UnmanagedMatrix& y);

}  // namespace moe

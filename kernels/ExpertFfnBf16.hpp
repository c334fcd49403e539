#pragma once
// The expert FFN of kernels/ExpertFfn.hpp on bf16 storage with fp32
// arithmetic: input rows, weights (and gpt-oss biases) and output rows are
// bf16; every GEMM is an fp32 sgemm on operands widened on the fly, so the
// sums accumulate in fp32 (Debian's OpenBLAS 0.3.21 has no sbgemm). Per row
// tile of T rows:
//   x_wide  = widen(x tile)                                  [T x D]  fp32
//   gu      = x_wide * widen(W_gu column panel) (+ b_gu), panel by panel
//   act     = activation(gu)                                 [T x H]  fp32
//   y tile  = bf16(act * widen(W_d column panel) (+ b_d)), panel by panel
// A panel is at most bf16_panel_cols() columns of a weight matrix (all its
// rows) widened into `panel`; its product lands in `out_panel` (T x panel
// columns) and is copied to its columns of gu, or rounded into y's. The
// weights are never widened whole: the extra fp32 memory is the panels and
// x_wide, bounded by the tile and the panel width, not by the expert.

#include "kernels/Bf16Kernels.hpp"
#include "kernels/ExpertFfn.hpp"

namespace moe {

struct Bf16ExpertWeights {
  ConstBf16Matrix w_gu;        // D x 2H
  ConstBf16Matrix w_d;         // H x D
  const bf16* b_gu = nullptr;  // 2H, gpt-oss only (device pointer)
  const bf16* b_d = nullptr;   // D, gpt-oss only (device pointer)
};

/// The fp32 workspaces of one tile: x_wide (T x D), gu (T x 2H), act (T x H),
/// panel (>= max(D, H) * bf16_panel_cols floats), out_panel (T x bf16_panel_cols).
struct Bf16FfnWorkspaces {
  UnmanagedMatrix x_wide, gu, act, panel, out_panel;
};

/// Columns of one widened weight panel: min(256, max(2H, D)) (256 columns
/// keep sgemm near its plateau; docs/dtype.md).
int64_t bf16_panel_cols(int64_t hidden, int64_t ffn);
/// Floats of the panel workspace: max(D, H) rows x bf16_panel_cols.
int64_t bf16_panel_floats(int64_t hidden, int64_t ffn);

/// y (n x D, bf16) = FFN(x (n x D, bf16)) in row tiles of T = x_wide.extent(0)
/// rows (the workspaces' row count; >= 1 when n > 0).
void expert_ffn_bf16(const ConstBf16Matrix& x, const Bf16ExpertWeights& w, const ActivationParams& p,
                     const Bf16FfnWorkspaces& ws, const Bf16Matrix& y);

}  // namespace moe

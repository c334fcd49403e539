#include "kernels/ExpertFfnBf16.hpp"

#include <algorithm>
#include <stdexcept>

#include "kernels/Gemm.hpp"

namespace moe {

int64_t bf16_panel_cols(int64_t hidden, int64_t ffn) { return std::min<int64_t>(256, std::max(2 * ffn, hidden)); }

int64_t bf16_panel_floats(int64_t hidden, int64_t ffn) { return std::max(hidden, ffn) * bf16_panel_cols(hidden, ffn); }

namespace {

// gu(:, c0 + j) = out(:, j) (+ b_gu[c0 + j]) for the panel's columns.
void place_gate_up_panel(const ConstUnmanagedMatrix& out, const bf16* b_gu, int64_t c0, const UnmanagedMatrix& gu) {
  const int64_t n = static_cast<int64_t>(out.extent(0)), m = static_cast<int64_t>(out.extent(1));
  Kokkos::parallel_for(
      "moe::bf16_place_gate_up", RowMajorPolicy2D({0, 0}, {n, m}), KOKKOS_LAMBDA(const int64_t i, const int64_t j) {
        gu(i, c0 + j) = out(i, j) + (b_gu ? to_float(b_gu[c0 + j]) : 0.0f);
      });
}

// y(:, c0 + j) = bf16(out(:, j) (+ b_d[c0 + j])).
void narrow_down_panel(const ConstUnmanagedMatrix& out, const bf16* b_d, int64_t c0, const Bf16Matrix& y) {
  const int64_t n = static_cast<int64_t>(out.extent(0)), m = static_cast<int64_t>(out.extent(1));
  Kokkos::parallel_for(
      "moe::bf16_narrow_down", RowMajorPolicy2D({0, 0}, {n, m}), KOKKOS_LAMBDA(const int64_t i, const int64_t j) {
        y(i, c0 + j) = to_bf16(out(i, j) + (b_d ? to_float(b_d[c0 + j]) : 0.0f));
      });
}

// C (t x cols(W)) = A (t x rows(W)) * widen(W), panel by panel; `place`
// puts each panel's product (t x nc) at its columns c0.
template <class Place>
void gemm_widened_panels(const ConstUnmanagedMatrix& A, const ConstBf16Matrix& W, const Bf16FfnWorkspaces& ws,
                         int64_t panel_cols, Place&& place) {
  const int64_t t = static_cast<int64_t>(A.extent(0));
  const int64_t k = static_cast<int64_t>(W.extent(0)), cols = static_cast<int64_t>(W.extent(1));
  for (int64_t c0 = 0; c0 < cols; c0 += panel_cols) {
    const int64_t nc = std::min(panel_cols, cols - c0);
    const UnmanagedMatrix panel(ws.panel.data(), static_cast<size_t>(k), static_cast<size_t>(nc));
    const UnmanagedMatrix out(ws.out_panel.data(), static_cast<size_t>(t), static_cast<size_t>(nc));
    widen_columns(W, c0, panel);
    gemm_nn(A, panel, out);
    place(ConstUnmanagedMatrix(out), c0);
  }
}

}  // namespace

void expert_ffn_bf16(const ConstBf16Matrix& x, const Bf16ExpertWeights& w, const ActivationParams& p,
                     const Bf16FfnWorkspaces& ws, const Bf16Matrix& y) {
  const int64_t n = static_cast<int64_t>(x.extent(0));
  if (n == 0) return;
  const int64_t D = static_cast<int64_t>(x.extent(1)), H = static_cast<int64_t>(w.w_d.extent(0));
  const int64_t T = static_cast<int64_t>(ws.x_wide.extent(0));
  const int64_t pc = static_cast<int64_t>(ws.out_panel.extent(1));
  if (T < 1 || pc < 1 || static_cast<int64_t>(ws.gu.extent(0)) < T || static_cast<int64_t>(ws.act.extent(0)) < T ||
      static_cast<int64_t>(ws.out_panel.extent(0)) < T || static_cast<int64_t>(ws.panel.span()) < std::max(D, H) * pc)
    throw std::logic_error("expert_ffn_bf16: workspaces too small for the tile");
  for (int64_t r0 = 0; r0 < n; r0 += T) {
    const int64_t t = std::min(T, n - r0);
    const UnmanagedMatrix x_wide = row_block(ws.x_wide, 0, t), gu = row_block(ws.gu, 0, t),
                          act = row_block(ws.act, 0, t);
    widen_from_bf16(ConstBf16Matrix(x.data() + r0 * D, static_cast<size_t>(t), static_cast<size_t>(D)), x_wide);
    gemm_widened_panels(x_wide, w.w_gu, ws, pc,
                        [&](const ConstUnmanagedMatrix& out, int64_t c0) { place_gate_up_panel(out, w.b_gu, c0, gu); });
    swiglu_activation(gu, nullptr, p, act);
    const Bf16Matrix y_tile(y.data() + r0 * D, static_cast<size_t>(t), static_cast<size_t>(D));
    gemm_widened_panels(act, w.w_d, ws, pc, [&](const ConstUnmanagedMatrix& out, int64_t c0) {
      narrow_down_panel(out, w.b_d, c0, y_tile);
    });
  }
}

}  // namespace moe

// The backward of one MoE layer step on one rank, on the forward's plan, as
// named stages (docs/backward.md, "Data path"). The forward kept the step
// (MoeLayer::saved_): routing, layout, the expert-major inputs, the gate/up
// pre-activations, the slot outputs z_s (remote slots' in the send buffer
// after the combine, local ones in the expert-major output) and the imported
// weights. No GEMM of the forward is recomputed; only the activation is, from
// the saved pre-activations (elementwise).
//
//   grad_dispatch      dgate_s = <z_s, G_t> at the origin; dz_s = gate_s G_t
//                      to the computing rank (the forward dispatch's all-to-all(v))
//   expert_backward    per expert block, in row tiles: dW_d, db_d, da, dgu,
//                      dW_gu, db_gu and the slot's input gradient dx_s
//   start_grad_return  partial gradients of non-native experts posted to their
//                      native ranks (P2P), overlapping ...
//   grad_combine       ... the reverse all-to-all(v) of dx_s and dx_t = sum_k dx_s
//   router_backward    through the renormalised softmax into W_r (all-reduced) and x
//   finish_grad_return the native rank adds the partial gradients it received
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/ExpertFfnBackward.hpp"
#include "kernels/Gemm.hpp"
#include "kernels/Permute.hpp"
#include "kernels/RouterKernels.hpp"
#include "runtime/layer/MoeLayer.hpp"
#include "runtime/layer/MoeLayerState.hpp"
#include "runtime/layer/WorkSplit.hpp"

namespace moe {

namespace {
// The gradient of one expert, packed like its weights (ExpertStore.hpp).
struct ExpertGradView {
  UnmanagedMatrix w_gu;   // D x 2H
  UnmanagedMatrix w_d;    // H x D
  float* b_gu = nullptr;  // 2H, gpt-oss only
  float* b_d = nullptr;   // D, gpt-oss only
};

ExpertGradView packed_grad_view(float* p, const ModelShape& shape) {
  return packed_view<ExpertGradView, UnmanagedMatrix>(p, shape);
}
}  // namespace

StepRecord MoeLayer::backward(const Matrix& x, const Matrix& grad_out, const Matrix& dx) {
  if (!saved_) throw std::logic_error("MoeLayer::backward: no saved forward (LayerOptions::backward, executed step)");
  StepState& st = *saved_;
  clock_->discard();
  grad_dispatch(grad_out, st);
  expert_backward(st);
  start_grad_return(st);
  grad_combine(dx, st);
  router_backward(x, dx, st);
  finish_grad_return(st);
  count_grad_traffic(st);
  clock_->resolve();  // the backward phases' times, after its exchanges
  st.rec.peak_bytes = tracker_.peak() + st.rec.bytes_resident;
  StepRecord rec = st.rec;
  saved_.reset();
  experts_.clear_imports();
  return rec;
}

// Output-gradient dispatch: at the origin, every kept slot's gate-weight
// gradient from its saved output, then its output gradient dz_s = gate_s G_t
// into the rows the forward's outputs came back in (the send buffer, the
// expert-major rows of slots computed here), and the forward dispatch's
// all-to-all(v) of them to the computing ranks.
void MoeLayer::grad_dispatch(const Matrix& grad_out, StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::BwdDispatch);
  const int K = shape_.top_k;
  {
    BusyScope busy(*clock_, st.T(), Phase::BwdDispatch);
    Kokkos::deep_copy(ExecSpace(), grad_native_.view(), 0.0f);  // this step's gradients
    st.d_gates = TrackedVector(tracker_, "d_gates", st.routing.expert_ids.size());
    slot_row_dots(SlotOutputs{st.send.view(), st.slot_send_row, st.y_experts.view(), st.slot_compute_row}, grad_out, K,
                  st.d_gates.view());
    scatter_gated_rows(grad_out, st.routing.gates, K, st.slot_send_row, st.send.view());
    scatter_gated_rows(grad_out, st.routing.gates, K, st.slot_compute_row, st.y_experts.view());
    ExecSpace().fence();
  }
  comm_.alltoallv_rows(st.send.view().data(), st.exchange.send_rows, st.recv.view().data(), st.exchange.recv_rows,
                       shape_.hidden);
  BusyScope busy(*clock_, st.T(), Phase::BwdDispatch);
  scatter_rows(st.recv.view(), st.recv_compute_row, st.y_experts.view());
  ExecSpace().fence();
}

// Expert backward: per block, in the forward's row tiles, with dz in the
// expert-major output rows (overwritten by the slots' input gradients):
//   a = act(gu)              (recomputed elementwise from the saved gu)
//   dW_d += a^T dz,  db_d += colsum dz,  da = dz W_d^T
//   dgu = act'(gu) . da,  dW_gu += x^T dgu,  db_gu += colsum dgu,  dx_s = dgu W_gu^T
// Gradients of native experts go to grad_native_, of the others to one
// packed row each (returned to the native rank). Then dx_s of received rows
// go back to receive order for the combine.
void MoeLayer::expert_backward(StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::BwdCompute);
  BusyScope busy(*clock_, st.T(), Phase::BwdCompute);
  const DispatchLayout& L = st.layout;
  std::vector<int> foreign;
  for (const auto& b : L.blocks)
    if (!experts_.is_native(b.expert) && b.count > 0) foreign.push_back(b.expert);
  st.grad_foreign = ws_.grad_foreign.lease(static_cast<int64_t>(foreign.size()));
  if (!foreign.empty()) Kokkos::deep_copy(ExecSpace(), st.grad_foreign.view(), 0.0f);
  const int64_t packed = experts_.packed_floats();
  for (size_t i = 0; i < foreign.size(); ++i)
    st.grad_rows[foreign[i]] = st.grad_foreign.view().data() + static_cast<int64_t>(i) * packed;
  const int first_native = comm_.rank() * (shape_.num_experts / comm_.size());

  const int64_t tile = ffn_workspace_rows(L.largest_block(), options_.tile_rows(shape_));
  Workspace::Lease gate_up = ws_.gate_up.lease(tile), activation = ws_.activation.lease(tile);
  for (const auto& b : L.blocks) {
    float* grad = experts_.is_native(b.expert)
                      ? grad_native_.view().data() + static_cast<int64_t>(b.expert - first_native) * packed
                      : st.grad_rows.at(b.expert);
    const ExpertGradView g = packed_grad_view(grad, shape_);
    const ExpertWeightsView w = experts_.view(b.expert);
    for (int64_t r0 = 0; r0 < b.count; r0 += tile) {
      const int64_t t = std::min(tile, b.count - r0);
      const UnmanagedMatrix x_t = row_block(st.x_experts.view(), b.begin + r0, t);
      const UnmanagedMatrix gu_t = row_block(st.saved_gu.view(), b.begin + r0, t);
      const UnmanagedMatrix dz_t = row_block(st.y_experts.view(), b.begin + r0, t);
      const UnmanagedMatrix a = row_block(activation.view(), 0, t);
      const UnmanagedMatrix dgu = row_block(gate_up.view(), 0, t);
      swiglu_activation(gu_t, w.b_gu, act_, a);
      gemm_tn(a, dz_t, g.w_d, 1.0f);
      if (g.b_d) add_column_sums(dz_t, g.b_d);
      gemm_nt(dz_t, w.w_d, a);  // da, over a
      swiglu_activation_backward(gu_t, w.b_gu, act_, a, dgu);
      gemm_tn(x_t, dgu, g.w_gu, 1.0f);
      if (g.b_gu) add_column_sums(dgu, g.b_gu);
      gemm_nt(dgu, w.w_gu, dz_t);  // dx_s, over dz
    }
  }
  gather_rows(st.y_experts.view(), st.recv_compute_row, st.recv.view());
  ExecSpace().fence();
}

// Weight-gradient return, posted before the input-gradient combine so that it
// overlaps it: every rank derives from the plan alone (partition_work) which
// non-native experts each rank computed, so senders and receivers agree
// without a count exchange. One message per (rank, foreign expert), tagged
// with the expert, the packed layout of the weights.
void MoeLayer::start_grad_return(StepState& st) {
  // Posting is charged to the expert backward's wall time (the forward's
  // weight transfers are posted outside any phase): bwd_weights is the wait
  // and the sum, after the combine, so the timeline's phases do not overlap.
  PhaseScope wall(*clock_, st.T(), Phase::BwdCompute);
  const int me = comm_.rank(), P = comm_.size(), N = shape_.num_experts;
  const int64_t bytes = experts_.packed_bytes();
  for (const auto& [e, row] : st.grad_rows) st.grad_sends.push_back({native_rank(e, N, P), e, row, nullptr, bytes});
  const std::vector<RankWork> work = partition_work(st.plan);
  std::vector<int> sources;
  for (int r = 0; r < P; ++r) {
    if (r == me) continue;
    for (const auto& b : work[static_cast<size_t>(r)].blocks)
      if (b.imported && b.slots > 0 && native_rank(b.expert, N, P) == me) {
        st.incoming_experts.push_back(b.expert);
        sources.push_back(r);
      }
  }
  st.grad_incoming = ws_.grad_incoming.lease(static_cast<int64_t>(st.incoming_experts.size()));
  // The router backward's buffer too: nothing is allocated or freed while the
  // gradients are in flight (on a GPU a free synchronises the device).
  st.d_logits =
      TrackedMatrix(tracker_, "router_logit_grads", st.d_gates.view().extent(0) / shape_.top_k, shape_.num_experts);
  for (size_t i = 0; i < sources.size(); ++i)
    st.grad_recvs.push_back({sources[i], st.incoming_experts[i], nullptr,
                             st.grad_incoming.view().data() + static_cast<int64_t>(i) * experts_.packed_floats(),
                             bytes});
  comm_.begin_exchange(st.grad_sends, st.grad_recvs);
}

// Input-gradient combine: the forward combine's reverse all-to-all(v), then
// dx_t = sum over the token's kept slots of dx_s (not gate-weighted: the gate
// is in dz_s). Overwrites dx.
void MoeLayer::grad_combine(const Matrix& dx, StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::BwdCombine, ClockStream::Comm, ClockStream::Compute);
  comm_.alltoallv_rows(st.recv.view().data(), st.exchange.recv_rows, st.send.view().data(), st.exchange.send_rows,
                       shape_.hidden);
  BusyScope busy(*clock_, st.T(), Phase::BwdCombine);
  combine_slots(SlotOutputs{st.send.view(), st.slot_send_row, st.y_experts.view(), st.slot_compute_row}, ConstVector(),
                shape_.top_k, dx);
  ExecSpace().fence();
}

// Router backward: the logits' gradient through the softmax over the chosen
// experts (dropped slots have dgate 0 but their logit is in the denominator),
// dW_r = x^T dl (this rank's part, then summed over ranks) and dx += dl W_r^T.
void MoeLayer::router_backward(const Matrix& x, const Matrix& dx, StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::BwdRouter);
  {
    BusyScope busy(*clock_, st.T(), Phase::BwdRouter);
    const UnmanagedMatrix d_logits(st.d_logits.view().data(), x.extent(0), st.d_logits.view().extent(1));
    chosen_softmax_backward(st.routing.gates, st.d_gates.view(), st.routing.expert_ids_dev, shape_.top_k, d_logits);
    gemm_tn(x, d_logits, grad_router_.view());
    gemm_nt(d_logits, router_.weights(), dx, 1.0f);
    ExecSpace().fence();
  }
  if (comm_.size() > 1) {
    // Instance copies and fences only: partial gradients are in flight.
    const ExecSpace exec;
    auto host = Kokkos::create_mirror_view(Kokkos::HostSpace(), grad_router_.view());
    Kokkos::deep_copy(exec, host, grad_router_.view());
    exec.fence();
    comm_.allreduce_sum_floats(std::span<float>(host.data(), host.span()));
    Kokkos::deep_copy(exec, grad_router_.view(), host);
    exec.fence();
    st.rec.bytes_router_grad = static_cast<int64_t>(host.span() * sizeof(float));
  }
}

// The native rank adds the partial gradients it received to its own.
void MoeLayer::finish_grad_return(StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::BwdWeights, ClockStream::Comm, ClockStream::Compute);
  comm_.wait_exchange();
  BusyScope busy(*clock_, st.T(), Phase::BwdWeights);
  const int first_native = comm_.rank() * (shape_.num_experts / comm_.size());
  const int64_t packed = experts_.packed_floats();
  for (size_t i = 0; i < st.incoming_experts.size(); ++i)
    add_to(grad_native_.view().data() + static_cast<int64_t>(st.incoming_experts[i] - first_native) * packed,
           st.grad_incoming.view().data() + static_cast<int64_t>(i) * packed, packed);
  ExecSpace().fence();
}

// Bytes of the backward: the gradient rows cross the same pairs as the
// forward's token rows (dz one way, dx_s back), and the partial gradients.
void MoeLayer::count_grad_traffic(StepState& st) {
  st.rec.bytes_grad_tokens_sent = st.rec.bytes_tokens_sent;
  st.rec.bytes_grad_weights_sent = static_cast<int64_t>(st.grad_sends.size()) * experts_.packed_bytes();
  st.rec.bytes_grad_weights_recv = static_cast<int64_t>(st.grad_recvs.size()) * experts_.packed_bytes();
}

}  // namespace moe

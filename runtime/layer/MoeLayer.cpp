// The data path of one MoE layer step on one rank. Reads top to bottom as the
// step runs: route, count, all-gather counts, plan, dispatch, weights, expert
// compute, combine. Every rank runs the same code on its own tokens.
#include "runtime/layer/MoeLayer.hpp"

#include <algorithm>
#include <vector>

#include "kernels/Permute.hpp"

namespace moe {

namespace {
IndexVector to_device(const std::vector<int64_t>& host, const char* label) {
  IndexVector dev(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)), host.size());
  auto mirror = Kokkos::create_mirror_view(dev);
  for (size_t i = 0; i < host.size(); ++i) mirror(i) = host[i];
  Kokkos::deep_copy(dev, mirror);
  return dev;
}

int64_t remote_rows(const std::vector<int64_t>& rows_per_rank, int me) {
  int64_t n = 0;
  for (size_t p = 0; p < rows_per_rank.size(); ++p)
    if (static_cast<int>(p) != me) n += rows_per_rank[p];
  return n;
}
}  // namespace

MoeLayer::MoeLayer(const ModelShape& shape, int layer, uint64_t seed, ExpertIdSource source, Communicator& comm,
                   MemoryTracker& tracker)
    : shape_(shape),
      comm_(comm),
      tracker_(tracker),
      router_(shape, layer, seed, std::move(source), tracker),
      experts_(shape, layer, seed, comm.rank(), comm.size(), tracker),
      act_{shape.activation == Activation::GptOss, shape.swiglu_limit, shape.swiglu_alpha} {}

StepRecord MoeLayer::forward(const Matrix& x, const RoutingKey& key, const PlacementPolicy& policy, const Matrix& out,
                             StepTrace* trace, const StepBudget* budget) {
  const int P = comm_.size(), me = comm_.rank();
  const int N = shape_.num_experts, K = shape_.top_k;
  const int64_t D = shape_.hidden, H = shape_.ffn;
  const int64_t row_bytes = D * static_cast<int64_t>(sizeof(float));
  StepRecord rec;
  PhaseTimes& T = rec.times;
  tracker_.reset_peak();

  // 1. Route: top-K experts and gate weights for every local token.
  Routing routing;
  {
    PhaseScope wall(T, Phase::Route);
    BusyScope busy(T, Phase::Route);
    routing = router_.route(x, key);
  }
  rec.slots_routed = static_cast<int64_t>(routing.expert_ids.size());

  // 2-4. Count local loads, all-gather them, and plan. Every rank computes the
  // same plan from the same counts; nothing is broadcast.
  LoadMatrix loads(P, N);
  Plan plan;
  DispatchLayout layout;
  {
    PhaseScope wall(T, Phase::Plan);
    std::vector<int64_t> local(N, 0);
    {
      BusyScope busy(T, Phase::Plan);
      for (int32_t e : routing.expert_ids) ++local[e];
    }
    comm_.allgather(local, loads.counts);
    {
      BusyScope busy(T, Phase::Plan);
      plan = policy.plan(loads, P);
      if (budget) {
        // Same verdict on every rank: it depends on the plan and loads only.
        BudgetVerdict v = fit_to_budget(plan, policy, budget->params, loads, shape_, budget->num_layers, budget->bytes);
        if (trace) trace->alpha_used = v.alpha_used;
        if (!v.fits) {
          if (trace) {
            trace->executed = false;
            trace->oom_reason = v.reason;
            trace->loads = std::move(loads);
            trace->plan = std::move(v.plan);
          }
          return rec;
        }
        plan = std::move(v.plan);
      }
    }
    std::vector<float> gathered_gates;  // only for gate-ordered plans
    if (plan.slot_order == SlotOrder::GateDescending) {
      // Gates of this rank's slots grouped by expert, local order within each.
      // A stable bucket pass: expert e's gates start at the sum of the local
      // counts of the experts before it.
      std::vector<float> mine(routing.expert_ids.size());
      std::vector<int64_t> cursor(N, 0);
      for (int e = 1; e < N; ++e) cursor[e] = cursor[e - 1] + local[e - 1];
      auto gates_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), routing.gates);
      for (size_t s = 0; s < routing.expert_ids.size(); ++s)
        mine[static_cast<size_t>(cursor[routing.expert_ids[s]]++)] = gates_host(s);
      std::vector<int64_t> counts(P, 0);
      int64_t total = 0;
      for (int q = 0; q < P; ++q)
        for (int e = 0; e < N; ++e) counts[q] += loads.at(q, e);
      for (int64_t c : counts) total += c;
      gathered_gates.resize(static_cast<size_t>(total));
      comm_.allgatherv(mine, gathered_gates, counts);
    }
    BusyScope busy(T, Phase::Plan);
    const SlotOrderMap order = plan.slot_order == SlotOrder::GateDescending ? SlotOrderMap(loads, gathered_gates)
                                                                          : SlotOrderMap(loads);
    layout = build_dispatch_layout(plan, loads, order, me, routing.expert_ids, K);
  }
  rec.slots_dropped = layout.dropped;
  rec.slots_native = layout.slots_native;
  rec.slots_foreign = layout.slots_foreign;

  // 7 (started early). Weight transfers of spilled experts, native -> helper,
  // posted before the token all-to-all so that they overlap it.
  std::vector<P2PMessage> weight_sends, weight_recvs;
  for (const auto& t : plan.transfers) {
    if (t.src == me) weight_sends.push_back({t.dst, t.expert, experts_.packed(t.expert), nullptr, experts_.packed_bytes()});
    if (t.dst == me) weight_recvs.push_back({t.src, t.expert, nullptr, experts_.import_buffer(t.expert), experts_.packed_bytes()});
  }
  rec.experts_imported = static_cast<int64_t>(weight_recvs.size());
  rec.bytes_weights_sent = static_cast<int64_t>(weight_sends.size()) * experts_.packed_bytes();
  rec.bytes_weights_recv = static_cast<int64_t>(weight_recvs.size()) * experts_.packed_bytes();
  comm_.begin_exchange(weight_sends, weight_recvs);

  // 5-6. Dispatch: permute slots by destination, all-to-all(v) of hidden vectors.
  TrackedMatrix send_buf(tracker_, "dispatch_send", layout.total_send(), D);
  TrackedMatrix recv_buf(tracker_, "dispatch_recv", layout.total_recv(), D);
  {
    PhaseScope wall(T, Phase::Dispatch);
    {
      BusyScope busy(T, Phase::Dispatch);
      gather_rows(x, to_device(layout.send_token, "send_token"), send_buf.view());
      Kokkos::fence();
    }
    comm_.alltoallv_rows(send_buf.view().data(), layout.send_rows, recv_buf.view().data(), layout.recv_rows, D);
  }
  // Dispatch sends send_rows and the combine sends recv_rows back (and the
  // reverse for receiving), so the two totals are equal.
  rec.bytes_tokens_sent = (remote_rows(layout.send_rows, me) + remote_rows(layout.recv_rows, me)) * row_bytes;
  rec.bytes_tokens_recv = rec.bytes_tokens_sent;
  {
    PhaseScope wall(T, Phase::Weights);
    comm_.wait_exchange();
  }

  // 8. Expert compute: regroup received rows into one block per expert, run
  // each expert's FFN on its block, and put the outputs back in receive order.
  {
    PhaseScope wall(T, Phase::Compute);
    BusyScope busy(T, Phase::Compute);
    int64_t max_block = 0;
    for (const auto& b : layout.blocks) max_block = std::max(max_block, b.count);
    const IndexVector regroup = to_device(layout.regroup, "regroup");
    TrackedMatrix x_experts(tracker_, "expert_in", layout.total_recv(), D);
    TrackedMatrix y_experts(tracker_, "expert_out", layout.total_recv(), D);
    TrackedMatrix gu_ws(tracker_, "gate_up", max_block, 2 * H);
    TrackedMatrix act_ws(tracker_, "activation", max_block, H);
    gather_rows(recv_buf.view(), regroup, x_experts.view());
    for (const auto& b : layout.blocks)
      expert_ffn(row_block(x_experts.view(), b.begin, b.count), experts_.view(b.expert), act_,
                 gu_ws.view(), act_ws.view(), row_block(y_experts.view(), b.begin, b.count));
    scatter_rows(y_experts.view(), regroup, recv_buf.view());
    Kokkos::fence();
  }

  // 9-10. Combine: reverse all-to-all(v) back to the slots' origins, then
  // un-permute and take the gate-weighted sum over K.
  {
    PhaseScope wall(T, Phase::Combine);
    comm_.alltoallv_rows(recv_buf.view().data(), layout.recv_rows, send_buf.view().data(), layout.send_rows, D);
    BusyScope busy(T, Phase::Combine);
    combine_slots(send_buf.view(), to_device(layout.slot_row, "slot_row"), routing.gates, K, out);
    Kokkos::fence();
  }

  rec.peak_bytes = tracker_.peak();
  experts_.clear_imports();
  if (trace) {
    trace->routing = std::move(routing);
    trace->loads = std::move(loads);
    trace->plan = std::move(plan);
    trace->slot_row = std::move(layout.slot_row);
  }
  return rec;
}

}  // namespace moe

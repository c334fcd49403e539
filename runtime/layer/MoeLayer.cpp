// The data path of one MoE layer step on one rank, as named stages. Every
// rank runs the same code on its own tokens; every rank derives the same plan
// and the same dispatch from the all-gathered counts, so nothing is broadcast.
#include "runtime/layer/MoeLayer.hpp"

#include <algorithm>
#include <iterator>
#include <vector>

#include "kernels/Bf16Kernels.hpp"
#include "kernels/Permute.hpp"
#include "runtime/layer/LayerClock.hpp"
#include "runtime/layer/MoeLayerState.hpp"

namespace moe {

MoeLayer::MoeLayer(const ModelShape& shape, int layer, uint64_t seed, ExpertIdSource source, Communicator& comm,
                   MemoryTracker& tracker, LayerWorkspaces& workspaces, const LayerOptions& options)
    : shape_(shape),
      layer_(layer),
      comm_(comm),
      tracker_(tracker),
      options_(options),
      router_(shape, layer, seed, std::move(source), tracker),
      experts_(shape, layer, seed, comm.rank(), comm.size(), tracker, workspaces.imported_experts),
      act_(activation_params(shape)),
      node_of_rank_(options.ranks_per_node > 0 ? std::vector<int>{} : comm.node_of_rank()),
      ws_(workspaces),
      clock_(make_layer_clock(comm)) {
  if (options.ranks_per_node > 0)
    for (int r = 0; r < comm.size(); ++r) node_of_rank_.push_back(node_of(r, options.ranks_per_node));
  if (options.backward) {
    // The weight gradients live as long as the weights (tracked like them).
    grad_native_ = TrackedMatrix(tracker, "expert_grads", shape.num_experts / comm.size(), experts_.packed_floats());
    grad_router_ = TrackedMatrix(tracker, "router_grad", shape.hidden, shape.num_experts);
  }
}

MoeLayer::~MoeLayer() = default;

StepRecord MoeLayer::forward(const Matrix& x, const RoutingKey& key, PlacementPolicy& policy, const Matrix& out,
                             StepTrace* trace, const StepBudget* budget) {
  if (saved_) {  // a forward whose backward never ran is dropped, with the imports it kept
    saved_.reset();
    experts_.clear_imports();
  }
  clock_->discard();  // spans of a step that threw half-way
  auto state = std::make_unique<StepState>();
  StepState& st = *state;
  st.save = options_.backward;
  tracker_.reset_peak();
  route(x, key, st);
  plan(policy, st);
  const bool runs = !budget || fit_budget(policy, *budget, st);
  if (runs) {
    lay_out(st);
    place_replicas(st);
    start_weight_transfers(st);
    dispatch(x, st);
    finish_weight_transfers(st);
    compute_experts(st);
    combine(out, st);
    count_traffic(st);
    if (st.save) {  // what stays alive for the backward: slot outputs, expert inputs, gate/up
      const int64_t f = static_cast<int64_t>(sizeof(float));
      st.rec.bytes_saved = (st.exchange.total_send() + 2 * st.layout.total_recv()) * shape_.hidden * f +
                           st.layout.total_recv() * 2 * shape_.ffn * f;
    }
    st.rec.bytes_resident = tracker_.residents().count(st.plan.policy, comm_.rank()) * experts_.packed_bytes();
    st.rec.peak_bytes = tracker_.peak() + st.rec.bytes_resident;
  }
  clock_->resolve();  // the phases' times, now that nothing is in flight
  const bool keep = runs && st.save;
  if (trace) {
    trace->executed = runs;
    trace->oom_reason = st.oom_reason;
    trace->alpha_used = st.alpha_used;
    // The backward still needs the routing, the plan and the layout: copies then.
    trace->routing = keep ? st.routing : std::move(st.routing);
    trace->loads = keep ? st.loads : std::move(st.loads);
    trace->plan = keep ? st.plan : std::move(st.plan);
    trace->slot_row = keep ? st.layout.slot_row : std::move(st.layout.slot_row);
  }
  StepRecord rec = st.rec;
  if (keep) saved_ = std::move(state);
  return rec;
}

// Route: top-K experts and gate weights for every local token.
void MoeLayer::route(const Matrix& x, const RoutingKey& key, StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::Route);
  BusyScope busy(*clock_, st.T(), Phase::Route);
  st.routing = router_.route(x, key);
  st.rec.slots_routed = static_cast<int64_t>(st.routing.expert_ids.size());
}

// Plan: count local loads, all-gather them, and let the policy plan.
void MoeLayer::plan(PlacementPolicy& policy, StepState& st) {
  const int P = comm_.size(), N = shape_.num_experts;
  PhaseScope wall(*clock_, st.T(), Phase::Plan);
  st.local_counts.assign(static_cast<size_t>(N), 0);
  {
    BusyScope busy(*clock_, st.T(), Phase::Plan);
    for (int32_t e : st.routing.expert_ids) ++st.local_counts[static_cast<size_t>(e)];
  }
  st.loads = LoadMatrix(P, N);
  comm_.allgather(st.local_counts, st.loads.counts);
  BusyScope busy(*clock_, st.T(), Phase::Plan);
  st.plan = policy.plan_step(StepContext{layer_, P}, st.loads);
}

// Budget: the same verdict on every rank (it depends on the plan and loads
// only). A policy that offers alternatives (LLEP with other alphas) may
// replace the plan by one that fits.
bool MoeLayer::fit_budget(const PlacementPolicy& policy, const StepBudget& budget, StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::Plan);
  BusyScope busy(*clock_, st.T(), Phase::Plan);
  std::vector<int64_t> resident_elsewhere;  // a stateful policy's replicas in the other layers
  if (!st.plan.resident.empty())
    for (int r = 0; r < comm_.size(); ++r)
      resident_elsewhere.push_back(tracker_.residents().count(st.plan.policy, r, layer_));
  BudgetVerdict v = fit_to_budget(st.plan, policy, st.loads, shape_, budget.num_layers, budget.bytes,
                                  options_.ffn_tile_rows, resident_elsewhere, options_.backward);
  st.alpha_used = v.alpha_used;
  st.plan = std::move(v.plan);
  if (!v.fits) st.oom_reason = v.reason;
  return v.fits;
}

// Layout: where every slot goes (DispatchLayout.hpp), what of it crosses the
// all-to-all (ExchangeLayout), and one packed copy of its index arrays to the
// device. Gate-ordered plans need every rank's gates.
void MoeLayer::lay_out(StepState& st) {
  const int P = comm_.size(), N = shape_.num_experts;
  PhaseScope wall(*clock_, st.T(), Phase::Plan);
  std::vector<float> gathered_gates;
  if (st.plan.slot_order == SlotOrder::GateDescending) {
    // This rank's gates grouped by expert, local order within each: a stable
    // bucket pass (expert e's gates start after the earlier experts' counts).
    const auto& ids = st.routing.expert_ids;
    std::vector<float> mine(ids.size());
    std::vector<int64_t> cursor(static_cast<size_t>(N), 0);
    for (int e = 1; e < N; ++e) cursor[e] = cursor[e - 1] + st.local_counts[e - 1];
    auto gates_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), st.routing.gates);
    for (size_t s = 0; s < ids.size(); ++s) mine[static_cast<size_t>(cursor[ids[s]]++)] = gates_host(s);
    std::vector<int64_t> counts(static_cast<size_t>(P), 0);
    for (int q = 0; q < P; ++q)
      for (int e = 0; e < N; ++e) counts[q] += st.loads.at(q, e);
    int64_t total = 0;
    for (int64_t c : counts) total += c;
    gathered_gates.resize(static_cast<size_t>(total));
    comm_.allgatherv(mine, gathered_gates, counts);
  }
  BusyScope busy(*clock_, st.T(), Phase::Plan);
  const SlotOrderMap order =
      st.plan.slot_order == SlotOrder::GateDescending ? SlotOrderMap(st.loads, gathered_gates) : SlotOrderMap(st.loads);
  st.layout = build_dispatch_layout(st.plan, st.loads, order, comm_.rank(), st.routing.expert_ids, shape_.top_k);
  st.rec.slots_dropped = st.layout.dropped;
  st.rec.slots_native = st.layout.slots_native;
  st.rec.slots_foreign = st.layout.slots_foreign;
  st.exchange = exchange_layout(st.layout, comm_.rank());

  // One host->device copy of the index arrays, packed, into a buffer that
  // persists across steps.
  const ExchangeLayout& X = st.exchange;
  const std::vector<int64_t>* parts[] = {&X.send_token,        &X.recv_compute_row, &X.local_token,
                                         &X.local_compute_row, &X.slot_send_row,    &X.slot_compute_row};
  ConstIndexVector* views[] = {&st.send_token,        &st.recv_compute_row, &st.local_token,
                               &st.local_compute_row, &st.slot_send_row,    &st.slot_compute_row};
  st.layout_host.clear();
  for (const auto* part : parts) st.layout_host.insert(st.layout_host.end(), part->begin(), part->end());
  const size_t n = st.layout_host.size();
  if (n > layout_dev_.extent(0))
    layout_dev_ = IndexVector(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("dispatch_layout")), n);
  using HostIndices = Kokkos::View<const int64_t*, IndexVector::array_layout, Kokkos::HostSpace,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  const ExecSpace exec;
  Kokkos::deep_copy(exec, Kokkos::subview(layout_dev_, std::make_pair(size_t{0}, n)),
                    HostIndices(st.layout_host.data(), n));
  exec.fence();  // the host vector may change after this stage
  const int64_t* base = layout_dev_.data();
  for (size_t i = 0; i < std::size(parts); ++i) {
    *views[i] = ConstIndexVector(base, parts[i]->size());
    base += parts[i]->size();
  }
}

// Resident replicas (a stateful policy's plan lists them): every rank reads
// from the ledger which replicas each rank lacks; each arrives from its
// expert's native rank with the step's other weight transfers. Replicas no
// longer listed are freed. Buffers are allocated here, before anything is in
// flight.
void MoeLayer::place_replicas(StepState& st) {
  if (st.plan.resident.empty()) {
    experts_.use_resident("");
    return;
  }
  const int me = comm_.rank(), P = comm_.size(), N = shape_.num_experts;
  const ResidentLedger::PerRank& before = tracker_.residents().held(st.plan.policy, layer_);
  const int64_t bytes = experts_.packed_bytes();
  for (int r = 0; r < P; ++r) {
    if (r == me) continue;
    for (int e : st.plan.resident[r]) {
      const bool had = static_cast<int>(before.size()) > r && std::binary_search(before[r].begin(), before[r].end(), e);
      if (!had && native_rank(e, N, P) == me) st.weight_sends.push_back({r, e, experts_.packed(e), nullptr, bytes});
    }
  }
  for (const auto& [e, buffer] : experts_.set_resident(st.plan.policy, st.plan.resident[me]))
    st.weight_recvs.push_back({native_rank(e, N, P), e, nullptr, buffer, bytes});
  st.rec.experts_placed = static_cast<int64_t>(st.weight_recvs.size());
  tracker_.residents().set(st.plan.policy, layer_, st.plan.resident);
}

// Weight transfers of spilled experts, native -> helper, posted before the
// token all-to-all so that they overlap it. Import buffers are allocated here,
// before anything is in flight.
void MoeLayer::start_weight_transfers(StepState& st) {
  const int me = comm_.rank();
  const int64_t bytes = experts_.packed_bytes();
  std::vector<int> imported, sources;
  for (const auto& t : st.plan.transfers) {
    if (t.src == me) st.weight_sends.push_back({t.dst, t.expert, experts_.packed(t.expert), nullptr, bytes});
    if (t.dst == me) {
      imported.push_back(t.expert);
      sources.push_back(t.src);
    }
  }
  const std::vector<float*> rows = experts_.hold_imports(imported);
  for (size_t i = 0; i < imported.size(); ++i)
    st.weight_recvs.push_back({sources[i], imported[i], nullptr, rows[i], bytes});
  st.rec.experts_imported = static_cast<int64_t>(st.weight_recvs.size()) - st.rec.experts_placed;
  // Leased before the exchange starts: the dispatch stage must not allocate.
  st.send = ws_.send.lease(st.exchange.total_send());
  st.recv = ws_.recv.lease(st.exchange.total_recv());
  st.x_experts = ws_.expert_in.lease(st.layout.total_recv());
  st.y_experts = ws_.expert_out.lease(st.layout.total_recv());
  comm_.begin_exchange(st.weight_sends, st.weight_recvs);
}

// Dispatch: permute slots by destination, all-to-all(v) of hidden vectors;
// the rank's own rows go straight to their expert-major rows instead.
// Runs while weight transfers are in flight: no allocation, no global fence
// and no deep_copy without an execution-space instance here
// (tests/lint/check_no_sync_in_flight.py guards it).
void MoeLayer::dispatch(const Matrix& x, StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::Dispatch, ClockStream::Compute, ClockStream::Comm);
  {
    BusyScope busy(*clock_, st.T(), Phase::Dispatch);
    gather_rows(x, st.send_token, st.send.view());
    copy_rows(x, st.local_token, st.x_experts.view(), st.local_compute_row);
    ExecSpace().fence();
  }
  comm_.alltoallv_rows(st.send.view().data(), st.exchange.send_rows, st.recv.view().data(), st.exchange.recv_rows,
                       shape_.row_words());
}

void MoeLayer::finish_weight_transfers(StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::Weights, ClockStream::Comm, ClockStream::Comm);
  comm_.wait_exchange();
}

// Expert compute: put the received rows into their expert-major rows (one
// block per expert), run each expert's FFN on its block (in row tiles), and
// put the outputs of received rows back in receive order.
void MoeLayer::compute_experts(StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::Compute);
  BusyScope busy(*clock_, st.T(), Phase::Compute);
  const DispatchLayout& L = st.layout;
  const int64_t tile = ffn_workspace_rows(L.largest_block(), options_.tile_rows(shape_));
  scatter_rows(st.recv.view(), st.recv_compute_row, st.x_experts.view());
  if (shape_.dtype == DType::BF16) {
    compute_experts_bf16(st, tile);
    gather_rows(st.y_experts.view(), st.recv_compute_row, st.recv.view());
    ExecSpace().fence();
    return;
  }
  Workspace::Lease activation = ws_.activation.lease(tile);
  if (!st.save) {
    Workspace::Lease gate_up = ws_.gate_up.lease(tile);
    for (const auto& b : L.blocks)
      expert_ffn(row_block(st.x_experts.view(), b.begin, b.count), experts_.view(b.expert), act_, gate_up.view(),
                 activation.view(), row_block(st.y_experts.view(), b.begin, b.count));
  } else {
    // --backward: the same tiles, each writing its gate/up pre-activations
    // into the rows the backward reads them from.
    st.saved_gu = ws_.saved_gate_up.lease(L.total_recv());
    for (const auto& b : L.blocks)
      for (int64_t r0 = 0; r0 < b.count; r0 += tile) {
        const int64_t t = std::min(tile, b.count - r0);
        expert_ffn(row_block(st.x_experts.view(), b.begin + r0, t), experts_.view(b.expert), act_,
                   row_block(st.saved_gu.view(), b.begin + r0, t), row_block(activation.view(), 0, t),
                   row_block(st.y_experts.view(), b.begin + r0, t));
      }
  }
  gather_rows(st.y_experts.view(), st.recv_compute_row, st.recv.view());
  ExecSpace().fence();
}

// Expert compute on bf16 rows and weights (kernels/ExpertFfnBf16.hpp): the
// tile's fp32 workspaces, and the widened input and weight panel besides.
void MoeLayer::compute_experts_bf16(StepState& st, int64_t tile) {
  Workspace::Lease activation = ws_.activation.lease(tile), gate_up = ws_.gate_up.lease(tile),
                   wide_in = ws_.wide_in.lease(tile), panel = ws_.weight_panel.lease(tile > 0 ? 1 : 0),
                   panel_out = ws_.panel_out.lease(tile);
  const Bf16FfnWorkspaces fws{wide_in.view(), gate_up.view(), activation.view(), panel.view(), panel_out.view()};
  const Bf16Matrix x = bf16_rows(st.x_experts.view()), y = bf16_rows(st.y_experts.view());
  const size_t D = static_cast<size_t>(shape_.hidden);
  for (const auto& b : st.layout.blocks)
    expert_ffn_bf16(ConstBf16Matrix(x.data() + b.begin * shape_.hidden, static_cast<size_t>(b.count), D),
                    experts_.bf16_view(b.expert), act_, fws,
                    Bf16Matrix(y.data() + b.begin * shape_.hidden, static_cast<size_t>(b.count), D));
}

// Combine: reverse all-to-all(v) back to the slots' origins, then take the
// gate-weighted sum over K, each slot's output from the returned rows or, for
// slots computed here, from the expert-major output.
void MoeLayer::combine(const Matrix& out, StepState& st) {
  PhaseScope wall(*clock_, st.T(), Phase::Combine, ClockStream::Comm, ClockStream::Compute);
  comm_.alltoallv_rows(st.recv.view().data(), st.exchange.recv_rows, st.send.view().data(), st.exchange.send_rows,
                       shape_.row_words());
  BusyScope busy(*clock_, st.T(), Phase::Combine);
  const SlotOutputs y{st.send.view(), st.slot_send_row, st.y_experts.view(), st.slot_compute_row};
  if (shape_.dtype == DType::BF16)
    combine_slots_bf16(y, st.routing.gates, shape_.top_k, bf16_rows(UnmanagedMatrix(out)));
  else
    combine_slots(y, st.routing.gates, shape_.top_k, out);
  ExecSpace().fence();
  if (!st.save) experts_.clear_imports();  // the backward still needs them
}

// Bytes moved: dispatch sends send_rows and the combine sends recv_rows back
// (and the reverse for receiving), so the two totals are equal.
void MoeLayer::count_traffic(StepState& st) {
  const int me = comm_.rank();
  const int64_t row_bytes = shape_.hidden * shape_.element_bytes();
  int64_t rows = 0, rows_inter = 0;
  for (size_t p = 0; p < st.layout.send_rows.size(); ++p) {
    if (static_cast<int>(p) == me) continue;
    const int64_t r = st.layout.send_rows[p] + st.layout.recv_rows[p];
    rows += r;
    if (node_of_rank_[p] != node_of_rank_[static_cast<size_t>(me)]) rows_inter += r;
  }
  st.rec.bytes_tokens_sent = st.rec.bytes_tokens_recv = rows * row_bytes;
  st.rec.bytes_tokens_sent_inter_node = rows_inter * row_bytes;
  const int64_t expert_bytes = experts_.packed_bytes();
  st.rec.bytes_weights_sent = static_cast<int64_t>(st.weight_sends.size()) * expert_bytes;
  st.rec.bytes_weights_recv = static_cast<int64_t>(st.weight_recvs.size()) * expert_bytes;
  for (const auto& m : st.weight_sends)
    if (node_of_rank_[static_cast<size_t>(m.peer)] != node_of_rank_[static_cast<size_t>(me)])
      st.rec.bytes_weights_sent_inter_node += expert_bytes;
}

}  // namespace moe

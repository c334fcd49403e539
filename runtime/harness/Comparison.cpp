#include "runtime/harness/Comparison.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "kernels/Bf16Kernels.hpp"
#include "runtime/harness/Reference.hpp"
#include "runtime/harness/ReferenceBackward.hpp"
#include "runtime/layer/LayerClock.hpp"
#include "runtime/layer/MoeLayer.hpp"
#include "runtime/layer/Router.hpp"
#include "runtime/layer/StepMetrics.hpp"
#include "runtime/workload/RoutingSources.hpp"
#include "runtime/workload/Tokens.hpp"

namespace moe {

double PolicyResult::slot_imbalance() const {
  return executed_steps > 0 ? imbalance_sum / executed_steps : imbalance(rank_slots);
}

std::vector<int64_t> PolicyResult::rank_resident_bytes() const {
  std::vector<int64_t> out;
  for (const auto& t : rank_totals) out.push_back(t.bytes_resident);
  return out;
}

int64_t PolicyResult::max_resident_bytes() const {
  int64_t m = 0;
  for (const auto& t : rank_totals) m = std::max(m, t.bytes_resident);
  return m;
}

std::optional<double> PolicyResult::grad_err_of(std::initializer_list<const char*> names) const {
  std::optional<double> worst;
  for (const char* n : names)
    if (auto it = grad_rel_err.find(n); it != grad_rel_err.end()) worst = worse_error(worst.value_or(0.0), it->second);
  return worst;
}

std::string PolicyResult::grad_worst_tensor() const {
  std::string worst_name;
  double worst = -1.0;
  for (const auto& [n, e] : grad_rel_err)
    if (std::isnan(e) || e > worst) {
      worst_name = n;
      worst = std::isnan(e) ? INFINITY : e;
    }
  return worst_name;
}

double PolicyResult::mean_busy_s() const {
  if (rank_busy_s.empty()) return 0.0;
  return std::accumulate(rank_busy_s.begin(), rank_busy_s.end(), 0.0) / static_cast<double>(rank_busy_s.size());
}

std::string ComparisonResult::fastest_exact() const {
  const PolicyResult* best = nullptr;
  for (const auto& p : policies)
    if (p.exact && p.status == "ok" && (!best || p.makespan_s < best->makespan_s)) best = &p;
  return best ? best->name : std::string();
}

std::string validate_run_config(const RunConfig& c, int num_ranks) {
  if (auto why = validate_shape(c.shape, num_ranks); !why.empty()) return why;
  if (c.shape.dtype == DType::BF16 && c.backward())
    return "--dtype bf16 does not support --backward (the training step is fp32 only; use --dtype fp32)";
  if (c.shape.dtype == DType::BF16 && c.dump)
    return "--dtype bf16 does not support --dump (the dump format is fp32; use --dtype fp32)";
  if (auto why = c.scenario.validate(c.shape); !why.empty()) return why;
  if (auto why = validate_policy_params(c.params); !why.empty()) return why;
  if (!c.tokens_per_rank.empty() && static_cast<int>(c.tokens_per_rank.size()) != num_ranks)
    return "--tokens-per-rank has " + std::to_string(c.tokens_per_rank.size()) + " entries but the job has " +
           std::to_string(num_ranks) + " ranks (give one count per rank)";
  for (int64_t t : c.tokens_per_rank)
    if (t < 0) return "--tokens-per-rank entries must be >= 0 (got " + std::to_string(t) + ")";
  if (c.steps < 1) return "--steps must be >= 1 (got " + std::to_string(c.steps) + ")";
  if (c.layers < 1) return "--layers must be >= 1 (got " + std::to_string(c.layers) + ")";
  if (c.warmup < 0) return "--warmup must be >= 0 (got " + std::to_string(c.warmup) + ")";
  if (!(c.drift >= 0.0 && c.drift <= 1.0)) return "--drift must be in [0, 1] (got " + std::to_string(c.drift) + ")";
  if (!(c.mem_budget_mib >= 0.0)) return "--mem-budget must be >= 0 MiB (got " + std::to_string(c.mem_budget_mib) + ")";
  if (auto why = validate_policy_list(c.policies, c.params); !why.empty()) return why;
  for (const auto& name : c.policies)
    if (auto why = make_policy(name, c.params)->validate_for(c.shape.num_experts, num_ranks); !why.empty()) return why;
  return {};
}

void resolve_ranks_per_node(RunConfig& c, Communicator& comm) {
  const int64_t given = c.params.integer("ranks-per-node");
  if (given > 0) {
    c.layer.ranks_per_node = static_cast<int>(given);
    return;
  }
  c.params.set("ranks-per-node", comm.ranks_on_node(0));  // collective: every rank asks
  c.layer.ranks_per_node = 0;
}

PolicyResult empty_policy_result(const std::string& name, bool exact, int num_ranks) {
  PolicyResult r;
  r.name = name;
  r.exact = exact;
  r.rank_slots.assign(static_cast<size_t>(num_ranks), 0);
  r.rank_busy_s.assign(static_cast<size_t>(num_ranks), 0.0);
  r.rank_peak_bytes.assign(static_cast<size_t>(num_ranks), 0);
  r.rank_totals.assign(static_cast<size_t>(num_ranks), StepRecord{});
  return r;
}

void accumulate_step(PolicyResult& pr, const std::vector<StepRecord>& per_rank, int64_t expert_bytes) {
  const size_t P = per_rank.size();
  double max_busy = 0.0, max_wall = 0.0;
  std::vector<int64_t> step_slots(P);
  for (size_t r = 0; r < P; ++r) {
    const StepRecord& s = per_rank[r];
    step_slots[r] = s.slots_computed();
    pr.rank_slots[r] += s.slots_computed();
    pr.rank_busy_s[r] += s.busy_s();
    pr.rank_peak_bytes[r] = std::max(pr.rank_peak_bytes[r], s.peak_bytes);
    // Every summed or maxed metric of the schema, field by field.
    for (const auto& m : step_metrics()) {
      if (!m.stored || m.aggregate == MetricAggregate::None) continue;
      const double a = m.value(pr.rank_totals[r]), b = m.value(s);
      m.set(pr.rank_totals[r], m.index, m.aggregate == MetricAggregate::Max ? std::max(a, b) : a + b);
    }
    pr.token_bytes += s.bytes_tokens_sent;
    pr.weight_bytes += s.bytes_weights_sent;
    pr.placement_bytes += s.experts_placed * expert_bytes;
    pr.token_bytes_inter_node += s.bytes_tokens_sent_inter_node;
    pr.weight_bytes_inter_node += s.bytes_weights_sent_inter_node;
    pr.grad_token_bytes += s.bytes_grad_tokens_sent;
    pr.grad_weight_bytes += s.bytes_grad_weights_sent;
    pr.dropped_slots += s.slots_dropped;
    pr.routed_slots += s.slots_routed;
    max_busy = std::max(max_busy, s.busy_s());
    max_wall = std::max(max_wall, s.times.wall_total());
  }
  pr.imbalance_sum += imbalance(step_slots);
  ++pr.executed_steps;
  pr.makespan_s += max_busy;
  pr.wall_s += max_wall;
}

void set_speedups(ComparisonResult& result) {
  const PolicyResult* ep = nullptr;  // the baseline of the speedups
  for (const auto& p : result.policies)
    if (p.name == kBaselinePolicy) ep = &p;
  for (auto& p : result.policies)
    if (ep && ep->status == "ok" && p.status == "ok" && p.makespan_s > 0.0)
      p.speedup_vs_ep = ep->makespan_s / p.makespan_s;
}

namespace {

std::vector<double> to_doubles_host(const Matrix& m) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m);
  std::vector<double> v(h.span());
  for (size_t i = 0; i < h.extent(0); ++i)
    for (size_t j = 0; j < h.extent(1); ++j) v[i * h.extent(1) + j] = h(i, j);
  return v;
}

// Token rows stored in `dtype` (bf16: two elements per word), widened exactly.
std::vector<double> stored_to_doubles(const Matrix& m, DType dtype) {
  if (dtype == DType::F32) return to_doubles_host(m);
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m);
  const bf16* b = reinterpret_cast<const bf16*>(h.data());
  std::vector<double> v(h.span() * 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = to_float(b[i]);
  return v;
}

// Progress on stderr from rank 0: a live line on a terminal, and a line per
// 10% in a log file (Slurm output), so long runs show where they are.
class Progress {
 public:
  Progress(bool enabled, int64_t total)
      : enabled_(enabled), tty_(isatty(fileno(stderr)) != 0), total_(total), t0_(wall_seconds()) {}
  void tick(int step, int steps) {
    ++done_;
    if (!enabled_ || total_ == 0) return;
    const int decile = static_cast<int>(10 * done_ / total_);
    if (!tty_ && decile == last_decile_ && done_ != total_) return;
    last_decile_ = decile;
    const double el = wall_seconds() - t0_;
    const double eta = el / static_cast<double>(done_) * static_cast<double>(total_ - done_);
    std::fprintf(stderr, "%s[moe-ep] step %d/%d  %3.0f%%  elapsed %.1fs  ETA %.1fs%s", tty_ ? "\r" : "", step + 1,
                 steps, 100.0 * static_cast<double>(done_) / static_cast<double>(total_), el, eta,
                 tty_ && done_ != total_ ? "   " : "\n");
    std::fflush(stderr);
  }

 private:
  bool enabled_, tty_;
  int64_t total_, done_ = 0;
  int last_decile_ = -1;
  double t0_;
};

// One side-by-side run: the policies, the layers and the buffers they share,
// and the results they accumulate. Reads as its stages: make the inputs of a
// (step, layer), run each policy on them, gather every rank's record,
// accumulate, check against the reference.
class ComparisonRun {
 public:
  ComparisonRun(const RunConfig& cfg, Communicator& comm, const StepObserver& observer)
      : cfg_(cfg), comm_(comm), observer_(observer), P_(comm.size()), me_(comm.rank()) {
    for (int r = 0; r < me_; ++r) token_offset_ += cfg.tokens_on(r);
    for (int r = 0; r < P_; ++r) total_tokens_ += cfg.tokens_on(r);
    for (const auto& name : cfg.policies) policies_.push_back(make_policy(name, cfg.params));
    const ExpertIdSource source = scenario_source(cfg.scenario, cfg.shape, cfg.drift);
    for (int l = 0; l < cfg.layers; ++l)
      layers_.push_back(
          std::make_unique<MoeLayer>(cfg.shape, l, cfg.seed, source, comm, tracker_, workspaces_, cfg.layer));
    x_ = TrackedMatrix(tracker_, "tokens", cfg.tokens_on(me_), cfg.shape.row_words());
    out_ = TrackedMatrix(tracker_, "output", cfg.tokens_on(me_), cfg.shape.row_words());
    if (cfg.shape.dtype == DType::BF16)  // where tokens are made before rounding; not the step's memory
      x_fp32_ = Matrix(std::string("tokens_fp32"), static_cast<size_t>(cfg.tokens_on(me_)),
                       static_cast<size_t>(cfg.shape.hidden));
    if (cfg.backward()) {
      grad_out_ = TrackedMatrix(tracker_, "output_grad", cfg.tokens_on(me_), cfg.shape.hidden);
      dx_ = TrackedMatrix(tracker_, "input_grad", cfg.tokens_on(me_), cfg.shape.hidden);
    }
    if (cfg.mem_budget_mib > 0.0)
      budget_ = StepBudget{static_cast<int64_t>(cfg.mem_budget_mib * 1048576.0), cfg.layers};
    init_results();
  }

  // Warm-up: first-touch of buffers and BLAS threads, untimed.
  void warm_up() {
    for (int w = 0; w < cfg_.warmup; ++w)
      for (auto& p : policies_) {
        make_tokens(0, 0);
        layers_[0]->forward(x_.view(), RoutingKey{cfg_.seed, 0, 0, token_offset_}, *p, out_.view());
        if (cfg_.backward()) {
          generate_output_grad(cfg_.seed, 0, 0, token_offset_, grad_out_.view());
          layers_[0]->backward(x_.view(), grad_out_.view(), dx_.view());
        }
      }
    // The common epoch of the start times: taken by every rank right after a barrier.
    comm_.barrier();
    epoch_ = wall_seconds();
  }

  void run_layer_step(int step, int layer, Progress& progress) {
    make_inputs(step, layer);
    for (size_t pi = 0; pi < policies_.size(); ++pi) {
      run_policy(pi, step, layer);
      progress.tick(step, cfg_.steps);
    }
  }

  ComparisonResult finish() {
    set_speedups(result_);
    return std::move(result_);
  }

 private:
  void init_results() {
    result_.num_ranks = P_;
    result_.hostnames = gather_hostnames(comm_);
    result_.clocks = layer_clock_names();
    result_.node_of_rank = comm_.node_of_rank();
    for (int n : result_.node_of_rank)
      result_.ranks_per_node = std::max(result_.ranks_per_node, comm_.ranks_on_node(n));
    for (const auto& p : policies_) result_.policies.push_back(empty_policy_result(p->name(), p->exact(), P_));
  }

  // The inputs every policy sees at (step, layer): tokens, and for --check all
  // ranks' tokens on rank 0.
  void make_inputs(int step, int layer) {
    make_tokens(step, layer);
    if (cfg_.backward()) generate_output_grad(cfg_.seed, step, layer, token_offset_, grad_out_.view());
    ref_ = ReferenceData{};
    x_all_.clear();
    grad_all_.clear();
    if (cfg_.check) comm_.gatherv(stored_to_doubles(x_.view(), cfg_.shape.dtype), x_all_);
    if (dumping(step, layer)) begin_dump(layer);
    if ((cfg_.check || dumping(step, layer)) && cfg_.backward())
      comm_.gatherv(to_doubles_host(grad_out_.view()), grad_all_);
  }

  // This rank's tokens at (step, layer) in the run's dtype: the same fp32
  // values in every dtype, rounded to bf16 for --dtype bf16.
  void make_tokens(int step, int layer) {
    if (cfg_.shape.dtype == DType::F32) {
      generate_tokens(cfg_.shape, cfg_.seed, step, layer, token_offset_, x_.view());
      return;
    }
    generate_tokens(cfg_.shape, cfg_.seed, step, layer, token_offset_, x_fp32_);
    narrow_to_bf16(x_fp32_, bf16_rows(UnmanagedMatrix(x_.view())));
    ExecSpace().fence();
  }

  void run_policy(size_t pi, int step, int layer) {
    StepTrace trace;
    comm_.barrier();  // policies start together, so waits are not charged to the next one
    StepRecord rec = layers_[layer]->forward(x_.view(), RoutingKey{cfg_.seed, step, layer, token_offset_},
                                             *policies_[pi], out_.view(), &trace, budget_ ? &*budget_ : nullptr);
    PolicyResult& pr = result_.policies[pi];
    if (budget_ && trace.alpha_used)
      pr.alpha_used = std::min(pr.alpha_used.value_or(*trace.alpha_used), *trace.alpha_used);
    if (!trace.executed) {
      // The plan did not fit on some rank (the same verdict on every rank):
      // report it and go on with the other policies.
      if (pr.status == "ok") pr.status_detail = trace.oom_reason;
      pr.status = "oom";
      ++pr.oom_steps;
      return;
    }
    if (cfg_.backward()) rec = layers_[layer]->backward(x_.view(), grad_out_.view(), dx_.view());
    rec.times.rebase_starts(epoch_);
    const std::vector<StepRecord> per_rank = gather_records(rec);
    accumulate_step(pr, per_rank, cfg_.shape.expert_weight_bytes());
    if (cfg_.check || dumping(step, layer)) {
      GatheredStep g = gather_step(trace);
      if (cfg_.check) check(pr, layer, g);
      if (dumping(step, layer)) dump_policy(pi, std::move(g));
    }
    if (cfg_.backward() && (cfg_.check || dumping(step, layer))) {
      GatheredGrads gg = gather_grads(layer);
      if (cfg_.check) check_backward(pr, layer, gg);
      if (dumping(step, layer)) dump_gradients(pi, layer, std::move(gg));
    }
    if (observer_ && me_ == 0) observer_(pr.name, step, layer, per_rank, trace.loads);
  }

  // Every rank's record, on every rank: one all-gather of the packed schema.
  std::vector<StepRecord> gather_records(const StepRecord& rec) {
    const size_t n = packed_record_size();
    std::vector<double> packed(n), gathered(n * static_cast<size_t>(P_));
    pack_record(rec, packed);
    comm_.allgather(packed, gathered);
    std::vector<StepRecord> per_rank;
    for (int r = 0; r < P_; ++r)
      per_rank.push_back(unpack_record(std::span<const double>(gathered).subspan(static_cast<size_t>(r) * n, n)));
    return per_rank;
  }

  // One executed policy's routing, keep flags (1: slot computed) and output,
  // every rank's in rank order, on rank 0 (empty elsewhere). Collective.
  struct GatheredStep {
    std::vector<double> ids, gates, keep, out;
  };
  GatheredStep gather_step(const StepTrace& trace) {
    std::vector<double> ids_d(trace.routing.expert_ids.begin(), trace.routing.expert_ids.end());
    auto gates_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), trace.routing.gates);
    std::vector<double> gates_d(gates_h.data(), gates_h.data() + gates_h.extent(0));
    std::vector<double> keep_d(trace.slot_row.size());
    for (size_t s = 0; s < keep_d.size(); ++s) keep_d[s] = trace.slot_row[s] >= 0 ? 1.0 : 0.0;
    GatheredStep g;
    comm_.gatherv(ids_d, g.ids);
    comm_.gatherv(gates_d, g.gates);
    comm_.gatherv(keep_d, g.keep);
    comm_.gatherv(stored_to_doubles(out_.view(), cfg_.shape.dtype), g.out);
    return g;
  }

  // Rank 0 compares the gathered step with the double-precision reference
  // (computed once per (step, layer)).
  void check(PolicyResult& pr, int layer, const GatheredStep& g) {
    const int K = cfg_.shape.top_k;
    const int64_t D = cfg_.shape.hidden;
    if (me_ != 0) return;
    std::vector<int32_t> ids(g.ids.begin(), g.ids.end());
    if (ref_.slot_outputs.empty()) {
      ref_.expert_ids = ids;
      ref_.slot_outputs = reference_slot_outputs(cfg_.shape, layer, cfg_.seed, x_all_, ids, g.gates);
    } else if (ids != ref_.expert_ids) {
      throw std::logic_error("policies saw different routing for the same step; inputs are not identical");
    }
    std::vector<uint8_t> keep(g.keep.begin(), g.keep.end());
    checked_keep_ = keep;
    const auto ref_full = reference_combine(ref_.slot_outputs, total_tokens_, K, D);
    const auto ref_kept = reference_combine(ref_.slot_outputs, total_tokens_, K, D, keep);
    pr.max_rel_err = worse_error(pr.max_rel_err.value_or(0.0), max_relative_error(g.out, ref_kept));
    pr.max_rel_err_full = worse_error(pr.max_rel_err_full.value_or(0.0), max_relative_error(g.out, ref_full));
  }

  // --dump (docs/dump.md): the first measured (step, layer).
  bool dumping(int step, int layer) const { return cfg_.dump && step == 0 && layer == 0; }

  // --dump, collective: every rank's tokens and native experts' weights (as
  // the layer holds them) to rank 0, which makes the router's weights with the
  // runtime's own Router; each policy is "oom" until dump_policy fills it.
  void begin_dump(int layer) {
    const ModelShape& s = cfg_.shape;
    const ExpertStore& store = layers_[layer]->experts();
    const int64_t pf = store.packed_floats(), D = s.hidden, H = s.ffn;
    std::vector<double> mine, packed, tokens;
    std::vector<float> buf(static_cast<size_t>(pf));
    const Kokkos::View<float**, Kokkos::LayoutRight, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> host(
        buf.data(), 1, buf.size());
    for (int e = 0; e < s.num_experts; ++e)
      if (store.is_native(e)) {
        Kokkos::deep_copy(host, ConstUnmanagedMatrix(store.packed(e), 1, buf.size()));
        mine.insert(mine.end(), buf.begin(), buf.end());
      }
    comm_.gatherv(to_doubles_host(x_.view()), tokens);
    comm_.gatherv(mine, packed);  // native experts are consecutive by rank: expert order
    if (me_ != 0) return;
    LayerDump& d = result_.dump.emplace();
    d.shape = s;
    for (int r = 0; r < P_; ++r) d.tokens_per_rank.push_back(cfg_.tokens_on(r));
    d.seed = cfg_.seed;
    d.layer = layer;
    d.scenario = cfg_.scenario.text;
    d.routing = cfg_.scenario.kind == ScenarioSpec::Kind::Router  ? "router"
                : cfg_.scenario.kind == ScenarioSpec::Kind::Trace ? "trace"
                                                                  : "scenario";
    d.tokens = std::move(tokens);
    MemoryTracker scratch;  // not the run's: its peak bytes stay the layer's
    d.router_weights = to_doubles_host(Router(s, layer, cfg_.seed, {}, scratch).weights());
    const int64_t N = s.num_experts;
    if (static_cast<int64_t>(packed.size()) != N * pf)
      throw std::logic_error("--dump: gathered " + std::to_string(packed.size()) + " expert weights, expected " +
                             std::to_string(N * pf));
    d.w_gu.reserve(static_cast<size_t>(N * D * 2 * H));
    d.w_d.reserve(static_cast<size_t>(N * H * D));
    d.b_gu.assign(static_cast<size_t>(N * 2 * H), 0.0);  // zero for SwiGLU (packed without biases)
    d.b_d.assign(static_cast<size_t>(N * D), 0.0);
    const PackedLayout l = packed_layout(s);
    for (int64_t e = 0; e < N; ++e) {
      const auto p = packed.begin() + e * pf;
      d.w_gu.insert(d.w_gu.end(), p + l.w_gu, p + l.w_d);
      d.w_d.insert(d.w_d.end(), p + l.w_d, p + l.b_gu);
      if (l.biases) {
        std::copy(p + l.b_gu, p + l.b_d, d.b_gu.begin() + e * 2 * H);
        std::copy(p + l.b_d, p + l.floats, d.b_d.begin() + e * D);
      }
    }
    for (const auto& pol : policies_) {
      d.policies.emplace_back();
      d.policies.back().name = pol->name();
      d.policies.back().exact = pol->exact();
    }
  }

  // --dump: rank 0 keeps one executed policy's gathered step.
  void dump_policy(size_t pi, GatheredStep g) {
    if (me_ != 0) return;
    PolicyDump& p = result_.dump->policies[pi];
    p.status = "ok";
    p.expert_ids.assign(g.ids.begin(), g.ids.end());
    p.gates = std::move(g.gates);
    p.kept.assign(g.keep.begin(), g.keep.end());
    p.output = std::move(g.out);
  }

  // --backward: dx of every rank (rank order) and the native experts'
  // gradients (totals; rank order is expert order), on rank 0 (empty
  // elsewhere). Collective. The router gradient is all-reduced: rank 0's own.
  struct GatheredGrads {
    std::vector<double> dx, experts;
  };
  GatheredGrads gather_grads(int layer) {
    GatheredGrads gg;
    comm_.gatherv(to_doubles_host(dx_.view()), gg.dx);
    comm_.gatherv(to_doubles_host(layers_[layer]->expert_grads()), gg.experts);
    return gg;
  }

  // --dump --backward: rank 0 adds G and every gradient to the policy's dump,
  // the packed expert gradients unpacked like the weights (begin_dump).
  void dump_gradients(size_t pi, int layer, GatheredGrads gg) {
    if (me_ != 0) return;
    const ModelShape& s = cfg_.shape;
    const PackedLayout l = packed_layout(s);
    if (static_cast<int64_t>(gg.experts.size()) != s.num_experts * l.floats)
      throw std::logic_error("--dump: gathered " + std::to_string(gg.experts.size()) + " expert gradients, expected " +
                             std::to_string(s.num_experts * l.floats));
    DumpGradients d;
    d.output_grad = grad_all_;
    d.dx = std::move(gg.dx);
    d.router_weights = to_doubles_host(layers_[layer]->router_grad());
    for (int64_t e = 0; e < s.num_experts; ++e) {
      const auto p = gg.experts.cbegin() + e * l.floats;
      d.w_gu.insert(d.w_gu.end(), p + l.w_gu, p + l.w_d);
      d.w_d.insert(d.w_d.end(), p + l.w_d, p + l.b_gu);
      if (l.biases) {  // SwiGLU has none: its bias gradients are not written
        d.b_gu.insert(d.b_gu.end(), p + l.b_gu, p + l.b_d);
        d.b_d.insert(d.b_d.end(), p + l.b_d, p + l.floats);
      }
    }
    result_.dump->policies[pi].gradients = std::move(d);
  }

  // --backward --check: rank 0 compares dx, the experts' gradients and the
  // all-reduced router gradient with the reference backward of the same
  // routing and kept slots (check() has gathered them), expert by expert.
  void check_backward(PolicyResult& pr, int layer, const GatheredGrads& gg) {
    if (me_ != 0) return;
    const ModelShape& s = cfg_.shape;
    if (ref_.weights.w_r.empty()) ref_.weights = reference_layer_weights(s, layer, cfg_.seed);
    if (!ref_.backward || ref_.backward_keep != checked_keep_) {
      ref_.backward = reference_backward(s, ref_.weights, x_all_, ref_.expert_ids, checked_keep_, grad_all_);
      ref_.backward_keep = checked_keep_;
    }
    const ReferenceBackward& ref = *ref_.backward;
    auto note = [&pr](const std::string& name, double err) {
      auto [it, fresh] = pr.grad_rel_err.try_emplace(name, err);
      if (!fresh) it->second = worse_error(it->second, err);
    };
    note("dx", max_relative_error(gg.dx, ref.dx));
    note("dw_r", max_relative_error(to_doubles_host(layers_[layer]->router_grad()), ref.dw_r));
    const int64_t D = s.hidden, H = s.ffn;
    const PackedLayout l = packed_layout(s);
    for (int64_t e = 0; e < s.num_experts; ++e) {
      const std::span<const double> got(gg.experts.data() + e * l.floats, static_cast<size_t>(l.floats));
      auto part = [&](int64_t off, int64_t n) { return got.subspan(static_cast<size_t>(off), static_cast<size_t>(n)); };
      auto refpart = [](const std::vector<double>& v, int64_t e_, int64_t n) {
        return std::span<const double>(v.data() + e_ * n, static_cast<size_t>(n));
      };
      note("dw_gu", max_relative_error(part(l.w_gu, D * 2 * H), refpart(ref.dw_gu, e, D * 2 * H)));
      note("dw_d", max_relative_error(part(l.w_d, H * D), refpart(ref.dw_d, e, H * D)));
      if (l.biases) {
        note("db_gu", max_relative_error(part(l.b_gu, 2 * H), refpart(ref.db_gu, e, 2 * H)));
        note("db_d", max_relative_error(part(l.b_d, D), refpart(ref.db_d, e, D)));
      }
    }
  }

  // Rank 0's reference for one (step, layer): per-slot outputs over all ranks'
  // tokens; with --backward the layer's weights and the last reference
  // backward (reused by the next policy when it kept the same slots).
  struct ReferenceData {
    std::vector<double> slot_outputs;
    std::vector<int32_t> expert_ids;
    ReferenceLayerWeights weights;
    std::optional<ReferenceBackward> backward;
    std::vector<uint8_t> backward_keep;
  };

  const RunConfig& cfg_;
  Communicator& comm_;
  const StepObserver& observer_;
  const int P_, me_;
  int64_t token_offset_ = 0, total_tokens_ = 0;
  std::vector<std::unique_ptr<PlacementPolicy>> policies_;
  MemoryTracker tracker_;
  LayerWorkspaces workspaces_{tracker_, cfg_.shape};  // the layers' step buffers, one set
  std::vector<std::unique_ptr<MoeLayer>> layers_;
  TrackedMatrix x_, out_;        // tokens and output, stored in the run's dtype
  Matrix x_fp32_;                // --dtype bf16: tokens before rounding (made outside the step)
  TrackedMatrix grad_out_, dx_;  // --backward: G and dL/dx
  std::optional<StepBudget> budget_;
  double epoch_ = 0.0;
  ReferenceData ref_;
  std::vector<double> x_all_;
  std::vector<double> grad_all_;       // --backward with --check or --dump: G of all ranks, on rank 0
  std::vector<uint8_t> checked_keep_;  // the kept slots of the last check(), on rank 0
  ComparisonResult result_;
};

}  // namespace

ComparisonResult run_comparison(const RunConfig& cfg, Communicator& comm, const StepObserver& observer) {
  ComparisonRun run(cfg, comm, observer);
  run.warm_up();
  const int64_t total = int64_t{cfg.steps} * cfg.layers * static_cast<int64_t>(cfg.policies.size());
  Progress progress(!cfg.quiet && comm.rank() == 0, total);
  for (int step = 0; step < cfg.steps; ++step)
    for (int l = 0; l < cfg.layers; ++l) run.run_layer_step(step, l, progress);
  return run.finish();
}

}  // namespace moe

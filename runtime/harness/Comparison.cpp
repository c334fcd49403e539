#include "runtime/harness/Comparison.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <stdexcept>

#include <unistd.h>

#include "runtime/layer/MoeLayer.hpp"
#include "runtime/harness/Reference.hpp"
#include "runtime/layer/Router.hpp"
#include "runtime/workload/RoutingSources.hpp"
#include "runtime/workload/Tokens.hpp"

namespace moe {

double PolicyResult::slot_imbalance() const {
  return executed_steps > 0 ? imbalance_sum / executed_steps : imbalance(rank_slots);
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
  return validate_policy_list(c.policies, c.params);
}

namespace {

// StepRecord <-> fixed-size array of doubles, for one all-gather per step.
constexpr size_t kPhases = static_cast<size_t>(Phase::Count);
constexpr size_t kRecordDoubles = 10 + 2 * kPhases;

void pack(const StepRecord& r, double* d) {
  const int64_t ints[] = {r.slots_routed,      r.slots_native,       r.slots_foreign,      r.experts_imported,
                          r.slots_dropped,     r.bytes_tokens_sent,  r.bytes_tokens_recv,  r.bytes_weights_sent,
                          r.bytes_weights_recv, r.peak_bytes};
  for (size_t i = 0; i < 10; ++i) d[i] = static_cast<double>(ints[i]);
  for (size_t p = 0; p < kPhases; ++p) {
    d[10 + p] = r.times.wall[p];
    d[10 + kPhases + p] = r.times.busy[p];
  }
}

StepRecord unpack(const double* d) {
  StepRecord r;
  int64_t* ints[] = {&r.slots_routed,      &r.slots_native,      &r.slots_foreign,      &r.experts_imported,
                     &r.slots_dropped,     &r.bytes_tokens_sent, &r.bytes_tokens_recv,  &r.bytes_weights_sent,
                     &r.bytes_weights_recv, &r.peak_bytes};
  for (size_t i = 0; i < 10; ++i) *ints[i] = static_cast<int64_t>(d[i]);
  for (size_t p = 0; p < kPhases; ++p) {
    r.times.wall[p] = d[10 + p];
    r.times.busy[p] = d[10 + kPhases + p];
  }
  return r;
}

std::vector<double> to_doubles_host(const Matrix& m) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m);
  std::vector<double> v(h.span());
  for (size_t i = 0; i < h.extent(0); ++i)
    for (size_t j = 0; j < h.extent(1); ++j) v[i * h.extent(1) + j] = h(i, j);
  return v;
}

// Rank 0's reference for one (step, layer): per-slot outputs over all ranks' tokens.
struct ReferenceData {
  std::vector<double> slot_outputs;
  std::vector<int32_t> expert_ids;
};

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

}  // namespace

ComparisonResult run_comparison(const RunConfig& cfg, Communicator& comm, const StepObserver& observer) {
  const int P = comm.size(), me = comm.rank();
  const ModelShape& shape = cfg.shape;
  const int64_t D = shape.hidden;
  const int K = shape.top_k;
  const int64_t B = cfg.tokens_on(me);
  int64_t token_offset = 0;
  for (int r = 0; r < me; ++r) token_offset += cfg.tokens_on(r);
  int64_t total_tokens = 0;
  for (int r = 0; r < P; ++r) total_tokens += cfg.tokens_on(r);

  std::vector<std::unique_ptr<PlacementPolicy>> policies;
  for (const auto& name : cfg.policies) policies.push_back(make_policy(name, cfg.params));

  MemoryTracker tracker;
  const ExpertIdSource source = scenario_source(cfg.scenario, shape, cfg.drift);
  std::vector<std::unique_ptr<MoeLayer>> layers;
  for (int l = 0; l < cfg.layers; ++l)
    layers.push_back(std::make_unique<MoeLayer>(shape, l, cfg.seed, source, comm, tracker));
  TrackedMatrix x(tracker, "tokens", B, D);
  TrackedMatrix out(tracker, "output", B, D);

  ComparisonResult result;
  result.num_ranks = P;
  for (const auto& p : policies) {
    PolicyResult r;
    r.name = p->name();
    r.exact = p->exact();
    r.rank_slots.assign(P, 0);
    r.rank_busy_s.assign(P, 0.0);
    r.rank_peak_bytes.assign(P, 0);
    if (cfg.check) {
      r.max_rel_err = 0.0;
      r.max_rel_err_full = 0.0;
    }
    result.policies.push_back(std::move(r));
  }

  // Warm-up: first-touch of buffers and BLAS threads, untimed.
  for (int w = 0; w < cfg.warmup; ++w)
    for (auto& p : policies) {
      generate_tokens(shape, cfg.seed, 0, 0, token_offset, x.view());
      layers[0]->forward(x.view(), RoutingKey{cfg.seed, 0, 0, token_offset}, *p, out.view());
    }

  std::optional<StepBudget> budget;
  if (cfg.mem_budget_mib > 0.0)
    budget = StepBudget{static_cast<int64_t>(cfg.mem_budget_mib * 1048576.0), cfg.params, cfg.layers};

  Progress progress(!cfg.quiet && me == 0, int64_t{cfg.steps} * cfg.layers * static_cast<int64_t>(policies.size()));
  std::vector<double> packed(kRecordDoubles), gathered(kRecordDoubles * P);
  for (int step = 0; step < cfg.steps; ++step) {
    for (int l = 0; l < cfg.layers; ++l) {
      const RoutingKey key{cfg.seed, step, l, token_offset};
      generate_tokens(shape, cfg.seed, step, l, token_offset, x.view());
      ReferenceData ref;
      std::vector<double> x_all;
      if (cfg.check) comm.gatherv(to_doubles_host(x.view()), x_all);

      for (size_t pi = 0; pi < policies.size(); ++pi) {
        StepTrace trace;
        comm.barrier();  // policies start together, so waits are not charged to the next one
        const StepRecord rec =
            layers[l]->forward(x.view(), key, *policies[pi], out.view(), &trace, budget ? &*budget : nullptr);
        PolicyResult& pr = result.policies[pi];
        if (budget && policies[pi]->name() == "llep")
          pr.alpha_used = std::min(pr.alpha_used.value_or(trace.alpha_used), trace.alpha_used);
        if (!trace.executed) {
          // The plan did not fit on some rank (the same verdict on every rank):
          // report it and go on with the other policies.
          if (pr.status == "ok") pr.status_detail = trace.oom_reason;
          pr.status = "oom";
          ++pr.oom_steps;
          progress.tick(step, cfg.steps);
          continue;
        }

        pack(rec, packed.data());
        comm.allgather(packed, gathered);
        std::vector<StepRecord> per_rank;
        for (int r = 0; r < P; ++r) per_rank.push_back(unpack(gathered.data() + r * kRecordDoubles));

        double max_busy = 0.0, max_wall = 0.0;
        std::vector<int64_t> step_slots(P);
        for (int r = 0; r < P; ++r) {
          step_slots[r] = per_rank[r].slots_computed();
          const StepRecord& s = per_rank[r];
          pr.rank_slots[r] += s.slots_computed();
          pr.rank_busy_s[r] += s.busy_s();
          pr.rank_peak_bytes[r] = std::max(pr.rank_peak_bytes[r], s.peak_bytes);
          pr.token_bytes += s.bytes_tokens_sent;
          pr.weight_bytes += s.bytes_weights_sent;
          pr.dropped_slots += s.slots_dropped;
          pr.routed_slots += s.slots_routed;
          max_busy = std::max(max_busy, s.busy_s());
          max_wall = std::max(max_wall, s.times.wall_total());
        }
        pr.imbalance_sum += imbalance(step_slots);
        ++pr.executed_steps;
        pr.makespan_s += max_busy;
        pr.wall_s += max_wall;

        if (cfg.check) {
          // Gather routing, keep flags and outputs; rank 0 compares with the reference.
          std::vector<double> ids_d(trace.routing.expert_ids.begin(), trace.routing.expert_ids.end());
          auto gates_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), trace.routing.gates);
          std::vector<double> gates_d(gates_h.data(), gates_h.data() + gates_h.extent(0));
          std::vector<double> keep_d(trace.slot_row.size());
          for (size_t s = 0; s < keep_d.size(); ++s) keep_d[s] = trace.slot_row[s] >= 0 ? 1.0 : 0.0;
          std::vector<double> ids_all, gates_all, keep_all, out_all;
          comm.gatherv(ids_d, ids_all);
          comm.gatherv(gates_d, gates_all);
          comm.gatherv(keep_d, keep_all);
          comm.gatherv(to_doubles_host(out.view()), out_all);
          if (me == 0) {
            std::vector<int32_t> ids(ids_all.begin(), ids_all.end());
            if (ref.slot_outputs.empty()) {
              ref.expert_ids = ids;
              ref.slot_outputs = reference_slot_outputs(shape, l, cfg.seed, x_all, ids, gates_all);
            } else if (ids != ref.expert_ids) {
              throw std::logic_error("policies saw different routing for the same step; inputs are not identical");
            }
            std::vector<uint8_t> keep(keep_all.begin(), keep_all.end());
            const auto ref_full = reference_combine(ref.slot_outputs, total_tokens, K, D);
            const auto ref_kept = reference_combine(ref.slot_outputs, total_tokens, K, D, keep);
            pr.max_rel_err = std::max(*pr.max_rel_err, max_relative_error(out_all, ref_kept));
            pr.max_rel_err_full = std::max(*pr.max_rel_err_full, max_relative_error(out_all, ref_full));
          }
        }
        if (observer && me == 0) observer(pr.name, step, l, per_rank, trace.loads);
        progress.tick(step, cfg.steps);
      }
    }
  }

  const PolicyResult* ep = nullptr;
  for (const auto& p : result.policies)
    if (p.name == "ep") ep = &p;
  for (auto& p : result.policies)
    if (ep && ep->status == "ok" && p.status == "ok" && p.makespan_s > 0.0) p.speedup_vs_ep = ep->makespan_s / p.makespan_s;
  return result;
}

}  // namespace moe

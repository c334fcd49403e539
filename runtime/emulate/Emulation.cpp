#include "runtime/emulate/Emulation.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "kernels/ExpertFfn.hpp"
#include "kernels/Gemm.hpp"
#include "kernels/KernelTypes.hpp"
#include "runtime/layer/ExpertStore.hpp"
#include "runtime/layer/PhaseTimer.hpp"
#include "runtime/layer/Router.hpp"
#include "runtime/workload/Tokens.hpp"

namespace moe {

std::string validate_emulation_config(const EmulationConfig& c) {
  if (c.ranks < 1) return "--ranks must be >= 1 (got " + std::to_string(c.ranks) + ")";
  if (auto why = validate_shape(c.shape, c.ranks); !why.empty()) return why;
  if (!c.scenario.synthetic())
    return "--scenario: emulate supports balanced, X:k and zipf:S (got '" + c.scenario.text +
           "'; router and trace routing need real tokens: use moe-ep compare)";
  if (auto why = c.scenario.validate(c.shape); !why.empty()) return why;
  if (auto why = validate_policy_params(c.params); !why.empty()) return why;
  if (c.repeats < 1) return "--repeats must be >= 1 (got " + std::to_string(c.repeats) + ")";
  if (c.warmup < 0) return "--warmup must be >= 0 (got " + std::to_string(c.warmup) + ")";
  if (!(c.link_gbps >= 0.0)) return "--link-gbps must be >= 0 (got " + std::to_string(c.link_gbps) + ")";
  if (!(c.drift >= 0.0 && c.drift <= 1.0)) return "--drift must be in [0, 1] (got " + std::to_string(c.drift) + ")";
  return validate_policy_list(c.policies, c.params);
}

int64_t Traffic::token_bytes() const { return std::accumulate(token_send.begin(), token_send.end(), int64_t{0}); }
int64_t Traffic::weight_bytes() const { return std::accumulate(weight_send.begin(), weight_send.end(), int64_t{0}); }

Traffic plan_traffic(const Plan& plan, const LoadMatrix& loads, int64_t row_bytes, int64_t expert_bytes) {
  const int P = loads.num_ranks;
  const WorkSplit split = split_work(plan, SlotOrderMap(loads));
  Traffic t;
  t.token_send.assign(P, 0);
  t.token_recv.assign(P, 0);
  t.weight_send.assign(P, 0);
  t.weight_recv.assign(P, 0);
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < P; ++q) {
      if (p == q) continue;
      const int64_t bytes = split.rows(p, q) * row_bytes;
      t.token_send[p] += bytes;  // dispatch p -> computing rank q
      t.token_recv[q] += bytes;
      t.token_send[q] += bytes;  // combine back to p
      t.token_recv[p] += bytes;
    }
  for (const WeightTransfer& w : plan.transfers) {
    t.weight_send[w.src] += expert_bytes;
    t.weight_recv[w.dst] += expert_bytes;
  }
  return t;
}

double modelled_seconds(const std::vector<int64_t>& send, const std::vector<int64_t>& recv, double gbps) {
  if (!(gbps > 0.0)) return NAN;
  int64_t busiest = 0;
  for (size_t r = 0; r < send.size(); ++r) busiest = std::max({busiest, send[r], r < recv.size() ? recv[r] : 0});
  return static_cast<double>(busiest) / (gbps * 1e9 / 8.0);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int64_t PolicyEmulation::slots_computed() const {
  return std::accumulate(rank_slots.begin(), rank_slots.end(), int64_t{0});
}

EmulationResult plan_emulation(const EmulationConfig& cfg) {
  if (auto why = validate_emulation_config(cfg); !why.empty()) throw std::invalid_argument(why);
  const int P = cfg.ranks;
  const ModelShape& s = cfg.shape;
  EmulationResult res;
  res.loads = scenario_load_matrix(cfg.scenario, s, cfg.drift, cfg.seed, cfg.step, cfg.layer,
                                   std::vector<int64_t>(static_cast<size_t>(P), s.tokens));
  for (int64_t c : res.loads.counts) res.total_slots += c;

  std::vector<std::string> names{kBaselinePolicy};
  for (const auto& n : cfg.policies)
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  const int64_t row_bytes = int64_t{s.hidden} * cfg.element_bytes;
  const int64_t expert_bytes = s.expert_weight_bytes() / static_cast<int64_t>(sizeof(float)) * cfg.element_bytes;
  const std::vector<int64_t> expert_loads = res.loads.expert_loads();
  for (const auto& name : names) {
    const auto policy = make_policy(name, cfg.params);
    PolicyEmulation pe;
    pe.name = policy->name();
    pe.exact = policy->exact();
    pe.plan = policy->plan(res.loads, P);
    if (auto why = validate_plan(pe.plan, expert_loads); !why.empty())
      throw std::logic_error("policy '" + name + "' made an invalid plan: " + why);
    pe.work = partition_work(pe.plan);
    for (const auto& w : pe.work) pe.rank_slots.push_back(w.slots);
    pe.traffic = plan_traffic(pe.plan, res.loads, row_bytes, expert_bytes);
    res.policies.push_back(std::move(pe));
  }
  res.ep_imbalance = imbalance(res.policies.front().plan.rank_loads());
  return res;
}

WorkBounds work_bounds(const EmulationResult& r) {
  WorkBounds b;
  for (const auto& p : r.policies)
    for (const auto& w : p.work) {
      b.max_rank_slots = std::max(b.max_rank_slots, w.slots);
      b.max_block_slots = std::max(b.max_block_slots, w.largest_block());
      b.max_blocks = std::max(b.max_blocks, static_cast<int>(w.blocks.size()));
    }
  return b;
}

void summarize_emulation(const EmulationConfig& cfg, EmulationResult& res) {
  const PolicyEmulation* ep = nullptr;
  for (auto& p : res.policies) {
    p.makespan_s = p.rank_time_s.empty() ? 0.0 : *std::max_element(p.rank_time_s.begin(), p.rank_time_s.end());
    p.mean_time_s = p.rank_time_s.empty() ? 0.0
                                          : std::accumulate(p.rank_time_s.begin(), p.rank_time_s.end(), 0.0) /
                                                static_cast<double>(p.rank_time_s.size());
    p.token_model_s = modelled_seconds(p.traffic.token_send, p.traffic.token_recv, cfg.link_gbps);
    p.weight_model_s = modelled_seconds(p.traffic.weight_send, p.traffic.weight_recv, cfg.link_gbps);
    if (p.name == kBaselinePolicy) ep = &p;
  }
  for (auto& p : res.policies) p.speedup_vs_ep = (ep && p.makespan_s > 0.0) ? ep->makespan_s / p.makespan_s : NAN;
}

void time_emulation(const EmulationConfig& cfg, RankRunner& runner, EmulationResult& res,
                    const EmulationProgress& progress) {
  runner.reserve(work_bounds(res));
  res.runner = runner.describe();
  // Every (policy, rank) with work, visited in rounds: warm-up rounds, then
  // `repeats` timed rounds. Interleaving spreads a shared machine's slow
  // moments over all policies instead of charging them to one.
  struct Item {
    PolicyEmulation* policy;
    int rank;
    std::vector<double> times;
  };
  std::vector<Item> items;
  for (auto& p : res.policies) {
    const int P = static_cast<int>(p.work.size());
    p.rank_time_s.assign(static_cast<size_t>(P), 0.0);
    p.rank_phases.assign(static_cast<size_t>(P), PhaseSplit{});
    for (int r = 0; r < P; ++r)
      if (!p.work[r].blocks.empty()) items.push_back({&p, r, {}});
  }
  const int rounds = cfg.warmup + cfg.repeats + 1;  // the last one is instrumented
  const int total = rounds * static_cast<int>(items.size());
  int done = 0;
  for (int round = 0; round < rounds; ++round)
    for (Item& it : items) {
      const RankWork& w = it.policy->work[it.rank];
      if (round < cfg.warmup)
        runner.run(w, nullptr);
      else if (round < cfg.warmup + cfg.repeats)
        it.times.push_back(runner.run(w, nullptr));
      else
        runner.run(w, &it.policy->rank_phases[it.rank]);
      if (progress) progress(++done, total);
    }
  for (const Item& it : items) it.policy->rank_time_s[it.rank] = median(it.times);
  summarize_emulation(cfg, res);
}

namespace {

// fp32 expert blocks through the runtime's own kernels (gemm_nn, Kokkos
// activation) on Kokkos' default execution space, in the layer's row tiles
// (default_ffn_tile_rows). Computing a block's gate/up and activation rows
// whole took 156-176 ms for the small preset's 62,547-row block (EP, 95:1,
// 8 ranks) against 131 ms in tiles, and the layer runs tiles.
class KokkosRunner final : public RankRunner {
 public:
  KokkosRunner(const ModelShape& shape, uint64_t seed)
      : shape_(shape),
        seed_(seed),
        act_(activation_params(shape)),
        packed_(shape.expert_weight_bytes() / static_cast<int64_t>(sizeof(float))) {}

  std::string describe() const override {
    return std::string("Kokkos ") + ExecSpace::name() + ", fp32, GEMM " + gemm_backend();
  }

  void reserve(const WorkBounds& b) override {
    const int64_t D = shape_.hidden, H = shape_.ffn;
    x_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("emulate_x")), sz(b.max_rank_slots), sz(D));
    y_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("emulate_y")), sz(b.max_rank_slots), sz(D));
    const int64_t tile = ffn_workspace_rows(b.max_block_slots, default_ffn_tile_rows(D, H));
    gu_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("emulate_gu")), sz(tile), sz(2 * H));
    act_ws_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("emulate_act")), sz(tile), sz(H));
    weights_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("emulate_w")), sz(b.max_blocks),
                      sz(packed_));
    // Same synthetic values as the runtime's tokens and experts.
    generate_tokens(shape_, seed_, 0, 0, 0, x_);
    for (int i = 0; i < b.max_blocks; ++i) generate_expert_packed(shape_, 0, seed_, i, weights_.data() + i * packed_);
    Kokkos::fence();
  }

  double run(const RankWork& work, PhaseSplit* phases) override {
    Kokkos::fence();
    const double t0 = wall_seconds();
    int64_t row = 0;
    for (size_t i = 0; i < work.blocks.size(); ++i) {
      const int64_t n = work.blocks[i].slots;
      const ExpertWeightsView w = weights(static_cast<int64_t>(i));
      const UnmanagedMatrix x = row_block(x_, row, n), y = row_block(y_, row, n);
      if (!phases) {
        expert_ffn(x, w, act_, gu_, act_ws_, y);
      } else {
        const int64_t tile = static_cast<int64_t>(gu_.extent(0));
        for (int64_t r0 = 0; r0 < n; r0 += tile) {
          const int64_t m = std::min(tile, n - r0);
          const UnmanagedMatrix gu = row_block(gu_, 0, m), act = row_block(act_ws_, 0, m);
          double t = wall_seconds();
          gemm_nn(row_block(x, r0, m), w.w_gu, gu);
          Kokkos::fence();
          phases->gate_up_s += lap(t);
          swiglu_activation(gu, w.b_gu, act_, act);
          Kokkos::fence();
          phases->activation_s += lap(t);
          const UnmanagedMatrix y_tile = row_block(y, r0, m);
          gemm_nn(act, w.w_d, y_tile);
          add_row_bias(y_tile, w.b_d);
          Kokkos::fence();
          phases->down_s += lap(t);
        }
      }
      row += n;
    }
    Kokkos::fence();
    return wall_seconds() - t0;
  }

 private:
  static size_t sz(int64_t n) { return static_cast<size_t>(n); }
  static double lap(double& t) {
    const double now = wall_seconds(), d = now - t;
    t = now;
    return d;
  }
  ExpertWeightsView weights(int64_t i) const { return packed_expert_view(weights_.data() + i * packed_, shape_); }

  ModelShape shape_;
  uint64_t seed_;
  ActivationParams act_;
  int64_t packed_;
  Matrix x_, y_, gu_, act_ws_, weights_;
};

}  // namespace

std::unique_ptr<RankRunner> make_kokkos_runner(const ModelShape& shape, uint64_t seed) {
  return std::make_unique<KokkosRunner>(shape, seed);
}

}  // namespace moe

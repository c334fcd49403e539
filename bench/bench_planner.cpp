// Planner cost: one Plan from the all-gathered per-rank loads, as every rank
// computes it each step (policy->plan(loads, P)), for EP, capacity and LLEP on
// the shapes of DeepSeek-V3 (N = 256, 8 ranks) and Kimi-K2 (N = 384, 64 ranks).
// Loads are synthetic and deterministic: "95:1" puts 95% of the slots into one
// expert and spreads the rest evenly; "zipf:1.2" gives expert i (in a fixed
// shuffled order) a share proportional to 1 / (i + 1)^1.2; "balanced" is even.
// Cases ending in "/sums" plan from the global loads alone (a one-row matrix,
// as `moe-ep plan --loads` does), which leaves out the P x N reduction.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "policies/Policy.hpp"

namespace {

using moe::LoadMatrix;

struct Shape {
  int experts;
  int ranks;
  int64_t tokens_per_rank;
  int top_k;
  int64_t total_slots() const { return tokens_per_rank * ranks * top_k; }
};

std::vector<int64_t> expert_loads(const std::string& kind, const Shape& s) {
  const int N = s.experts;
  const int64_t total = s.total_slots();
  std::vector<double> share(N, 1.0);
  if (kind == "95:1") {
    std::fill(share.begin(), share.end(), 0.05 / (N - 1));
    share[N / 3] = 0.95;  // not expert 0: the hot one sits mid-way on some rank
  } else if (kind == "zipf:1.2") {
    std::vector<int> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
    for (int i = 0; i < N; ++i) share[order[i]] = 1.0 / std::pow(i + 1.0, 1.2);
  }
  const double sum = std::accumulate(share.begin(), share.end(), 0.0);
  std::vector<int64_t> loads(N);
  for (int e = 0; e < N; ++e) loads[e] = static_cast<int64_t>(share[e] / sum * static_cast<double>(total));
  return loads;
}

/// Per-rank counts whose column sums are `loads`, as the all-gather delivers them.
LoadMatrix per_rank(const std::vector<int64_t>& loads, int P) {
  LoadMatrix m(P, static_cast<int>(loads.size()));
  for (int e = 0; e < m.num_experts; ++e)
    for (int r = 0; r < P; ++r) m.at(r, e) = loads[e] / P + (r < loads[e] % P ? 1 : 0);
  return m;
}

void register_case(const std::string& policy, const std::string& kind, const Shape& s, bool from_sums = false) {
  const std::string name = policy + "/" + kind + "/N=" + std::to_string(s.experts) + "/P=" + std::to_string(s.ranks) +
                           (from_sums ? "/sums" : "");
  benchmark::RegisterBenchmark(name.c_str(), [policy, kind, s, from_sums](benchmark::State& state) {
    const std::vector<int64_t> global = expert_loads(kind, s);
    const LoadMatrix loads = from_sums ? LoadMatrix::from_expert_loads(global) : per_rank(global, s.ranks);
    const auto planner = moe::make_policy(policy, moe::PolicyParams{});  // paper defaults
    moe::Plan plan;
    for (auto _ : state) {
      plan = planner->plan(loads, s.ranks);
      benchmark::DoNotOptimize(plan);
    }
    state.counters["transfers"] = static_cast<double>(plan.transfers.size());
    state.counters["imbalance"] = moe::imbalance(plan.rank_loads());
  })->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  const Shape deepseek{256, 8, 16384, 8};  // 1M slots per step
  const Shape kimi{384, 64, 16384, 8};     // 8M slots per step
  for (const Shape& s : {deepseek, kimi}) {
    for (const char* kind : {"95:1", "zipf:1.2", "balanced"}) register_case("llep", kind, s);
    register_case("llep", "95:1", s, /*from_sums*/ true);
    register_case("ep", "95:1", s);
    register_case("capacity", "95:1", s);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

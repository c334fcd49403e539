#include "runtime/simulate/Calibrate.hpp"

#include <sched.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <sys/mman.h>
#include <type_traits>
#include <vector>

#include "kernels/ExpertFfn.hpp"
#include "kernels/KernelTypes.hpp"
#include "kernels/Permute.hpp"
#include "policies/Policy.hpp"
#include "runtime/io/TimelineWriter.hpp"
#include "runtime/layer/DispatchLayout.hpp"
#include "runtime/layer/ExpertStore.hpp"
#include "runtime/layer/LayerOptions.hpp"
#include "runtime/layer/LayerWorkspaces.hpp"
#include "runtime/layer/MemoryTracker.hpp"
#include "runtime/layer/MoeLayer.hpp"
#include "runtime/layer/PhaseTimer.hpp"
#include "runtime/simulate/Simulation.hpp"
#include "runtime/workload/RoutingSources.hpp"
#include "runtime/workload/Scenario.hpp"
#include "runtime/workload/Tokens.hpp"

namespace moe {

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// The mean of every rank's `mine`, on every rank. Collective.
double mean_over_ranks(Communicator& comm, double mine) {
  std::vector<double> all(static_cast<size_t>(comm.size()));
  comm.allgather(std::span<const double>(&mine, 1), all);
  double sum = 0.0;
  for (double v : all) sum += v;
  return sum / static_cast<double>(all.size());
}

// Times `body`: one warm-up run, then runs started together (a barrier
// before each) until rank 0 has timed for min_time and at least 3 runs; a
// rank's time is its median. Together: every rank runs `body` (which may then
// be collective) and the result is the mean over ranks. Alone: only rank 0
// runs it while the others wait, and the result is rank 0's. All ranks get it.
enum class Who { Together, Alone };
template <class F>
double time_runs(Communicator& comm, double min_time, Who who, F&& body) {
  const bool runs_body = who == Who::Together || comm.rank() == 0;
  if (runs_body) body();  // warm-up
  std::vector<double> runs;
  double spent = 0.0;
  for (;;) {
    comm.barrier();
    const double t0 = wall_seconds();
    if (runs_body) body();
    runs.push_back(wall_seconds() - t0);
    spent += runs.back();
    const bool more = runs.size() < 3 || (spent < min_time && runs.size() < 1000);
    if (comm.allreduce_max(comm.rank() == 0 && more ? 1.0 : 0.0) < 0.5) break;
  }
  const double mine = median_of(runs);
  if (who == Who::Alone) return comm.allreduce_max(comm.rank() == 0 ? mine : 0.0);
  return mean_over_ranks(comm, mine);
}

// The CPUs the ranks on rank 0's node (the node the calibration describes,
// as node_ranks) may run on: the union of their
// affinity masks (a rank bound to one core sees one; ranks left unbound see
// the node's, or their Slurm cgroup's). Collective. 0 when unknown.
int node_cpus(Communicator& comm) {
  constexpr size_t kWords = CPU_SETSIZE / 64;
  std::vector<int64_t> mine(kWords, 0), all(kWords * static_cast<size_t>(comm.size()));
  cpu_set_t set;
  CPU_ZERO(&set);
  const bool known = sched_getaffinity(0, sizeof set, &set) == 0;
  for (int c = 0; known && c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) mine[static_cast<size_t>(c) / 64] |= int64_t{1} << (c % 64);
  comm.allgather(mine, all);
  const std::vector<int>& node = comm.node_of_rank();
  std::vector<int64_t> mask(kWords, 0);
  for (int r = 0; r < comm.size(); ++r)
    if (node[static_cast<size_t>(r)] == node.front())
      for (size_t w = 0; w < kWords; ++w) mask[w] |= all[static_cast<size_t>(r) * kWords + w];
  int cpus = 0;
  for (int64_t w : mask) cpus += std::popcount(static_cast<uint64_t>(w));
  return cpus;
}

template <class F>
double time_together(Communicator& comm, double min_time, F&& body) {
  return time_runs(comm, min_time, Who::Together, std::forward<F>(body));
}

// Latency and bandwidth from a small and a large measurement of the same
// operation moving `small` and `large` bytes per rank.
LinkModel fit_link(double t_small, int64_t small, double t_large, int64_t large) {
  LinkModel l;
  const double dt = t_large - t_small;
  l.bandwidth = dt > 0.0 ? static_cast<double>(large - small) / dt : static_cast<double>(large) / t_large;
  l.latency_s = std::max(0.0, t_small - static_cast<double>(small) / l.bandwidth);
  return l;
}

// The layer's own stages around the expert blocks, as `compare` runs them
// (a barrier before each layer-step, fresh tokens every step, the layer's
// allocations and cold caches included: timing build_dispatch_layout or the
// router in a tight loop had measured 1.6-3.5x less than the layer spends).
// Two sets of layer-steps on these ranks, each after two warm-up steps that
// grow the step buffers (no first touch is timed):
//   A. EP on balanced routing: every routed slot is kept;
//   B. capacity-dropping (factor 0.25) on the --scenario's routing: most are
//      dropped.
// Per stage each rank's median busy time (the thread's CPU time, so ranks
// sharing cores do not inflate it), mean over ranks. The route is per token
// (set B: the scenario's sampler). The plan and the combine each have a part
// per routed slot (counting, the gate-weighted sum over K) and a part per
// kept slot (the dispatch and exchange layout, the returned rows): A and B
// separate the two. The permute moves kept slots only.
// Returns set A's layer-step: its tokens per rank and its wall time (the
// slowest rank's, median over the steps), what fit_compute_units reproduces.
struct BalancedStep {
  int64_t tokens = 0;
  double wall_s = 0.0;
};
BalancedStep measure_layer_stages(const CalibrateConfig& cfg, Communicator& comm, ShapeCalibration& sc) {
  const ModelShape& s = cfg.shape;
  const int me = comm.rank();
  // Enough tokens for per-slot rates, few enough that the expert blocks
  // (balanced: T * K slots per rank) stay near a second.
  const int64_t T = std::clamp<int64_t>(static_cast<int64_t>(4e10 / (s.flops_per_slot() * s.top_k)), 64,
                                        std::max<int64_t>(64, s.tokens));
  MemoryTracker tracker;
  LayerWorkspaces ws(tracker, s);
  Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_layer_x")), static_cast<size_t>(T),
           static_cast<size_t>(s.hidden));
  Matrix out(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_layer_out")), static_cast<size_t>(T),
             static_cast<size_t>(s.hidden));
  struct Stages {
    double route = 0, plan = 0, permute = 0, combine = 0, routed = 0, kept = 0;  // medians on this rank
    double wall = 0;  // median over steps of the slowest rank's layer-step
  };
  auto run_set = [&](const ScenarioSpec& routing, const char* policy_name, const PolicyParams& params) {
    MoeLayer layer(s, 0, cfg.seed, scenario_source(routing, s, 0.0), comm, tracker, ws);
    const auto policy = make_policy(policy_name, params);
    std::vector<double> route, plan, permute, combine, routed, kept, wall;
    for (int step = 0; step < 7; ++step) {
      generate_tokens(s, cfg.seed, step, 0, T * me, x);
      comm.barrier();  // as compare starts every policy's layer-step
      StepRecord rec = layer.forward(x, RoutingKey{cfg.seed, step, 0, T * me}, *policy, out);
      const double slowest = comm.allreduce_max(rec.times.wall_total());
      if (step < 2) continue;
      wall.push_back(slowest);
      route.push_back(rec.times.busy_of(Phase::Route));
      plan.push_back(rec.times.busy_of(Phase::Plan));
      permute.push_back(rec.times.busy_of(Phase::Dispatch));
      combine.push_back(rec.times.busy_of(Phase::Combine));
      routed.push_back(static_cast<double>(rec.slots_routed));
      kept.push_back(static_cast<double>(rec.slots_routed - rec.slots_dropped));
    }
    return Stages{median_of(route),  median_of(plan), median_of(permute), median_of(combine),
                  median_of(routed), median_of(kept), median_of(wall)};
  };
  const Stages A = run_set(ScenarioSpec::parse("balanced"), kBaselinePolicy, PolicyParams{});
  const Stages B = run_set(cfg.scenario, "capacity", PolicyParams{}.set("capacity-factor", 0.25));
  // cost = per_routed * routed + per_kept * kept, from A (kept = routed) and B.
  auto split = [&](double a, double b, double& per_routed, double& per_kept) {
    const double R = std::max(1.0, A.routed), dropped = A.routed - B.kept;
    per_kept = dropped > 0.0 ? std::max(0.0, (a - b) / dropped) : 0.0;
    per_routed = std::max(0.0, a / R - per_kept);
    per_kept = a / R - per_routed;  // the two add up to A's rate
  };
  split(mean_over_ranks(comm, A.plan), mean_over_ranks(comm, B.plan), sc.layout_s_per_slot, sc.layout_s_per_kept_slot);
  split(mean_over_ranks(comm, A.combine), mean_over_ranks(comm, B.combine), sc.combine_s_per_slot,
        sc.combine_s_per_kept_slot);
  sc.permute_s_per_slot = mean_over_ranks(comm, A.permute) / std::max(1.0, A.kept);
  sc.route_s_per_token = mean_over_ranks(comm, B.route) / static_cast<double>(T);
  return {T, A.wall};
}

// What the model predicts for set A's layer-step (EP, balanced routing, T
// tokens per rank, after a warm-up: no first touch) on machine `m`.
double simulated_balanced_step(const Machine& m, const ModelShape& shape, int64_t tokens, int P, uint64_t seed) {
  SimulationConfig c;
  c.machine = m;
  c.ranks = P;
  c.ranks_per_node = m.ranks_per_node;
  c.run.shape = shape;
  c.run.shape.tokens = tokens;
  c.run.scenario = ScenarioSpec::parse("balanced");
  c.run.seed = seed;
  c.run.policies = {kBaselinePolicy};
  return simulate(c).comparison.policies.front().wall_s;
}

}  // namespace

// Ranks of a CPU node: the expert blocks run on every rank at once measure
// how the compute shares the cores and memory bandwidth, but not what ranks
// taking turns on the cores cost the short stages and each collective (the
// waits for ranks the scheduler has descheduled, cache refills after each
// switch), nor the layer's exchanges beyond the all-to-all benchmark. The
// units are the value in [1, ranks] at which the model reproduces the
// balanced EP layer-steps measured by measure_layer_stages: a one-parameter
// fit on the calibration's own run (the model's wall time falls as units
// grow; bisection).
double fit_compute_units(Machine& m, const ModelShape& shape, int64_t tokens, double measured_wall_s, int P,
                         uint64_t seed, double max_units) {
  Calibration& cal = *m.calibration;
  auto wall_at = [&](double units) {
    cal.compute_units = units;
    return simulated_balanced_step(m, shape, tokens, P, seed);
  };
  double lo = 1.0, hi = std::max(1.0, static_cast<double>(m.ranks_per_node));
  if (max_units >= 1.0) hi = std::min(hi, max_units);
  if (wall_at(hi) >= measured_wall_s) return hi;
  if (wall_at(lo) <= measured_wall_s) return lo;
  for (int i = 0; i < 40 && hi - lo > 1e-3; ++i) {
    const double mid = 0.5 * (lo + hi);
    (wall_at(mid) > measured_wall_s ? lo : hi) = mid;
  }
  return cal.compute_units = 0.5 * (lo + hi);
}

Machine calibrate(const CalibrateConfig& cfg, Communicator& comm, const CalibrateProgress& progress) {
  const ModelShape& s = cfg.shape;
  const int P = comm.size(), me = comm.rank();
  const int64_t D = s.hidden, H = s.ffn;
  auto say = [&](const std::string& line) {
    if (progress && me == 0) progress(line);
  };
  ShapeCalibration sc;
  sc.hidden = s.hidden;
  sc.ffn = s.ffn;
  sc.experts = s.num_experts;
  sc.top_k = s.top_k;
  sc.activation = s.activation;

  // Expert blocks: the runtime's expert_ffn in its default row tiles, timed
  // on rank 0 alone (a rank with the node to itself; what several ranks
  // computing at once cost is compute_units below). The layer runs its N/P
  // experts one after another, so each block reads weights the previous
  // blocks pushed out of cache: successive runs cycle through as many
  // distinct experts as a rank holds (at most 256 MiB of weights).
  const int node_ranks = comm.ranks_on_node(comm.node_of_rank()[0]);
  // No more units than ranks, nor than the CPUs they may run on (4 ranks on
  // the 2-core VM once measured 3.08 "units": t_alone timed in a slow moment).
  const int cpus = node_cpus(comm);
  const double max_units = static_cast<double>(cpus > 0 ? std::min(node_ranks, cpus) : node_ranks);
  double compute_units = 0.0;
  {
    const ActivationParams act = activation_params(s);
    const int64_t packed = s.expert_weight_bytes() / static_cast<int64_t>(sizeof(float));
    const int64_t held = std::max<int64_t>(1, s.num_experts / std::max(1, P));
    const int64_t n_w =
        std::clamp<int64_t>((int64_t{256} << 20) / std::max<int64_t>(1, s.expert_weight_bytes()), 1, held);
    Matrix w(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_w")), static_cast<size_t>(n_w),
             static_cast<size_t>(packed));
    std::vector<ExpertWeightsView> ews;
    for (int64_t e = 0; e < n_w; ++e) {
      generate_expert_packed(s, 0, cfg.seed, static_cast<int>(e), &w(static_cast<size_t>(e), 0));
      ews.push_back(packed_expert_view(&w(static_cast<size_t>(e), 0), s));
    }
    size_t next = 0;
    const int64_t tile = LayerOptions{}.tile_rows(s);
    double spent = 0.0;
    for (int64_t rows = 1; rows <= cfg.max_rows; rows *= 2) {
      const int64_t ws = ffn_workspace_rows(rows, tile);
      Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_x")), static_cast<size_t>(rows),
               static_cast<size_t>(D));
      Matrix y(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_y")), static_cast<size_t>(rows),
               static_cast<size_t>(D));
      Matrix gu(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_gu")), static_cast<size_t>(ws),
                static_cast<size_t>(2 * H));
      Matrix a(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_act")), static_cast<size_t>(ws),
               static_cast<size_t>(H));
      generate_tokens(s, cfg.seed, 0, 0, 0, x);
      const double t0 = wall_seconds();
      auto block = [&] {
        expert_ffn(x, ews[next], act, gu, a, y);
        next = (next + 1) % ews.size();
        Kokkos::fence();
      };
      const double t = time_runs(comm, cfg.min_time_s, Who::Alone, block);
      spent += wall_seconds() - t0;
      sc.rows.push_back(rows);
      sc.seconds.push_back(t);
      char line[160];
      std::snprintf(line, sizeof line, "expert block %lld rows: %.3e s (%.2f GFLOP/s per rank)",
                    static_cast<long long>(rows), t, s.flops_per_slot() * static_cast<double>(rows) / t / 1e9);
      say(line);
      // The budget is decided on every rank alike (rank 0's clock).
      const double go = comm.allreduce_max(me == 0 ? (spent < cfg.budget_s ? 1.0 : 0.0) : 0.0);
      const bool last = go < 0.5 || rows * 2 > cfg.max_rows;
      // Compute units: the same block on every rank of the node at once. A
      // node whose ranks each have a core (or a GPU) to themselves takes as
      // long as one rank alone: units = ranks. Ranks that share cores (more
      // ranks than cores) or memory bandwidth take longer: units = ranks x
      // t_alone / t_together, how many ranks' compute runs at full speed at
      // once. Measured on the first block of >= 20 ms (or the last one).
      if (P > 1 && compute_units == 0.0 && (t >= 0.02 || last)) {
        const double t_all = time_runs(comm, cfg.min_time_s, Who::Together, block);
        compute_units = std::clamp(node_ranks * t / t_all, 1.0, max_units);
        char units[160];
        std::snprintf(units, sizeof units,
                      "compute units: %.2f of %d rank(s) (%lld rows: %.3e s alone, %.3e s together)", compute_units,
                      node_ranks, static_cast<long long>(rows), t, t_all);
        say(units);
      }
      if (go < 0.5) {
        say("time budget reached (--budget): the grid stops here; larger blocks scale from the last point");
        break;
      }
    }
  }

  // The router and the layer's stages around the expert blocks; then row
  // copies and the communicator.
  const BalancedStep balanced = measure_layer_stages(cfg, comm, sc);
  say("route: " + std::to_string(sc.route_s_per_token * 1e9) + " ns per token");
  say("layer stages: plan " + std::to_string(sc.layout_s_per_slot * 1e9) + " ns per slot + " +
      std::to_string(sc.layout_s_per_kept_slot * 1e9) + " ns per kept slot, permute " +
      std::to_string(sc.permute_s_per_slot * 1e9) + " ns per kept slot, combine " +
      std::to_string(sc.combine_s_per_slot * 1e9) + " ns per slot + " +
      std::to_string(sc.combine_s_per_kept_slot * 1e9) + " ns per kept slot");
  const int64_t T = std::max<int64_t>(1, s.tokens);
  Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_tokens")), static_cast<size_t>(T),
           static_cast<size_t>(D));
  generate_tokens(s, cfg.seed, 0, 0, T * me, x);
  const int64_t slots = T * s.top_k;
  // Row copies: gather_rows of the rank's slots (the regroup into expert-major
  // rows and back moves rows this way), rank 0 alone.
  Calibration cal;
  {
    IndexVector idx(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_idx")),
                    static_cast<size_t>(slots));
    auto h = Kokkos::create_mirror_view(idx);
    for (int64_t i = 0; i < slots; ++i) h(static_cast<size_t>(i)) = (i * 7919) % T;
    Kokkos::deep_copy(idx, h);
    Matrix out(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_rows")), static_cast<size_t>(slots),
               static_cast<size_t>(D));
    const double t = time_runs(comm, cfg.min_time_s, Who::Alone, [&] {
      gather_rows(x, idx, out);
      Kokkos::fence();
    });
    cal.copy_bandwidth = static_cast<double>(slots * D * static_cast<int64_t>(sizeof(float))) / t;
    say("row copies: " + std::to_string(cal.copy_bandwidth / 1e9) + " GB/s per rank");
    // First touch (host memory): the same copies into pages fresh from the
    // kernel, as a growing Workspace gets them, less the copies alone: the
    // page faults. (A Kokkos allocation freed and made again would reuse the
    // allocator's pages and measure nothing.) Device builds: not modelled.
    if constexpr (std::is_same_v<MemSpace, Kokkos::HostSpace>) {
      const size_t bytes = static_cast<size_t>(slots * D) * sizeof(float);
      const double t_fresh = time_runs(comm, cfg.min_time_s, Who::Alone, [&] {
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::runtime_error("calibrate: mmap failed");
        gather_rows(x, idx,
                    UnmanagedMatrix(static_cast<float*>(p), static_cast<size_t>(slots), static_cast<size_t>(D)));
        Kokkos::fence();
        munmap(p, bytes);
      });
      const double faults = t_fresh - t;
      cal.first_touch_bandwidth = faults > 0.0 ? static_cast<double>(bytes) / faults : 0.0;
      say("first touch: " + std::to_string(cal.first_touch_bandwidth / 1e9) + " GB/s per rank");
    }
  }

  // The communicator: all-to-all(v) with equal rows to every other rank, and
  // point-to-point to the next rank; small and large, for latency and bandwidth.
  if (P > 1) {
    const int64_t row = D;  // floats per row
    const int64_t big_rows = std::max<int64_t>(1, cfg.comm_bytes / (row * 4) / (P - 1));
    std::vector<float> send(static_cast<size_t>(big_rows * row * P)), recv(send.size());
    auto a2a = [&](int64_t rows) {
      std::vector<int64_t> n(static_cast<size_t>(P), rows);
      n[static_cast<size_t>(me)] = 0;
      return time_together(comm, cfg.min_time_s, [&] { comm.alltoallv_rows(send.data(), n, recv.data(), n, row); });
    };
    const int64_t small_bytes = row * 4 * (P - 1), large_bytes = big_rows * row * 4 * (P - 1);
    cal.alltoall = fit_link(a2a(1), small_bytes, a2a(big_rows), large_bytes);
    say("all-to-all: " + std::to_string(cal.alltoall->bandwidth / 1e9) + " GB/s per rank, latency " +
        std::to_string(cal.alltoall->latency_s * 1e6) + " us");
    // Weight transfers send an expert that the compute has pushed out of
    // cache into the imports buffer the layer reuses: each run sends from
    // the next slice of a pool larger than the last-level cache (128 MiB).
    const int64_t big = static_cast<int64_t>(send.size()) * 4;
    const int64_t slices = std::max<int64_t>(2, (int64_t{128} << 20) / big);
    std::vector<float> send_pool(send.size() * static_cast<size_t>(slices), 1.0f);
    int64_t slice = 0;
    auto p2p = [&](int64_t bytes) {
      return time_together(comm, cfg.min_time_s, [&] {
        const size_t at = static_cast<size_t>(slice) * send.size();
        slice = (slice + 1) % slices;
        const P2PMessage out{(me + 1) % P, 7, send_pool.data() + at, nullptr, bytes};
        const P2PMessage in{(me + P - 1) % P, 7, nullptr, recv.data(), bytes};
        comm.exchange({&out, 1}, {&in, 1});
      });
    };
    cal.p2p = fit_link(p2p(4 * row), 4 * row, p2p(big), big);
    say("point-to-point: " + std::to_string(cal.p2p->bandwidth / 1e9) + " GB/s per rank, latency " +
        std::to_string(cal.p2p->latency_s * 1e6) + " us");
  }

  Machine m;
  m.name = cfg.name;
  const std::vector<std::string> hosts = gather_hostnames(comm);
  const std::vector<int>& nodes = comm.node_of_rank();
  m.ranks_per_node = comm.ranks_on_node(nodes[static_cast<size_t>(me)]);
  m.default_dtype = "fp32";
  const double big_rows = static_cast<double>(sc.rows.back());
  m.peak_flops["fp32"] = s.flops_per_slot() * big_rows / sc.seconds.back();
  m.memory_bandwidth = 2.0 * cal.copy_bandwidth;
  m.launch_overhead_s = 0.0;
  m.layout_s_per_slot = sc.layout_s_per_slot;
  m.intra_node = cal.alltoall.value_or(LinkModel{m.memory_bandwidth / 2.0, 1e-6});
  m.inter_node = m.intra_node;
  m.description = "calibrated by moe-ep calibrate on " + hosts.front() + " with " + std::to_string(P) + " rank(s)";
  m.sources = {
      "calibration: measured by moe-ep calibrate (the runtime's expert_ffn and gather_rows on rank 0 alone, "
      "the same blocks on every rank at once, the layer's own route, plan, permute and combine stages in "
      "layer-steps on every rank, compute_units fitted to the balanced ones on CPU nodes, the communicator); "
      "peak_flops and memory_bandwidth derived from it; inter_node: not measured (one node), set equal to "
      "intra_node"};
  cal.dtype = "fp32";
  cal.ranks = P;
  cal.compute_units = compute_units;
  cal.host = hosts.front();
  cal.date = iso8601_utc_now();
  cal.shapes.push_back(std::move(sc));
  m.calibration = std::move(cal);
  // Host builds: the node's ranks share its cores, caches and memory
  // bandwidth; the units are fitted to the layer-steps (fit_compute_units).
  // Device builds: a GPU per rank, the block figure stands.
  if constexpr (std::is_same_v<MemSpace, Kokkos::HostSpace>) {
    if (P > 1 && node_ranks > 1) {
      const double fitted = fit_compute_units(m, s, balanced.tokens, balanced.wall_s, P, cfg.seed, max_units);
      char line[200];
      std::snprintf(line, sizeof line,
                    "compute units: %.2f, fitted to the balanced EP layer-step (%.3e s measured); the blocks gave %.2f",
                    fitted, balanced.wall_s, compute_units);
      say(line);
      // A fit far below the blocks' figure means the layer-steps ran in a
      // slow moment (another job on the node): every prediction would be slow.
      if (fitted < 0.6 * compute_units && me == 0)
        std::fprintf(stderr,
                     "calibrate: warning: the fitted compute units (%.2f) are far below the expert blocks' (%.2f): "
                     "the layer-steps ran slow, was the node busy? Re-run calibrate on an idle node.\n",
                     fitted, compute_units);
      m.calibration->compute_units_blocks = compute_units;
      m.calibration->compute_units = fitted;
    }
  }
  return m;
}

Machine merge_calibration(const Machine& base, const Machine& add) {
  if (!base.calibration || !add.calibration || base.calibration->dtype != add.calibration->dtype) return add;
  Machine m = add;
  for (const ShapeCalibration& old : base.calibration->shapes) {
    bool replaced = false;
    for (const ShapeCalibration& s : add.calibration->shapes)
      replaced = replaced || (s.hidden == old.hidden && s.ffn == old.ffn && s.experts == old.experts &&
                              s.top_k == old.top_k && s.activation == old.activation);
    if (!replaced) m.calibration->shapes.push_back(old);
  }
  return m;
}

}  // namespace moe

#include "runtime/simulate/Calibrate.hpp"

#include <algorithm>
#include <cmath>
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
#include "runtime/layer/Router.hpp"
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
  std::vector<double> all(static_cast<size_t>(comm.size()));
  comm.allgather(std::span<const double>(&mine, 1), all);
  double sum = 0.0;
  for (double v : all) sum += v;
  return sum / static_cast<double>(all.size());
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

// The layer's own stages around the expert blocks, per local slot, as the
// runtime runs them (its allocations and cold caches included, which a
// tight loop over one function would miss): EP layer-steps of balanced
// routing on these ranks, the same routing each time (after two warm-up
// steps that grow the step buffers, so no first touch is timed); each rank's
// median busy time of the plan stage (counts, plan, dispatch layout), the
// dispatch's permute and the combine; mean over ranks. Busy time is the
// thread's CPU time, so ranks sharing cores do not inflate it.
void measure_layer_stages(const CalibrateConfig& cfg, Communicator& comm, ShapeCalibration& sc) {
  const ModelShape& s = cfg.shape;
  const int me = comm.rank();
  // Enough tokens for per-slot rates, few enough that the expert blocks
  // (balanced: T * K slots per rank) stay near a second.
  const int64_t T = std::clamp<int64_t>(static_cast<int64_t>(4e10 / (s.flops_per_slot() * s.top_k)), 64,
                                        std::max<int64_t>(64, s.tokens));
  MemoryTracker tracker;
  LayerWorkspaces ws(tracker, s);
  const ScenarioSpec balanced = ScenarioSpec::parse("balanced");
  MoeLayer layer(s, 0, cfg.seed, scenario_source(balanced, s, 0.0), comm, tracker, ws);
  const auto ep = make_policy(kBaselinePolicy, PolicyParams{});
  Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_layer_x")), static_cast<size_t>(T),
           static_cast<size_t>(s.hidden));
  Matrix out(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_layer_out")), static_cast<size_t>(T),
             static_cast<size_t>(s.hidden));
  generate_tokens(s, cfg.seed, 0, 0, T * me, x);
  std::vector<double> plan, permute, combine;
  for (int i = 0; i < 7; ++i) {
    StepRecord rec = layer.forward(x, RoutingKey{cfg.seed, 0, 0, T * me}, *ep, out);
    if (i < 2) continue;
    const double slots = static_cast<double>(std::max<int64_t>(1, rec.slots_routed));
    plan.push_back(rec.times.busy_of(Phase::Plan) / slots);
    permute.push_back(rec.times.busy_of(Phase::Dispatch) / slots);
    combine.push_back(rec.times.busy_of(Phase::Combine) / slots);
  }
  auto mean_over_ranks = [&](std::vector<double> v) {
    const double mine = median_of(std::move(v));
    std::vector<double> all(static_cast<size_t>(comm.size()));
    comm.allgather(std::span<const double>(&mine, 1), all);
    double sum = 0.0;
    for (double a : all) sum += a;
    return sum / static_cast<double>(all.size());
  };
  sc.layout_s_per_slot = mean_over_ranks(plan);
  sc.permute_s_per_slot = mean_over_ranks(permute);
  sc.combine_s_per_slot = mean_over_ranks(combine);
}

}  // namespace

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
        compute_units = std::clamp(node_ranks * t / t_all, 1.0, static_cast<double>(node_ranks));
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

  // Routing (the router's GEMM, the scenario's sampler, the gates) per token,
  // rank 0 alone; then the layer's stages around the expert blocks.
  MemoryTracker tracker;
  const int64_t T = std::max<int64_t>(1, s.tokens);
  Matrix x(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("cal_tokens")), static_cast<size_t>(T),
           static_cast<size_t>(D));
  generate_tokens(s, cfg.seed, 0, 0, T * me, x);
  const Router router(s, 0, cfg.seed, scenario_source(cfg.scenario, s, 0.0), tracker);
  Routing routing;
  sc.route_s_per_token = time_runs(comm, cfg.min_time_s, Who::Alone,
                                   [&] {
                                     routing = router.route(x, RoutingKey{cfg.seed, 0, 0, T * me});
                                     Kokkos::fence();
                                   }) /
                         static_cast<double>(T);
  say("route: " + std::to_string(sc.route_s_per_token * 1e9) + " ns per token");
  const int64_t slots = T * s.top_k;
  measure_layer_stages(cfg, comm, sc);
  say("layer stages per slot: plan " + std::to_string(sc.layout_s_per_slot * 1e9) + " ns, permute " +
      std::to_string(sc.permute_s_per_slot * 1e9) + " ns, combine " + std::to_string(sc.combine_s_per_slot * 1e9) +
      " ns");

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
      "calibration: measured by moe-ep calibrate (the runtime's expert_ffn, router and gather_rows on rank 0 "
      "alone, compute_units from every rank at once, the layer's own plan, permute and combine stages, the "
      "communicator); peak_flops and memory_bandwidth derived from it; inter_node: not measured (one node), set "
      "equal to intra_node"};
  cal.dtype = "fp32";
  cal.ranks = P;
  cal.compute_units = compute_units;
  cal.host = hosts.front();
  cal.date = iso8601_utc_now();
  cal.shapes.push_back(std::move(sc));
  m.calibration = std::move(cal);
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

// `moe-ep emulate`: an emulated P-rank cluster in one process (no MPI). The
// real plans of each policy for P ranks, each emulated rank's expert work run
// in turn on the local device (cuBLAS at --dtype on a GPU, or the runtime's
// own fp32 kernels through Kokkos), per-rank times, makespan, speedup over EP
// and the ideal. Communication is counted, not run (runtime/Emulation.hpp).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include <Kokkos_Core.hpp>
#include <nlohmann/json.hpp>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "apps/ResultReport.hpp"
#include "apps/SizeChecks.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"
#include "runtime/emulate/Emulation.hpp"
#include "runtime/layer/ExpertStore.hpp"
#ifdef MOE_HAVE_CUDA
#include "kernels/cuda/CudaExpertRunner.hpp"
#endif

namespace moe::app {

namespace {

struct EmulateOptions {
  ModelOptions model;
  std::string scenario = "balanced";
  uint64_t seed = 1;
  PolicyParams params;
  int ranks = 8;
  std::string policies;
  std::string dtype = "auto";
  std::string runner = "auto";
  int repeats = 5;
  int warmup = 1;
  double link_gbps = 0.0;
  std::string json_path;
  bool quiet = false;
};

// Rate assumed for the CPU-time warning: one core's OpenBLAS sgemm here.
constexpr double kHostFlopsGuess = 100e9;

#ifdef MOE_HAVE_CUDA
// The cuBLAS runner of moe_cuda behind the emulation's RankRunner.
class CudaRankRunner final : public RankRunner {
 public:
  CudaRankRunner(const ModelShape& s, cuda::DType dtype, uint64_t seed)
      : shape_(to_cuda_shape(s)), dtype_(dtype), seed_(seed), runner_(shape_, dtype) {
    const int dev = cuda::current_device();
    desc_ = std::string("cuBLAS ") + cuda::dtype_name(dtype) + " (fp32 accumulation) on GPU " + std::to_string(dev) +
            ": " + cuda::device_description(dev) + "; times from CUDA events";
  }
  std::string describe() const override { return desc_; }
  void reserve(const WorkBounds& b) override {
    const int sets = std::max(1, b.max_blocks);
    const int64_t need = cuda::ExpertRunner::bytes_needed(shape_, dtype_, b.max_rank_slots, b.max_block_slots, sets);
    size_t free_b = 0, total_b = 0;
    cuda::device_memory(free_b, total_b);
    if (static_cast<double>(need) > 0.95 * static_cast<double>(free_b))
      throw InputError("emulate: the largest emulated rank needs " + gib(need) + " GiB on the GPU but " +
                       gib(static_cast<int64_t>(free_b)) +
                       " GiB are free; use fewer --tokens, more --ranks or a 16-bit --dtype");
    runner_.reserve(b.max_rank_slots, b.max_block_slots, sets, seed_);
  }
  double run(const RankWork& work, PhaseSplit* phases) override {
    rows_.clear();
    for (const auto& b : work.blocks) rows_.push_back(b.slots);
    cuda::PhaseMs ms;
    const double total = runner_.run_ms(rows_.data(), rows_.size(), phases ? &ms : nullptr);
    if (phases) *phases = PhaseSplit{ms.gate_up / 1e3, ms.activation / 1e3, ms.down / 1e3};
    return total / 1e3;
  }

 private:
  static cuda::ExpertShape to_cuda_shape(const ModelShape& s) {
    cuda::ExpertShape c;
    c.hidden = s.hidden;
    c.ffn = s.ffn;
    const ActivationParams act = activation_params(s);
    c.act = cuda::SwigluParams{act.gpt_oss, act.limit, act.alpha};
    return c;
  }
  static std::string gib(int64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0));
    return buf;
  }
  cuda::ExpertShape shape_;
  cuda::DType dtype_;
  uint64_t seed_;
  cuda::ExpertRunner runner_;
  std::string desc_;
  std::vector<int64_t> rows_;
};
#endif

bool cuda_runner_available() {
#ifdef MOE_HAVE_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

// Picks the runner and dtype from --runner/--dtype; throws InputError.
std::unique_ptr<RankRunner> make_runner(const EmulateOptions& o, const ModelShape& shape, std::string& dtype,
                                        std::string& which) {
  which = o.runner;
  if (which == "auto") which = cuda_runner_available() ? "cuda" : "kokkos";
  if (which == "kokkos") {
    if (o.dtype != "auto" && o.dtype != "fp32")
      throw InputError("--dtype " + o.dtype + " needs --runner cuda (a CUDA GPU); the Kokkos runner is fp32 only" +
                       (cuda_runner_available() ? "" : " and this machine has no usable GPU"));
    dtype = "fp32";
    return make_kokkos_runner(shape, o.seed);
  }
#ifdef MOE_HAVE_CUDA
  if (!cuda_runner_available())
    throw InputError("--runner cuda: no CUDA device is visible (cudaGetDeviceCount found none); use --runner kokkos");
  dtype = o.dtype == "auto" ? "bf16" : o.dtype;
  return std::make_unique<CudaRankRunner>(shape, cuda::parse_dtype(dtype), o.seed);
#else
  throw InputError(
      "--runner cuda: this build has no CUDA parts (configure with -DMOE_ENABLE_CUDA=ON, "
      "scripts/build --cuda); use --runner kokkos");
#endif
}

double tflops(int64_t slots, double flops_per_slot, double seconds) {
  return seconds > 0.0 ? static_cast<double>(slots) * flops_per_slot / seconds / 1e12 : 0.0;
}

// Slots and time of the rank that sets the makespan.
int makespan_rank(const PolicyEmulation& p) {
  if (p.rank_time_s.empty()) return 0;
  return static_cast<int>(std::max_element(p.rank_time_s.begin(), p.rank_time_s.end()) - p.rank_time_s.begin());
}

void print_report(const EmulationConfig& cfg, const EmulationResult& r, const std::string& dtype, std::FILE* out) {
  const ModelShape& s = cfg.shape;
  std::fprintf(out,
               "moe-ep emulate: %s (N=%d D=%d H=%d K=%d, %s), %d emulated ranks x %lld tokens = %lld slots, "
               "scenario %s, seed %llu\n",
               s.preset.c_str(), s.num_experts, s.hidden, s.ffn, s.top_k, activation_name(s.activation).c_str(),
               cfg.ranks, static_cast<long long>(s.tokens), static_cast<long long>(r.total_slots),
               cfg.scenario.text.c_str(), static_cast<unsigned long long>(cfg.seed));
  std::fprintf(out,
               "runner: %s; dtype %s; each rank's experts run in turn on this one device, median of %d runs "
               "after %d warm-up (in rounds over all ranks and policies)\n",
               r.runner.c_str(), dtype.c_str(), cfg.repeats, cfg.warmup);
  std::fprintf(out, "measured: compute only (no communication); EP max/mean rank load %.2f = the ideal speedup\n\n",
               r.ep_imbalance);
  std::fprintf(out, "%-10s %12s %10s %9s %9s %14s %6s %11s %11s\n", "policy", "makespan_ms", "mean_ms", "speedup",
               "max/mean", "TFLOP/s@max", "xfers", "token_MiB", "weight_MiB");
  for (const auto& p : r.policies) {
    const int mr = makespan_rank(p);
    std::fprintf(out, "%-10s %12.3f %10.3f %9.2f %9.2f %14.3f %6d %11.1f %11.1f\n", p.name.c_str(), p.makespan_s * 1e3,
                 p.mean_time_s * 1e3, p.speedup_vs_ep, imbalance(p.rank_slots),
                 tflops(p.rank_slots.empty() ? 0 : p.rank_slots[mr], s.flops_per_slot(),
                        p.rank_time_s.empty() ? 0.0 : p.rank_time_s[mr]),
                 p.weight_transfers(), static_cast<double>(p.traffic.token_bytes()) / (1024.0 * 1024.0),
                 static_cast<double>(p.traffic.weight_bytes()) / (1024.0 * 1024.0));
  }
  std::fprintf(out, "\nper-rank compute ms (slots):\n");
  for (const auto& p : r.policies) {
    std::fprintf(out, "%-10s", p.name.c_str());
    for (size_t q = 0; q < p.rank_time_s.size(); ++q)
      std::fprintf(out, " r%zu %.3f (%lld)", q, p.rank_time_s[q] * 1e3, static_cast<long long>(p.rank_slots[q]));
    std::fprintf(out, "\n");
  }
  if (cfg.link_gbps > 0.0) {
    std::fprintf(out,
                 "\nMODELLED, not measured: traffic over %.0f Gbit/s per-rank links (busiest rank's bytes / "
                 "bandwidth, %lld-byte elements)\n",
                 cfg.link_gbps, static_cast<long long>(cfg.element_bytes));
    std::fprintf(out, "%-10s %16s %17s %22s\n", "policy", "tokens_ms_model", "weights_ms_model",
                 "compute+comm_ms_model");
    for (const auto& p : r.policies)
      std::fprintf(out, "%-10s %16.3f %17.3f %22.3f\n", p.name.c_str(), p.token_model_s * 1e3, p.weight_model_s * 1e3,
                   (p.makespan_s + p.token_model_s + p.weight_model_s) * 1e3);
  }
  std::fflush(out);
}

nlohmann::json to_json(const EmulationConfig& cfg, const EmulationResult& r, const std::string& dtype) {
  using nlohmann::json;
  const ModelShape& s = cfg.shape;
  json config = model_json(s);
  config.update(policy_params_json(cfg.params));
  config.erase("drop_policy");  // emulate plans no gate-ordered drops
  config.update({{"ranks", cfg.ranks},
                 {"tokens_per_rank", s.tokens},
                 {"scenario", cfg.scenario.text},
                 {"seed", cfg.seed},
                 {"policies", cfg.policies},
                 {"dtype", dtype},
                 {"repeats", cfg.repeats},
                 {"warmup", cfg.warmup},
                 {"link_gbps", cfg.link_gbps}});
  json pols = json::array();
  for (const auto& p : r.policies) {
    json ranks = json::array();
    for (size_t q = 0; q < p.work.size(); ++q) {
      int imported = 0;
      for (const auto& b : p.work[q].blocks) imported += b.imported ? 1 : 0;
      const PhaseSplit ph = q < p.rank_phases.size() ? p.rank_phases[q] : PhaseSplit{};
      ranks.push_back({{"slots", p.rank_slots[q]},
                       {"time_s", q < p.rank_time_s.size() ? p.rank_time_s[q] : 0.0},
                       {"blocks", p.work[q].blocks.size()},
                       {"imported_experts", imported},
                       {"largest_block", p.work[q].largest_block()},
                       {"phase_s", {{"gate_up", ph.gate_up_s}, {"activation", ph.activation_s}, {"down", ph.down_s}}},
                       {"token_bytes_sent", p.traffic.token_send[q]},
                       {"token_bytes_recv", p.traffic.token_recv[q]},
                       {"weight_bytes_sent", p.traffic.weight_send[q]},
                       {"weight_bytes_recv", p.traffic.weight_recv[q]}});
    }
    const int mr = makespan_rank(p);
    json modelled = nullptr;
    if (cfg.link_gbps > 0.0)
      modelled = {{"note", "modelled from bytes and --link-gbps, not measured"},
                  {"link_gbps", cfg.link_gbps},
                  {"token_s", p.token_model_s},
                  {"weight_s", p.weight_model_s},
                  {"compute_plus_comm_s", p.makespan_s + p.token_model_s + p.weight_model_s}};
    pols.push_back({{"name", p.name},
                    {"exact", p.exact},
                    {"makespan_s", p.makespan_s},
                    {"mean_time_s", p.mean_time_s},
                    {"speedup_vs_ep", std::isnan(p.speedup_vs_ep) ? json(nullptr) : json(p.speedup_vs_ep)},
                    {"slot_imbalance", imbalance(p.rank_slots)},
                    {"slots_computed", p.slots_computed()},
                    {"dropped_slots", p.plan.total_dropped()},
                    {"weight_transfers", p.weight_transfers()},
                    {"token_bytes", p.traffic.token_bytes()},
                    {"weight_bytes", p.traffic.weight_bytes()},
                    {"makespan_rank", mr},
                    {"makespan_rank_tflops", tflops(p.rank_slots.empty() ? 0 : p.rank_slots[mr], s.flops_per_slot(),
                                                    p.rank_time_s.empty() ? 0.0 : p.rank_time_s[mr])},
                    {"rank_slots", p.rank_slots},
                    {"rank_time_s", p.rank_time_s},
                    {"ranks", ranks},
                    {"modelled", modelled}});
  }
  return {{"command", "emulate"},
          {"config", config},
          {"runner", r.runner},
          {"measured",
           "compute only: each emulated rank's expert blocks run in turn on one device; "
           "no communication is run"},
          {"weights_note", "one weight buffer per block of the largest rank, reused across experts"},
          {"total_slots", r.total_slots},
          {"ep_imbalance", r.ep_imbalance},
          {"ideal_speedup", r.ep_imbalance},
          {"policies", pols}};
}

int run_emulate(const EmulateOptions& o) {
  EmulationConfig cfg;
  cfg.shape = o.model.resolve();
  cfg.scenario = parse_scenario_flag(o.scenario);
  cfg.ranks = o.ranks;
  cfg.seed = o.seed;
  cfg.params = o.params;
  cfg.policies = parse_policy_list(o.policies, "--policies");
  cfg.repeats = o.repeats;
  cfg.warmup = o.warmup;
  cfg.link_gbps = o.link_gbps;
  if (auto why = validate_emulation_config(cfg); !why.empty()) throw InputError(why);
  check_emulate_sizes(cfg.shape, cfg.ranks);
  if (!o.json_path.empty())
    if (auto why = check_output_path(o.json_path, "--json"); !why.empty()) throw InputError(why);

  std::string dtype, which;
  std::unique_ptr<RankRunner> runner = make_runner(o, cfg.shape, dtype, which);
  cfg.element_bytes = dtype == "fp32" ? 4 : 2;
  EmulationResult result = plan_emulation(cfg);

  // A big preset on the host takes a while: say how long before starting.
  const bool host_runner =
      which == "kokkos" &&
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, Kokkos::DefaultExecutionSpace::memory_space>::accessible;
  if (host_runner) {
    // What the host runner allocates (fp32): the largest rank's rows, one
    // block's workspace, one weight buffer per block.
    const WorkBounds b = work_bounds(result);
    const int64_t D = cfg.shape.hidden, H = cfg.shape.ffn;
    const double bytes = 4.0 * static_cast<double>(2 * b.max_rank_slots * D + 3 * b.max_block_slots * H) +
                         static_cast<double>(b.max_blocks) * static_cast<double>(cfg.shape.expert_weight_bytes());
    const double ram = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
    if (ram > 0.0 && bytes > 0.8 * ram)
      throw InputError("--tokens, --ranks, --hidden, --ffn: the largest emulated rank needs " +
                       std::to_string(bytes / (1 << 30)).substr(0, 6) +
                       " GiB of host memory but the limit is 80% of "
                       "this machine's " +
                       std::to_string(ram / (1 << 30)).substr(0, 6) +
                       " GiB; use a smaller --preset, fewer --tokens or more --ranks (or a GPU)");
    double flops = 0.0;
    for (const auto& p : result.policies)
      flops += static_cast<double>(p.slots_computed()) * cfg.shape.flops_per_slot() * (cfg.warmup + cfg.repeats + 1);
    const double est_s = flops / kHostFlopsGuess;
    if (est_s > 30.0)
      std::fprintf(stderr,
                   "moe-ep emulate: warning: about %.1f TFLOP on the host CPU, roughly %.0f s at ~%.0f GFLOP/s; "
                   "pick a smaller --preset or --tokens for a quick run, or a GPU\n",
                   flops / 1e12, est_s, kHostFlopsGuess / 1e9);
  }
  const bool show = !o.quiet && isatty(fileno(stderr));
  time_emulation(cfg, *runner, result, [&](int done, int total) {
    if (show && (done == total || done % 16 == 0)) {
      std::fprintf(stderr, "\r[moe-ep emulate] runs %d/%d   %s", done, total, done == total ? "\n" : "");
      std::fflush(stderr);
    }
  });
  print_report(cfg, result, dtype, stdout);
  if (!o.json_path.empty()) write_file_atomically(o.json_path, to_json(cfg, result, dtype).dump(2) + "\n", "--json");
  return 0;
}

int run_with_kokkos(const EmulateOptions& o) {
  // No MPI here; Kokkos is initialised for this command alone.
  const bool own_kokkos = !Kokkos::is_initialized();
  std::unique_ptr<Kokkos::ScopeGuard> kokkos;
  if (own_kokkos) kokkos = std::make_unique<Kokkos::ScopeGuard>();
  return run_emulate(o);
}

}  // namespace

void add_emulate_command(CLI::App& app, std::vector<Command>& commands) {
  auto o = std::make_shared<EmulateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "emulate",
      "Emulate a P-rank cluster in one process: real plans for P ranks, each rank's expert work run in turn on "
      "this device (GPU: cuBLAS at --dtype; else the fp32 host kernels), per-rank times, makespan, speedup over "
      "EP and the ideal; no MPI needed");
  add_model_options(cmd, o->model);
  add_scenario_options(cmd, o->scenario, o->seed);
  add_policy_options(cmd, o->params);
  o->policies = "ep,llep";  // the default --policies
  cmd->add_option("--ranks", o->ranks, "P, emulated ranks (must divide the expert count)")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Emulation");
  cmd->add_option("--policies", o->policies,
                  "Comma-separated policies (registered: " + join(policy_names(), ",") + "); ep is always included")
      ->capture_default_str()
      ->group("Emulation");
  cmd->add_option("--dtype", o->dtype,
                  "GEMM operand type: bf16 | fp16 (fp32 accumulation) | fp32 on a GPU; the host runner is fp32 only "
                  "(auto: bf16 on a GPU, fp32 on the host)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "bf16", "fp16", "fp32"}))
      ->group("Emulation");
  cmd->add_option("--runner", o->runner,
                  "What runs the experts: cuda (cuBLAS at --dtype, CUDA events), kokkos (the runtime's fp32 kernels "
                  "on Kokkos' default space), auto (cuda when a GPU is visible)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cuda", "kokkos"}))
      ->group("Emulation");
  cmd->add_option("--repeats", o->repeats, "Timed runs per rank; a rank's time is their median")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Emulation");
  cmd->add_option("--warmup", o->warmup, "Untimed runs per rank before the timed ones")
      ->capture_default_str()
      ->check(at_least(0))
      ->group("Emulation");
  cmd->add_option("--link-gbps", o->link_gbps,
                  "Per-rank link bandwidth in Gbit/s for a MODELLED communication time (bytes / bandwidth; "
                  "0: bytes only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group("Emulation");
  cmd->add_flag("--quiet", o->quiet, "No progress lines on stderr")->group("Output");
  cmd->add_option("--json", o->json_path, "Write the results as JSON to this file (docs/gpu.md)")->group("Output");
  commands.push_back({cmd, false, [o] { return run_with_kokkos(*o); }});
}

}  // namespace moe::app

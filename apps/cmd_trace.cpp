// `moe-ep trace`: writes a synthetic routing trace (docs/traces.md) in one
// process without MPI. The ids are drawn exactly as the runtime draws them
// (sample_expert_ids with RoutingKey{seed, step, layer, token offset of the
// rank}), so `compare --scenario trace:FILE` replays the synthetic run's routing.
#include <cstdio>
#include <exception>
#include <memory>

#include "apps/CliOptions.hpp"
#include "apps/Commands.hpp"
#include "apps/SizeChecks.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/common/OutputFiles.hpp"
#include "runtime/io/TraceReader.hpp"
#include "runtime/workload/RoutingSources.hpp"
#include "runtime/workload/Scenario.hpp"
#include "version.hpp"

namespace moe::app {

namespace {

struct TraceOptions {
  ModelOptions model;
  std::string tokens_per_rank;
  std::string scenario = "balanced";
  uint64_t seed = 1;
  double drift = 0.1;
  std::string out;
  int steps = 1, layers = 1, ranks = 1;
  CLI::Option* tokens_per_rank_opt = nullptr;
};

int write_trace(const TraceOptions& o) {
  const ModelShape shape = o.model.resolve();
  if (auto why = validate_shape(shape, o.ranks); !why.empty()) throw InputError(why);
  const ScenarioSpec spec = parse_scenario_flag(o.scenario);
  if (!spec.synthetic())
    throw InputError("--scenario: '" + o.scenario +
                     "' is not synthetic; `moe-ep trace` writes balanced, X:k or zipf:S (record router or model "
                     "traces as in docs/traces.md)");
  if (auto why = spec.validate(shape); !why.empty()) throw InputError(why);
  if (!(o.drift >= 0.0 && o.drift <= 1.0))
    throw InputError("--drift must be in [0, 1] (got " + std::to_string(o.drift) + ")");

  std::vector<int64_t> tokens(static_cast<size_t>(o.ranks), shape.tokens);
  if (o.tokens_per_rank_opt && o.tokens_per_rank_opt->count() > 0) {
    tokens = parse_int_list(o.tokens_per_rank, "--tokens-per-rank");
    if (static_cast<int>(tokens.size()) != o.ranks)
      throw InputError("--tokens-per-rank has " + std::to_string(tokens.size()) + " entries but --ranks is " +
                       std::to_string(o.ranks) + " (give one count per rank)");
    for (int64_t t : tokens)
      if (t < 0) throw InputError("--tokens-per-rank entries must be >= 0 (got " + std::to_string(t) + ")");
  }
  check_trace_sizes(shape, tokens, o.steps, o.layers);
  int64_t total = 0;
  for (int64_t t : tokens) total += t;
  if (total == 0) throw InputError("--tokens: the trace needs at least one token (got 0 on every rank)");
  if (auto why = check_output_path(o.out, "--out"); !why.empty()) throw InputError(why);

  try {
    write_synthetic_trace(o.out, spec, shape, o.drift, o.seed, o.steps, o.layers, tokens, MOE_EP_VERSION);
  } catch (const OutputError& e) {
    throw OutputError(std::string("--out: ") + e.what());
  } catch (const std::runtime_error& e) {
    if (is_allocation_failure(e)) throw;
    throw InputError(std::string("--out: ") + e.what());
  }
  std::printf(
      "trace: wrote %s: /expert_ids int32 [%d steps, %d layers, %lld tokens, K=%d], N=%d experts, "
      "scenario %s, seed %llu, drift %g\n",
      o.out.c_str(), o.steps, o.layers, static_cast<long long>(total), shape.top_k, shape.num_experts,
      spec.text.c_str(), static_cast<unsigned long long>(o.seed), o.drift);
  return 0;
}

}  // namespace

void add_trace_command(CLI::App& app, std::vector<Command>& commands) {
  auto o = std::make_shared<TraceOptions>();
  CLI::App* cmd = app.add_subcommand(
      "trace",
      "Write a synthetic routing trace (HDF5, docs/traces.md) that `--scenario trace:FILE` replays; no MPI needed");
  add_model_options(cmd, o->model);
  o->tokens_per_rank_opt = cmd->add_option("--tokens-per-rank", o->tokens_per_rank,
                                           "Tokens on each rank as a comma list, one per rank (overrides --tokens)")
                               ->group("Model");
  add_scenario_options(cmd, o->scenario, o->seed);
  cmd->add_option("--drift", o->drift,
                  "Routing drift from step to step in [0, 1], as in `compare` (same seed and drift, same ids)")
      ->capture_default_str()
      ->group("Routing");
  cmd->add_option("--out", o->out, "The trace file to write (HDF5)")->required()->group("Output");
  cmd->add_option("--steps", o->steps, "Steps in the trace")->capture_default_str()->check(at_least(1))->group("Run");
  cmd->add_option("--layers", o->layers, "Layers in the trace")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Run");
  cmd->add_option("--ranks", o->ranks,
                  "Ranks of the run the trace is drawn for (tokens = --tokens x ranks, in global order: rank 0's "
                  "first); a replay may use any rank count with the same total")
      ->capture_default_str()
      ->check(at_least(1))
      ->group("Run");
  commands.push_back({cmd, false, [o] { return write_trace(*o); }});
}

}  // namespace moe::app

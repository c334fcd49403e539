#include "apps/ResultReport.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "runtime/common/Errors.hpp"
#include "runtime/layer/StepMetrics.hpp"

namespace moe::app {

namespace {
double mib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
template <class T>
nlohmann::json optional_json(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
bool non_finite(const std::optional<double>& v) { return v && !std::isfinite(*v); }

// The nodes the inter-node bytes were counted with (resolve_ranks_per_node).
std::string nodes_text(const RunConfig& cfg, const ComparisonResult& res) {
  const int rpn = cfg.layer.ranks_per_node;
  if (rpn > 0) {
    const int nodes = (res.num_ranks + rpn - 1) / rpn;
    return "nodes: " + std::to_string(nodes) + " of " + std::to_string(rpn) + " consecutive rank(s) (--ranks-per-node)";
  }
  int nodes = 1;
  for (int n : res.node_of_rank) nodes = std::max(nodes, n + 1);
  return "nodes: the communicator's, " + std::to_string(nodes) + " node(s) (set --ranks-per-node to model others)";
}
}  // namespace

nlohmann::json error_json(const std::optional<double>& err, int executed_steps) {
  if (!err || executed_steps == 0) return nullptr;
  if (std::isnan(*err)) return "nan";
  if (std::isinf(*err)) return "inf";
  return *err;
}

std::string fastest_trusted(const ComparisonResult& res) {
  const PolicyResult* best = nullptr;
  for (const auto& p : res.policies)
    if (p.exact && p.status == "ok" && !non_finite(p.max_rel_err) && !non_finite(p.max_rel_err_full) &&
        (!best || p.makespan_s < best->makespan_s))
      best = &p;
  return best ? best->name : std::string();
}

void print_table(const RunConfig& cfg, const ComparisonResult& res, std::FILE* out, const char* command) {
  const ModelShape& s = cfg.shape;
  std::fprintf(out,
               "# moe-ep %s: %d ranks, preset %s (N=%d D=%d H=%d K=%d, %s), %lld tokens/rank, scenario %s, "
               "seed %llu, %d step(s) x %d layer(s)\n",
               command, res.num_ranks, s.preset.c_str(), s.num_experts, s.hidden, s.ffn, s.top_k,
               activation_name(s.activation).c_str(), static_cast<long long>(cfg.tokens_on(0)),
               cfg.scenario.text.c_str(), static_cast<unsigned long long>(cfg.seed), cfg.steps, cfg.layers);
  std::fprintf(out, "# %-9s %6s %11s %11s %10s %8s %11s %11s %13s %11s %9s %9s %12s %9s %9s %12s\n", "policy", "status",
               "makespan_s", "mean_busy_s", "max/mean", "speedup", "tokens_MiB", "weights_MiB", "inter_tok_MiB",
               "inter_w_MiB", "moved_MiB", "peak_MiB", "resident_MiB", "dropped", "dropped_%", "max_rel_err");
  for (const auto& p : res.policies) {
    int64_t peak = 0;
    for (int64_t b : p.rank_peak_bytes) peak = std::max(peak, b);
    char err[32] = "-";
    if (p.max_rel_err && p.executed_steps > 0)
      std::snprintf(err, sizeof err, "%.3e", p.exact ? *p.max_rel_err : *p.max_rel_err_full);
    char speed[32] = "-";
    if (std::isfinite(p.speedup_vs_ep)) std::snprintf(speed, sizeof speed, "%.2f", p.speedup_vs_ep);
    if (p.status != "ok") {
      std::fprintf(out, "  %-9s %6s %s\n", p.name.c_str(), p.status.c_str(), p.status_detail.c_str());
      continue;
    }
    std::fprintf(
        out, "  %-9s %6s %11.4f %11.4f %10.2f %8s %11.2f %11.2f %13.2f %11.2f %9.2f %9.2f %12.2f %9lld %9.2f %12s\n",
        p.name.c_str(), p.status.c_str(), p.makespan_s, p.mean_busy_s(), p.slot_imbalance(), speed, mib(p.token_bytes),
        mib(p.weight_bytes), mib(p.token_bytes_inter_node), mib(p.weight_bytes_inter_node), mib(p.placement_bytes),
        mib(peak), mib(p.max_resident_bytes()), static_cast<long long>(p.dropped_slots), p.dropped_percent(), err);
  }
  if (cfg.backward()) {
    // The backward phases (their time is in makespan and mean_busy above).
    std::fprintf(out, "# backward: %-9s %11s %11s %12s %12s %11s %11s %11s %s\n", "policy", "bwd_busy_s", "bwd_wall_s",
                 "grad_tok_MiB", "grad_w_MiB", "err_dx", "err_dw_r", "err_expert", "worst");
    for (const auto& p : res.policies) {
      if (p.status != "ok") continue;
      double busy = 0.0, wall = 0.0;
      // Busiest rank's backward busy time, and its wall time, summed over layer-steps.
      for (const auto& t : p.rank_totals) {
        double b = 0.0, w = 0.0;
        for (size_t ph = kForwardPhases; ph < kPhaseNames.size(); ++ph) {
          b += t.times.busy[ph];
          w += t.times.wall[ph];
        }
        busy = std::max(busy, b);
        wall = std::max(wall, w);
      }
      auto err = [&p](const std::optional<double>& e) {
        char buf[32] = "-";
        if (e && p.executed_steps > 0) std::snprintf(buf, sizeof buf, "%.3e", *e);
        return std::string(buf);
      };
      std::fprintf(out, "# backward: %-9s %11.4f %11.4f %12.2f %12.2f %11s %11s %11s %s\n", p.name.c_str(), busy, wall,
                   mib(p.grad_token_bytes), mib(p.grad_weight_bytes), err(p.grad_err_input()).c_str(),
                   err(p.grad_err_router()).c_str(), err(p.grad_err_expert()).c_str(),
                   p.grad_rel_err.empty() ? "-" : p.grad_worst_tensor().c_str());
    }
    std::fprintf(out,
                 "# backward: busy/wall = the busiest rank's backward phases; err_* = max |got - ref| / max |ref| vs "
                 "the reference backward with the same slots dropped (err_expert: dW_gu, dW_d, biases, per expert)\n");
  }
  std::fprintf(out,
               "# makespan = sum over layer-steps of the busiest rank's busy (CPU) time; max/mean = rank slots per "
               "layer-step; speedup = ep makespan / makespan\n");
  std::fprintf(out,
               "# weights_MiB: all expert weights sent; moved_MiB: the part that placed resident replicas "
               "(re-placements); resident_MiB: replicas held on the fullest rank\n");
  std::fprintf(out, "# inter_tok_MiB, inter_w_MiB: the part of tokens_MiB and weights_MiB sent to another node; %s\n",
               nodes_text(cfg, res).c_str());
  std::fprintf(out, "# max_rel_err: exact policies vs the reference; dropping policies vs the full reference\n");
  for (const auto& p : res.policies)
    if (non_finite(p.max_rel_err) || non_finite(p.max_rel_err_full))
      std::fprintf(out, "# verdict: %s produced NaN or infinite outputs (max_rel_err %s): its results are not valid\n",
                   p.name.c_str(),
                   non_finite(p.max_rel_err) ? (std::isnan(*p.max_rel_err) ? "nan" : "inf")
                                             : (std::isnan(*p.max_rel_err_full) ? "nan" : "inf"));
  const std::string best = fastest_trusted(res);
  if (!best.empty()) {
    double speed = NAN;
    for (const auto& p : res.policies)
      if (p.name == best) speed = p.speedup_vs_ep;
    if (std::isfinite(speed))
      std::fprintf(out, "# verdict: fastest exact policy is %s (%.2fx the speed of ep)\n", best.c_str(), speed);
    else
      std::fprintf(out, "# verdict: fastest exact policy is %s\n", best.c_str());
  }
  std::fflush(out);
}

namespace {
// Every summed or maxed metric of the schema, one list over the ranks each.
nlohmann::json per_rank_json(const std::vector<StepRecord>& totals) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& m : step_metrics()) {
    if (m.aggregate == MetricAggregate::None) continue;
    nlohmann::json values = nlohmann::json::array();
    for (const auto& r : totals) {
      if (m.type == MetricType::Int64)
        values.push_back(static_cast<int64_t>(m.value(r)));
      else
        values.push_back(m.value(r));
    }
    j[m.name] = values;
  }
  return j;
}
}  // namespace

nlohmann::json model_json(const ModelShape& s) {
  nlohmann::json j = {{"preset", s.preset}, {"experts", s.num_experts}, {"hidden", s.hidden},
                      {"ffn", s.ffn},       {"top_k", s.top_k},         {"activation", activation_name(s.activation)}};
  if (s.activation == Activation::GptOss) j["swiglu_limit"] = s.swiglu_limit;
  return j;
}

nlohmann::json policy_params_json(const PolicyParams& p) {
  nlohmann::json j = nlohmann::json::object();
  for (const ParamSpec& s : all_param_specs()) {
    if (s.kind == ParamSpec::Kind::Choice)
      j[s.json_key()] = p.text(s.name);
    else if (s.kind == ParamSpec::Kind::Integer)
      j[s.json_key()] = p.integer(s.name);
    else
      j[s.json_key()] = p.number(s.name);
  }
  return j;
}

nlohmann::json result_json(const RunConfig& cfg, const ComparisonResult& res) {
  const ModelShape& s = cfg.shape;
  nlohmann::json config = model_json(s);
  config.update(policy_params_json(cfg.params));
  config.update({
      {"ranks", res.num_ranks},
      {"tokens", s.tokens},
      {"tokens_per_rank", cfg.tokens_per_rank},
      {"scenario", cfg.scenario.text},
      {"drift", cfg.drift},
      {"seed", cfg.seed},
      {"steps", cfg.steps},
      {"layers", cfg.layers},
      {"warmup", cfg.warmup},
      {"check", cfg.check},
      {"mem_budget_mib", cfg.mem_budget_mib},
      {"ffn_tile_rows", cfg.layer.ffn_tile_rows},
      {"dtype", dtype_name(s.dtype)},
  });
  if (cfg.backward()) config["backward"] = true;

  nlohmann::json policies = nlohmann::json::array();
  for (const auto& p : res.policies) {
    policies.push_back({
        {"name", p.name},
        {"status", p.status},
        {"status_detail", p.status_detail},
        {"exact", p.exact},
        {"rank_slots", p.rank_slots},
        {"rank_busy_s", p.rank_busy_s},
        {"rank_peak_bytes", p.rank_peak_bytes},
        {"slot_imbalance", p.slot_imbalance()},
        {"token_bytes", p.token_bytes},
        {"weight_bytes", p.weight_bytes},
        {"placement_bytes", p.placement_bytes},
        {"resident_bytes_per_rank", p.rank_resident_bytes()},
        {"dropped_slots", p.dropped_slots},
        {"dropped_percent", p.dropped_percent()},
        {"makespan_s", p.makespan_s},
        {"wall_s", p.wall_s},
        {"mean_busy_s", p.mean_busy_s()},
        {"speedup_vs_ep", number_or_null(p.speedup_vs_ep)},
        {"max_rel_err", error_json(p.max_rel_err, p.executed_steps)},
        {"max_rel_err_full", error_json(p.max_rel_err_full, p.executed_steps)},
        {"alpha_used", optional_json(p.alpha_used)},
        {"oom_steps", p.oom_steps},
        {"token_bytes_inter_node", p.token_bytes_inter_node},
        {"weight_bytes_inter_node", p.weight_bytes_inter_node},
        {"per_rank", per_rank_json(p.rank_totals)},
    });
    if (cfg.backward()) {
      nlohmann::json errs = nlohmann::json::object();
      for (const auto& [name, e] : p.grad_rel_err) errs[name] = error_json(e, p.executed_steps);
      auto& j = policies.back();
      j["grad_rel_err"] = errs;
      j["grad_err_input"] = error_json(p.grad_err_input(), p.executed_steps);
      j["grad_err_router"] = error_json(p.grad_err_router(), p.executed_steps);
      j["grad_err_expert"] = error_json(p.grad_err_expert(), p.executed_steps);
      j["grad_worst_tensor"] = p.grad_rel_err.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.grad_worst_tensor());
      j["grad_token_bytes"] = p.grad_token_bytes;
      j["grad_weight_bytes"] = p.grad_weight_bytes;
    }
  }
  return {
      {"config", config},
      {"hostnames", res.hostnames},
      {"node_of_rank", res.node_of_rank},
      {"ranks_per_node", res.ranks_per_node},
      {"policies", policies},
      {"clocks", {{"wall_clock", res.clocks.wall}, {"busy_clock", res.clocks.busy}, {"start_clock", res.clocks.start}}},
      {"fastest_exact", fastest_trusted(res)}};
}

}  // namespace moe::app

#include "apps/CliOptions.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "runtime/common/Errors.hpp"

namespace moe::app {

std::string join(const std::vector<std::string>& names, const char* sep) {
  std::string s;
  for (const auto& x : names) s += (s.empty() ? "" : sep) + x;
  return s;
}

CLI::Validator at_least(int64_t lo) {
  return CLI::Validator(
      [lo](std::string& v) -> std::string {
        int64_t x = 0;
        const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc() || ptr != v.data() + v.size()) return "must be an integer (got '" + v + "')";
        if (x < lo) return "must be >= " + std::to_string(lo) + " (got " + v + ")";
        return {};
      },
      ">=" + std::to_string(lo));
}

CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        uint64_t x = 0;
        const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (v.empty() || ec == std::errc::result_out_of_range)
          return "must be an integer in [0, 18446744073709551615] (got '" + v + "')";
        if (ec != std::errc() || ptr != v.data() + v.size()) return "must be a non-negative integer (got '" + v + "')";
        return {};
      },
      "UINT64");
}

CLI::Validator mib_budget() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double x = v.empty() ? NAN : std::strtod(v.c_str(), &end);
        if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x))
          return "must be a finite number of MiB (got '" + v + "')";
        // Bytes must fit in int64 and be at least one.
        if (!(x > 0.0)) return "must be > 0 MiB (got " + v + "); leave it out for no budget";
        if (x * 1048576.0 < 1.0 || x * 1048576.0 >= 9.2e18)
          return "must be between 1 byte and 8 EiB, in MiB (got " + v + ")";
        return {};
      },
      "MiB>0");
}

std::vector<std::string> parse_policy_list(const std::string& text, const std::string& flag) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty())
      throw InputError(flag + ": empty policy name in '" + text + "' (expected a comma-separated list like ep,llep)");
    for (const auto& seen : out)
      if (seen == item) throw InputError(flag + ": policy '" + item + "' is listed twice in '" + text + "'");
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

ModelShape ModelOptions::resolve() const {
  ModelShape s;
  try {
    s = preset_shape(preset);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  if (experts) s.num_experts = experts;
  if (hidden) s.hidden = hidden;
  if (ffn) s.ffn = ffn;
  if (top_k) s.top_k = top_k;
  if (tokens >= 0) s.tokens = tokens;
  if (!activation.empty()) s.activation = activation == "gpt-oss" ? Activation::GptOss : Activation::SwiGLU;
  if (swiglu_limit > 0.0) {
    if (s.activation != Activation::GptOss)
      throw InputError("--swiglu-limit: applies to the gpt-oss activation only (add --activation gpt-oss)");
    s.swiglu_limit = static_cast<float>(swiglu_limit);
  }
  return s;
}

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("--preset", o.preset,
                  "Model shape preset: " + join(preset_names()) +
                      " (shapes in docs/models.md; 'small' runs in seconds on 2 cores)")
      ->capture_default_str()
      ->group("Model");
  cmd->add_option("--experts", o.experts,
                  "N, number of experts (default: from --preset; must divide by the rank count)")
      ->check(at_least(1))
      ->group("Model");
  cmd->add_option("--hidden", o.hidden, "D, hidden size (default: from --preset)")->check(at_least(1))->group("Model");
  cmd->add_option("--ffn", o.ffn, "H, expert intermediate size (default: from --preset)")
      ->check(at_least(1))
      ->group("Model");
  cmd->add_option("--top-k", o.top_k, "K, experts per token, 1..N (default: from --preset)")
      ->check(at_least(1))
      ->group("Model");
  cmd->add_option("--tokens", o.tokens, "B, tokens per rank (default 2048; 0 is allowed)")
      ->check(at_least(0))
      ->group("Model");
  cmd->add_option("--activation", o.activation,
                  "Expert activation: swiglu, or gpt-oss (clamp limit 7.0 unless --swiglu-limit, alpha 1.702, biases) "
                  "(default: from --preset)")
      ->check(CLI::IsMember({"swiglu", "gpt-oss"}))
      ->group("Model");
  cmd->add_option("--swiglu-limit", o.swiglu_limit,
                  "gpt-oss only: the clamp limit of the gate and up pre-activations (default 7.0, the model's). "
                  "A small limit such as 0.3 makes the clamp bind on the synthetic weights, so that --check covers "
                  "the clamped path of the backward (docs/backward.md)")
      ->check(CLI::PositiveNumber)
      ->group("Model");
}

void add_policy_options(CLI::App* cmd, PolicyParams& p) {
  // One flag per declared parameter (each policy's own file declares them).
  for (const ParamSpec& spec : all_param_specs()) {
    std::string help = spec.help;
    if (spec.kind == ParamSpec::Kind::Choice) help += " (valid: " + spec.valid_text() + ")";
    help += " [default: " + spec.default_text() + "]";
    cmd->add_option_function<std::string>(
           spec.flag(),
           [&p, spec](const std::string& v) {
             if (spec.kind == ParamSpec::Kind::Choice) {
               p.set(spec.name, v);
               return;
             }
             char* end = nullptr;
             errno = 0;
             const double x = v.empty() ? NAN : std::strtod(v.c_str(), &end);
             if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE)
               throw CLI::ValidationError(spec.flag(), "must be a number (got '" + v + "')");
             p.set(spec.name, x);
           },
           help)
        ->group("Policy parameters");
  }
}

void add_scenario_options(CLI::App* cmd, std::string& scenario, uint64_t& seed) {
  cmd->add_option("--scenario", scenario,
                  "Routing: balanced | router (the router's own top-K) | X:k (X% of token-slots into k hot "
                  "experts, e.g. 95:1) | zipf:S (e.g. zipf:1.2) | trace:FILE.h5 (docs/scenarios.md)")
      ->capture_default_str()
      ->group("Routing");
  cmd->add_option("--seed", seed, "Seed of weights, tokens and routing, 0..2^64-1; same seed, same run")
      ->capture_default_str()
      ->check(unsigned_integer())
      ->group("Routing");
}

ScenarioSpec parse_scenario_flag(const std::string& text) {
  try {
    return ScenarioSpec::parse(text);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  if (text.empty()) throw InputError(flag + ": empty list (expected a comma-separated list like 1,2,3)");
  std::vector<int64_t> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec == std::errc::result_out_of_range)
      throw InputError(flag + ": '" + item + "' is out of range (at most 9223372036854775807)");
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
      throw InputError(flag + ": '" + item + "' is not an integer (expected a comma-separated list like 1,2,3)");
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string one_line_failure(const CLI::App* app, const CLI::Error& e) {
  return "moe-ep: " + std::string(e.what()) + " (see 'moe-ep <command> --help')\n";
}

}  // namespace moe::app

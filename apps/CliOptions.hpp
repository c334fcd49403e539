#pragma once
// Flags shared by several subcommands, bound once here so that they are named
// and documented the same everywhere.

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "policies/Policy.hpp"
#include "runtime/common/ModelConfig.hpp"
#include "runtime/harness/Comparison.hpp"
#include "runtime/workload/Scenario.hpp"

namespace moe::app {

/// Model shape flags; unset dimensions come from --preset.
struct ModelOptions {
  std::string preset = "small";
  int experts = 0, hidden = 0, ffn = 0, top_k = 0;  // 0: from the preset
  int64_t tokens = -1;                              // -1: the default (2048)
  std::string activation;                           // "": from the preset
  double swiglu_limit = 0.0;                        // 0: gpt-oss's own (7.0)
  /// The shape; throws moe::InputError naming the flag.
  ModelShape resolve() const;
};
void add_model_options(CLI::App* cmd, ModelOptions& opts);

/// LLEP and capacity parameters.
void add_policy_options(CLI::App* cmd, PolicyParams& params);

/// The --scenario value parsed; throws moe::InputError with the one-line reason.
ScenarioSpec parse_scenario_flag(const std::string& text);

/// --scenario, --seed.
void add_scenario_options(CLI::App* cmd, std::string& scenario, uint64_t& seed);

/// Parses a comma-separated list of integers; throws moe::InputError naming `flag`.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag);
/// Splits a comma-separated list of names.
std::vector<std::string> split_list(const std::string& text);

/// "a, b, c": registered names for a flag's help text.
std::string join(const std::vector<std::string>& names, const char* sep = ", ");

/// Integer flag validator: ">= lo", with a one-line message.
CLI::Validator at_least(int64_t lo);
/// Unsigned 64-bit integer, strictly: no sign, no wrap-around, no trailing text.
CLI::Validator unsigned_integer();
/// --mem-budget: a finite number of MiB > 0 whose bytes fit in int64.
CLI::Validator mib_budget();

/// Splits a comma-separated list of policy names; throws moe::InputError
/// naming `flag` on an empty name or a name listed twice.
std::vector<std::string> parse_policy_list(const std::string& text, const std::string& flag);

/// One-line failure message for CLI11 parse errors.
std::string one_line_failure(const CLI::App* app, const CLI::Error& e);

}  // namespace moe::app

#pragma once
// The comparison's outputs: the fixed-width table and the JSON document.

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/harness/Comparison.hpp"

namespace moe::app {

/// Prints the table with a header line describing the run and a verdict line.
/// `command` names the subcommand in the header line ("compare", "simulate").
void print_table(const RunConfig& cfg, const ComparisonResult& result, std::FILE* out, const char* command = "compare");

/// {"config": {...}, "policies": [...]} as documented in docs/compare.md.
nlohmann::json result_json(const RunConfig& cfg, const ComparisonResult& result);

/// The model shape as JSON (preset, experts, hidden, ffn, top_k, activation):
/// one writer for every subcommand's config object.
nlohmann::json model_json(const ModelShape& shape);
/// The policies' parameters as JSON (the `policy_params` of JSON and timeline).
nlohmann::json policy_params_json(const PolicyParams& params);

/// max_rel_err as JSON: null when nothing was measured (--check off, or the
/// policy never executed a step), "nan" / "inf" when the output had NaN or
/// infinite values, else the number.
nlohmann::json error_json(const std::optional<double>& err, int executed_steps);

/// The fastest exact policy that ran and whose outputs are finite under
/// --check ("" when none).
std::string fastest_trusted(const ComparisonResult& result);

}  // namespace moe::app

#pragma once
// The comparison's outputs: the fixed-width table and the JSON document.

#include <nlohmann/json.hpp>
#include <string>

#include "runtime/harness/Comparison.hpp"

namespace moe::app {

/// Prints the table with a header line describing the run and a verdict line.
void print_table(const RunConfig& cfg, const ComparisonResult& result, std::FILE* out);

/// {"config": {...}, "policies": [...]} as documented in docs/compare.md.
nlohmann::json result_json(const RunConfig& cfg, const ComparisonResult& result);

/// "" when PATH.tmp can be created (and is removed again), else a one-line
/// reason naming `flag`; lets a run fail at once rather than after hours.
std::string check_writable(const std::string& path, const std::string& flag);

/// Writes to PATH.tmp and renames it over PATH, so a reader never sees a half
/// file and an earlier file is never lost to a failed write. Throws on error.
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace moe::app

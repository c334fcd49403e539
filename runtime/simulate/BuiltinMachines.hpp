#pragma once
// The machine descriptions built into the binary (runtime/simulate/machines/*.json,
// embedded at configure time), so an installed moe-ep finds them by name.

#include <string>
#include <utility>
#include <vector>

namespace moe {

/// (name, JSON text) of every built-in machine, names ascending.
const std::vector<std::pair<std::string, std::string>>& builtin_machines();

}  // namespace moe

// The one place policies are registered: adding a policy is one file with a
// factory and one line in kRegistry.
#include <sstream>
#include <stdexcept>
#include <utility>

#include "policies/Policy.hpp"

namespace moe {
namespace {
const std::vector<std::pair<std::string, PolicyFactory>>& registry() {
  static const std::vector<std::pair<std::string, PolicyFactory>> kRegistry = {
      {"ep", make_ep_policy},
      {"capacity", make_capacity_policy},
      {"llep", make_llep_policy},
  };
  return kRegistry;
}
}  // namespace

std::vector<std::string> policy_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<PlacementPolicy> make_policy(const std::string& name, const PolicyParams& params) {
  for (const auto& [n, factory] : registry())
    if (n == name) return factory(params);
  std::ostringstream msg;
  msg << "unknown policy '" << name << "' (valid:";
  for (const auto& n : policy_names()) msg << ' ' << n;
  msg << ')';
  throw std::invalid_argument(msg.str());
}

std::string validate_policy_params(const PolicyParams& p) {
  if (!(p.alpha > 0.0)) return "--alpha must be > 0 (got " + std::to_string(p.alpha) + ")";
  if (p.min_chunk < 1) return "--min-chunk must be >= 1 (got " + std::to_string(p.min_chunk) + ")";
  if (!(p.lambda >= 1.0)) return "--lambda must be >= 1.0 (got " + std::to_string(p.lambda) + ")";
  if (!(p.capacity_factor > 0.0))
    return "--capacity-factor must be > 0 (got " + std::to_string(p.capacity_factor) + ")";
  if (p.drop_policy != "position" && p.drop_policy != "probs")
    return "--drop-policy must be 'position' or 'probs' (got '" + p.drop_policy + "')";
  return {};
}

std::string validate_policy_list(const std::vector<std::string>& names, const PolicyParams& params) {
  if (names.empty()) return "--policies must name at least one policy";
  for (const auto& name : names) {
    try {
      make_policy(name, params);
    } catch (const std::invalid_argument& e) {
      return std::string("--policies: ") + e.what();
    }
  }
  return {};
}

}  // namespace moe

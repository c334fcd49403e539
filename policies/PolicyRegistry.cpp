// The one place policies are registered: adding a policy is its file
// (policies/<Name>Policy.cpp, defining make_<id>_policy and <id>_param_specs;
// CMake picks it up) and its id in MOE_POLICIES (docs/extending.md).
#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "policies/Policy.hpp"

// Every policy, in the order --help, the tables and `moe-ep plan` list them.
// A policy's name is its id with '-' for '_' (llep_topo is `llep-topo`).
#define MOE_POLICIES(X) X(ep) X(capacity) X(llep) X(llep_topo) X(eplb)

namespace moe {

MOE_POLICIES(MOE_DECLARE_POLICY)

namespace {
struct Entry {
  std::string name;
  PolicyFactory factory;
  const std::vector<ParamSpec>& (*params)();
};

const std::vector<ParamSpec>& no_params() {
  static const std::vector<ParamSpec> kNone;
  return kNone;
}

std::string name_of_id(std::string id) {
  std::replace(id.begin(), id.end(), '_', '-');
  return id;
}

const std::vector<Entry>& registry() {
#define MOE_REGISTER_POLICY(id) {name_of_id(#id), make_##id##_policy, id##_param_specs},
  static const std::vector<Entry> kRegistry = {MOE_POLICIES(MOE_REGISTER_POLICY)};
#undef MOE_REGISTER_POLICY
  return kRegistry;
}
}  // namespace

std::vector<std::string> policy_names() {
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.name);
  return names;
}

std::unique_ptr<PlacementPolicy> make_policy(const std::string& name, const PolicyParams& params) {
  for (const auto& e : registry())
    if (e.name == name) return e.factory(params);
  std::ostringstream msg;
  msg << "unknown policy '" << name << "' (valid:";
  for (const auto& n : policy_names()) msg << ' ' << n;
  msg << ')';
  throw std::invalid_argument(msg.str());
}

const std::vector<ParamSpec>& policy_param_specs(const std::string& name) {
  for (const auto& e : registry())
    if (e.name == name) return e.params();
  return no_params();
}

std::vector<ParamSpec> all_param_specs() {
  std::vector<ParamSpec> out;
  for (const auto& e : registry())
    for (const auto& s : e.params()) {
      bool seen = false;
      for (const auto& o : out) seen = seen || o.name == s.name;
      if (!seen) out.push_back(s);
    }
  return out;
}

const ParamSpec* find_param_spec(const std::string& name) {
  for (const auto& e : registry())
    for (const auto& s : e.params())
      if (s.name == name) return &s;
  return nullptr;
}

std::string validate_policy_params(const PolicyParams& p) {
  for (const auto& s : all_param_specs())
    if (p.is_set(s.name))
      if (auto why = s.check(p); !why.empty()) return why;
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

#include "policies/PolicyParams.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

#include "policies/Policy.hpp"

namespace moe {

std::string format_param_number(double v) {
  char buf[64];
  if (std::isfinite(v) && v == std::round(v) && std::abs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

ParamSpec ParamSpec::real(std::string name, double def, std::string help) {
  ParamSpec s;
  s.name = std::move(name);
  s.kind = Kind::Real;
  s.default_number = def;
  s.help = std::move(help);
  return s;
}

ParamSpec ParamSpec::integer(std::string name, int64_t def, std::string help) {
  ParamSpec s = real(std::move(name), static_cast<double>(def), std::move(help));
  s.kind = Kind::Integer;
  return s;
}

ParamSpec ParamSpec::choice(std::string name, std::vector<std::string> choices, std::string help) {
  ParamSpec s;
  s.name = std::move(name);
  s.kind = Kind::Choice;
  s.choices = std::move(choices);
  s.default_choice = s.choices.empty() ? std::string() : s.choices.front();
  s.help = std::move(help);
  return s;
}

ParamSpec& ParamSpec::at_least(double lower, bool open) {
  lo = lower;
  lo_open = open;
  return *this;
}

ParamSpec& ParamSpec::at_most(double upper) {
  hi = upper;
  return *this;
}

std::string ParamSpec::json_key() const {
  std::string k = name;
  for (char& c : k)
    if (c == '-') c = '_';
  return k;
}

std::string ParamSpec::valid_text() const {
  if (kind == Kind::Choice) {
    std::string s;
    for (size_t i = 0; i < choices.size(); ++i)
      s += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + ("'" + choices[i] + "'");
    return s;
  }
  std::string s = range_text();
  if (kind == Kind::Integer) return s.empty() ? "an integer" : "an integer " + s;
  return s;
}

std::string ParamSpec::range_text() const {
  std::string s;
  if (std::isfinite(lo)) s = (lo_open ? "> " : ">= ") + format_param_number(lo);
  if (std::isfinite(hi)) s += (s.empty() ? "<= " : " and <= ") + format_param_number(hi);
  return s;
}

std::string ParamSpec::check(double v) const {
  if (kind == Kind::Choice) return flag() + " must be " + valid_text();
  if (kind == Kind::Integer && !(std::isfinite(v) && v == std::round(v)))
    return flag() + " must be an integer (got " + format_param_number(v) + ")";
  if (std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi) return {};
  return flag() + " must be " + range_text() + " (got " + format_param_number(v) + ")";
}

std::string ParamSpec::check(const std::string& v) const {
  if (kind != Kind::Choice) return flag() + " must be a number (got '" + v + "')";
  for (const auto& c : choices)
    if (c == v) return {};
  return flag() + " must be " + valid_text() + " (got '" + v + "')";
}

std::string ParamSpec::check(const PolicyParams& p) const {
  return kind == Kind::Choice ? check(p.text(name)) : check(p.number(name));
}

std::string ParamSpec::default_text() const {
  return kind == Kind::Choice ? default_choice : format_param_number(default_number);
}

namespace {
const ParamSpec& declared(const std::string& name) {
  const ParamSpec* s = find_param_spec(name);
  if (!s) throw std::logic_error("policy parameter '" + name + "' is not declared by any registered policy");
  return *s;
}
}  // namespace

PolicyParams& PolicyParams::set_number(const std::string& name, double value) {
  numbers_[name] = value;
  return *this;
}

PolicyParams& PolicyParams::set(const std::string& name, const std::string& value) {
  texts_[name] = value;
  return *this;
}

double PolicyParams::number(const std::string& name) const {
  const ParamSpec& s = declared(name);
  if (auto it = numbers_.find(name); it != numbers_.end()) return it->second;
  return s.default_number;
}

int64_t PolicyParams::integer(const std::string& name) const { return static_cast<int64_t>(number(name)); }

std::string PolicyParams::text(const std::string& name) const {
  const ParamSpec& s = declared(name);
  if (auto it = texts_.find(name); it != texts_.end()) return it->second;
  return s.default_choice;
}

void check_declared(const std::vector<ParamSpec>& specs, const PolicyParams& p) {
  for (const auto& s : specs)
    if (auto why = s.check(p); !why.empty()) throw std::invalid_argument(why);
}

bool PolicyParams::is_set(const std::string& name) const { return numbers_.count(name) || texts_.count(name); }

}  // namespace moe

#pragma once
// Policy parameters, declared by the policy that reads them. A policy file
// lists its parameters as ParamSpecs (flag name, default, valid values, help);
// the registry collects them, and everything else is generated from those
// declarations: the CLI flags and their help (apps/CliOptions.cpp), the
// validation and its one-line messages, the JSON/HDF5 `policy_params`, the
// plan summary. A PolicyParams holds the values the user set; a value left
// unset reads as its declared default.

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace moe {

class PolicyParams;

struct ParamSpec {
  enum class Kind { Real, Integer, Choice };
  std::string name;  // the flag without "--" (e.g. "min-chunk"); JSON key with '_' for '-'
  Kind kind = Kind::Real;
  double default_number = 0.0;                           // Real, Integer
  std::string default_choice;                            // Choice
  std::vector<std::string> choices;                      // Choice: the valid values
  double lo = -std::numeric_limits<double>::infinity();  // Real, Integer: valid range
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;  // lo itself is not valid (e.g. "> 0")
  std::string help;

  static ParamSpec real(std::string name, double def, std::string help);
  static ParamSpec integer(std::string name, int64_t def, std::string help);
  static ParamSpec choice(std::string name, std::vector<std::string> choices, std::string help);
  /// Valid range: v >= lo (or v > lo with `open`), v <= hi.
  ParamSpec& at_least(double lower, bool open = false);
  ParamSpec& at_most(double upper);

  std::string flag() const { return "--" + name; }
  std::string json_key() const;
  /// "" or a one-line reason naming the flag, e.g. "--alpha must be > 0 (got 0)".
  std::string check(double value) const;
  std::string check(const std::string& value) const;
  /// The check of this parameter's value in `params` (set or default).
  std::string check(const PolicyParams& params) const;
  /// The default as the user would type it ("1024", "position").
  std::string default_text() const;
  /// The valid values in words ("> 0", ">= 1", "'position' or 'probs'").
  std::string valid_text() const;

 private:
  std::string range_text() const;  // "> 0", ">= 1 and <= 8"; "" when unbounded
};

/// The values the user set, by parameter name.
class PolicyParams {
 public:
  template <class T>
  requires std::is_arithmetic_v<T> PolicyParams& set(const std::string& name, T value) {
    return set_number(name, static_cast<double>(value));
  }
  PolicyParams& set(const std::string& name, const std::string& value);
  PolicyParams& set(const std::string& name, const char* value) { return set(name, std::string(value)); }
  /// The value set, else the declared default; std::logic_error for a name no
  /// registered policy declares (a programming error, not user input).
  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  std::string text(const std::string& name) const;
  bool is_set(const std::string& name) const;

 private:
  PolicyParams& set_number(const std::string& name, double value);
  std::map<std::string, double> numbers_;
  std::map<std::string, std::string> texts_;
};

/// Checks every parameter of `specs` as `p` gives it (set or default);
/// throws std::invalid_argument with ParamSpec::check's one-line reason. What a
/// policy's factory calls before it reads its values.
void check_declared(const std::vector<ParamSpec>& specs, const PolicyParams& p);

/// A number formatted as the user would type it (integers without ".0").
std::string format_param_number(double v);

}  // namespace moe

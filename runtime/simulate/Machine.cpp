#include "runtime/simulate/Machine.hpp"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "runtime/simulate/BuiltinMachines.hpp"

namespace moe {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& what, const std::string& field, const std::string& why) {
  throw std::invalid_argument("--machine: " + what + ": '" + field + "' " + why + " (schema: docs/simulation.md)");
}

const json& member(const json& j, const std::string& key, const std::string& what, const std::string& path) {
  if (!j.is_object() || !j.contains(key)) bad(what, path + key, "is missing");
  return j.at(key);
}

double number(const json& j, const std::string& key, const std::string& what, const std::string& path,
              bool allow_zero = false) {
  const json& v = member(j, key, what, path);
  if (!v.is_number()) bad(what, path + key, "must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < 0.0 || (!allow_zero && x == 0.0))
    bad(what, path + key, allow_zero ? "must be a finite number >= 0" : "must be a finite number > 0");
  return x;
}

int integer(const json& j, const std::string& key, const std::string& what, const std::string& path, int lo) {
  const json& v = member(j, key, what, path);
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > (int64_t{1} << 30))
    bad(what, path + key, "must be an integer >= " + std::to_string(lo));
  return v.get<int>();
}

std::string text(const json& j, const std::string& key, const std::string& what, const std::string& path,
                 const std::string& fallback = {}) {
  if (!j.contains(key)) return fallback;
  if (!j.at(key).is_string()) bad(what, path + key, "must be a string");
  return j.at(key).get<std::string>();
}

std::string dtype_of(const json& j, const std::string& key, const std::string& what, const std::string& path,
                     const std::string& fallback) {
  std::string d = text(j, key, what, path, fallback);
  if (d != "bf16" && d != "fp32") bad(what, path + key, "must be bf16 or fp32 (got '" + d + "')");
  return d;
}

LinkModel link(const json& j, const std::string& key, const std::string& what, const std::string& path) {
  const json& l = member(j, key, what, path);
  const std::string p = path + key + ".";
  return {number(l, "bandwidth", what, p), number(l, "latency_s", what, p, true)};
}

json link_json(const LinkModel& l) { return {{"bandwidth", l.bandwidth}, {"latency_s", l.latency_s}}; }

ShapeCalibration shape_calibration(const json& j, const std::string& what, const std::string& p) {
  ShapeCalibration s;
  s.hidden = integer(j, "hidden", what, p, 1);
  s.ffn = integer(j, "ffn", what, p, 1);
  s.experts = integer(j, "experts", what, p, 1);
  s.top_k = integer(j, "top_k", what, p, 1);
  const std::string act = text(j, "activation", what, p, "swiglu");
  if (act != "swiglu" && act != "gpt-oss") bad(what, p + "activation", "must be swiglu or gpt-oss");
  s.activation = act == "gpt-oss" ? Activation::GptOss : Activation::SwiGLU;
  const json& rows = member(j, "rows", what, p);
  const json& secs = member(j, "seconds", what, p);
  if (!rows.is_array() || !secs.is_array() || rows.empty() || rows.size() != secs.size())
    bad(what, p + "rows", "and 'seconds' must be non-empty arrays of equal length");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].is_number_integer() || rows[i].get<int64_t>() < 1) bad(what, p + "rows", "must be integers >= 1");
    if (!secs[i].is_number() || !std::isfinite(secs[i].get<double>()) || secs[i].get<double>() <= 0.0)
      bad(what, p + "seconds", "must be finite numbers > 0");
    s.rows.push_back(rows[i].get<int64_t>());
    s.seconds.push_back(secs[i].get<double>());
    if (i > 0 && s.rows[i] <= s.rows[i - 1]) bad(what, p + "rows", "must be strictly ascending");
  }
  s.route_s_per_token = number(j, "route_s_per_token", what, p, true);
  s.layout_s_per_slot = number(j, "layout_s_per_slot", what, p, true);
  if (j.contains("permute_s_per_slot")) s.permute_s_per_slot = number(j, "permute_s_per_slot", what, p, true);
  if (j.contains("combine_s_per_slot")) s.combine_s_per_slot = number(j, "combine_s_per_slot", what, p, true);
  for (auto [name, field] : {std::pair{"layout_s_per_kept_slot", &s.layout_s_per_kept_slot},
                             std::pair{"combine_s_per_kept_slot", &s.combine_s_per_kept_slot}})
    if (j.contains(name)) *field = number(j, name, what, p, true);
  return s;
}

Calibration calibration(const json& j, const std::string& what) {
  const std::string p = "calibration.";
  Calibration c;
  c.dtype = dtype_of(j, "dtype", what, p, "fp32");
  c.ranks = integer(j, "ranks", what, p, 1);
  c.host = text(j, "host", what, p);
  c.date = text(j, "date", what, p);
  c.copy_bandwidth = number(j, "copy_bandwidth", what, p, true);
  if (j.contains("first_touch_bandwidth")) c.first_touch_bandwidth = number(j, "first_touch_bandwidth", what, p, true);
  if (j.contains("compute_units")) {
    c.compute_units = number(j, "compute_units", what, p, true);
    if (c.compute_units > 0.0 && c.compute_units < 1.0) bad(what, p + "compute_units", "must be 0 or >= 1");
  }
  if (j.contains("compute_units_blocks")) c.compute_units_blocks = number(j, "compute_units_blocks", what, p, true);
  if (j.contains("alltoall")) c.alltoall = link(j, "alltoall", what, p);
  if (j.contains("p2p")) c.p2p = link(j, "p2p", what, p);
  if (j.contains("shapes")) {
    if (!j.at("shapes").is_array()) bad(what, p + "shapes", "must be an array");
    for (size_t i = 0; i < j.at("shapes").size(); ++i)
      c.shapes.push_back(shape_calibration(j.at("shapes")[i], what, p + "shapes[" + std::to_string(i) + "]."));
  }
  return c;
}

}  // namespace

const ShapeCalibration* Machine::calibrated(const ModelShape& s, const std::string& dtype) const {
  if (!calibration || calibration->dtype != dtype) return nullptr;
  for (const auto& c : calibration->shapes)
    if (c.hidden == s.hidden && c.ffn == s.ffn && c.experts == s.num_experts && c.top_k == s.top_k &&
        c.activation == s.activation)
      return &c;
  return nullptr;
}

Machine parse_machine(const std::string& json_text, const std::string& what) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw std::invalid_argument("--machine: " + what + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) bad(what, "(top level)", "must be a JSON object");
  if (text(j, "format", what, "") != "moe-ep-machine") bad(what, "format", "must be \"moe-ep-machine\"");
  if (integer(j, "version", what, "", 1) != 1) bad(what, "version", "must be 1");
  Machine m;
  m.name = text(j, "name", what, "");
  if (m.name.empty()) bad(what, "name", "must be a non-empty string");
  m.description = text(j, "description", what, "");
  m.ranks_per_node = integer(j, "ranks_per_node", what, "", 1);
  m.default_dtype = dtype_of(j, "default_dtype", what, "", "bf16");
  const json& peaks = member(j, "peak_flops", what, "");
  if (!peaks.is_object() || peaks.empty()) bad(what, "peak_flops", "must be an object {dtype: FLOP/s}");
  for (const auto& [dtype, v] : peaks.items()) {
    if (dtype != "bf16" && dtype != "fp32") bad(what, "peak_flops." + dtype, "is not a dtype (valid: bf16, fp32)");
    m.peak_flops[dtype] = number(peaks, dtype, what, "peak_flops.");
  }
  if (!m.peak_flops.count(m.default_dtype))
    bad(what, "peak_flops", "has no entry for default_dtype " + m.default_dtype);
  m.memory_bandwidth = number(j, "memory_bandwidth", what, "");
  m.launch_overhead_s = number(j, "launch_overhead_s", what, "", true);
  if (j.contains("layout_s_per_slot")) m.layout_s_per_slot = number(j, "layout_s_per_slot", what, "", true);
  m.intra_node = link(j, "intra_node", what, "");
  m.inter_node = link(j, "inter_node", what, "");
  if (j.contains("sources")) {
    if (!j.at("sources").is_array()) bad(what, "sources", "must be an array of strings");
    for (const auto& s : j.at("sources")) {
      if (!s.is_string()) bad(what, "sources", "must be an array of strings");
      m.sources.push_back(s.get<std::string>());
    }
  }
  if (j.contains("calibration")) m.calibration = calibration(j.at("calibration"), what);
  return m;
}

std::string machine_json(const Machine& m) {
  json j = {{"format", "moe-ep-machine"},
            {"version", 1},
            {"name", m.name},
            {"description", m.description},
            {"ranks_per_node", m.ranks_per_node},
            {"default_dtype", m.default_dtype},
            {"peak_flops", m.peak_flops},
            {"memory_bandwidth", m.memory_bandwidth},
            {"launch_overhead_s", m.launch_overhead_s},
            {"layout_s_per_slot", m.layout_s_per_slot},
            {"intra_node", link_json(m.intra_node)},
            {"inter_node", link_json(m.inter_node)},
            {"sources", m.sources}};
  if (m.calibration) {
    const Calibration& c = *m.calibration;
    json shapes = json::array();
    for (const auto& s : c.shapes) {
      json sj = {{"hidden", s.hidden},
                 {"ffn", s.ffn},
                 {"experts", s.experts},
                 {"top_k", s.top_k},
                 {"activation", activation_name(s.activation)},
                 {"rows", s.rows},
                 {"seconds", s.seconds},
                 {"route_s_per_token", s.route_s_per_token},
                 {"layout_s_per_slot", s.layout_s_per_slot}};
      if (s.permute_s_per_slot > 0.0) sj["permute_s_per_slot"] = s.permute_s_per_slot;
      if (s.combine_s_per_slot > 0.0) sj["combine_s_per_slot"] = s.combine_s_per_slot;
      if (s.layout_s_per_kept_slot > 0.0) sj["layout_s_per_kept_slot"] = s.layout_s_per_kept_slot;
      if (s.combine_s_per_kept_slot > 0.0) sj["combine_s_per_kept_slot"] = s.combine_s_per_kept_slot;
      shapes.push_back(sj);
    }
    json cj = {{"dtype", c.dtype}, {"ranks", c.ranks}, {"host", c.host},
               {"date", c.date},   {"shapes", shapes}, {"copy_bandwidth", c.copy_bandwidth}};
    if (c.first_touch_bandwidth > 0.0) cj["first_touch_bandwidth"] = c.first_touch_bandwidth;
    if (c.compute_units > 0.0) cj["compute_units"] = c.compute_units;
    if (c.compute_units_blocks > 0.0) cj["compute_units_blocks"] = c.compute_units_blocks;
    if (c.alltoall) cj["alltoall"] = link_json(*c.alltoall);
    if (c.p2p) cj["p2p"] = link_json(*c.p2p);
    j["calibration"] = cj;
  }
  return j.dump(2) + "\n";
}

std::vector<std::string> builtin_machine_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : builtin_machines()) names.push_back(name);
  return names;
}

Machine load_machine(const std::string& v) {
  const bool path = v.find('/') != std::string::npos || (v.size() > 5 && v.substr(v.size() - 5) == ".json");
  if (!path) {
    for (const auto& [name, text] : builtin_machines())
      if (name == v) return parse_machine(text, "built-in '" + name + "'");
    std::string valid;
    for (const auto& n : builtin_machine_names()) valid += (valid.empty() ? "" : ", ") + n;
    throw std::invalid_argument("--machine: no built-in machine '" + v + "' (valid: " + valid +
                                ", or a description file PATH.json)");
  }
  std::ifstream in(v);
  if (!in) throw std::invalid_argument("--machine: cannot read '" + v + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_machine(ss.str(), "'" + v + "'");
}

}  // namespace moe

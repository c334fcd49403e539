#include "runtime/workload/Scenario.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "runtime/common/Rng.hpp"

namespace moe {

namespace {
[[noreturn]] void bad(const std::string& text, const std::string& why) {
  throw std::invalid_argument("--scenario: '" + text + "' " + why +
                              " (valid: balanced, router, X:k e.g. 95:1, zipf:S e.g. zipf:1.2, trace:FILE.h5)");
}

double parse_double(const std::string& s, const std::string& text) {
  try {
    size_t pos = 0;
    double v = std::stod(s, &pos);
    if (pos != s.size()) bad(text, "has a malformed number '" + s + "'");
    return v;
  } catch (const std::logic_error&) {
    bad(text, "has a malformed number '" + s + "'");
  }
}

// Perturbation of the scenario at one step and layer (see sample_expert_ids).
struct Drifted {
  int hot_start = 0;
  double scale = 1.0;
};
Drifted drifted(const RoutingKey& key, double drift, int num_experts) {
  Drifted d;
  if (key.step == 0 || drift <= 0.0) return d;
  const uint64_t h = hash_key(key.seed, static_cast<uint64_t>(Stream::Drift), key.step, key.layer);
  d.hot_start = static_cast<int>(mix64(h) % static_cast<uint64_t>(num_experts));
  d.scale = 1.0 + drift * (2.0 * to_unit(h) - 1.0);
  return d;
}
}  // namespace

ScenarioSpec ScenarioSpec::parse(const std::string& text) {
  ScenarioSpec s;
  s.text = text;
  if (text == "balanced") return s;
  if (text == "router") {
    s.kind = Kind::Router;
    return s;
  }
  if (text.rfind("trace:", 0) == 0) {
    s.kind = Kind::Trace;
    s.trace_path = text.substr(6);
    if (s.trace_path.empty()) bad(text, "names no file");
    return s;
  }
  if (text.rfind("zipf:", 0) == 0) {
    s.kind = Kind::Zipf;
    s.zipf_s = parse_double(text.substr(5), text);
    if (!(s.zipf_s >= 0.0) || !std::isfinite(s.zipf_s)) bad(text, "needs an exponent S >= 0");
    return s;
  }
  const auto colon = text.find(':');
  if (colon == std::string::npos) bad(text, "is not a known scenario");
  s.kind = Kind::Hot;
  s.hot_percent = parse_double(text.substr(0, colon), text);
  const std::string k = text.substr(colon + 1);
  int kv = 0;
  auto [ptr, ec] = std::from_chars(k.data(), k.data() + k.size(), kv);
  if (ec != std::errc() || ptr != k.data() + k.size()) bad(text, "has a malformed expert count '" + k + "'");
  s.hot_experts = kv;
  if (!(s.hot_percent >= 0.0 && s.hot_percent <= 100.0)) bad(text, "needs X in [0, 100]");
  if (s.hot_experts < 1) bad(text, "needs k >= 1");
  return s;
}

std::string ScenarioSpec::validate(const ModelShape& shape) const {
  if (kind == Kind::Hot) {
    if (hot_experts > shape.num_experts)
      return "--scenario: '" + text + "' has k = " + std::to_string(hot_experts) + " hot experts but only " +
             std::to_string(shape.num_experts) + " experts exist (valid k: 1.." + std::to_string(shape.num_experts) +
             ")";
    if (hot_experts == shape.num_experts && hot_percent < 100.0)
      return "--scenario: '" + text + "' leaves no cold experts for the other " + std::to_string(100.0 - hot_percent) +
             "% (use k < " + std::to_string(shape.num_experts) + ")";
  }
  return {};
}

void sample_expert_ids(const ScenarioSpec& spec, const ModelShape& shape, double drift, const RoutingKey& key,
                       int64_t tokens, std::span<int32_t> expert_ids) {
  const int N = shape.num_experts;
  const int K = shape.top_k;
  if (static_cast<int64_t>(expert_ids.size()) < tokens * K)
    throw std::invalid_argument("sample_expert_ids: output span too small");
  const Drifted d = drifted(key, drift, N);
  const uint64_t base = hash_key(key.seed, static_cast<uint64_t>(Stream::Routing), key.step, key.layer);

  switch (spec.kind) {
    case ScenarioSpec::Kind::Balanced: {
      // Round-robin over the global slot index: every expert gets floor or ceil
      // of total/N slots, whatever the rank count.
      const int64_t rot = static_cast<int64_t>(mix64(base) % static_cast<uint64_t>(N));
      for (int64_t t = 0; t < tokens; ++t)
        for (int k = 0; k < K; ++k)
          expert_ids[t * K + k] = static_cast<int32_t>(((key.token_offset + t) * K + k + rot) % N);
      return;
    }
    case ScenarioSpec::Kind::Hot: {
      // Each slot independently: hot with probability X (uniform over the k hot
      // experts), else uniform over the N-k cold ones. Matches the per-slot
      // counts of the paper's "X% into k experts" scenarios.
      const double p_hot = std::clamp(spec.hot_percent / 100.0 * d.scale, 0.0, 1.0);
      const int k_hot = spec.hot_experts;
      const int n_cold = N - k_hot;
      for (int64_t t = 0; t < tokens; ++t) {
        for (int k = 0; k < K; ++k) {
          const uint64_t h = hash_key(base, key.token_offset + t, k);
          const double u = to_unit(h);
          const uint64_t v = mix64(h);
          int e;
          if (n_cold == 0 || u < p_hot)
            e = static_cast<int>(v % static_cast<uint64_t>(k_hot));
          else
            e = k_hot + static_cast<int>(v % static_cast<uint64_t>(n_cold));
          expert_ids[t * K + k] = static_cast<int32_t>((e + d.hot_start) % N);
        }
      }
      return;
    }
    case ScenarioSpec::Kind::Zipf: {
      // Expert popularity proportional to 1 / (i + 1)^S, i = 0 the hottest.
      std::vector<double> cdf(N);
      double acc = 0.0;
      for (int i = 0; i < N; ++i) cdf[i] = (acc += 1.0 / std::pow(static_cast<double>(i + 1), spec.zipf_s));
      for (auto& c : cdf) c /= acc;
      for (int64_t t = 0; t < tokens; ++t) {
        for (int k = 0; k < K; ++k) {
          const double u = to_unit(hash_key(base, key.token_offset + t, k));
          const int i = static_cast<int>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
          expert_ids[t * K + k] = static_cast<int32_t>((std::min(i, N - 1) + d.hot_start) % N);
        }
      }
      return;
    }
    case ScenarioSpec::Kind::Router:
    case ScenarioSpec::Kind::Trace:
      throw std::logic_error("sample_expert_ids: scenario '" + spec.text + "' is not synthetic");
  }
}

LoadMatrix scenario_load_matrix(const ScenarioSpec& spec, const ModelShape& shape, double drift, uint64_t seed,
                                int step, int layer, const std::vector<int64_t>& tokens_per_rank) {
  const int P = static_cast<int>(tokens_per_rank.size());
  LoadMatrix m(P, shape.num_experts);
  int64_t offset = 0;
  std::vector<int32_t> ids;
  for (int r = 0; r < P; ++r) {
    const int64_t B = tokens_per_rank[r];
    ids.resize(static_cast<size_t>(B * shape.top_k));
    sample_expert_ids(spec, shape, drift, RoutingKey{seed, step, layer, offset}, B, ids);
    for (int32_t e : ids) ++m.at(r, e);
    offset += B;
  }
  return m;
}

}  // namespace moe

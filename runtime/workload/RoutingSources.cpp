#include "runtime/workload/RoutingSources.hpp"

#include <memory>
#include <stdexcept>

#include "runtime/io/TraceReader.hpp"

namespace moe {

ExpertIdSource scenario_source(const ScenarioSpec& spec, const ModelShape& shape, double drift) {
  if (spec.kind == ScenarioSpec::Kind::Trace) return trace_source(spec.trace_path, shape);  // recorded ids
  if (!spec.synthetic()) return {};
  return [spec, shape, drift](const RoutingKey& key, int64_t tokens, std::span<int32_t> ids) {
    sample_expert_ids(spec, shape, drift, key, tokens, ids);
  };
}

ExpertIdSource trace_source(const std::string& path, const ModelShape& shape) {
  auto reader = std::make_shared<TraceReader>(path, shape);
  return [reader](const RoutingKey& key, int64_t tokens, std::span<int32_t> ids) {
    reader->read(key.step, key.layer, key.token_offset, tokens, ids);
  };
}

void write_synthetic_trace(const std::string& path, const ScenarioSpec& spec, const ModelShape& shape, double drift,
                           uint64_t seed, int steps, int layers, const std::vector<int64_t>& tokens_per_rank,
                           const std::string& tool_version) {
  int64_t total = 0;
  for (int64_t b : tokens_per_rank) total += b;
  if (total <= 0 || steps < 1 || layers < 1)
    throw std::invalid_argument("write_synthetic_trace: needs >= 1 step, >= 1 layer and >= 1 token");
  const int K = shape.top_k;
  TraceMeta meta;
  meta.num_experts = shape.num_experts;
  meta.top_k = K;
  meta.source = "moe-ep trace (synthetic: sample_expert_ids)";
  meta.tool_version = tool_version;
  meta.attributes = {{"scenario", spec.text}, {"seed", seed}, {"drift", drift}};
  meta.tokens_per_rank = tokens_per_rank;
  write_trace(path, steps, layers, total, meta, [&](int s, int l, std::span<int32_t> ids) {
    int64_t offset = 0;
    for (int64_t b : tokens_per_rank) {
      sample_expert_ids(spec, shape, drift, RoutingKey{seed, s, l, offset}, b,
                        ids.subspan(static_cast<size_t>(offset * K), static_cast<size_t>(b * K)));
      offset += b;
    }
  });
}

}  // namespace moe

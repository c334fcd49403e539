#include "runtime/simulate/SimLoads.hpp"

#include <stdexcept>

#include "runtime/io/TraceReader.hpp"

namespace moe {

SimLoads::SimLoads(const ScenarioSpec& spec, const ModelShape& shape, double drift, uint64_t seed,
                   std::vector<int64_t> tokens_per_rank)
    : spec_(spec), shape_(shape), drift_(drift), seed_(seed), tokens_(std::move(tokens_per_rank)) {
  if (spec.kind == ScenarioSpec::Kind::Router)
    throw std::invalid_argument(
        "--scenario router: simulate has no tokens to route (valid: balanced, X:k, zipf:S, trace:FILE.h5; "
        "record the router's routing with moe-ep compare and replay it as a trace)");
  if (spec.kind == ScenarioSpec::Kind::Trace) trace_ = std::make_unique<TraceReader>(spec.trace_path, shape);
}

SimLoads::~SimLoads() = default;

int64_t SimLoads::trace_steps() const { return trace_ ? trace_->dims().steps : 0; }
int64_t SimLoads::trace_layers() const { return trace_ ? trace_->dims().layers : 0; }

LoadMatrix SimLoads::at(int step, int layer) const {
  if (!trace_) return scenario_load_matrix(spec_, shape_, drift_, seed_, step, layer, tokens_);
  const int P = static_cast<int>(tokens_.size());
  const int K = shape_.top_k;
  const int64_t T = trace_->dims().tokens;
  LoadMatrix m(P, shape_.num_experts);
  if (T == 0) return m;
  std::vector<int32_t> ids(static_cast<size_t>(T * K));
  trace_->read(step, layer, 0, T, ids);
  int64_t g = 0;  // global token index of the job
  for (int r = 0; r < P; ++r)
    for (int64_t t = 0; t < tokens_[static_cast<size_t>(r)]; ++t, ++g) {
      const int64_t src = g % T;
      for (int k = 0; k < K; ++k) ++m.at(r, ids[static_cast<size_t>(src * K + k)]);
    }
  return m;
}

}  // namespace moe

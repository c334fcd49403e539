#include "runtime/layer/StepMetrics.hpp"

#include <cmath>
#include <stdexcept>

namespace moe {

namespace {

std::vector<MetricField> build_schema() {
  std::vector<MetricField> f;
#define MOE_COUNTER_FIELD(name, agg, unit, desc)                                     \
  f.push_back({#name, MetricType::Int64, MetricAggregate::agg, unit, desc, true,     \
               [](const StepRecord& r, int) { return static_cast<double>(r.name); }, \
               [](StepRecord& r, int, double v) { r.name = static_cast<int64_t>(std::llround(v)); }, 0});
  MOE_STEP_COUNTERS(MOE_COUNTER_FIELD)
#undef MOE_COUNTER_FIELD
  // Three fields per phase: its wall time, busy time and start time.
  for (size_t p = 0; p < kPhaseNames.size(); ++p) {
    const std::string phase = kPhaseNames[p];
    const int i = static_cast<int>(p);
    f.push_back({"t_" + phase, MetricType::Float64, MetricAggregate::Sum, "s (wall)",
                 "wall time of the " + phase + " phase (root attribute wall_clock)", true,
                 [](const StepRecord& r, int k) { return r.times.wall[static_cast<size_t>(k)]; },
                 [](StepRecord& r, int k, double v) { r.times.wall[static_cast<size_t>(k)] = v; }, i});
    f.push_back({"busy_" + phase, MetricType::Float64, MetricAggregate::Sum, "s (busy clock)",
                 "busy time of the " + phase +
                     " phase: local work, not waiting (root attribute busy_clock: thread CPU time on host "
                     "backends, CUDA events on the compute stream on device backends)",
                 true, [](const StepRecord& r, int k) { return r.times.busy[static_cast<size_t>(k)]; },
                 [](StepRecord& r, int k, double v) { r.times.busy[static_cast<size_t>(k)] = v; }, i});
    f.push_back({"start_" + phase, MetricType::Float64, MetricAggregate::None, "s (wall, since the run's epoch)",
                 "when the " + phase +
                     " phase began, seconds since the epoch all ranks take after a barrier "
                     "at the start of the run (root attribute start_clock)",
                 true, [](const StepRecord& r, int k) { return r.times.start[static_cast<size_t>(k)]; },
                 [](StepRecord& r, int k, double v) { r.times.start[static_cast<size_t>(k)] = v; }, i});
  }
  f.push_back({"busy_s", MetricType::Float64, MetricAggregate::Sum, "s (busy clock)",
               "busy time of all phases (what makespan_s sums)", false,
               [](const StepRecord& r, int) { return r.busy_s(); }, nullptr, 0});
  return f;
}

}  // namespace

const std::vector<MetricField>& step_metrics() {
  static const std::vector<MetricField> schema = build_schema();
  return schema;
}

size_t packed_record_size() {
  size_t n = 0;
  for (const auto& m : step_metrics()) n += m.stored ? 1 : 0;
  return n;
}

void pack_record(const StepRecord& r, std::span<double> out) {
  if (out.size() != packed_record_size()) throw std::invalid_argument("pack_record: wrong buffer size");
  size_t i = 0;
  for (const auto& m : step_metrics())
    if (m.stored) out[i++] = m.value(r);
}

StepRecord unpack_record(std::span<const double> in) {
  if (in.size() != packed_record_size()) throw std::invalid_argument("unpack_record: wrong buffer size");
  StepRecord r;
  size_t i = 0;
  for (const auto& m : step_metrics())
    if (m.stored) m.set(r, m.index, in[i++]);
  for (auto& s : r.times.started) s = true;
  return r;
}

}  // namespace moe

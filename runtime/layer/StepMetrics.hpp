#pragma once
// The per-step metric schema: one table, derived from StepRecord's counter
// list and the phase list, that drives every use of a step's metrics — the
// record all-gather (pack/unpack), the HDF5 /timeline compound and its units
// attribute, the JSON per-rank totals and the field list of
// docs/timeline-format.md (a unit test checks the docs against it).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/layer/StepRecord.hpp"

namespace moe {

enum class MetricType { Int64, Float64 };
/// How a metric combines over the layer-steps of a run (JSON totals).
enum class MetricAggregate { Sum, Max, None };

struct MetricField {
  std::string name;
  MetricType type = MetricType::Int64;
  MetricAggregate aggregate = MetricAggregate::Sum;
  std::string unit;
  std::string description;
  bool stored = true;  // false: derived from the others (not packed)
  double (*get)(const StepRecord&, int index) = nullptr;
  void (*set)(StepRecord&, int index, double value) = nullptr;  // stored fields only
  int index = 0;                                                // the phase, for per-phase fields

  double value(const StepRecord& r) const { return get(r, index); }
};

/// Every field, in /timeline column order (after policy, step, layer, rank).
const std::vector<MetricField>& step_metrics();

/// Doubles per packed record (stored fields; integers below 2^53 are exact).
size_t packed_record_size();
void pack_record(const StepRecord& r, std::span<double> out);
StepRecord unpack_record(std::span<const double> in);

}  // namespace moe

// The per-step metric schema: the gather's pack/unpack round trip, and the
// field list of docs/timeline-format.md, which must match the schema row for
// row (set MOE_PRINT_SCHEMA_ROWS=1 to print the rows the docs should hold).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/layer/StepMetrics.hpp"

namespace moe {
namespace {

std::string docs_row(const MetricField& m) {
  return "| `" + m.name + "` | " + (m.type == MetricType::Int64 ? "int64" : "float64") + " | " + m.unit + " | " +
         m.description + " |";
}

TEST(StepMetrics, NamesAreUniqueAndEveryPhaseHasItsFields) {
  std::set<std::string> names;
  for (const auto& m : step_metrics()) EXPECT_TRUE(names.insert(m.name).second) << m.name;
  for (const char* p : kPhaseNames)
    for (const std::string prefix : {"t_", "busy_", "start_"}) EXPECT_EQ(names.count(prefix + p), 1u) << prefix + p;
  EXPECT_EQ(names.count("busy_s"), 1u);
}

TEST(StepMetrics, PackUnpackRoundTripsEveryStoredField) {
  StepRecord r;
  double v = 1.0;
  for (const auto& m : step_metrics())
    if (m.stored) m.set(r, m.index, m.type == MetricType::Int64 ? (v += 7.0) : (v += 0.125));
  std::vector<double> packed(packed_record_size());
  pack_record(r, packed);
  const StepRecord back = unpack_record(packed);
  for (const auto& m : step_metrics()) EXPECT_EQ(m.value(back), m.value(r)) << m.name;
  EXPECT_DOUBLE_EQ(back.busy_s(), r.times.busy_total());
  // Integers above 2^31 survive the trip through doubles.
  r.peak_bytes = (int64_t{1} << 52) + 3;
  pack_record(r, packed);
  EXPECT_EQ(unpack_record(packed).peak_bytes, r.peak_bytes);
}

TEST(StepMetrics, DocsFieldListMatchesTheSchema) {
  std::vector<std::string> expected;
  for (const auto& m : step_metrics()) expected.push_back(docs_row(m));
  if (std::getenv("MOE_PRINT_SCHEMA_ROWS"))
    for (const auto& row : expected) std::cout << row << '\n';
  std::ifstream f(std::string(MOE_SOURCE_DIR) + "/docs/timeline-format.md");
  ASSERT_TRUE(f) << "docs/timeline-format.md not found";
  std::vector<std::string> rows;
  bool in = false;
  for (std::string line; std::getline(f, line);) {
    if (line.find("<!-- schema:end -->") != std::string::npos) in = false;
    const bool key_column = line.rfind("| `policy`", 0) == 0 || line.rfind("| `step`", 0) == 0 ||
                            line.rfind("| `layer`", 0) == 0 || line.rfind("| `rank`", 0) == 0;
    if (in && !key_column && line.rfind("| `", 0) == 0) rows.push_back(line);
    if (line.find("<!-- schema:begin") != std::string::npos) in = true;
  }
  EXPECT_EQ(rows, expected) << "docs/timeline-format.md's schema rows differ from runtime/layer/StepMetrics.cpp; "
                               "run test_unit with MOE_PRINT_SCHEMA_ROWS=1 for the rows to paste";
}

}  // namespace
}  // namespace moe

// The report never claims what was not measured (docs/reliability.md): a
// policy that never executed a step has max_rel_err null; a NaN or infinite
// output is "nan"/"inf" in the JSON, the verdict says so, and such a policy is
// never the fastest exact one.
#include <cmath>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "apps/ResultReport.hpp"
#include "runtime/harness/Reference.hpp"

namespace moe::app {
namespace {

PolicyResult policy(const std::string& name, double makespan, std::optional<double> err, int executed) {
  PolicyResult p;
  p.name = name;
  p.makespan_s = makespan;
  p.max_rel_err = err;
  p.max_rel_err_full = err;
  p.executed_steps = executed;
  p.rank_slots = {1};
  p.rank_busy_s = {makespan};
  p.rank_peak_bytes = {0};
  return p;
}

std::string table(const RunConfig& cfg, const ComparisonResult& r) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  print_table(cfg, r, f);
  std::fclose(f);
  std::string s(buf, len);
  std::free(buf);
  return s;
}

TEST(ResultReport, OomPolicyHasNullError) {
  RunConfig cfg;
  cfg.check = true;
  ComparisonResult r;
  r.num_ranks = 1;
  PolicyResult ep = policy("ep", 0.0, 0.0, 0);  // the runner's placeholder 0 before any step
  ep.status = "oom";
  ep.status_detail = "OOM: needs 70.0 MiB > budget 60.0 MiB on rank 0";
  r.policies = {ep, policy("llep", 1.0, 1e-7, 3)};
  const auto j = result_json(cfg, r);
  EXPECT_TRUE(j["policies"][0]["max_rel_err"].is_null());
  EXPECT_TRUE(j["policies"][0]["max_rel_err_full"].is_null());
  EXPECT_DOUBLE_EQ(j["policies"][1]["max_rel_err"].get<double>(), 1e-7);
  EXPECT_EQ(j["fastest_exact"], "llep");
  // The clocks of the phase times (docs/timeline-format.md, "Clocks"): the host's by default.
  EXPECT_EQ(j["clocks"]["wall_clock"], "host_steady_clock");
  EXPECT_EQ(j["clocks"]["busy_clock"], "thread_cpu_clock");
  EXPECT_EQ(j["clocks"]["start_clock"], "host_steady_clock");
}

TEST(ResultReport, NanAndInfAreReportedAndNeverFastest) {
  RunConfig cfg;
  cfg.check = true;
  ComparisonResult r;
  r.num_ranks = 1;
  // The running maximum as the comparison keeps it: worse_error keeps a NaN.
  const double nan_err =
      worse_error(worse_error(0.0, 1e-7), max_relative_error(std::vector<double>{NAN}, std::vector<double>{1.0}));
  ASSERT_TRUE(std::isnan(nan_err));
  r.policies = {policy("ep", 2.0, 1e-7, 1), policy("llep", 1.0, nan_err, 1), policy("capacity", 0.5, INFINITY, 1)};
  const auto j = result_json(cfg, r);
  EXPECT_EQ(j["policies"][1]["max_rel_err"], "nan");
  EXPECT_EQ(j["policies"][2]["max_rel_err"], "inf");
  EXPECT_EQ(j["fastest_exact"], "ep");
  const std::string t = table(cfg, r);
  EXPECT_NE(t.find("# verdict: llep produced NaN or infinite outputs (max_rel_err nan)"), std::string::npos) << t;
  EXPECT_NE(t.find("# verdict: capacity produced NaN or infinite outputs (max_rel_err inf)"), std::string::npos) << t;
  EXPECT_NE(t.find("# verdict: fastest exact policy is ep"), std::string::npos) << t;
}

}  // namespace
}  // namespace moe::app

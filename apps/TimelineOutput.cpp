#include "apps/TimelineOutput.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "apps/ResultReport.hpp"
#include "apps/StopOnError.hpp"
#include "runtime/common/Errors.hpp"
#include "runtime/io/TimelineWriter.hpp"
#include "runtime/layer/LayerClock.hpp"
#include "version.hpp"

namespace moe::app {

TimelineHeader timeline_header(const RunConfig& cfg, int num_ranks, std::vector<std::string> hostnames,
                               const std::vector<int>& node_of_rank, int ranks_per_node) {
  TimelineHeader h;
  h.policies = cfg.policies;
  h.num_ranks = num_ranks;
  h.tool_version = MOE_EP_VERSION;
  h.hostnames = std::move(hostnames);
  h.start_time = iso8601_utc_now();
  h.clocks = layer_clock_names();
  h.attributes.emplace_back("node_of_rank", nlohmann::json(node_of_rank).dump());
  h.attributes.emplace_back("ranks_per_node", int64_t{ranks_per_node});
  ComparisonResult empty;
  empty.num_ranks = num_ranks;
  const nlohmann::json config = result_json(cfg, empty)["config"];
  h.config_json = config.dump();
  h.policy_params_json = policy_params_json(cfg.params).dump();
  // Each config field also as its own root attribute (lists as JSON text).
  for (const auto& [key, v] : config.items()) {
    if (v.is_number_unsigned())
      h.attributes.emplace_back(key, v.get<uint64_t>());
    else if (v.is_number_integer())
      h.attributes.emplace_back(key, v.get<int64_t>());
    else if (v.is_number_float())
      h.attributes.emplace_back(key, v.get<double>());
    else if (v.is_boolean())
      h.attributes.emplace_back(key, int64_t{v.get<bool>() ? 1 : 0});
    else if (v.is_string())
      h.attributes.emplace_back(key, v.get<std::string>());
    else
      h.attributes.emplace_back(key, v.dump());
  }
  return h;
}

TimelineOutput::TimelineOutput(const std::string& path, const RunConfig& cfg, StopOnError& comm) : comm_(&comm) {
  std::vector<std::string> hosts = gather_hostnames(comm);
  const std::vector<int>& nodes = comm.node_of_rank();
  int per_node = 0;
  for (int n : nodes) per_node = std::max(per_node, comm.ranks_on_node(n));
  std::string error;
  if (comm.rank() == 0) {
    try {
      writer_ =
          std::make_unique<TimelineWriter>(path, timeline_header(cfg, comm.size(), std::move(hosts), nodes, per_node));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  // Rank 0's verdict to every rank, so that all exit 2 together.
  if (comm.allreduce_sum(error.empty() ? 0 : 1) != 0)
    throw InputError("--timeline: " + (error.empty() ? "rank 0 could not create '" + path + "'" : error));

  // Test hook (tests/timeline): MOE_TEST_KILL_AFTER_STEP=S makes rank 0, the
  // writer, raise SIGKILL on itself right after the rows of step S (0-based;
  // its last layer of its last policy) are written and flushed, so that the
  // file of a killed run can be checked. Not meant for anything else.
  if (const char* v = std::getenv("MOE_TEST_KILL_AFTER_STEP")) kill_after_step_ = std::atoi(v);
  last_layer_ = cfg.layers - 1;
  last_policy_ = cfg.policies.empty() ? std::string() : cfg.policies.back();
}

TimelineOutput::~TimelineOutput() = default;

StepObserver TimelineOutput::observer() {
  if (!writer_) return {};
  return [this](const std::string& policy, int step, int layer, const std::vector<StepRecord>& per_rank,
                const LoadMatrix& loads) {
    if (!error_.empty()) return;  // stopped: the other ranks learn it at the next barrier
    try {
      writer_->append(policy, step, layer, per_rank, loads);
    } catch (const std::runtime_error& e) {
      error_ = std::string("--timeline: ") + e.what();
      comm_->stop(error_);
      return;
    }
    if (step == kill_after_step_ && layer == last_layer_ && policy == last_policy_) std::raise(SIGKILL);
  };
}

void TimelineOutput::close(StopOnError& comm) {
  if (writer_ && error_.empty()) {
    try {
      writer_->close();
    } catch (const std::runtime_error& e) {
      error_ = std::string("--timeline: ") + e.what();
      comm.stop(error_);
    }
  }
  writer_.reset();  // closes the file (a failed one as it was last flushed)
  comm.check();
}

}  // namespace moe::app

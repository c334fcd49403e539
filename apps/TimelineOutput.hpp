#pragma once
// `--timeline FILE.h5` of `moe-ep run` and `moe-ep compare`: the HDF5 timeline
// (docs/timeline-format.md) written on rank 0 as the comparison runs.

#include <memory>
#include <string>

#include "comm/Communicator.hpp"
#include "runtime/harness/Comparison.hpp"
#include "runtime/io/TimelineWriter.hpp"

namespace moe::app {

class StopOnError;

/// The timeline's root attributes for a run of `cfg` on `num_ranks` ranks:
/// the config as compare's JSON writes it, field by field too. Shared by
/// compare and simulate.
TimelineHeader timeline_header(const RunConfig& cfg, int num_ranks, std::vector<std::string> hostnames,
                               const std::vector<int>& node_of_rank, int ranks_per_node);

class TimelineOutput {
 public:
  /// Collective over `comm`: gathers every rank's host name, then rank 0
  /// creates `path` and writes the run's description. When rank 0 cannot
  /// create the file (or `path` is locked by another run or a reader), every
  /// rank throws InputError (collective) and rank 0's one-line message names
  /// --timeline, so the job exits 2 without hanging and `path` is untouched.
  TimelineOutput(const std::string& path, const RunConfig& cfg, StopOnError& comm);
  ~TimelineOutput();
  TimelineOutput(const TimelineOutput&) = delete;
  TimelineOutput& operator=(const TimelineOutput&) = delete;

  /// The observer to pass to run_comparison: on rank 0 it appends and flushes
  /// the rows of each (step, layer, policy). A write error (disk full) asks
  /// `comm` to stop: every rank then throws OutputError at the next barrier.
  StepObserver observer();

  /// Collective: marks the file complete and closes it (rank 0), then throws
  /// OutputError (collective) on every rank when rank 0 failed to write.
  void close(StopOnError& comm);

 private:
  std::unique_ptr<TimelineWriter> writer_;  // rank 0 only
  StopOnError* comm_ = nullptr;
  std::string error_;         // rank 0's first write error
  int kill_after_step_ = -1;  // test hook, see TimelineOutput.cpp
  int last_layer_ = 0;
  std::string last_policy_;
};

}  // namespace moe::app

#pragma once
// The HDF5 timeline of a run (docs/timeline-format.md): one row per
// (policy, step, layer, rank) in the extendible compound dataset /timeline,
// the per-expert loads in /expert_load, and the run's description as root
// attributes. Written on one process (rank 0) with serial HDF5; every append
// is written and flushed at once, so a killed run leaves a readable file that
// holds every (step, layer, policy) that had completed.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "policies/Plan.hpp"
#include "runtime/layer/StepRecord.hpp"

namespace moe {

/// Version of the layout described in docs/timeline-format.md (root attribute format_version).
inline constexpr int64_t kTimelineFormatVersion = 1;

/// What the file says about the run (root attributes).
struct TimelineHeader {
  std::vector<std::string> policies;  // the values of the `policy` enum, in this order
  int num_ranks = 0;
  std::string tool_version;
  std::vector<std::string> hostnames;  // one per rank
  std::string start_time;              // ISO 8601; empty: now, in UTC
  std::string config_json;             // the full run config as JSON (attribute `config`)
  std::string policy_params_json;      // attribute `policy_params`
  /// The clocks of the phase fields: attributes wall_clock, busy_clock,
  /// start_clock (docs/timeline-format.md, "Clocks").
  PhaseClockNames clocks;
  /// Further scalar root attributes, e.g. the main config fields one by one.
  using Value = std::variant<int64_t, uint64_t, double, std::string>;
  std::vector<std::pair<std::string, Value>> attributes;
};

class TimelineWriter {
 public:
  /// Writes the header and the two empty datasets to a new file beside
  /// `path`, flushes it, and renames it over `path` only when no other process
  /// holds a lock on `path` (another writer, or a reader such as h5py): an
  /// existing file is never truncated, and a file that is in use is left as
  /// it was. Throws std::runtime_error with a one-line reason when it cannot
  /// (and leaves no temporary file behind).
  TimelineWriter(const std::string& path, const TimelineHeader& header);
  /// Closes the file without marking it complete (see close()).
  ~TimelineWriter();
  TimelineWriter(const TimelineWriter&) = delete;
  TimelineWriter& operator=(const TimelineWriter&) = delete;

  /// Appends the rows of one (step, layer, policy): one per rank, and one
  /// /expert_load row per expert; then flushes the file. Throws
  /// std::runtime_error on a write error (disk full: space for the next rows
  /// is reserved before any is written, so the rows flushed before stay
  /// readable; the writer then refuses further appends and close()),
  /// std::invalid_argument on an unknown policy.
  void append(const std::string& policy, int step, int layer, const std::vector<StepRecord>& per_rank,
              const LoadMatrix& loads);

  /// Sets the root attribute `complete` to 1 and closes the file. A file that
  /// was never closed this way (killed or failed run) keeps `complete` = 0.
  void close();

  int64_t rows() const;     // rows of /timeline so far
  bool compressed() const;  // deflate in use
  const std::string& path() const;

 private:
  void publish(const std::string& target);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The current time as ISO 8601 in UTC, e.g. "2026-11-22T18:57:08Z".
std::string iso8601_utc_now();

/// Field -> unit of the /timeline and /expert_load columns (the root attribute `units`, as JSON).
std::string timeline_units_json();

}  // namespace moe

#pragma once
// Per-phase wall time and busy time. Busy time is this thread's CPU time,
// which stays meaningful when several ranks share the cores of one node
// (wall time then also counts the time another rank held the core).

#include <time.h>

#include <array>
#include <chrono>

#include <Kokkos_Core.hpp>

namespace moe {

/// The forward's phases, then the backward's (--backward, docs/backward.md):
/// output-gradient dispatch, expert backward, weight-gradient return,
/// input-gradient combine and router backward. A forward-only step leaves the
/// backward phases at zero.
enum class Phase {
  Route,
  Plan,
  Dispatch,
  Weights,
  Compute,
  Combine,
  BwdDispatch,
  BwdCompute,
  BwdWeights,
  BwdCombine,
  BwdRouter,
  Count
};
inline constexpr std::array<const char*, static_cast<size_t>(Phase::Count)> kPhaseNames = {
    "route",        "plan",        "dispatch",    "weights",     "compute",   "combine",
    "bwd_dispatch", "bwd_compute", "bwd_weights", "bwd_combine", "bwd_router"};
inline constexpr size_t kForwardPhases = 6;  // Route .. Combine

inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

inline double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// The clock of busy time: this thread's CPU time on host backends; on device
/// backends (CUDA), where kernels run asynchronously and the host thread only
/// launches them, wall time after fencing the layer's execution-space
/// instance (not the global fence, which would also wait for the weight
/// transfers in flight while dispatch runs).
inline double busy_clock() {
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace,
                                           Kokkos::DefaultExecutionSpace::memory_space>::accessible) {
    return thread_cpu_seconds();
  } else {
    Kokkos::DefaultExecutionSpace().fence();
    return wall_seconds();
  }
}

struct PhaseTimes {
  std::array<double, static_cast<size_t>(Phase::Count)> wall{};
  std::array<double, static_cast<size_t>(Phase::Count)> busy{};
  /// When each phase was first entered in the step: wall_seconds() while the
  /// step runs; the harness makes it relative to the run's common epoch.
  std::array<double, static_cast<size_t>(Phase::Count)> start{};
  std::array<bool, static_cast<size_t>(Phase::Count)> started{};

  double& wall_of(Phase p) { return wall[static_cast<size_t>(p)]; }
  double& busy_of(Phase p) { return busy[static_cast<size_t>(p)]; }
  void mark_start(Phase p, double t) {
    const auto i = static_cast<size_t>(p);
    if (!started[i]) start[i] = t;
    started[i] = true;
  }
  /// Shifts the start times of the phases that ran to seconds since `epoch`
  /// (a phase that did not run, e.g. the backward's in a forward-only step,
  /// keeps start 0 and wall 0).
  void rebase_starts(double epoch) {
    for (size_t i = 0; i < start.size(); ++i)
      if (started[i]) start[i] -= epoch;
  }
  double wall_total() const;
  double busy_total() const;
};

inline double PhaseTimes::wall_total() const {
  double s = 0;
  for (double v : wall) s += v;
  return s;
}
inline double PhaseTimes::busy_total() const {
  double s = 0;
  for (double v : busy) s += v;
  return s;
}

/// Adds the wall time of its scope to one phase.
class PhaseScope {
 public:
  PhaseScope(PhaseTimes& times, Phase phase) : times_(times), phase_(phase), t0_(wall_seconds()) {
    times_.mark_start(phase_, t0_);
  }
  ~PhaseScope() { times_.wall_of(phase_) += wall_seconds() - t0_; }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseTimes& times_;
  Phase phase_;
  double t0_;
};

/// Adds the busy time (busy_clock) of its scope to one phase. Wrap local
/// work only (kernels, GEMMs, planning), never a communication call: MPI
/// busy-polls while it waits, which would count waiting as work.
class BusyScope {
 public:
  BusyScope(PhaseTimes& times, Phase phase) : times_(times), phase_(phase), t0_(busy_clock()) {}
  ~BusyScope() { times_.busy_of(phase_) += busy_clock() - t0_; }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;

 private:
  PhaseTimes& times_;
  Phase phase_;
  double t0_;
};

}  // namespace moe

#pragma once
// Per-phase wall time and busy time, and the clocks that time them. On host
// backends busy time is this thread's CPU time, which stays meaningful when
// several ranks share the cores of one node (wall time then also counts the
// time another rank held the core). On CUDA builds whose kernels run on the
// device the layer times phases with CUDA events instead (EventPhaseClock.hpp).

#include <time.h>

#include <array>
#include <chrono>
#include <string>
#include <vector>

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

/// Which clock a run's phase fields come from (the timeline's root attributes
/// wall_clock, busy_clock, start_clock and the JSON report's "clocks";
/// docs/timeline-format.md, "Clocks").
struct PhaseClockNames {
  std::string wall = "host_steady_clock";
  std::string busy = "thread_cpu_clock";
  std::string start = "host_steady_clock";
};

/// The clocks of a simulated run (moe-ep simulate): every field is modelled.
inline PhaseClockNames simulated_clock_names() { return {"simulated", "simulated", "simulated"}; }

/// The name of busy_clock() on this build: this thread's CPU time on host
/// backends, fenced wall time on device backends.
inline const char* host_busy_clock_name() {
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, Kokkos::DefaultExecutionSpace::memory_space>::accessible)
    return "thread_cpu_clock";
  else
    return "host_steady_clock_fenced";
}

/// The stream a phase's begin or end is marked on: the layer's compute stream
/// (its Kokkos execution-space instance) or the communicator's stream
/// (Communicator::device_stream(); the compute stream where it has none).
enum class ClockStream { Compute, Comm };
/// A span of a phase adds to its wall time (and marks its start) or to its busy time.
enum class SpanKind { Wall, Busy };

/// Times the spans of a layer's phases. Spans nest (a busy span inside a
/// wall span of the same phase) and close in reverse order of opening.
/// HostPhaseClock adds each span when it closes; EventPhaseClock
/// (EventPhaseClock.hpp) only records CUDA events and adds every span at
/// resolve(), once per forward and once per backward, after the exchanges.
class PhaseClock {
 public:
  virtual ~PhaseClock() = default;
  virtual PhaseClockNames names() const = 0;
  /// Opens a span of `phase` in `times` (which must outlive resolve()), its
  /// begin marked on stream `on`; returns the handle end() takes.
  virtual size_t begin(PhaseTimes& times, Phase phase, SpanKind kind, ClockStream on) = 0;
  /// Closes the span, its end marked on stream `on`. Never throws: a failure
  /// is reported by the next resolve().
  virtual void end(size_t span, ClockStream on) noexcept = 0;
  /// Adds the spans closed since the last resolve() to their PhaseTimes.
  virtual void resolve() = 0;
  /// Drops the spans not yet resolved (a step that threw half-way).
  virtual void discard() noexcept = 0;
};

/// Today's clocks: wall time from the host's steady clock, busy time from
/// busy_clock(); each span is added when it closes.
class HostPhaseClock final : public PhaseClock {
 public:
  PhaseClockNames names() const override { return {"host_steady_clock", host_busy_clock_name(), "host_steady_clock"}; }
  size_t begin(PhaseTimes& times, Phase phase, SpanKind kind, ClockStream /*on*/) override {
    const double t0 = kind == SpanKind::Wall ? wall_seconds() : busy_clock();
    if (kind == SpanKind::Wall) times.mark_start(phase, t0);
    open_.push_back({&times, phase, kind, t0});
    return open_.size() - 1;
  }
  void end(size_t span, ClockStream /*on*/) noexcept override {
    if (span >= open_.size()) return;
    const Open o = open_[span];
    if (o.kind == SpanKind::Wall)
      o.times->wall_of(o.phase) += wall_seconds() - o.t0;
    else
      o.times->busy_of(o.phase) += busy_clock() - o.t0;
    open_.resize(span);  // spans close in reverse order
  }
  void resolve() override {}
  void discard() noexcept override { open_.clear(); }

 private:
  struct Open {
    PhaseTimes* times;
    Phase phase;
    SpanKind kind;
    double t0;
  };
  std::vector<Open> open_;
};

/// Adds the wall time of its scope to one phase, on `clock`: begun on stream
/// `begin_on`, ended on `end_on` (a phase that ends with an exchange: Comm).
class PhaseScope {
 public:
  PhaseScope(PhaseClock& clock, PhaseTimes& times, Phase phase, ClockStream begin_on = ClockStream::Compute,
             ClockStream end_on = ClockStream::Compute)
      : clock_(clock), end_on_(end_on), span_(clock.begin(times, phase, SpanKind::Wall, begin_on)) {}
  ~PhaseScope() { clock_.end(span_, end_on_); }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseClock& clock_;
  ClockStream end_on_;
  size_t span_;
};

/// Adds the busy time of its scope to one phase, on `clock` (the compute
/// stream). Wrap local work only (kernels, GEMMs, planning), never a
/// communication call: MPI busy-polls while it waits, which would count
/// waiting as work.
class BusyScope {
 public:
  BusyScope(PhaseClock& clock, PhaseTimes& times, Phase phase)
      : clock_(clock), span_(clock.begin(times, phase, SpanKind::Busy, ClockStream::Compute)) {}
  ~BusyScope() { clock_.end(span_, ClockStream::Compute); }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;

 private:
  PhaseClock& clock_;
  size_t span_;
};

}  // namespace moe

// The phase clocks: HostPhaseClock (the host clocks, spans added as they
// close, nested spans summed as before) and EventPhaseClock's bookkeeping
// against a fake event backend whose streams have a clock the test moves
// (which stream each mark goes on, elapsed-time sums, start times from the
// anchor, the event pool's reuse, no wait before resolve(), failures).
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/layer/EventPhaseClock.hpp"
#include "runtime/layer/PhaseTimer.hpp"

using namespace moe;

namespace {

struct FakeStream {
  double now_ms = 0.0;
};

struct FakeEvent {
  double t_ms = -1.0;
  const FakeStream* stream = nullptr;
};

struct FakeLog {
  int created = 0, destroyed = 0, records = 0, syncs = 0;
  bool fail_record = false;
};

class FakeEvents final : public PhaseEventBackend {
 public:
  explicit FakeEvents(FakeLog& log) : log_(log) {}
  Event create() override {
    ++log_.created;
    events_.push_back(std::make_unique<FakeEvent>());
    return events_.back().get();
  }
  void destroy(Event /*e*/) noexcept override { ++log_.destroyed; }
  void record(Event e, Stream s) override {
    if (log_.fail_record) throw std::runtime_error("cudaEventRecord failed (fake)");
    ++log_.records;
    auto* ev = static_cast<FakeEvent*>(e);
    ev->stream = static_cast<const FakeStream*>(s);
    ev->t_ms = ev->stream->now_ms;
  }
  void synchronize(Event /*e*/) override { ++log_.syncs; }
  double elapsed_ms(Event from, Event to) override {
    return static_cast<FakeEvent*>(to)->t_ms - static_cast<FakeEvent*>(from)->t_ms;
  }

 private:
  FakeLog& log_;
  std::vector<std::unique_ptr<FakeEvent>> events_;
};

}  // namespace

TEST(HostPhaseClock, NestedSpansAddWallAndBusyAsScopesDid) {
  HostPhaseClock clock;
  PhaseTimes t;
  {
    PhaseScope wall(clock, t, Phase::Compute);
    {
      BusyScope busy(clock, t, Phase::Compute);
      volatile double x = 0;
      for (int i = 0; i < 2000000; ++i) x = x + 1e-9 * i;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    PhaseScope wall(clock, t, Phase::Compute);  // a second span of the same phase adds to it
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GE(t.wall_of(Phase::Compute), 0.007);
  EXPECT_GT(t.busy_of(Phase::Compute), 0.0);
  EXPECT_LT(t.busy_of(Phase::Compute), t.wall_of(Phase::Compute));  // sleeping is not busy
  EXPECT_TRUE(t.started[static_cast<size_t>(Phase::Compute)]);
  EXPECT_FALSE(t.started[static_cast<size_t>(Phase::Route)]);
  EXPECT_DOUBLE_EQ(t.wall_total(), t.wall_of(Phase::Compute));
  clock.resolve();  // nothing left to add
  EXPECT_DOUBLE_EQ(t.wall_total(), t.wall_of(Phase::Compute));
}

TEST(HostPhaseClock, StartIsTheFirstEntryAndPhasesSum) {
  HostPhaseClock clock;
  PhaseTimes t;
  const double before = wall_seconds();
  { PhaseScope wall(clock, t, Phase::Route); }
  const double first_plan = wall_seconds();
  { PhaseScope wall(clock, t, Phase::Plan); }
  { PhaseScope wall(clock, t, Phase::Plan); }
  const auto route = static_cast<size_t>(Phase::Route), plan = static_cast<size_t>(Phase::Plan);
  EXPECT_GE(t.start[route], before);
  EXPECT_LE(t.start[plan], wall_seconds());
  EXPECT_GE(t.start[plan], first_plan);
  EXPECT_LE(t.start[plan], first_plan + 0.5);
  EXPECT_DOUBLE_EQ(t.wall_total(), t.wall_of(Phase::Route) + t.wall_of(Phase::Plan));
  const PhaseClockNames n = clock.names();
  EXPECT_EQ(n.wall, "host_steady_clock");
  EXPECT_EQ(n.start, "host_steady_clock");
  EXPECT_EQ(n.busy, host_busy_clock_name());
}

TEST(EventPhaseClock, SpansAreTimedOnTheirStreamsAndAddedAtResolve) {
  FakeLog log;
  FakeStream compute, comm;
  EventPhaseClock clock(std::make_unique<FakeEvents>(log), &compute, &comm);
  PhaseTimes t;
  compute.now_ms = 100.0;
  comm.now_ms = 100.0;
  {
    PhaseScope wall(clock, t, Phase::Dispatch, ClockStream::Compute, ClockStream::Comm);
    {
      BusyScope busy(clock, t, Phase::Dispatch);
      compute.now_ms += 3.0;  // 3 ms of kernels
    }
    comm.now_ms += 10.0;  // the exchange ends 10 ms after the phase began
  }
  {
    PhaseScope wall(clock, t, Phase::Compute);
    BusyScope busy(clock, t, Phase::Compute);
    compute.now_ms += 20.0;
  }
  // Nothing is added, and nothing waited for, before resolve().
  EXPECT_EQ(t.wall_total(), 0.0);
  EXPECT_EQ(t.busy_total(), 0.0);
  EXPECT_EQ(log.syncs, 0);
  clock.resolve();
  EXPECT_NEAR(t.wall_of(Phase::Dispatch), 0.010, 1e-12);
  EXPECT_NEAR(t.busy_of(Phase::Dispatch), 0.003, 1e-12);
  EXPECT_NEAR(t.wall_of(Phase::Compute), 0.020, 1e-12);
  EXPECT_NEAR(t.busy_of(Phase::Compute), 0.020, 1e-12);
  EXPECT_GT(log.syncs, 0);
  // Starts: the host time at the first span plus the event time since the anchor.
  const auto d = static_cast<size_t>(Phase::Dispatch), c = static_cast<size_t>(Phase::Compute);
  EXPECT_NEAR(t.start[c] - t.start[d], 0.003, 1e-9);
  EXPECT_NEAR(t.start[d], wall_seconds(), 5.0);
  EXPECT_EQ(clock.names().wall, "cuda_event");
  EXPECT_EQ(clock.names().busy, "cuda_event");
  EXPECT_EQ(clock.names().start, "cuda_event");
}

TEST(EventPhaseClock, WithoutACommStreamItsMarksGoOnTheComputeStream) {
  FakeLog log;
  FakeStream compute;
  EventPhaseClock clock(std::make_unique<FakeEvents>(log), &compute, nullptr);
  PhaseTimes t;
  {
    PhaseScope wall(clock, t, Phase::Combine, ClockStream::Comm, ClockStream::Compute);
    compute.now_ms += 4.0;
  }
  clock.resolve();
  EXPECT_NEAR(t.wall_of(Phase::Combine), 0.004, 1e-12);
}

TEST(EventPhaseClock, ThePoolIsReusedFromStepToStep) {
  FakeLog log;
  FakeStream compute, comm;
  {
    EventPhaseClock clock(std::make_unique<FakeEvents>(log), &compute, &comm);
    for (int step = 0; step < 4; ++step) {
      PhaseTimes t;
      for (Phase p : {Phase::Route, Phase::Plan, Phase::Compute}) {
        PhaseScope wall(clock, t, p);
        BusyScope busy(clock, t, p);
        compute.now_ms += 1.0;
      }
      EXPECT_EQ(clock.events_in_use(), 1u + 3u * 4u);  // anchor + two events per span
      clock.resolve();
      EXPECT_EQ(clock.events_in_use(), 0u);
      EXPECT_EQ(clock.pool_size(), 13u) << "step " << step;
      EXPECT_NEAR(t.wall_total(), 0.003, 1e-12);
      EXPECT_NEAR(t.busy_total(), 0.003, 1e-12);
    }
    EXPECT_EQ(log.created, 13);
    EXPECT_EQ(log.records, 4 * 13);
  }
  EXPECT_EQ(log.destroyed, 13);  // every pooled event destroyed with the clock
}

TEST(EventPhaseClock, AFailedEndIsReportedByResolveAndDiscardDropsSpans) {
  FakeLog log;
  FakeStream compute;
  EventPhaseClock clock(std::make_unique<FakeEvents>(log), &compute, nullptr);
  PhaseTimes t;
  {
    PhaseScope wall(clock, t, Phase::Route);
    log.fail_record = true;  // end() must not throw out of a destructor
  }
  log.fail_record = false;
  EXPECT_THROW(clock.resolve(), std::runtime_error);
  EXPECT_EQ(clock.events_in_use(), 0u);
  clock.resolve();  // the error was reported once

  {
    PhaseScope wall(clock, t, Phase::Route);
    compute.now_ms += 1.0;
  }
  clock.discard();  // a step that threw half-way: its spans are dropped
  clock.resolve();
  EXPECT_EQ(t.wall_of(Phase::Route), 0.0);
  EXPECT_EQ(clock.events_in_use(), 0u);
}

// EventPhaseClock on a real device (label: gpu): CUDA events on two streams
// (a compute stream and a stand-in for the communicator's), elapsed times
// added at resolve(), the event pool reused from step to step. Exits 77
// (CTest: Skipped) with one line where no CUDA device is visible.
#include <cuda_runtime.h>

#include <cstdio>
#include <memory>

#include <gtest/gtest.h>

#include "kernels/cuda/CudaRuntime.hpp"
#include "runtime/layer/EventPhaseClock.hpp"

using namespace moe;

namespace {

struct DeviceStreams : ::testing::Test {
  void SetUp() override {
    ASSERT_EQ(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&comm, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&a, kBytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&b, kBytes), cudaSuccess);
  }
  void TearDown() override {
    cudaFree(a);
    cudaFree(b);
    cudaStreamDestroy(compute);
    cudaStreamDestroy(comm);
  }
  // Work that takes a measurable time on a stream: memsets of 256 MiB.
  void work(cudaStream_t s, int times) {
    for (int i = 0; i < times; ++i) ASSERT_EQ(cudaMemsetAsync(a, i & 0xff, kBytes, s), cudaSuccess);
  }
  static constexpr size_t kBytes = size_t{256} << 20;
  cudaStream_t compute = nullptr, comm = nullptr;
  void *a = nullptr, *b = nullptr;
};

}  // namespace

TEST_F(DeviceStreams, EventClockTimesKernelsOnTheirStreams) {
  EventPhaseClock clock(make_cuda_phase_events(), compute, comm);
  for (int step = 0; step < 3; ++step) {
    PhaseTimes t;
    const double host0 = wall_seconds();
    {
      PhaseScope wall(clock, t, Phase::Dispatch, ClockStream::Compute, ClockStream::Comm);
      {
        BusyScope busy(clock, t, Phase::Dispatch);
        work(compute, 4);
      }
      // The "exchange": the comm stream waits for the compute stream, then copies.
      cudaEvent_t ready = nullptr;
      ASSERT_EQ(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), cudaSuccess);
      ASSERT_EQ(cudaEventRecord(ready, compute), cudaSuccess);
      ASSERT_EQ(cudaStreamWaitEvent(comm, ready, 0), cudaSuccess);
      ASSERT_EQ(cudaMemcpyAsync(b, a, kBytes, cudaMemcpyDeviceToDevice, comm), cudaSuccess);
      cudaEventDestroy(ready);
    }
    {
      PhaseScope wall(clock, t, Phase::Compute);
      BusyScope busy(clock, t, Phase::Compute);
      work(compute, 2);
    }
    clock.resolve();
    const double host_elapsed = wall_seconds() - host0;
    EXPECT_GT(t.busy_of(Phase::Dispatch), 0.0);
    EXPECT_GT(t.wall_of(Phase::Dispatch), t.busy_of(Phase::Dispatch));  // the copy on the comm stream came after
    EXPECT_GT(t.busy_of(Phase::Compute), 0.0);
    for (Phase p : {Phase::Dispatch, Phase::Compute})  // no span is longer than the host waited for it
      EXPECT_LE(t.wall_of(p), host_elapsed + 1e-3);
    const auto d = static_cast<size_t>(Phase::Dispatch), c = static_cast<size_t>(Phase::Compute);
    EXPECT_TRUE(t.started[d] && t.started[c]);
    EXPECT_GE(t.start[c], t.start[d]);
    EXPECT_EQ(clock.events_in_use(), 0u);
    EXPECT_EQ(clock.pool_size(), 9u) << "step " << step;  // anchor + 4 spans x 2, reused
  }
}

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::printf("SKIP: no CUDA device visible (EventPhaseClock's device test needs a GPU)\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

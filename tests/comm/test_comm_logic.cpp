// The communicator logic that needs no GPU: the staged MPI path's ordering of
// copies, stream waits and MPI calls (against a fake device layer whose copies
// only happen at synchronize(), as asynchronous ones may), its grow-only pinned
// buffers, the NCCL communicator's wait/abort and teardown rules, and the
// node-local rank used to pick a GPU before MPI_Init.
#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "comm/DeviceSelect.hpp"
#include "comm/StagedMpiCommunicator.hpp"
#include "comm/StreamWait.hpp"

namespace moe {
namespace {

using Log = std::vector<std::string>;

// "Device memory" is a set of registered blocks; pinned memory is allocated
// here and tracked. Copies are queued and run only at synchronize().
class FakeDevice final : public DeviceLayer {
 public:
  explicit FakeDevice(Log& log) : log_(log) {}
  ~FakeDevice() override { EXPECT_TRUE(pinned_.empty()) << "pinned blocks leaked"; }

  float* device_floats(size_t n) {
    blocks_.push_back(std::make_unique<std::vector<float>>(n, 0.0f));
    return blocks_.back()->data();
  }
  bool is_device(const void* p) override {
    for (const auto& b : blocks_)
      if (p >= static_cast<const void*>(b->data()) && p < static_cast<const void*>(b->data() + b->size())) return true;
    return false;
  }
  void* alloc_pinned(size_t bytes) override {
    ++allocations;
    char* p = new char[bytes];
    pinned_[p] = bytes;
    return p;
  }
  void free_pinned(void* p) override {
    auto it = pinned_.find(static_cast<char*>(p));
    ASSERT_NE(it, pinned_.end());
    pinned_.erase(it);
    delete[] static_cast<char*>(p);
  }
  void copy_to_host_async(void* host, const void* device, size_t bytes) override {
    EXPECT_TRUE(is_pinned(host, bytes)) << "device->host copy into pageable memory";
    EXPECT_TRUE(is_device(device));
    log_.push_back("d2h");
    queue_.push_back([=] { std::memcpy(host, device, bytes); });
  }
  void copy_to_device_async(void* device, const void* host, size_t bytes) override {
    EXPECT_TRUE(is_pinned(host, bytes)) << "host->device copy from pageable memory";
    EXPECT_TRUE(is_device(device));
    log_.push_back("h2d");
    queue_.push_back([=] { std::memcpy(device, host, bytes); });
  }
  void synchronize() override {
    log_.push_back("sync");
    for (auto& f : queue_) f();
    queue_.clear();
  }
  bool idle() const { return queue_.empty(); }
  int allocations = 0;

 private:
  bool is_pinned(const void* p, size_t bytes) const {
    for (const auto& [base, size] : pinned_)
      if (p >= static_cast<const void*>(base) && static_cast<const char*>(p) + bytes <= base + size) return true;
    return false;
  }
  Log& log_;
  std::vector<std::unique_ptr<std::vector<float>>> blocks_;
  std::map<char*, size_t> pinned_;
  std::vector<std::function<void()>> queue_;
};

// One rank talking to itself: reads send buffers when a call (or
// begin_exchange) is made, writes receive buffers when it (or wait_exchange)
// completes, and checks that it is never handed device memory.
class FakeMpi final : public Communicator {
 public:
  FakeMpi(Log& log, FakeDevice& dev) : log_(log), dev_(dev) {}
  std::string backend() const override { return "mpi"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allgather(std::span<const int64_t> s, std::span<int64_t> r) override {
    std::copy(s.begin(), s.end(), r.begin());
  }
  void allgather(std::span<const double> s, std::span<double> r) override { std::copy(s.begin(), s.end(), r.begin()); }
  void allgatherv(std::span<const float> s, std::span<float> r, std::span<const int64_t>) override {
    host_only(s.data(), r.data());
    log_.push_back("mpi:allgatherv");
    std::copy(s.begin(), s.end(), r.begin());
  }
  void alltoallv_rows(const float* s, std::span<const int64_t> sr, float* r, std::span<const int64_t>,
                      int64_t row_len) override {
    host_only(s, r);
    log_.push_back("mpi:alltoallv");
    std::copy(s, s + sr[0] * row_len, r);
  }
  void begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) override {
    log_.push_back("mpi:begin");
    payload_.clear();
    for (const auto& m : sends) {
      host_only(m.send_buf, nullptr);
      payload_[m.tag].assign(static_cast<const char*>(m.send_buf), static_cast<const char*>(m.send_buf) + m.bytes);
    }
    recvs_.assign(recvs.begin(), recvs.end());
    for (const auto& m : recvs_) host_only(nullptr, m.recv_buf);
  }
  void wait_exchange() override {
    log_.push_back("mpi:wait");
    for (const auto& m : recvs_) std::memcpy(m.recv_buf, payload_.at(m.tag).data(), static_cast<size_t>(m.bytes));
    recvs_.clear();
  }
  void gatherv(std::span<const double> s, std::vector<double>& r) override { r.assign(s.begin(), s.end()); }
  double allreduce_max(double v) override { return v; }
  int64_t allreduce_sum(int64_t v) override { return v; }
  void barrier() override {}

 private:
  void host_only(const void* s, const void* r) {
    EXPECT_FALSE(s && dev_.is_device(s)) << "MPI handed a device send buffer";
    EXPECT_FALSE(r && dev_.is_device(r)) << "MPI handed a device receive buffer";
  }
  Log& log_;
  FakeDevice& dev_;
  std::map<int, std::vector<char>> payload_;
  std::vector<P2PMessage> recvs_;
};

struct Staged {
  Log log;
  FakeDevice* dev = nullptr;
  std::unique_ptr<StagedMpiCommunicator> comm;
  Staged() {
    auto d = std::make_unique<FakeDevice>(log);
    dev = d.get();
    comm = std::make_unique<StagedMpiCommunicator>(std::make_unique<FakeMpi>(log, *d), std::move(d));
  }
};

TEST(StagedMpi, AlltoallvCopiesOutWaitsThenCallsMpiThenCopiesBackAndWaits) {
  Staged t;
  const int64_t rows = 3, len = 4;
  float* send = t.dev->device_floats(rows * len);
  float* recv = t.dev->device_floats(rows * len);
  for (int i = 0; i < rows * len; ++i) send[i] = static_cast<float>(i + 1);
  const std::vector<int64_t> counts{rows};
  t.comm->alltoallv_rows(send, counts, recv, counts, len);
  EXPECT_EQ(t.log, (Log{"d2h", "sync", "mpi:alltoallv", "h2d", "sync"}));
  for (int i = 0; i < rows * len; ++i) EXPECT_EQ(recv[i], static_cast<float>(i + 1));
  EXPECT_TRUE(t.dev->idle());
}

TEST(StagedMpi, HostBuffersPassStraightThrough) {
  Staged t;
  std::vector<float> send{1, 2, 3, 4}, recv(4);
  const std::vector<int64_t> counts{2};
  t.comm->alltoallv_rows(send.data(), counts, recv.data(), counts, 2);
  EXPECT_EQ(t.log, (Log{"mpi:alltoallv"}));
  EXPECT_EQ(recv, send);
  EXPECT_EQ(t.dev->allocations, 0);
}

TEST(StagedMpi, ExchangeStagesSendsBeforePostingAndCopiesBackOnlyAfterTheWait) {
  Staged t;
  float* a = t.dev->device_floats(8);
  float* b = t.dev->device_floats(8);
  for (int i = 0; i < 8; ++i) a[i] = static_cast<float>(10 + i);
  constexpr int64_t kBytes = 8 * sizeof(float);
  const std::vector<P2PMessage> sends{{0, 7, a, nullptr, kBytes}};
  const std::vector<P2PMessage> recvs{{0, 7, nullptr, b, kBytes}};
  t.comm->begin_exchange(sends, recvs);
  EXPECT_EQ(t.log, (Log{"d2h", "sync", "mpi:begin"}));
  EXPECT_EQ(b[0], 0.0f) << "nothing may reach the receive buffer before wait_exchange";
  t.comm->wait_exchange();
  EXPECT_EQ(t.log, (Log{"d2h", "sync", "mpi:begin", "mpi:wait", "h2d", "sync"}));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(b[i], static_cast<float>(10 + i));
}

TEST(StagedMpi, OneExchangeAtATime) {
  Staged t;
  std::vector<float> h(4);
  const std::vector<P2PMessage> sends{{0, 1, h.data(), nullptr, 16}};
  const std::vector<P2PMessage> recvs{{0, 1, nullptr, h.data(), 16}};
  t.comm->begin_exchange(sends, recvs);
  EXPECT_THROW(t.comm->begin_exchange(sends, recvs), CommError);
  t.comm->wait_exchange();
}

TEST(StagedMpi, PinnedStagingIsGrowOnlyAndReused) {
  Staged t;
  float* send = t.dev->device_floats(64);
  float* recv = t.dev->device_floats(64);
  const std::vector<int64_t> small{4}, large{16};
  t.comm->alltoallv_rows(send, small, recv, small, 4);
  const int after_first = t.dev->allocations;
  const size_t bytes_first = t.comm->pinned_bytes();
  for (int step = 0; step < 5; ++step) t.comm->alltoallv_rows(send, small, recv, small, 4);
  EXPECT_EQ(t.dev->allocations, after_first) << "steps of the same size must reuse the staging buffers";
  t.comm->alltoallv_rows(send, large, recv, large, 4);
  EXPECT_GT(t.comm->pinned_bytes(), bytes_first);
  const int after_growth = t.dev->allocations;
  t.comm->alltoallv_rows(send, small, recv, small, 4);
  EXPECT_EQ(t.dev->allocations, after_growth) << "smaller steps must not shrink (re-allocate) the buffers";
}

TEST(StagedMpi, AllgathervStagesDeviceGates) {
  Staged t;
  float* send = t.dev->device_floats(3);
  float* recv = t.dev->device_floats(3);
  send[0] = 1.5f, send[1] = 2.5f, send[2] = 3.5f;
  const std::vector<int64_t> counts{3};
  t.comm->allgatherv(std::span<const float>(send, 3), std::span<float>(recv, 3), counts);
  EXPECT_EQ(t.log, (Log{"d2h", "sync", "mpi:allgatherv", "h2d", "sync"}));
  EXPECT_EQ(recv[2], 3.5f);
}

TEST(StreamWait, DoneReturnsWithoutAborting) {
  int polls = 0, aborts = 0;
  wait_or_abort(
      [&] {
        return Poll{++polls < 3 ? PollState::Pending : PollState::Done, {}};
      },
      [&] { ++aborts; }, 5.0, "all-to-all", "rank 0");
  EXPECT_EQ(polls, 3);
  EXPECT_EQ(aborts, 0);
}

TEST(StreamWait, AsynchronousErrorAbortsAndThrows) {
  int aborts = 0;
  try {
    wait_or_abort(
        [] {
          return Poll{PollState::Failed, "NCCL reported an asynchronous error: remote process exited"};
        },
        [&] { ++aborts; }, 5.0, "weight transfers", "rank 1 (node7, GPU 1)");
    FAIL() << "no CommError";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("weight transfers: NCCL reported"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rank 1 (node7, GPU 1)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(aborts, 1);
}

TEST(StreamWait, TimeoutAbortsAndThrows) {
  int aborts = 0;
  try {
    wait_or_abort(
        [] {
          return Poll{PollState::Pending, {}};
        },
        [&] { ++aborts; }, 0.05, "all-to-all of token rows", "rank 0");
    FAIL() << "no CommError";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("did not complete within"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("MOE_COMM_TIMEOUT_S"), std::string::npos) << e.what();
  }
  EXPECT_EQ(aborts, 1);
}

TEST(StreamWait, TeardownAbortsUnlessCleanAndDrained) {
  EXPECT_EQ(teardown_mode(false, false, true), Teardown::Destroy);
  EXPECT_EQ(teardown_mode(true, false, true), Teardown::Abort);    // an error was reported
  EXPECT_EQ(teardown_mode(false, true, true), Teardown::Abort);    // exchange never waited for
  EXPECT_EQ(teardown_mode(false, false, false), Teardown::Abort);  // streams did not drain in time
}

std::map<std::string, std::string> g_env;
const char* fake_getenv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}

TEST(DeviceSelect, LauncherLocalRankWinsOverSlurmLocalId) {
  g_env = {{"SLURM_LOCALID", "0"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}};
  EXPECT_EQ(local_rank_from_env(fake_getenv), 3);
  g_env = {{"SLURM_LOCALID", "2"}};
  EXPECT_EQ(local_rank_from_env(fake_getenv), 2);
  g_env = {{"MV2_COMM_WORLD_LOCAL_RANK", "1"}, {"SLURM_LOCALID", "5"}};
  EXPECT_EQ(local_rank_from_env(fake_getenv), 1);
  g_env = {{"MPI_LOCALRANKID", "4"}};
  EXPECT_EQ(local_rank_from_env(fake_getenv), 4);
}

TEST(DeviceSelect, MissingOrMalformedLocalRankIsNoChoice) {
  g_env = {};
  EXPECT_FALSE(local_rank_from_env(fake_getenv).has_value());
  g_env = {{"OMPI_COMM_WORLD_LOCAL_RANK", "x1"}, {"SLURM_LOCALID", "-1"}};
  EXPECT_FALSE(local_rank_from_env(fake_getenv).has_value());
  g_env = {{"OMPI_COMM_WORLD_LOCAL_RANK", ""}, {"SLURM_LOCALID", "6"}};
  EXPECT_EQ(local_rank_from_env(fake_getenv), 6);
}

}  // namespace
}  // namespace moe

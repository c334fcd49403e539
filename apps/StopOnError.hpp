#pragma once
// A Communicator that forwards to another and lets rank 0 stop the whole run
// after a rank-local failure it must not hide (a --timeline write error, e.g.
// a full disk): stop(message) on rank 0 makes the next barrier() on every rank
// throw a collective OutputError, so all ranks leave together, no rank waits
// in a collective, and rank 0 prints the one line. Its barrier() is an
// all-reduce of the stop flag, which synchronises like a barrier.

#include <string>

#include "comm/Communicator.hpp"
#include "runtime/common/OutputFiles.hpp"

namespace moe::app {

class StopOnError final : public Communicator {
 public:
  explicit StopOnError(Communicator& inner) : inner_(inner) {}

  /// Rank-local: asks every rank to stop at the next barrier() or check().
  void stop(const std::string& message) {
    if (message_.empty()) message_ = message;
  }
  /// Collective: throws OutputError (collective) on every rank when some rank asked to stop.
  void check() {
    if (inner_.allreduce_sum(message_.empty() ? 0 : 1) > 0)
      throw OutputError(message_.empty() ? "stopped by an output error on another rank" : message_, true);
  }

  std::string backend() const override { return inner_.backend(); }
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  void allgather(std::span<const int64_t> send, std::span<int64_t> recv) override { inner_.allgather(send, recv); }
  void allgather(std::span<const double> send, std::span<double> recv) override { inner_.allgather(send, recv); }
  void allgatherv(std::span<const float> send, std::span<float> recv, std::span<const int64_t> counts) override {
    inner_.allgatherv(send, recv, counts);
  }
  void alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                      std::span<const int64_t> recv_rows, int64_t row_len) override {
    inner_.alltoallv_rows(send, send_rows, recv, recv_rows, row_len);
  }
  void begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) override {
    inner_.begin_exchange(sends, recvs);
  }
  void wait_exchange() override { inner_.wait_exchange(); }
  void gatherv(std::span<const double> send, std::vector<double>& recv_on_root) override {
    inner_.gatherv(send, recv_on_root);
  }
  void* device_stream() const override { return inner_.device_stream(); }
  double allreduce_max(double v) override { return inner_.allreduce_max(v); }
  int64_t allreduce_sum(int64_t v) override { return inner_.allreduce_sum(v); }
  void barrier() override { check(); }

 private:
  Communicator& inner_;
  std::string message_;
};

}  // namespace moe::app

#pragma once
// MPI backend of the Communicator. Rows travel as a contiguous row datatype so
// that counts stay in `int` range (a 1M-slot x 7168 exchange is 1M rows, not
// 7.5G floats); point-to-point payloads are chunked below 2^31 bytes.

#include <mpi.h>

#include <vector>

#include "comm/Communicator.hpp"

namespace moe {

class MpiCommunicator final : public Communicator {
 public:
  /// Wraps (a duplicate of) `comm`; errors on it return instead of aborting,
  /// and every call's code is checked.
  /// `max_chunk_bytes` bounds one point-to-point message piece (tests lower it
  /// to exercise chunking).
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD, int64_t max_chunk_bytes = int64_t{1} << 30);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }

  void allgather(std::span<const int64_t> send, std::span<int64_t> recv) override;
  void allgather(std::span<const double> send, std::span<double> recv) override;
  void allgatherv(std::span<const float> send, std::span<float> recv, std::span<const int64_t> counts) override;
  void alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                      std::span<const int64_t> recv_rows, int64_t row_len) override;
  void begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) override;
  void wait_exchange() override;
  void gatherv(std::span<const double> send, std::vector<double>& recv_on_root) override;
  double allreduce_max(double v) override;
  int64_t allreduce_sum(int64_t v) override;
  void barrier() override;
  /// From MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): ranks that share memory.
  const std::vector<int>& node_of_rank() override;

 private:
  void check(int code, const char* call) const;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::string host_;
  int64_t max_chunk_bytes_;
  std::vector<MPI_Request> pending_;  // requests of the exchange in flight
};

}  // namespace moe

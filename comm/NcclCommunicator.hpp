#pragma once
// NCCL backend of the Communicator: one GPU per rank. Token all-to-all(v) is
// grouped ncclSend/ncclRecv; weight transfers (begin_exchange/wait_exchange)
// run on a second NCCL communicator and CUDA stream so that they overlap the
// token exchange; the small host-side collectives (counts, gates, reports)
// are staged through a small device buffer. Payload pointers may be device
// memory (the runtime's views on a Kokkos-CUDA build) or host memory (staged).
// Every CUDA and NCCL call is checked: a failure, an asynchronous NCCL error or
// a stalled operation throws CommError naming the call, rank, host and GPU,
// which the launcher turns into one line and an abort of the job.
//
// Never hangs behind a dead peer (StreamWait.hpp): host payloads move only
// through pinned buffers (asynchronous copies that cannot block the host) and
// reach the caller's memory after the stream's wait, so the timeout
// (MOE_COMM_TIMEOUT_S) and NCCL's asynchronous errors are always polled; after
// any failure, or with an exchange still in flight, the communicators are
// ended with ncclCommAbort, never a synchronise + ncclCommDestroy.
//
// Two communicators in flight at once (weights, then tokens): NCCL allows it
// when every rank issues their operations in the same order (the runtime does:
// begin_exchange, then the token all-to-all, then wait_exchange) and nothing
// synchronises the device meanwhile. This class does not: staging buffers are
// grow-only and stream-ordered (cudaMallocAsync/cudaFreeAsync), pinned blocks
// outgrown during an exchange are freed after it, and copies are asynchronous.
//
// Bootstrap: rank 0 creates the NCCL unique ids and broadcasts them over MPI.
// Only built on CUDA configurations (MOE_HAVE_NCCL).

#include <mpi.h>

#include <memory>

#include "comm/Communicator.hpp"

namespace moe {

class NcclCommunicator final : public Communicator {
 public:
  /// Collective over `comm`. This rank's GPU: `device` when >= 0; else, on a
  /// Kokkos-CUDA build, the device Kokkos selected (the current one); else the
  /// one chosen before MPI_Init (DeviceSelect.hpp); else its node-local rank
  /// (MPI_Comm_split_type shared) modulo the visible devices.
  /// Two ranks on one GPU are refused with a message pointing to --comm mpi.
  explicit NcclCommunicator(MPI_Comm comm = MPI_COMM_WORLD, int device = -1);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string backend() const override { return "nccl"; }
  int rank() const override;
  int size() const override;
  /// The CUDA device this rank uses.
  int device() const;
  /// The stream of the token all-to-all and the small collectives (cudaStream_t).
  void* device_stream() const override;

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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe

#pragma once
// The communication layer's interface. The runtime moves tokens, weights and
// counts only through it; backends are MPI (CPU, or GPU staged through host)
// and NCCL (GPU). Counts and displacements are 64-bit everywhere.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace moe {

/// One point-to-point message of a batched exchange.
struct P2PMessage {
  int peer = 0;
  int tag = 0;
  const void* send_buf = nullptr;  // for sends
  void* recv_buf = nullptr;        // for receives
  int64_t bytes = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// Every rank contributes `send.size()` values; recv gets size() * that many,
  /// rank r's block at r * send.size().
  virtual void allgather(std::span<const int64_t> send, std::span<int64_t> recv) = 0;
  virtual void allgather(std::span<const double> send, std::span<double> recv) = 0;

  /// Variable-length all-gather: rank p contributes counts[p] values; recv gets
  /// them packed in rank order.
  virtual void allgatherv(std::span<const float> send, std::span<float> recv, std::span<const int64_t> counts) = 0;

  /// All-to-all(v) of rows of `row_len` floats. send_rows[p] rows go to rank p
  /// from send (packed in rank order); recv_rows[p] rows arrive from rank p into
  /// recv (packed in rank order).
  virtual void alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                              std::span<const int64_t> recv_rows, int64_t row_len) = 0;

  /// Batched point-to-point: posts every receive and send and returns at once;
  /// the buffers must stay alive until wait_exchange(). One exchange at a time.
  /// Lets weight transfers overlap the token all-to-all.
  virtual void begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) = 0;
  virtual void wait_exchange() = 0;
  /// begin_exchange + wait_exchange.
  void exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) {
    begin_exchange(sends, recvs);
    wait_exchange();
  }

  /// Gathers variable-length double arrays to rank 0 (recv is ignored elsewhere).
  virtual void gatherv(std::span<const double> send, std::vector<double>& recv_on_root) = 0;

  /// Sums `values` over all ranks in place (host memory), in double and in
  /// rank order, so every rank gets the same floats (the backward's router
  /// weight gradient). Built on allgather: meant for small arrays.
  void allreduce_sum_floats(std::span<float> values);

  /// The device stream this backend's collectives run on (a cudaStream_t:
  /// NCCL's token stream), so that a phase clock can mark them on it; null
  /// for backends that run on the host (MPI, staged MPI).
  virtual void* device_stream() const { return nullptr; }

  virtual double allreduce_max(double v) = 0;
  virtual int64_t allreduce_sum(int64_t v) = 0;
  virtual void barrier() = 0;

  /// The node of every rank (0, 1, ... in order of each node's first rank).
  /// Collective on the first call, cached after. Backends whose transport
  /// knows the topology override this (MPI: shared-memory split); the default
  /// groups ranks by host name.
  virtual const std::vector<int>& node_of_rank();
  int ranks_on_node(int node);

 protected:
  std::vector<int> node_of_rank_;  // empty until first asked
};

/// Every rank's host name, on every rank (collective).
std::vector<std::string> gather_hostnames(Communicator& comm);

/// Numbers nodes 0, 1, ... in order of their first rank, from any per-rank key
/// that is equal exactly for ranks on one node.
std::vector<int> number_nodes(std::span<const int64_t> key_of_rank);

/// Thrown by a backend when a communication call fails; the message names the
/// call, the rank and the host.
class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace moe

#pragma once
// `--comm mpi` on GPUs: a decorator over the MPI communicator that stages
// device buffers through pinned host memory, so that no CUDA-aware MPI is
// needed and several ranks can share one GPU (which NCCL refuses). Host
// buffers pass straight through.
//
// Ordering (checked against a fake DeviceLayer in tests/comm, no GPU needed):
//   - device payloads are copied to pinned host memory on the layer's own
//     stream, and the stream is waited for, before the MPI call that reads them;
//   - received payloads are copied back to the device only after the MPI call
//     (or wait_exchange) has completed them, and the call returns once they are
//     on the device;
//   - the layer's stream is non-blocking: its copies do not order against the
//     caller's streams, so the caller completes (fences its execution-space
//     instance) whatever wrote a send buffer before handing it over, as it
//     must for MPI anyway;
//   - staging buffers are pinned, grow-only and reused across calls; the
//     exchange's buffer never moves while an exchange is in flight.
// The decorator holds no NCCL communicator: with `--comm mpi` the only
// communication in flight is MPI's, so two NCCL communicators can never be in
// flight at once on this path.

#include <memory>
#include <vector>

#include "comm/Communicator.hpp"
#include "comm/DeviceLayer.hpp"

namespace moe {

class StagedMpiCommunicator final : public Communicator {
 public:
  StagedMpiCommunicator(std::unique_ptr<Communicator> inner, std::unique_ptr<DeviceLayer> device);
  ~StagedMpiCommunicator() override;
  StagedMpiCommunicator(const StagedMpiCommunicator&) = delete;
  StagedMpiCommunicator& operator=(const StagedMpiCommunicator&) = delete;

  std::string backend() const override { return inner_->backend(); }
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }

  void allgather(std::span<const int64_t> send, std::span<int64_t> recv) override { inner_->allgather(send, recv); }
  void allgather(std::span<const double> send, std::span<double> recv) override { inner_->allgather(send, recv); }
  void allgatherv(std::span<const float> send, std::span<float> recv, std::span<const int64_t> counts) override;
  void alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                      std::span<const int64_t> recv_rows, int64_t row_len) override;
  void begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) override;
  void wait_exchange() override;
  void gatherv(std::span<const double> send, std::vector<double>& recv_on_root) override {
    inner_->gatherv(send, recv_on_root);
  }
  double allreduce_max(double v) override { return inner_->allreduce_max(v); }
  int64_t allreduce_sum(int64_t v) override { return inner_->allreduce_sum(v); }
  void barrier() override { inner_->barrier(); }

  /// Pinned bytes held for staging (grow-only; for tests and reports).
  size_t pinned_bytes() const;

 private:
  // Pinned host memory that grows on demand and is reused across calls.
  class HostBuffer {
   public:
    explicit HostBuffer(DeviceLayer& d) : dev_(&d) {}
    ~HostBuffer();
    HostBuffer(const HostBuffer&) = delete;
    HostBuffer& operator=(const HostBuffer&) = delete;
    char* reserve(size_t bytes);
    size_t capacity() const { return capacity_; }

   private:
    DeviceLayer* dev_;
    void* ptr_ = nullptr;
    size_t capacity_ = 0;
  };

  std::unique_ptr<Communicator> inner_;
  std::unique_ptr<DeviceLayer> dev_;
  HostBuffer send_stage_{*dev_}, recv_stage_{*dev_}, gates_send_{*dev_}, gates_recv_{*dev_};
  HostBuffer exchange_stage_{*dev_};  // staged messages of the exchange in flight
  struct CopyBack {
    void* device;
    const char* host;
    size_t bytes;
  };
  std::vector<CopyBack> copy_back_;
  bool in_flight_ = false;
};

}  // namespace moe

#pragma once
// `--comm mpi` on GPUs: a decorator over the MPI communicator that stages
// device buffers through pinned host memory, so that no CUDA-aware MPI is
// needed and several ranks can share one GPU (which NCCL refuses). Host
// buffers pass straight through. Device memory is recognised with
// cudaPointerGetAttributes. Only built on CUDA configurations.

#include <memory>
#include <vector>

#include "comm/Communicator.hpp"

namespace moe {

class StagedMpiCommunicator final : public Communicator {
 public:
  explicit StagedMpiCommunicator(std::unique_ptr<Communicator> inner);
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

 private:
  // Pinned host memory that grows on demand.
  class HostBuffer {
   public:
    HostBuffer() = default;
    ~HostBuffer();
    HostBuffer(const HostBuffer&) = delete;
    HostBuffer& operator=(const HostBuffer&) = delete;
    char* reserve(size_t bytes, const StagedMpiCommunicator& owner);

   private:
    void* ptr_ = nullptr;
    size_t capacity_ = 0;
  };
  void check(int cuda_error, const char* call) const;

  std::unique_ptr<Communicator> inner_;
  HostBuffer send_stage_, recv_stage_, gates_send_, gates_recv_;
  HostBuffer exchange_stage_;  // staged messages of the exchange in flight
  struct CopyBack {
    void* device;
    const char* host;
    size_t bytes;
  };
  std::vector<CopyBack> copy_back_;
  bool in_flight_ = false;
};

}  // namespace moe

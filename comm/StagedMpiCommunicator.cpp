#include "comm/StagedMpiCommunicator.hpp"

#include <cuda_runtime.h>
#include <mpi.h>

#include <algorithm>
#include <string>

namespace moe {

namespace {
bool on_device(const void* p) {
  if (p == nullptr) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();  // host memory on old runtimes, or no device: not staged
    return false;
  }
  return attr.type == cudaMemoryTypeDevice;
}

constexpr size_t kAlign = 256;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

StagedMpiCommunicator::HostBuffer::~HostBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

char* StagedMpiCommunicator::HostBuffer::reserve(size_t bytes, const StagedMpiCommunicator& owner) {
  if (bytes > capacity_) {
    const size_t want = std::max(bytes, 2 * capacity_);
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    capacity_ = 0;
    owner.check(cudaMallocHost(&ptr_, want), "cudaMallocHost");
    capacity_ = want;
  }
  return static_cast<char*>(ptr_);
}

StagedMpiCommunicator::StagedMpiCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}

StagedMpiCommunicator::~StagedMpiCommunicator() = default;

void StagedMpiCommunicator::check(int cuda_error, const char* call) const {
  if (cuda_error == static_cast<int>(cudaSuccess)) return;
  const auto e = static_cast<cudaError_t>(cuda_error);
  cudaGetLastError();
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  int dev = -1;
  if (cudaGetDevice(&dev) != cudaSuccess) dev = -1;
  throw CommError(std::string(call) + " failed on rank " + std::to_string(inner_->rank()) + " (" +
                  std::string(name, static_cast<size_t>(len)) + ", GPU " + std::to_string(dev) +
                  "): " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
}

void StagedMpiCommunicator::allgatherv(std::span<const float> send, std::span<float> recv,
                                       std::span<const int64_t> counts) {
  const bool send_dev = !send.empty() && on_device(send.data());
  const bool recv_dev = !recv.empty() && on_device(recv.data());
  if (!send_dev && !recv_dev) return inner_->allgatherv(send, recv, counts);
  std::span<const float> s = send;
  std::span<float> r = recv;
  if (send_dev) {
    float* h = reinterpret_cast<float*>(gates_send_.reserve(send.size_bytes(), *this));
    check(cudaMemcpy(h, send.data(), send.size_bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy");
    s = std::span<const float>(h, send.size());
  }
  if (recv_dev) r = std::span<float>(reinterpret_cast<float*>(gates_recv_.reserve(recv.size_bytes(), *this)), recv.size());
  inner_->allgatherv(s, r, counts);
  if (recv_dev) check(cudaMemcpy(recv.data(), r.data(), recv.size_bytes(), cudaMemcpyHostToDevice), "cudaMemcpy");
}

void StagedMpiCommunicator::alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                                           std::span<const int64_t> recv_rows, int64_t row_len) {
  int64_t srows = 0, rrows = 0;
  for (int64_t v : send_rows) srows += v;
  for (int64_t v : recv_rows) rrows += v;
  const size_t row_bytes = static_cast<size_t>(std::max<int64_t>(row_len, 0)) * sizeof(float);
  const size_t sbytes = static_cast<size_t>(srows) * row_bytes, rbytes = static_cast<size_t>(rrows) * row_bytes;
  const bool send_dev = sbytes > 0 && on_device(send);
  const bool recv_dev = rbytes > 0 && on_device(recv);
  if (!send_dev && !recv_dev) return inner_->alltoallv_rows(send, send_rows, recv, recv_rows, row_len);
  const float* s = send;
  float* r = recv;
  if (send_dev) {
    char* h = send_stage_.reserve(sbytes, *this);
    check(cudaMemcpy(h, send, sbytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
    s = reinterpret_cast<const float*>(h);
  }
  if (recv_dev) r = reinterpret_cast<float*>(recv_stage_.reserve(rbytes, *this));
  inner_->alltoallv_rows(s, send_rows, r, recv_rows, row_len);
  if (recv_dev) check(cudaMemcpy(recv, r, rbytes, cudaMemcpyHostToDevice), "cudaMemcpy");
}

void StagedMpiCommunicator::begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) {
  if (in_flight_) throw CommError("begin_exchange called while another exchange is in flight");
  std::vector<P2PMessage> s(sends.begin(), sends.end()), r(recvs.begin(), recvs.end());
  std::vector<bool> s_dev(s.size()), r_dev(r.size());
  size_t bytes = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if ((s_dev[i] = s[i].bytes > 0 && on_device(s[i].send_buf))) bytes += aligned(static_cast<size_t>(s[i].bytes));
  for (size_t i = 0; i < r.size(); ++i)
    if ((r_dev[i] = r[i].bytes > 0 && on_device(r[i].recv_buf))) bytes += aligned(static_cast<size_t>(r[i].bytes));
  if (bytes > 0) {
    char* base = exchange_stage_.reserve(bytes, *this);
    size_t at = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (!s_dev[i]) continue;
      check(cudaMemcpy(base + at, s[i].send_buf, static_cast<size_t>(s[i].bytes), cudaMemcpyDeviceToHost),
            "cudaMemcpy");
      s[i].send_buf = base + at;
      at += aligned(static_cast<size_t>(s[i].bytes));
    }
    for (size_t i = 0; i < r.size(); ++i) {
      if (!r_dev[i]) continue;
      copy_back_.push_back({r[i].recv_buf, base + at, static_cast<size_t>(r[i].bytes)});
      r[i].recv_buf = base + at;
      at += aligned(static_cast<size_t>(r[i].bytes));
    }
  }
  inner_->begin_exchange(s, r);
  in_flight_ = true;
}

void StagedMpiCommunicator::wait_exchange() {
  inner_->wait_exchange();
  in_flight_ = false;
  std::vector<CopyBack> pending;
  pending.swap(copy_back_);
  for (const auto& c : pending) check(cudaMemcpy(c.device, c.host, c.bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
}

}  // namespace moe

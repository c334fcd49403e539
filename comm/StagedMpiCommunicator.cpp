#include "comm/StagedMpiCommunicator.hpp"

#include <algorithm>
#include <string>

#include "comm/StagingAlign.hpp"

namespace moe {

StagedMpiCommunicator::HostBuffer::~HostBuffer() {
  if (ptr_) dev_->free_pinned(ptr_);
}

char* StagedMpiCommunicator::HostBuffer::reserve(size_t bytes) {
  if (bytes > capacity_) {
    const size_t want = std::max(bytes, 2 * capacity_);
    if (ptr_) dev_->free_pinned(ptr_);
    ptr_ = nullptr;
    capacity_ = 0;
    ptr_ = dev_->alloc_pinned(want);
    capacity_ = want;
  }
  return static_cast<char*>(ptr_);
}

StagedMpiCommunicator::StagedMpiCommunicator(std::unique_ptr<Communicator> inner, std::unique_ptr<DeviceLayer> device)
    : inner_(std::move(inner)), dev_(std::move(device)) {}

StagedMpiCommunicator::~StagedMpiCommunicator() = default;

size_t StagedMpiCommunicator::pinned_bytes() const {
  return send_stage_.capacity() + recv_stage_.capacity() + gates_send_.capacity() + gates_recv_.capacity() +
         exchange_stage_.capacity();
}

void StagedMpiCommunicator::allgatherv(std::span<const float> send, std::span<float> recv,
                                       std::span<const int64_t> counts) {
  const bool send_dev = !send.empty() && dev_->is_device(send.data());
  const bool recv_dev = !recv.empty() && dev_->is_device(recv.data());
  if (!send_dev && !recv_dev) return inner_->allgatherv(send, recv, counts);
  std::span<const float> s = send;
  std::span<float> r = recv;
  if (send_dev) {
    float* h = reinterpret_cast<float*>(gates_send_.reserve(send.size_bytes()));
    dev_->copy_to_host_async(h, send.data(), send.size_bytes());
    dev_->synchronize();
    s = std::span<const float>(h, send.size());
  }
  if (recv_dev) r = std::span<float>(reinterpret_cast<float*>(gates_recv_.reserve(recv.size_bytes())), recv.size());
  inner_->allgatherv(s, r, counts);
  if (recv_dev) {
    dev_->copy_to_device_async(recv.data(), r.data(), recv.size_bytes());
    dev_->synchronize();
  }
}

void StagedMpiCommunicator::alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                                           std::span<const int64_t> recv_rows, int64_t row_len) {
  int64_t srows = 0, rrows = 0;
  for (int64_t v : send_rows) srows += v;
  for (int64_t v : recv_rows) rrows += v;
  const size_t row_bytes = static_cast<size_t>(std::max<int64_t>(row_len, 0)) * sizeof(float);
  const size_t sbytes = static_cast<size_t>(std::max<int64_t>(srows, 0)) * row_bytes;
  const size_t rbytes = static_cast<size_t>(std::max<int64_t>(rrows, 0)) * row_bytes;
  const bool send_dev = sbytes > 0 && dev_->is_device(send);
  const bool recv_dev = rbytes > 0 && dev_->is_device(recv);
  if (!send_dev && !recv_dev) return inner_->alltoallv_rows(send, send_rows, recv, recv_rows, row_len);
  const float* s = send;
  float* r = recv;
  if (send_dev) {
    char* h = send_stage_.reserve(sbytes);
    dev_->copy_to_host_async(h, send, sbytes);
    dev_->synchronize();
    s = reinterpret_cast<const float*>(h);
  }
  if (recv_dev) r = reinterpret_cast<float*>(recv_stage_.reserve(rbytes));
  inner_->alltoallv_rows(s, send_rows, r, recv_rows, row_len);
  if (recv_dev) {
    dev_->copy_to_device_async(recv, r, rbytes);
    dev_->synchronize();
  }
}

void StagedMpiCommunicator::begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) {
  if (in_flight_) throw CommError("begin_exchange called while another exchange is in flight");
  std::vector<P2PMessage> s(sends.begin(), sends.end()), r(recvs.begin(), recvs.end());
  std::vector<bool> s_dev(s.size()), r_dev(r.size());
  size_t bytes = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if ((s_dev[i] = s[i].bytes > 0 && dev_->is_device(s[i].send_buf)))
      bytes += staging_aligned(static_cast<size_t>(s[i].bytes));
  for (size_t i = 0; i < r.size(); ++i)
    if ((r_dev[i] = r[i].bytes > 0 && dev_->is_device(r[i].recv_buf)))
      bytes += staging_aligned(static_cast<size_t>(r[i].bytes));
  copy_back_.clear();
  if (bytes > 0) {
    // Grown only here, while nothing is in flight: posted MPI requests never
    // point into freed memory.
    char* base = exchange_stage_.reserve(bytes);
    size_t at = 0;
    bool copied = false;
    for (size_t i = 0; i < s.size(); ++i) {
      if (!s_dev[i]) continue;
      dev_->copy_to_host_async(base + at, s[i].send_buf, static_cast<size_t>(s[i].bytes));
      copied = true;
      s[i].send_buf = base + at;
      at += staging_aligned(static_cast<size_t>(s[i].bytes));
    }
    for (size_t i = 0; i < r.size(); ++i) {
      if (!r_dev[i]) continue;
      copy_back_.push_back({r[i].recv_buf, base + at, static_cast<size_t>(r[i].bytes)});
      r[i].recv_buf = base + at;
      at += staging_aligned(static_cast<size_t>(r[i].bytes));
    }
    if (copied) dev_->synchronize();  // every staged send is on the host before MPI reads it
  }
  inner_->begin_exchange(s, r);
  in_flight_ = true;
}

void StagedMpiCommunicator::wait_exchange() {
  if (!in_flight_) return inner_->wait_exchange();
  inner_->wait_exchange();
  in_flight_ = false;
  std::vector<CopyBack> pending;
  pending.swap(copy_back_);
  for (const auto& c : pending) dev_->copy_to_device_async(c.device, c.host, c.bytes);
  if (!pending.empty()) dev_->synchronize();  // on the device before the caller reads it
}

}  // namespace moe

#include "comm/NcclCommunicator.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace moe {

namespace {

// A device allocation that grows on demand (never while in use).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  /// Ensures room for `bytes`; returns the cudaMalloc/cudaFree error, if any.
  cudaError_t reserve(size_t bytes) {
    if (bytes <= capacity_) return cudaSuccess;
    release();
    const size_t want = std::max(bytes, capacity_ * 2);
    const cudaError_t e = cudaMalloc(&ptr_, want);
    if (e == cudaSuccess) capacity_ = want;
    else ptr_ = nullptr;
    return e;
  }
  char* get() const { return static_cast<char*>(ptr_); }
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    capacity_ = 0;
  }

 private:
  void* ptr_ = nullptr;
  size_t capacity_ = 0;
};

bool device_accessible(const void* p) {
  if (p == nullptr) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

constexpr size_t kAlign = 256;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

double timeout_from_env() {
  if (const char* v = std::getenv("MOE_COMM_TIMEOUT_S")) {
    const double t = std::atof(v);
    if (t > 0.0) return t;
  }
  return 600.0;
}

}  // namespace

struct NcclCommunicator::Impl {
  MPI_Comm mpi = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  int device = -1;
  std::string host;
  ncclComm_t main = nullptr;     // token all-to-all and the collectives
  ncclComm_t weights = nullptr;  // weight transfers, overlapping the tokens
  cudaStream_t s_main = nullptr;
  cudaStream_t s_weights = nullptr;
  DeviceBuffer small;                     // staged host collectives
  DeviceBuffer stage_send, stage_recv;    // host payloads of the all-to-all
  DeviceBuffer stage_exchange;            // host payloads of an exchange
  struct CopyBack {
    void* host;
    size_t offset;
    size_t bytes;
  };
  std::vector<CopyBack> copy_back;  // received into staging, copied out by wait_exchange
  bool in_flight = false;
  double timeout_s = 600.0;

  std::string where() const {
    return "rank " + std::to_string(rank) + " (" + host +
           (device >= 0 ? ", GPU " + std::to_string(device) : std::string()) + ")";
  }
  // "<what> (rank r (host, GPU d))" for errors that are not a failed call.
  [[noreturn]] void fail(const std::string& what) const { throw CommError(what + " [" + where() + "]"); }
  // "<call> failed on rank r (host, GPU d): <detail>", as the MPI backend words it.
  [[noreturn]] void fail_call(const char* call, const std::string& detail) const {
    throw CommError(std::string(call) + " failed on " + where() + ": " + detail);
  }

  void cuda(cudaError_t e, const char* call) const {
    if (e == cudaSuccess) return;
    cudaGetLastError();
    fail_call(call, std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")");
  }
  void nccl(ncclResult_t r, const char* call) const {
    if (r == ncclSuccess) return;
    std::string detail = ncclGetErrorString(r);
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
    if (const char* last = ncclGetLastError(nullptr); last && *last) detail += std::string(": ") + last;
#endif
    fail_call(call, detail);
  }
  void mpi_check(int code, const char* call) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    fail_call(call, std::string(text, static_cast<size_t>(len)));
  }

  void abort_comms() {
    if (main) ncclCommAbort(main);
    if (weights) ncclCommAbort(weights);
    main = weights = nullptr;
  }

  // Waits for `stream` without hanging: polls NCCL's asynchronous error state
  // of `comm` and gives up after timeout_s (a peer that died never arrives).
  void wait(cudaStream_t stream, ncclComm_t comm, const char* what) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int spins = 0;; ++spins) {
      const cudaError_t q = cudaStreamQuery(stream);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) {
        abort_comms();
        cuda(q, "cudaStreamQuery");
      }
      ncclResult_t async = ncclSuccess;
      nccl(ncclCommGetAsyncError(comm, &async), "ncclCommGetAsyncError");
      if (async != ncclSuccess
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
          && async != ncclInProgress
#endif
      ) {
        abort_comms();
        fail(std::string(what) + ": NCCL reported an asynchronous error: " + ncclGetErrorString(async));
      }
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (waited > timeout_s) {
        abort_comms();
        fail(std::string(what) + " did not complete within " + std::to_string(static_cast<int>(timeout_s)) +
             " s (a peer rank may have failed; MOE_COMM_TIMEOUT_S sets the limit)");
      }
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // Device pointer for a payload: `p` itself when a kernel can use it, else
  // room in `stage` (filled from `p` when `copy_in`) at `offset`.
  char* device_ptr(const void* p, size_t bytes, DeviceBuffer& stage, size_t offset, bool copy_in,
                   cudaStream_t stream) const {
    if (bytes == 0 || device_accessible(p)) return static_cast<char*>(const_cast<void*>(p));
    char* d = stage.get() + offset;
    if (copy_in) cuda(cudaMemcpyAsync(d, p, bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
    return d;
  }

  // Runs `body` (NCCL calls) between ncclGroupStart/End; the group is always
  // closed, and the first failure is reported after it.
  template <class F>
  void group(F&& body) {
    nccl(ncclGroupStart(), "ncclGroupStart");
    ncclResult_t first = ncclSuccess;
    const char* first_call = nullptr;
    body([&](ncclResult_t r, const char* call) {
      if (r != ncclSuccess && first == ncclSuccess) {
        first = r;
        first_call = call;
      }
    });
    const ncclResult_t end = ncclGroupEnd();
    if (first != ncclSuccess) nccl(first, first_call);
    nccl(end, "ncclGroupEnd");
  }

  // Host <-> small device buffer around one collective on the main stream.
  template <class T, class F>
  void staged(const T* in, size_t in_count, size_t in_offset, T* out, size_t out_count, F&& op, const char* what) {
    const size_t bytes = std::max(in_offset + in_count, out_count) * sizeof(T);
    cuda(small.reserve(std::max<size_t>(bytes, kAlign)), "cudaMalloc");
    T* d = reinterpret_cast<T*>(small.get());
    if (in_count)
      cuda(cudaMemcpyAsync(d + in_offset, in, in_count * sizeof(T), cudaMemcpyHostToDevice, s_main),
           "cudaMemcpyAsync");
    op(d);
    if (out_count)
      cuda(cudaMemcpyAsync(out, d, out_count * sizeof(T), cudaMemcpyDeviceToHost, s_main), "cudaMemcpyAsync");
    wait(s_main, main, what);
  }
};

NcclCommunicator::NcclCommunicator(MPI_Comm comm, int device) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.timeout_s = timeout_from_env();
  MPI_Comm_dup(comm, &m.mpi);
  MPI_Comm_set_errhandler(m.mpi, MPI_ERRORS_RETURN);
  MPI_Comm_rank(m.mpi, &m.rank);
  MPI_Comm_size(m.mpi, &m.size);
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  m.host.assign(name, static_cast<size_t>(len));

  // This rank's GPU, from its node-local rank.
  MPI_Comm local = MPI_COMM_NULL;
  m.mpi_check(MPI_Comm_split_type(m.mpi, MPI_COMM_TYPE_SHARED, m.rank, MPI_INFO_NULL, &local),
              "MPI_Comm_split_type");
  int local_rank = 0;
  MPI_Comm_rank(local, &local_rank);
  MPI_Comm_free(&local);
  int ndev = 0;
  const cudaError_t count_err = cudaGetDeviceCount(&ndev);
  if (count_err != cudaSuccess || ndev == 0) {
    cudaGetLastError();
    m.fail(std::string("--comm nccl needs one CUDA GPU per rank, but cudaGetDeviceCount found none (") +
           cudaGetErrorString(count_err) + "); use --comm mpi without GPUs");
  }
  if (device >= 0) {
    m.device = device;
  } else {
#ifdef MOE_KOKKOS_HAS_CUDA
    m.cuda(cudaGetDevice(&m.device), "cudaGetDevice");  // Kokkos has chosen and set it
#else
    m.device = local_rank % ndev;
#endif
  }
  m.cuda(cudaSetDevice(m.device), "cudaSetDevice");

  // NCCL refuses two ranks on one GPU (with an error that does not say how to
  // fix it): detect it first. Rank 0 reports; the others wait to be aborted.
  constexpr int kBus = 32;
  constexpr int kId = MPI_MAX_PROCESSOR_NAME + kBus;
  std::vector<char> mine(kId, '\0'), all(static_cast<size_t>(kId) * m.size, '\0');
  std::memcpy(mine.data(), m.host.data(), std::min<size_t>(m.host.size(), MPI_MAX_PROCESSOR_NAME - 1));
  m.cuda(cudaDeviceGetPCIBusId(mine.data() + MPI_MAX_PROCESSOR_NAME, kBus, m.device), "cudaDeviceGetPCIBusId");
  m.mpi_check(MPI_Allgather(mine.data(), kId, MPI_CHAR, all.data(), kId, MPI_CHAR, m.mpi), "MPI_Allgather");
  for (int i = 0; i < m.size; ++i)
    for (int j = i + 1; j < m.size; ++j)
      if (std::memcmp(&all[static_cast<size_t>(i) * kId], &all[static_cast<size_t>(j) * kId], kId) == 0) {
        const std::string msg = "--comm nccl: ranks " + std::to_string(i) + " and " + std::to_string(j) +
                                " share GPU " + std::string(&all[static_cast<size_t>(i) * kId + MPI_MAX_PROCESSOR_NAME]) +
                                " on " + std::string(&all[static_cast<size_t>(i) * kId]) +
                                "; NCCL needs one GPU per rank: start at most one rank per GPU, or use --comm mpi "
                                "(device buffers staged through host) to share a GPU";
        if (m.rank != 0) MPI_Barrier(m.mpi);  // rank 0 aborts the job; this never returns normally
        m.fail(msg);
      }

  ncclUniqueId ids[2];
  std::memset(ids, 0, sizeof ids);
  if (m.rank == 0) {
    m.nccl(ncclGetUniqueId(&ids[0]), "ncclGetUniqueId");
    m.nccl(ncclGetUniqueId(&ids[1]), "ncclGetUniqueId");
  }
  m.mpi_check(MPI_Bcast(ids, static_cast<int>(sizeof ids), MPI_BYTE, 0, m.mpi), "MPI_Bcast");
  m.cuda(cudaStreamCreateWithFlags(&m.s_main, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  m.cuda(cudaStreamCreateWithFlags(&m.s_weights, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  m.nccl(ncclCommInitRank(&m.main, m.size, ids[0], m.rank), "ncclCommInitRank");
  m.nccl(ncclCommInitRank(&m.weights, m.size, ids[1], m.rank), "ncclCommInitRank (weights communicator)");
}

NcclCommunicator::~NcclCommunicator() {
  if (!impl_) return;
  Impl& m = *impl_;
  // Best effort, never throwing: finish what is in flight, then tear down.
  if (m.s_weights) cudaStreamSynchronize(m.s_weights);
  if (m.s_main) cudaStreamSynchronize(m.s_main);
  if (m.main) ncclCommDestroy(m.main);
  if (m.weights) ncclCommDestroy(m.weights);
  m.small.release();
  m.stage_send.release();
  m.stage_recv.release();
  m.stage_exchange.release();
  if (m.s_main) cudaStreamDestroy(m.s_main);
  if (m.s_weights) cudaStreamDestroy(m.s_weights);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && m.mpi != MPI_COMM_NULL) MPI_Comm_free(&m.mpi);
}

int NcclCommunicator::rank() const { return impl_->rank; }
int NcclCommunicator::size() const { return impl_->size; }
int NcclCommunicator::device() const { return impl_->device; }

void NcclCommunicator::allgather(std::span<const int64_t> send, std::span<int64_t> recv) {
  Impl& m = *impl_;
  const size_t n = send.size();
  if (recv.size() < n * static_cast<size_t>(m.size)) m.fail("allgather: receive buffer too small");
  if (n == 0) return;
  m.staged(send.data(), n, n * static_cast<size_t>(m.rank), recv.data(), n * static_cast<size_t>(m.size),
           [&](int64_t* d) {
             m.nccl(ncclAllGather(d + n * static_cast<size_t>(m.rank), d, n, ncclInt64, m.main, m.s_main),
                    "ncclAllGather");
           },
           "all-gather of counts");
}

void NcclCommunicator::allgather(std::span<const double> send, std::span<double> recv) {
  Impl& m = *impl_;
  const size_t n = send.size();
  if (recv.size() < n * static_cast<size_t>(m.size)) m.fail("allgather: receive buffer too small");
  if (n == 0) return;
  m.staged(send.data(), n, n * static_cast<size_t>(m.rank), recv.data(), n * static_cast<size_t>(m.size),
           [&](double* d) {
             m.nccl(ncclAllGather(d + n * static_cast<size_t>(m.rank), d, n, ncclFloat64, m.main, m.s_main),
                    "ncclAllGather");
           },
           "all-gather");
}

void NcclCommunicator::allgatherv(std::span<const float> send, std::span<float> recv,
                                  std::span<const int64_t> counts) {
  // NCCL has no all-gather-v: one in-place broadcast per rank, grouped.
  Impl& m = *impl_;
  std::vector<size_t> off(static_cast<size_t>(m.size) + 1, 0);
  for (int p = 0; p < m.size; ++p) off[p + 1] = off[p] + static_cast<size_t>(counts[p]);
  if (static_cast<int64_t>(send.size()) != counts[m.rank]) m.fail("allgatherv: send size differs from counts[rank]");
  if (recv.size() < off[m.size]) m.fail("allgatherv: receive buffer too small");
  if (off[m.size] == 0) return;
  m.staged(send.data(), send.size(), off[m.rank], recv.data(), off[m.size],
           [&](float* d) {
             m.group([&](auto note) {
               for (int p = 0; p < m.size; ++p)
                 if (counts[p] > 0)
                   note(ncclBroadcast(d + off[p], d + off[p], static_cast<size_t>(counts[p]), ncclFloat, p, m.main,
                                      m.s_main),
                        "ncclBroadcast");
             });
           },
           "all-gather of gates");
}

void NcclCommunicator::alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                                      std::span<const int64_t> recv_rows, int64_t row_len) {
  Impl& m = *impl_;
  const int P = m.size, me = m.rank;
  if (static_cast<int>(send_rows.size()) != P || static_cast<int>(recv_rows.size()) != P)
    m.fail("alltoallv_rows: counts must have one entry per rank");
  if (row_len <= 0) return;
  const size_t rb = static_cast<size_t>(row_len) * sizeof(float);
  std::vector<size_t> soff(P + 1, 0), roff(P + 1, 0);
  for (int p = 0; p < P; ++p) {
    if (send_rows[p] < 0 || recv_rows[p] < 0) m.fail("alltoallv_rows: negative row count");
    soff[p + 1] = soff[p] + static_cast<size_t>(send_rows[p]) * rb;
    roff[p + 1] = roff[p] + static_cast<size_t>(recv_rows[p]) * rb;
  }
  const size_t send_bytes = soff[P], recv_bytes = roff[P];
  // Host payloads go through device staging buffers.
  const bool recv_staged = recv_bytes > 0 && !device_accessible(recv);
  if (send_bytes > 0 && !device_accessible(send)) m.cuda(m.stage_send.reserve(send_bytes), "cudaMalloc");
  if (recv_staged) m.cuda(m.stage_recv.reserve(recv_bytes), "cudaMalloc");
  const char* s = m.device_ptr(send, send_bytes, m.stage_send, 0, true, m.s_main);
  char* r = m.device_ptr(recv, recv_bytes, m.stage_recv, 0, false, m.s_main);
  // This rank's own rows: a device copy.
  if (send_rows[me] != recv_rows[me]) m.fail("alltoallv_rows: rows sent to self differ from rows received from self");
  if (send_rows[me] > 0)
    m.cuda(cudaMemcpyAsync(r + roff[me], s + soff[me], soff[me + 1] - soff[me], cudaMemcpyDeviceToDevice, m.s_main),
           "cudaMemcpyAsync");
  m.group([&](auto note) {
    for (int p = 0; p < P; ++p) {
      if (p == me) continue;
      if (send_rows[p] > 0) note(ncclSend(s + soff[p], soff[p + 1] - soff[p], ncclInt8, p, m.main, m.s_main), "ncclSend");
      if (recv_rows[p] > 0) note(ncclRecv(r + roff[p], roff[p + 1] - roff[p], ncclInt8, p, m.main, m.s_main), "ncclRecv");
    }
  });
  if (recv_staged)
    m.cuda(cudaMemcpyAsync(recv, r, recv_bytes, cudaMemcpyDeviceToHost, m.s_main), "cudaMemcpyAsync");
  m.wait(m.s_main, m.main, "all-to-all of token rows");
}

void NcclCommunicator::begin_exchange(std::span<const P2PMessage> sends_in, std::span<const P2PMessage> recvs_in) {
  Impl& m = *impl_;
  if (m.in_flight) m.fail("begin_exchange called while another exchange is in flight");
  // NCCL has no tags: messages between a pair of ranks match in the order they
  // are issued. Both sides order them by (peer, tag), so they line up.
  auto by_peer_tag = [](const P2PMessage& a, const P2PMessage& b) {
    return a.peer != b.peer ? a.peer < b.peer : a.tag < b.tag;
  };
  std::vector<P2PMessage> sends(sends_in.begin(), sends_in.end()), recvs(recvs_in.begin(), recvs_in.end());
  std::stable_sort(sends.begin(), sends.end(), by_peer_tag);
  std::stable_sort(recvs.begin(), recvs.end(), by_peer_tag);
  // Host payloads are staged in one device buffer.
  size_t stage_bytes = 0;
  for (const auto& x : sends)
    if (x.bytes > 0 && !device_accessible(x.send_buf)) stage_bytes += aligned(static_cast<size_t>(x.bytes));
  for (const auto& x : recvs)
    if (x.bytes > 0 && !device_accessible(x.recv_buf)) stage_bytes += aligned(static_cast<size_t>(x.bytes));
  if (stage_bytes) m.cuda(m.stage_exchange.reserve(stage_bytes), "cudaMalloc");
  size_t at = 0;
  std::vector<const char*> sptr;
  std::vector<char*> rptr;
  m.copy_back.clear();
  for (const auto& x : sends) {
    const size_t b = static_cast<size_t>(std::max<int64_t>(x.bytes, 0));
    const bool staged = b > 0 && !device_accessible(x.send_buf);
    sptr.push_back(m.device_ptr(x.send_buf, b, m.stage_exchange, at, true, m.s_weights));
    if (staged) at += aligned(b);
  }
  for (const auto& x : recvs) {
    const size_t b = static_cast<size_t>(std::max<int64_t>(x.bytes, 0));
    const bool staged = b > 0 && !device_accessible(x.recv_buf);
    rptr.push_back(m.device_ptr(x.recv_buf, b, m.stage_exchange, at, false, m.s_weights));
    if (staged) {
      m.copy_back.push_back({x.recv_buf, at, b});
      at += aligned(b);
    }
  }
  m.group([&](auto note) {
    for (size_t i = 0; i < recvs.size(); ++i)
      if (recvs[i].bytes > 0)
        note(ncclRecv(rptr[i], static_cast<size_t>(recvs[i].bytes), ncclInt8, recvs[i].peer, m.weights, m.s_weights),
             "ncclRecv (weights)");
    for (size_t i = 0; i < sends.size(); ++i)
      if (sends[i].bytes > 0)
        note(ncclSend(sptr[i], static_cast<size_t>(sends[i].bytes), ncclInt8, sends[i].peer, m.weights, m.s_weights),
             "ncclSend (weights)");
  });
  m.in_flight = true;
}

void NcclCommunicator::wait_exchange() {
  Impl& m = *impl_;
  if (!m.in_flight) return;
  for (const auto& c : m.copy_back)
    m.cuda(cudaMemcpyAsync(c.host, m.stage_exchange.get() + c.offset, c.bytes, cudaMemcpyDeviceToHost, m.s_weights),
           "cudaMemcpyAsync");
  m.wait(m.s_weights, m.weights, "weight transfers");
  m.copy_back.clear();
  m.in_flight = false;
}

void NcclCommunicator::gatherv(std::span<const double> send, std::vector<double>& recv_on_root) {
  Impl& m = *impl_;
  const int64_t n = static_cast<int64_t>(send.size());
  std::vector<int64_t> counts(static_cast<size_t>(m.size));
  allgather(std::span<const int64_t>(&n, 1), counts);
  std::vector<size_t> off(static_cast<size_t>(m.size) + 1, 0);
  for (int p = 0; p < m.size; ++p) off[p + 1] = off[p] + static_cast<size_t>(counts[p]);
  const size_t total = off[m.size];
  if (m.rank == 0) recv_on_root.assign(total, 0.0);
  if (total == 0) return;
  // Each rank's own values go to the front of the buffer: the root's block is
  // at offset 0 of the result, the others send from there.
  m.staged(send.data(), send.size(), 0, m.rank == 0 ? recv_on_root.data() : nullptr,
           m.rank == 0 ? total : 0,
           [&](double* d) {
             m.group([&](auto note) {
               if (m.rank == 0) {
                 for (int p = 1; p < m.size; ++p)
                   if (counts[p] > 0)
                     note(ncclRecv(d + off[p], static_cast<size_t>(counts[p]), ncclFloat64, p, m.main, m.s_main),
                          "ncclRecv");
               } else if (n > 0) {
                 note(ncclSend(d, static_cast<size_t>(n), ncclFloat64, 0, m.main, m.s_main), "ncclSend");
               }
             });
           },
           "gather of results");
}

double NcclCommunicator::allreduce_max(double v) {
  Impl& m = *impl_;
  double out = v;
  m.staged(&v, 1, 0, &out, 1,
           [&](double* d) { m.nccl(ncclAllReduce(d, d, 1, ncclFloat64, ncclMax, m.main, m.s_main), "ncclAllReduce"); },
           "all-reduce");
  return out;
}

int64_t NcclCommunicator::allreduce_sum(int64_t v) {
  Impl& m = *impl_;
  int64_t out = v;
  m.staged(&v, 1, 0, &out, 1,
           [&](int64_t* d) { m.nccl(ncclAllReduce(d, d, 1, ncclInt64, ncclSum, m.main, m.s_main), "ncclAllReduce"); },
           "all-reduce");
  return out;
}

void NcclCommunicator::barrier() { allreduce_sum(0); }

}  // namespace moe

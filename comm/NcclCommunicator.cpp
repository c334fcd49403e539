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

#include "comm/DeviceSelect.hpp"
#include "comm/StagingAlign.hpp"
#include "comm/StreamWait.hpp"

namespace moe {

namespace {

// A device allocation that grows on demand and is reused across calls. Stream
// ordered (cudaMallocAsync/cudaFreeAsync on the stream that uses it), so that
// growing it never synchronises the device: a cudaFree while the other NCCL
// communicator's kernels are in flight would wait for them (and could hang
// behind a peer).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  /// Ensures room for `bytes`, ordered on `stream`; returns the CUDA error, if any.
  cudaError_t reserve(size_t bytes, cudaStream_t stream) {
    if (bytes <= capacity_) return cudaSuccess;
    const size_t want = std::max(bytes, capacity_ * 2);
    if (ptr_) cudaFreeAsync(ptr_, stream);  // after the stream's earlier uses of it
    ptr_ = nullptr;
    capacity_ = 0;
    stream_ = stream;
    const cudaError_t e = cudaMallocAsync(&ptr_, want, stream);
    if (e == cudaSuccess)
      capacity_ = want;
    else
      ptr_ = nullptr;
    return e;
  }
  char* get() const { return static_cast<char*>(ptr_); }
  void release() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);
    ptr_ = nullptr;
    capacity_ = 0;
  }

 private:
  void* ptr_ = nullptr;
  size_t capacity_ = 0;
  cudaStream_t stream_ = nullptr;
};

// Pinned host memory that grows on demand: copies between it and the device
// are truly asynchronous, so nothing queued before a wait() blocks the host
// and the timeout can fire. An outgrown block is retired, not freed, while an
// exchange is in flight (cudaFreeHost may synchronise the device).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { release(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  cudaError_t reserve(size_t bytes, std::vector<void*>* retire_to) {
    if (bytes <= capacity_) return cudaSuccess;
    const size_t want = std::max(bytes, capacity_ * 2);
    if (ptr_) {
      if (retire_to)
        retire_to->push_back(ptr_);
      else
        cudaFreeHost(ptr_);
    }
    ptr_ = nullptr;
    capacity_ = 0;
    const cudaError_t e = cudaMallocHost(&ptr_, want);
    if (e == cudaSuccess)
      capacity_ = want;
    else
      ptr_ = nullptr;
    return e;
  }
  char* get() const { return static_cast<char*>(ptr_); }
  void release() {
    if (ptr_) cudaFreeHost(ptr_);
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
  // Host payloads: staged through pinned host memory and device memory, both
  // grow-only and reused. Device buffers on s_main unless named "exchange".
  DeviceBuffer small_dev, send_dev, recv_dev, exchange_dev;
  PinnedBuffer small_host, send_host, recv_host, exchange_host;
  std::vector<void*> retired_pinned;  // outgrown pinned blocks, freed when nothing is in flight
  struct CopyBack {
    void* host;
    size_t offset;
    size_t bytes;
  };
  std::vector<CopyBack> copy_back;  // received into exchange_host, copied out after the wait
  bool in_flight = false;
  mutable bool failed = false;  // an error was reported: tear down with ncclCommAbort
  double timeout_s = 600.0;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { teardown(); }

  std::string where() const {
    return "rank " + std::to_string(rank) + " (" + host +
           (device >= 0 ? ", GPU " + std::to_string(device) : std::string()) + ")";
  }
  // "<what> (rank r (host, GPU d))" for errors that are not a failed call.
  [[noreturn]] void fail(const std::string& what) const {
    failed = true;
    throw CommError(what + " [" + where() + "]");
  }
  // "<call> failed on rank r (host, GPU d): <detail>", as the MPI backend words it.
  [[noreturn]] void fail_call(const char* call, const std::string& detail) const {
    failed = true;
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

  // Ends both communicators without waiting for the peers (a dead peer would
  // hang ncclCommDestroy); the kernels in flight are stopped.
  void abort_comms() {
    failed = true;
    if (main) ncclCommAbort(main);
    if (weights) ncclCommAbort(weights);
    main = weights = nullptr;
  }

  // One look at `stream` and the asynchronous error state of `comm`.
  Poll poll(cudaStream_t stream, ncclComm_t comm) const {
    const cudaError_t q = cudaStreamQuery(stream);
    if (q == cudaSuccess) return {PollState::Done, {}};
    if (q != cudaErrorNotReady) {
      cudaGetLastError();
      return {PollState::Failed,
              std::string("cudaStreamQuery: ") + cudaGetErrorString(q) + " (" + cudaGetErrorName(q) + ")"};
    }
    if (comm == nullptr) return {PollState::Pending, {}};
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm, &async);
    if (r != ncclSuccess) return {PollState::Failed, std::string("ncclCommGetAsyncError: ") + ncclGetErrorString(r)};
    if (async != ncclSuccess
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
        && async != ncclInProgress
#endif
    )
      return {PollState::Failed, std::string("NCCL reported an asynchronous error: ") + ncclGetErrorString(async)};
    return {PollState::Pending, {}};
  }

  // Waits for `stream` without hanging: polls NCCL's asynchronous error state
  // of `comm` and gives up after timeout_s (a peer that died never arrives);
  // either way the communicators are aborted and CommError is thrown.
  void wait(cudaStream_t stream, ncclComm_t comm, const char* what) {
    try {
      wait_or_abort([&] { return poll(stream, comm); }, [&] { abort_comms(); }, timeout_s, what, where());
    } catch (...) {
      failed = true;
      throw;
    }
  }

  void flush_retired() {
    if (in_flight) return;
    for (void* p : retired_pinned) cudaFreeHost(p);
    retired_pinned.clear();
  }
  std::vector<void*>* retire_list() { return in_flight ? &retired_pinned : nullptr; }

  // Best effort, never throwing. Destroys the communicators only when nothing
  // failed, no exchange is left in flight and both streams drained within a
  // bounded time; else aborts them (teardown_mode in StreamWait.hpp).
  void teardown() {
    bool drained = !failed && !in_flight;
    if (drained) {
      const auto t0 = std::chrono::steady_clock::now();
      const double limit = std::min(timeout_s, 30.0);
      for (int spins = 0;; ++spins) {
        const Poll a = s_main ? poll(s_main, main) : Poll{PollState::Done, {}};
        const Poll b = s_weights ? poll(s_weights, weights) : Poll{PollState::Done, {}};
        if (a.state == PollState::Failed || b.state == PollState::Failed) {
          drained = false;
          break;
        }
        if (a.state == PollState::Done && b.state == PollState::Done) break;
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit) {
          drained = false;
          break;
        }
        if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
    if (teardown_mode(failed, in_flight, drained) == Teardown::Abort) {
      abort_comms();
    } else {
      if (main) ncclCommDestroy(main);
      if (weights) ncclCommDestroy(weights);
      main = weights = nullptr;
    }
    small_dev.release();
    send_dev.release();
    recv_dev.release();
    exchange_dev.release();
    if (s_main) cudaStreamSynchronize(s_main);  // the communicators are gone: nothing can wait on a peer now
    if (s_weights) cudaStreamSynchronize(s_weights);
    in_flight = false;
    flush_retired();
    small_host.release();
    send_host.release();
    recv_host.release();
    exchange_host.release();
    if (s_main) cudaStreamDestroy(s_main);
    if (s_weights) cudaStreamDestroy(s_weights);
    s_main = s_weights = nullptr;
    cudaGetLastError();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && mpi != MPI_COMM_NULL) MPI_Comm_free(&mpi);
    mpi = MPI_COMM_NULL;
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

  // Host -> pinned -> small device buffer around one collective on the main
  // stream; the result goes device -> pinned, and to `out` only after the wait.
  template <class T, class F>
  void staged(const T* in, size_t in_count, size_t in_offset, T* out, size_t out_count, F&& op, const char* what) {
    const size_t bytes = std::max<size_t>(std::max(in_offset + in_count, out_count) * sizeof(T), kStagingAlign);
    cuda(small_dev.reserve(bytes, s_main), "cudaMallocAsync");
    cuda(small_host.reserve(bytes, retire_list()), "cudaMallocHost");
    T* d = reinterpret_cast<T*>(small_dev.get());
    T* h = reinterpret_cast<T*>(small_host.get());
    if (in_count) {
      std::memcpy(h + in_offset, in, in_count * sizeof(T));
      cuda(cudaMemcpyAsync(d + in_offset, h + in_offset, in_count * sizeof(T), cudaMemcpyHostToDevice, s_main),
           "cudaMemcpyAsync");
    }
    op(d);
    if (out_count)
      cuda(cudaMemcpyAsync(h, d, out_count * sizeof(T), cudaMemcpyDeviceToHost, s_main), "cudaMemcpyAsync");
    wait(s_main, main, what);
    if (out_count) std::memcpy(out, h, out_count * sizeof(T));
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
  m.mpi_check(MPI_Comm_split_type(m.mpi, MPI_COMM_TYPE_SHARED, m.rank, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
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
    if (preselected_device() >= 0)
      m.cuda(cudaGetDevice(&m.device), "cudaGetDevice");  // chosen before MPI_Init
    else
      m.device = local_rank % ndev;  // fallback: no local rank in the launcher's environment
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
                                " share GPU " +
                                std::string(&all[static_cast<size_t>(i) * kId + MPI_MAX_PROCESSOR_NAME]) + " on " +
                                std::string(&all[static_cast<size_t>(i) * kId]) +
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

NcclCommunicator::~NcclCommunicator() = default;  // Impl::teardown: destroy, or abort after a failure

int NcclCommunicator::rank() const { return impl_->rank; }
int NcclCommunicator::size() const { return impl_->size; }
int NcclCommunicator::device() const { return impl_->device; }
void* NcclCommunicator::device_stream() const { return impl_->s_main; }

void NcclCommunicator::allgather(std::span<const int64_t> send, std::span<int64_t> recv) {
  Impl& m = *impl_;
  const size_t n = send.size();
  if (recv.size() < n * static_cast<size_t>(m.size)) m.fail("allgather: receive buffer too small");
  if (n == 0) return;
  m.staged(
      send.data(), n, n * static_cast<size_t>(m.rank), recv.data(), n * static_cast<size_t>(m.size),
      [&](int64_t* d) {
        m.nccl(ncclAllGather(d + n * static_cast<size_t>(m.rank), d, n, ncclInt64, m.main, m.s_main), "ncclAllGather");
      },
      "all-gather of counts");
}

void NcclCommunicator::allgather(std::span<const double> send, std::span<double> recv) {
  Impl& m = *impl_;
  const size_t n = send.size();
  if (recv.size() < n * static_cast<size_t>(m.size)) m.fail("allgather: receive buffer too small");
  if (n == 0) return;
  m.staged(
      send.data(), n, n * static_cast<size_t>(m.rank), recv.data(), n * static_cast<size_t>(m.size),
      [&](double* d) {
        m.nccl(ncclAllGather(d + n * static_cast<size_t>(m.rank), d, n, ncclFloat64, m.main, m.s_main),
               "ncclAllGather");
      },
      "all-gather");
}

void NcclCommunicator::allgatherv(std::span<const float> send, std::span<float> recv, std::span<const int64_t> counts) {
  // NCCL has no all-gather-v: one in-place broadcast per rank, grouped.
  Impl& m = *impl_;
  std::vector<size_t> off(static_cast<size_t>(m.size) + 1, 0);
  for (int p = 0; p < m.size; ++p) off[p + 1] = off[p] + static_cast<size_t>(counts[p]);
  if (static_cast<int64_t>(send.size()) != counts[m.rank]) m.fail("allgatherv: send size differs from counts[rank]");
  if (recv.size() < off[m.size]) m.fail("allgatherv: receive buffer too small");
  if (off[m.size] == 0) return;
  m.staged(
      send.data(), send.size(), off[m.rank], recv.data(), off[m.size],
      [&](float* d) {
        m.group([&](auto note) {
          for (int p = 0; p < m.size; ++p)
            if (counts[p] > 0)
              note(
                  ncclBroadcast(d + off[p], d + off[p], static_cast<size_t>(counts[p]), ncclFloat, p, m.main, m.s_main),
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
  // Host payloads go through pinned host and device staging buffers (grow-only).
  const bool send_staged = send_bytes > 0 && !device_accessible(send);
  const bool recv_staged = recv_bytes > 0 && !device_accessible(recv);
  const char* s = reinterpret_cast<const char*>(send);
  char* r = reinterpret_cast<char*>(recv);
  if (send_staged) {
    m.cuda(m.send_dev.reserve(send_bytes, m.s_main), "cudaMallocAsync");
    m.cuda(m.send_host.reserve(send_bytes, m.retire_list()), "cudaMallocHost");
    std::memcpy(m.send_host.get(), send, send_bytes);
    m.cuda(cudaMemcpyAsync(m.send_dev.get(), m.send_host.get(), send_bytes, cudaMemcpyHostToDevice, m.s_main),
           "cudaMemcpyAsync");
    s = m.send_dev.get();
  }
  if (recv_staged) {
    m.cuda(m.recv_dev.reserve(recv_bytes, m.s_main), "cudaMallocAsync");
    m.cuda(m.recv_host.reserve(recv_bytes, m.retire_list()), "cudaMallocHost");
    r = m.recv_dev.get();
  }
  // This rank's own rows: a device copy.
  if (send_rows[me] != recv_rows[me]) m.fail("alltoallv_rows: rows sent to self differ from rows received from self");
  if (send_rows[me] > 0)
    m.cuda(cudaMemcpyAsync(r + roff[me], s + soff[me], soff[me + 1] - soff[me], cudaMemcpyDeviceToDevice, m.s_main),
           "cudaMemcpyAsync");
  m.group([&](auto note) {
    for (int p = 0; p < P; ++p) {
      if (p == me) continue;
      if (send_rows[p] > 0)
        note(ncclSend(s + soff[p], soff[p + 1] - soff[p], ncclInt8, p, m.main, m.s_main), "ncclSend");
      if (recv_rows[p] > 0)
        note(ncclRecv(r + roff[p], roff[p + 1] - roff[p], ncclInt8, p, m.main, m.s_main), "ncclRecv");
    }
  });
  if (recv_staged)  // into pinned memory: never blocks, so the wait below can time out
    m.cuda(cudaMemcpyAsync(m.recv_host.get(), r, recv_bytes, cudaMemcpyDeviceToHost, m.s_main), "cudaMemcpyAsync");
  m.wait(m.s_main, m.main, "all-to-all of token rows");
  if (recv_staged) std::memcpy(recv, m.recv_host.get(), recv_bytes);
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
  // Host payloads are staged in one pinned and one device buffer (grow-only;
  // grown only here, while no exchange is in flight).
  size_t stage_bytes = 0;
  for (const auto& x : sends)
    if (x.bytes > 0 && !device_accessible(x.send_buf)) stage_bytes += staging_aligned(static_cast<size_t>(x.bytes));
  for (const auto& x : recvs)
    if (x.bytes > 0 && !device_accessible(x.recv_buf)) stage_bytes += staging_aligned(static_cast<size_t>(x.bytes));
  if (stage_bytes) {
    m.cuda(m.exchange_dev.reserve(stage_bytes, m.s_weights), "cudaMallocAsync");
    m.cuda(m.exchange_host.reserve(stage_bytes, nullptr), "cudaMallocHost");
  }
  size_t at = 0;
  std::vector<const char*> sptr;
  std::vector<char*> rptr;
  m.copy_back.clear();
  for (const auto& x : sends) {
    const size_t b = static_cast<size_t>(std::max<int64_t>(x.bytes, 0));
    if (b > 0 && !device_accessible(x.send_buf)) {
      std::memcpy(m.exchange_host.get() + at, x.send_buf, b);
      m.cuda(cudaMemcpyAsync(m.exchange_dev.get() + at, m.exchange_host.get() + at, b, cudaMemcpyHostToDevice,
                             m.s_weights),
             "cudaMemcpyAsync");
      sptr.push_back(m.exchange_dev.get() + at);
      at += staging_aligned(b);
    } else {
      sptr.push_back(static_cast<const char*>(x.send_buf));
    }
  }
  for (const auto& x : recvs) {
    const size_t b = static_cast<size_t>(std::max<int64_t>(x.bytes, 0));
    if (b > 0 && !device_accessible(x.recv_buf)) {
      m.copy_back.push_back({x.recv_buf, at, b});
      rptr.push_back(m.exchange_dev.get() + at);
      at += staging_aligned(b);
    } else {
      rptr.push_back(static_cast<char*>(x.recv_buf));
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
  // Staged receives come back to pinned memory behind the transfers on the same
  // stream (asynchronous, never blocking the host); wait_exchange copies them
  // to the caller's memory after its wait.
  for (const auto& c : m.copy_back)
    m.cuda(cudaMemcpyAsync(m.exchange_host.get() + c.offset, m.exchange_dev.get() + c.offset, c.bytes,
                           cudaMemcpyDeviceToHost, m.s_weights),
           "cudaMemcpyAsync");
  m.in_flight = true;
}

void NcclCommunicator::wait_exchange() {
  Impl& m = *impl_;
  if (!m.in_flight) return;
  m.wait(m.s_weights, m.weights, "weight transfers");
  for (const auto& c : m.copy_back) std::memcpy(c.host, m.exchange_host.get() + c.offset, c.bytes);
  m.copy_back.clear();
  m.in_flight = false;
  m.flush_retired();
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
  m.staged(
      send.data(), send.size(), 0, m.rank == 0 ? recv_on_root.data() : nullptr, m.rank == 0 ? total : 0,
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
  m.staged(
      &v, 1, 0, &out, 1,
      [&](double* d) { m.nccl(ncclAllReduce(d, d, 1, ncclFloat64, ncclMax, m.main, m.s_main), "ncclAllReduce"); },
      "all-reduce");
  return out;
}

int64_t NcclCommunicator::allreduce_sum(int64_t v) {
  Impl& m = *impl_;
  int64_t out = v;
  m.staged(
      &v, 1, 0, &out, 1,
      [&](int64_t* d) { m.nccl(ncclAllReduce(d, d, 1, ncclInt64, ncclSum, m.main, m.s_main), "ncclAllReduce"); },
      "all-reduce");
  return out;
}

void NcclCommunicator::barrier() { allreduce_sum(0); }

}  // namespace moe

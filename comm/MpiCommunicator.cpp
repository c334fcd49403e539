#include "comm/MpiCommunicator.hpp"

#include <algorithm>
#include <string>

#include <climits>

namespace moe {

namespace {
int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw CommError(std::string("MPI backend: ") + what + " = " + std::to_string(v) +
                    " does not fit an MPI count; use fewer tokens per rank or more ranks");
  return static_cast<int>(v);
}
}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, int64_t max_chunk_bytes)
    : max_chunk_bytes_(std::clamp<int64_t>(max_chunk_bytes, 1, INT_MAX)) {
  MPI_Comm_dup(comm, &comm_);
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  host_.assign(name, static_cast<size_t>(len));
}

const std::vector<int>& MpiCommunicator::node_of_rank() {
  if (node_of_rank_.empty()) {
    // Key of a node: the world rank of its first rank (rank 0 of the split).
    MPI_Comm shared = MPI_COMM_NULL;
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &shared), "MPI_Comm_split_type");
    int local = 0;
    MPI_Comm_rank(shared, &local);
    int64_t leader = local == 0 ? rank_ : 0;
    check(MPI_Bcast(&leader, 1, MPI_INT64_T, 0, shared), "MPI_Bcast");
    MPI_Comm_free(&shared);
    std::vector<int64_t> keys(static_cast<size_t>(size_));
    allgather(std::span<const int64_t>(&leader, 1), keys);
    node_of_rank_ = number_nodes(keys);
  }
  return node_of_rank_;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::check(int code, const char* call) const {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw CommError(std::string(call) + " failed on rank " + std::to_string(rank_) + " (" + host_ +
                  "): " + std::string(text, static_cast<size_t>(len)));
}

void MpiCommunicator::allgather(std::span<const int64_t> send, std::span<int64_t> recv) {
  check(MPI_Allgather(send.data(), to_int(static_cast<int64_t>(send.size()), "allgather count"), MPI_INT64_T,
                      recv.data(), static_cast<int>(send.size()), MPI_INT64_T, comm_),
        "MPI_Allgather");
}

void MpiCommunicator::allgather(std::span<const double> send, std::span<double> recv) {
  check(MPI_Allgather(send.data(), to_int(static_cast<int64_t>(send.size()), "allgather count"), MPI_DOUBLE,
                      recv.data(), static_cast<int>(send.size()), MPI_DOUBLE, comm_),
        "MPI_Allgather");
}

void MpiCommunicator::allgatherv(std::span<const float> send, std::span<float> recv, std::span<const int64_t> counts) {
  std::vector<int> c(size_), d(size_);
  int64_t off = 0;
  for (int p = 0; p < size_; ++p) {
    c[p] = to_int(counts[p], "allgatherv count");
    d[p] = to_int(off, "allgatherv displacement");
    off += counts[p];
  }
  static float dummy = 0.0f;
  check(
      MPI_Allgatherv(send.empty() ? &dummy : send.data(), to_int(static_cast<int64_t>(send.size()), "allgatherv count"),
                     MPI_FLOAT, recv.empty() ? &dummy : recv.data(), c.data(), d.data(), MPI_FLOAT, comm_),
      "MPI_Allgatherv");
}

void MpiCommunicator::alltoallv_rows(const float* send, std::span<const int64_t> send_rows, float* recv,
                                     std::span<const int64_t> recv_rows, int64_t row_len) {
  // Counts and displacements are in rows of a contiguous datatype.
  std::vector<int> scount(size_), sdispl(size_), rcount(size_), rdispl(size_);
  int64_t soff = 0, roff = 0;
  for (int p = 0; p < size_; ++p) {
    scount[p] = to_int(send_rows[p], "rows sent to one rank");
    rcount[p] = to_int(recv_rows[p], "rows received from one rank");
    sdispl[p] = to_int(soff, "send displacement in rows");
    rdispl[p] = to_int(roff, "receive displacement in rows");
    soff += send_rows[p];
    roff += recv_rows[p];
  }
  if (row_len <= 0) return;
  MPI_Datatype row;
  check(MPI_Type_contiguous(to_int(row_len, "row length"), MPI_FLOAT, &row), "MPI_Type_contiguous");
  check(MPI_Type_commit(&row), "MPI_Type_commit");
  // Non-null pointers even for empty buffers: some MPIs reject null with count 0.
  static float dummy = 0.0f;
  const int code = MPI_Alltoallv(send ? send : &dummy, scount.data(), sdispl.data(), row, recv ? recv : &dummy,
                                 rcount.data(), rdispl.data(), row, comm_);
  MPI_Type_free(&row);
  check(code, "MPI_Alltoallv");
}

void MpiCommunicator::begin_exchange(std::span<const P2PMessage> sends, std::span<const P2PMessage> recvs) {
  if (!pending_.empty()) throw CommError("begin_exchange called while another exchange is in flight");
  std::vector<MPI_Request>& reqs = pending_;
  auto post = [&](const P2PMessage& m, bool is_send) {
    // Big payloads go in chunks on the same tag: MPI keeps messages between a
    // pair of ranks on one tag in order, so the chunks match up.
    for (int64_t off = 0; off < m.bytes; off += max_chunk_bytes_) {
      const int n = static_cast<int>(std::min(max_chunk_bytes_, m.bytes - off));
      MPI_Request req;
      if (is_send)
        check(MPI_Isend(static_cast<const char*>(m.send_buf) + off, n, MPI_BYTE, m.peer, m.tag, comm_, &req),
              "MPI_Isend");
      else
        check(MPI_Irecv(static_cast<char*>(m.recv_buf) + off, n, MPI_BYTE, m.peer, m.tag, comm_, &req), "MPI_Irecv");
      reqs.push_back(req);
    }
  };
  for (const auto& m : recvs) post(m, false);
  for (const auto& m : sends) post(m, true);
}

void MpiCommunicator::wait_exchange() {
  if (pending_.empty()) return;
  std::vector<MPI_Request> reqs;
  reqs.swap(pending_);
  check(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
}

void MpiCommunicator::gatherv(std::span<const double> send, std::vector<double>& recv_on_root) {
  const int n = to_int(static_cast<int64_t>(send.size()), "gatherv count");
  std::vector<int> counts(size_), displs(size_);
  check(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm_), "MPI_Gather");
  int64_t total = 0;
  if (rank_ == 0) {
    for (int p = 0; p < size_; ++p) {
      displs[p] = to_int(total, "gatherv displacement");
      total += counts[p];
    }
    recv_on_root.assign(static_cast<size_t>(total), 0.0);
  }
  static double dummy = 0.0;
  check(MPI_Gatherv(send.empty() ? &dummy : send.data(), n, MPI_DOUBLE,
                    rank_ == 0 && total > 0 ? recv_on_root.data() : &dummy, counts.data(), displs.data(), MPI_DOUBLE, 0,
                    comm_),
        "MPI_Gatherv");
}

double MpiCommunicator::allreduce_max(double v) {
  double out = 0.0;
  check(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, comm_), "MPI_Allreduce");
  return out;
}

int64_t MpiCommunicator::allreduce_sum(int64_t v) {
  int64_t out = 0;
  check(MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce");
  return out;
}

void MpiCommunicator::barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

}  // namespace moe

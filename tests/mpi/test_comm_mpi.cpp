// The MPI communicator on real ranks: every payload is checked against what
// the sender must have put there, computed independently on the receiver.
#include <mpi.h>

#include <numeric>

#include <gtest/gtest.h>

#include "comm/MpiCommunicator.hpp"

using namespace moe;

namespace {
// Rows rank q sends to rank p, and the value of element (i, j) of them.
int64_t rows_between(int q, int p) { return (q * 7 + p * 3) % 5; }
float value(int q, int p, int64_t i, int64_t j) { return static_cast<float>(q * 1000 + p * 100 + i * 10 + j); }
}  // namespace

TEST(MpiCommunicator, AlltoallvRowsDeliversEveryRowToItsRank) {
  MpiCommunicator comm;
  const int P = comm.size(), me = comm.rank();
  const int64_t L = 6;
  std::vector<int64_t> send_rows(P), recv_rows(P);
  std::vector<float> send;
  for (int p = 0; p < P; ++p) {
    send_rows[p] = rows_between(me, p);
    recv_rows[p] = rows_between(p, me);
    for (int64_t i = 0; i < send_rows[p]; ++i)
      for (int64_t j = 0; j < L; ++j) send.push_back(value(me, p, i, j));
  }
  std::vector<float> recv(static_cast<size_t>(std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0}) * L));
  comm.alltoallv_rows(send.data(), send_rows, recv.data(), recv_rows, L);
  size_t k = 0;
  for (int q = 0; q < P; ++q)
    for (int64_t i = 0; i < recv_rows[q]; ++i)
      for (int64_t j = 0; j < L; ++j) ASSERT_EQ(recv[k++], value(q, me, i, j));
}

TEST(MpiCommunicator, ChunkedPointToPointReassemblesLargeMessages) {
  // 7-byte chunks force every message into many pieces.
  MpiCommunicator comm(MPI_COMM_WORLD, 7);
  const int P = comm.size(), me = comm.rank();
  const int next = (me + 1) % P, prev = (me + P - 1) % P;
  std::vector<int32_t> out(1001), in(1001, -1);
  std::iota(out.begin(), out.end(), me * 100000);
  std::vector<P2PMessage> sends{{next, 5, out.data(), nullptr, static_cast<int64_t>(out.size() * 4)}};
  std::vector<P2PMessage> recvs{{prev, 5, nullptr, in.data(), static_cast<int64_t>(in.size() * 4)}};
  comm.begin_exchange(sends, recvs);
  comm.wait_exchange();
  for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(in[i], static_cast<int32_t>(prev * 100000 + i));
}

TEST(MpiCommunicator, GathersAndReductions) {
  MpiCommunicator comm;
  const int P = comm.size(), me = comm.rank();
  std::vector<int64_t> mine = {me, 10 * me}, all(2 * P);
  comm.allgather(mine, all);
  for (int p = 0; p < P; ++p) {
    EXPECT_EQ(all[2 * p], p);
    EXPECT_EQ(all[2 * p + 1], 10 * p);
  }
  std::vector<float> part(static_cast<size_t>(me + 1), static_cast<float>(me));
  std::vector<int64_t> counts(P);
  for (int p = 0; p < P; ++p) counts[p] = p + 1;
  std::vector<float> joined(static_cast<size_t>(P * (P + 1) / 2));
  comm.allgatherv(part, joined, counts);
  size_t k = 0;
  for (int p = 0; p < P; ++p)
    for (int i = 0; i <= p; ++i) EXPECT_EQ(joined[k++], static_cast<float>(p));
  std::vector<double> root;
  comm.gatherv(std::vector<double>(static_cast<size_t>(me), 1.5), root);
  if (me == 0) {
    EXPECT_EQ(root.size(), static_cast<size_t>(P * (P - 1) / 2));
  }
  EXPECT_EQ(comm.allreduce_sum(me), static_cast<int64_t>(P * (P - 1) / 2));
  EXPECT_EQ(comm.allreduce_max(static_cast<double>(me)), static_cast<double>(P - 1));
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) ::testing::GTEST_FLAG(output) = "";
  int failed = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}

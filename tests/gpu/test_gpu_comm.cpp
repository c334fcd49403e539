// GPU checks (label: gpu) for the first machine with a GPU: the NCCL
// communicator (one rank, its own GPU: self all-to-all, exchange and
// collectives, with device and with host payloads), the staged MPI path with
// the real CUDA device layer, and the cuBLAS fp32 GEMM behind gemm_nn on
// Kokkos-CUDA builds. Without a visible device every test skips, saying so.
#include <cuda_runtime.h>
#include <mpi.h>

#include <cmath>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "comm/DeviceLayer.hpp"
#include "comm/MpiCommunicator.hpp"
#include "comm/NcclCommunicator.hpp"
#include "comm/StagedMpiCommunicator.hpp"
#include "kernels/cuda/CublasGemm.hpp"
#include "kernels/cuda/CudaRuntime.hpp"

namespace {

#define MOE_SKIP_WITHOUT_GPU()                                                    \
  do {                                                                            \
    if (moe::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible"; \
  } while (0)

template <class T>
struct DeviceArray {
  explicit DeviceArray(size_t count) : n(count) { EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess); }
  ~DeviceArray() { cudaFree(p); }
  void put(const std::vector<T>& h) {
    ASSERT_EQ(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> get() const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
  T* p = nullptr;
  size_t n;
};

std::vector<float> iota(size_t n, float from) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = from + static_cast<float>(i);
  return v;
}

TEST(GpuNccl, SelfAlltoallAndExchangeWithDeviceAndHostPayloads) {
  MOE_SKIP_WITHOUT_GPU();
  moe::NcclCommunicator comm(MPI_COMM_WORLD, 0);
  ASSERT_EQ(comm.size(), 1);
  const int64_t rows = 5, len = 7;
  const std::vector<int64_t> counts{rows};
  // Device payloads.
  DeviceArray<float> ds(rows * len), dr(rows * len);
  ds.put(iota(rows * len, 1.0f));
  comm.alltoallv_rows(ds.p, counts, dr.p, counts, len);
  EXPECT_EQ(dr.get(), iota(rows * len, 1.0f));
  // Host payloads (staged through pinned memory), several times: buffers reused.
  for (int step = 0; step < 3; ++step) {
    std::vector<float> hs = iota(rows * len, static_cast<float>(step)), hr(rows * len);
    comm.alltoallv_rows(hs.data(), counts, hr.data(), counts, len);
    EXPECT_EQ(hr, hs);
  }
  // Exchange: one device and one host message to self.
  DeviceArray<float> dw(64), dw_in(64);
  dw.put(iota(64, 100.0f));
  std::vector<float> hw = iota(32, -5.0f), hw_in(32);
  const std::vector<moe::P2PMessage> sends{{0, 1, dw.p, nullptr, 64 * 4}, {0, 2, hw.data(), nullptr, 32 * 4}};
  const std::vector<moe::P2PMessage> recvs{{0, 1, nullptr, dw_in.p, 64 * 4}, {0, 2, nullptr, hw_in.data(), 32 * 4}};
  comm.begin_exchange(sends, recvs);
  comm.wait_exchange();
  EXPECT_EQ(dw_in.get(), iota(64, 100.0f));
  EXPECT_EQ(hw_in, hw);
  // Collectives.
  EXPECT_EQ(comm.allreduce_sum(41), 41);
  EXPECT_EQ(comm.allreduce_max(2.5), 2.5);
  std::vector<double> gathered;
  const std::vector<double> mine{1.0, 2.0};
  comm.gatherv(mine, gathered);
  EXPECT_EQ(gathered, mine);
}

TEST(GpuStagedMpi, DevicePayloadsThroughPinnedHost) {
  MOE_SKIP_WITHOUT_GPU();
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  moe::StagedMpiCommunicator comm(std::make_unique<moe::MpiCommunicator>(MPI_COMM_WORLD),
                                  moe::make_cuda_device_layer());
  const int64_t rows = 4, len = 3;
  const std::vector<int64_t> counts{rows};
  DeviceArray<float> ds(rows * len), dr(rows * len);
  ds.put(iota(rows * len, 3.0f));
  comm.alltoallv_rows(ds.p, counts, dr.p, counts, len);
  EXPECT_EQ(dr.get(), iota(rows * len, 3.0f));
  DeviceArray<float> dw(16), dw_in(16);
  dw.put(iota(16, 9.0f));
  const std::vector<moe::P2PMessage> sends{{0, 4, dw.p, nullptr, 16 * 4}};
  const std::vector<moe::P2PMessage> recvs{{0, 4, nullptr, dw_in.p, 16 * 4}};
  comm.begin_exchange(sends, recvs);
  comm.wait_exchange();
  EXPECT_EQ(dw_in.get(), iota(16, 9.0f));
}

TEST(GpuCublas, GemmF32MatchesHostReference) {
  MOE_SKIP_WITHOUT_GPU();
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  const int64_t m = 37, k = 29, n = 53;
  std::vector<float> a(m * k), b(k * n), c(m * n, 1.0f), ref(m * n);
  for (int64_t i = 0; i < m * k; ++i) a[i] = std::sin(0.1f * static_cast<float>(i));
  for (int64_t i = 0; i < k * n; ++i) b[i] = std::cos(0.07f * static_cast<float>(i));
  const float beta = 0.5f;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) acc += static_cast<double>(a[i * k + p]) * b[p * n + j];
      ref[i * n + j] = static_cast<float>(acc + beta * 1.0);
    }
  DeviceArray<float> da(a.size()), db(b.size()), dc(c.size());
  da.put(a);
  db.put(b);
  dc.put(c);
  moe::cuda::gemm_f32(nullptr, m, n, k, da.p, k, db.p, n, dc.p, n, beta);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> got = dc.get();
  for (int64_t i = 0; i < m * n; ++i) ASSERT_NEAR(got[i], ref[i], 1e-4f * (1.0f + std::fabs(ref[i]))) << i;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  MPI_Init(&argc, &argv);
  const int code = RUN_ALL_TESTS();
  MPI_Finalize();
  return code;
}

// The cuBLAS expert path (what `moe-ep emulate` times on a GPU) against a host
// double-precision reference: fp32 within 1e-5, bf16/fp16 within 2e-2
// relative (max |diff| / max |ref|). Needs a GPU: skipped where none is
// visible (CI), so these bars are only checked on a GPU machine.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/CublasGemm.hpp"
#include "kernels/cuda/CudaExpertRunner.hpp"

using namespace moe::cuda;

namespace {

#define REQUIRE_GPU() \
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device visible"

std::vector<float> uniform(std::mt19937& rng, size_t n, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

double max_rel_err(const std::vector<float>& out, const std::vector<double>& ref) {
  double d = 0.0, m = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(out[i]) - ref[i]));
    m = std::max(m, std::abs(ref[i]));
  }
  return m > 0.0 ? d / m : d;
}

// Rounds through the dtype, as the device sees its inputs.
float round_to(float v, DType t) {
  if (t == DType::F32) return v;
  if (t == DType::BF16) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
    std::memcpy(&v, &b, 4);
    return v;
  }
  // fp16: values here are well inside its range; round to 11 significant bits.
  int e = 0;
  const float m = std::frexp(v, &e);
  return std::ldexp(std::nearbyint(m * 2048.0f) / 2048.0f, e);
}

void check_expert(DType t, bool gpt_oss, double tol) {
  const int64_t D = 96, H = 160;
  const std::vector<int64_t> blocks = {37, 1, 64};
  int64_t rows = 0;
  for (int64_t b : blocks) rows += b;
  std::mt19937 rng(gpt_oss ? 11 : 5);
  ExpertShape s{D, H, SwigluParams{gpt_oss, 7.0f, 1.702f}};
  ExpertRunner r(s, t);
  r.reserve(rows, 64, static_cast<int>(blocks.size()), 1);
  std::vector<std::vector<float>> wgu, wd, bgu, bd;
  for (size_t k = 0; k < blocks.size(); ++k) {
    wgu.push_back(uniform(rng, D * 2 * H, 2.0f / std::sqrt(static_cast<float>(D))));
    wd.push_back(uniform(rng, H * D, 1.0f / std::sqrt(static_cast<float>(H))));
    bgu.push_back(uniform(rng, 2 * H, 0.1f));
    bd.push_back(uniform(rng, D, 0.1f));
    r.set_weights(static_cast<int>(k), wgu[k].data(), wd[k].data(), bgu[k].data(), bd[k].data());
  }
  const std::vector<float> x = uniform(rng, rows * D, 1.7f);
  r.set_inputs(x.data(), rows);
  PhaseMs ph;
  EXPECT_GE(r.run_ms(blocks.data(), blocks.size(), &ph), 0.0);
  EXPECT_GE(ph.gate_up, 0.0);
  std::vector<float> y(rows * D);
  r.get_outputs(y.data(), rows);

  std::vector<double> ref(rows * D);
  int64_t row = 0;
  for (size_t k = 0; k < blocks.size(); row += blocks[k], ++k)
    for (int64_t i = row; i < row + blocks[k]; ++i) {
      std::vector<double> act(H);
      for (int64_t j = 0; j < H; ++j) {
        double g = gpt_oss ? bgu[k][j] : 0.0, u = gpt_oss ? bgu[k][H + j] : 0.0;
        for (int64_t d = 0; d < D; ++d) {
          const double xv = round_to(x[i * D + d], t);
          g += xv * round_to(wgu[k][d * 2 * H + j], t);
          u += xv * round_to(wgu[k][d * 2 * H + H + j], t);
        }
        if (gpt_oss) {
          g = std::min(g, 7.0);
          u = std::clamp(u, -7.0, 7.0);
          act[j] = (u + 1.0) * g / (1.0 + std::exp(-1.702 * g));
        } else {
          act[j] = g / (1.0 + std::exp(-g)) * u;
        }
      }
      for (int64_t d = 0; d < D; ++d) {
        double acc = gpt_oss ? bd[k][d] : 0.0;
        for (int64_t j = 0; j < H; ++j) acc += act[j] * round_to(wd[k][j * D + d], t);
        ref[i * D + d] = acc;
      }
    }
  const double err = max_rel_err(y, ref);
  ::testing::Test::RecordProperty("max_rel_err", std::to_string(err));
  EXPECT_LE(err, tol) << dtype_name(t) << (gpt_oss ? " gpt-oss" : " swiglu");
}

}  // namespace

TEST(CudaRuntime, DeviceQueriesNeverThrowWithoutAGpu) {
  EXPECT_GE(device_count(), 0);
  int host_value = 0;
  EXPECT_FALSE(is_device_pointer(&host_value));
  EXPECT_FALSE(is_device_pointer(nullptr));
  EXPECT_EQ(parse_dtype("bf16"), DType::BF16);
  EXPECT_EQ(dtype_bytes(DType::F16), 2u);
  EXPECT_THROW(parse_dtype("int8"), std::invalid_argument);
}

TEST(CudaExpert, Fp32MatchesReference) {
  REQUIRE_GPU();
  check_expert(DType::F32, false, 1e-5);
  check_expert(DType::F32, true, 1e-5);
}

TEST(CudaExpert, Bf16MatchesReference) {
  REQUIRE_GPU();
  check_expert(DType::BF16, false, 2e-2);
  check_expert(DType::BF16, true, 2e-2);
}

TEST(CudaExpert, Fp16MatchesReference) {
  REQUIRE_GPU();
  check_expert(DType::F16, false, 2e-2);
  check_expert(DType::F16, true, 2e-2);
}

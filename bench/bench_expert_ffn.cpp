// Expert FFN (SwiGLU block: two GEMMs through KokkosBlas::gemm + activation)
// against the same two GEMMs as plain BLAS sgemm calls on the same shapes.
// Target (issue 2): the expert FFN at >= 85% of plain sgemm GFLOP/s for
// experts of >= 256 rows. Results: docs/performance.md.
#include <benchmark/benchmark.h>

#include <Kokkos_Core.hpp>
#include <random>

#include "kernels/ExpertFfn.hpp"

extern "C" void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);

namespace {
using namespace moe;

struct Shape {
  int64_t rows, D, H;
};
Shape shape_of(const benchmark::State& s) { return {s.range(0), s.range(1), s.range(2)}; }

Matrix filled(const char* label, int64_t n, int64_t m, uint32_t seed) {
  Matrix a(std::string(label), static_cast<size_t>(n), static_cast<size_t>(m));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) a(i, j) = u(rng);
  return a;
}

// Row-major C (m x n) = A (m x k) * B (k x n) with column-major sgemm: C^T = B^T A^T.
void sgemm_row_major(int m, int n, int k, const float* A, const float* B, float* C) {
  const float one = 1.0f, zero = 0.0f;
  sgemm_("N", "N", &n, &m, &k, &one, B, &n, A, &k, &zero, C, &n);
}

void report(benchmark::State& state, const Shape& s) {
  const double flops = 6.0 * static_cast<double>(s.rows * s.D * s.H);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

void BM_ExpertFfn(benchmark::State& state) {
  const Shape s = shape_of(state);
  Matrix x = filled("x", s.rows, s.D, 1), w_gu = filled("w_gu", s.D, 2 * s.H, 2), w_d = filled("w_d", s.H, s.D, 3);
  Matrix gu("gu", s.rows, 2 * s.H), act("act", s.rows, s.H), y("y", s.rows, s.D);
  const ExpertWeightsView w{w_gu, w_d, nullptr, nullptr};
  for (auto _ : state) {
    expert_ffn(x, w, ActivationParams{}, gu, act, y);
    Kokkos::fence();
    benchmark::DoNotOptimize(y.data());
  }
  report(state, s);
}

void BM_PlainSgemmPair(benchmark::State& state) {
  const Shape s = shape_of(state);
  Matrix x = filled("x", s.rows, s.D, 1), w_gu = filled("w_gu", s.D, 2 * s.H, 2), w_d = filled("w_d", s.H, s.D, 3);
  Matrix gu("gu", s.rows, 2 * s.H), act("act", s.rows, s.H), y("y", s.rows, s.D);
  const int m = static_cast<int>(s.rows), D = static_cast<int>(s.D), H = static_cast<int>(s.H);
  for (auto _ : state) {
    sgemm_row_major(m, 2 * H, D, x.data(), w_gu.data(), gu.data());
    sgemm_row_major(m, D, H, act.data(), w_d.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  report(state, s);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "D", "H"});
  for (int64_t rows : {256, 1024, 4096}) {
    b->Args({rows, 128, 256});     // the default "small" preset
    b->Args({rows, 1024, 1024});
    b->Args({rows, 2048, 768});    // qwen3-30b-a3b
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_ExpertFfn)->Apply(shapes);
BENCHMARK(BM_PlainSgemmPair)->Apply(shapes);
}  // namespace

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

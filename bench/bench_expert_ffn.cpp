// Expert FFN (SwiGLU block: two GEMMs through KokkosBlas::gemm + activation,
// in row tiles) against the same two GEMMs as plain BLAS sgemm calls on the
// same shapes. Results and commands: docs/performance.md.
//
//   BM_ExpertFfn/rows/D/H, BM_PlainSgemmPair/rows/D/H
//       the issue-2 shapes (small experts), one benchmark each.
//   BM_FfnVsSgemm/rows:R/D:D/H:H/tile:T
//       issue 16: per iteration, the tiled expert FFN (workspaces of
//       min(R, T) rows) and the plain sgemm pair (full R x 2H and R x H
//       outputs) run back to back, alternating which goes first; counters are
//       medians over the iterations: ffn_GFLOPs, sgemm_GFLOPs and ratio (the
//       median of the per-iteration ratios t_sgemm / t_ffn), from wall time;
//       cpu_* the same from the thread's CPU time (robust to other jobs
//       taking time slices on a shared machine). tile:0 means the
//       default tile (default_ffn_tile_rows). Blocks of 256 ... 65536 rows at
//       D = H = 2048, gpt-oss (2880, 2880) and qwen3-30b-a3b (2048, 768).
//   BM_TileSweep/rows:R/D:D/H:H/tile:T
//       the same measurement at R = 8192 over tiles 64 ... 8192 (the sweep
//       that chose the default tile).
//   BM_Shape/FfnVsSgemm/rows:R/D:D/H:H/tile:T, from --shape=R,D,H[,T] (this
//       program's own flag, may be repeated): the same measurement for one
//       shape and tile (default tile when T is absent or 0; T = R computes the
//       block in one tile, as before tiling). bench/layer_step_bound.py
//       measures the sgemm rate with it.
// Fewer iterations at large blocks: each runs at least 3 iterations and
// about 2 s (at 100 GFLOP/s) per side at most 30 iterations. Run with one BLAS
// thread: OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>
#include <vector>

#include <Kokkos_Core.hpp>
#include <benchmark/benchmark.h>

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
  Matrix a(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)), static_cast<size_t>(n),
           static_cast<size_t>(m));
  // A cheap generator: large blocks hold up to 190M floats.
  std::mt19937 rng(seed);
  std::vector<float> pool(4099);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  for (auto& v : pool) v = u(rng);
  float* p = a.data();
  const int64_t total = n * m;
  for (int64_t i = 0; i < total; ++i) p[i] = pool[static_cast<size_t>((i * 7 + i / 4099) % 4099)];
  return a;
}

// Row-major C (m x n) = A (m x k) * B (k x n) with column-major sgemm: C^T = B^T A^T.
void sgemm_row_major(int m, int n, int k, const float* A, const float* B, float* C) {
  const float one = 1.0f, zero = 0.0f;
  sgemm_("N", "N", &n, &m, &k, &one, B, &n, A, &k, &zero, C, &n);
}

double flops_of(const Shape& s) { return 6.0 * static_cast<double>(s.rows) * static_cast<double>(s.D * s.H); }

void report(benchmark::State& state, const Shape& s) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_of(s) * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

void BM_ExpertFfn(benchmark::State& state) {
  const Shape s = shape_of(state);
  Matrix x = filled("x", s.rows, s.D, 1), w_gu = filled("w_gu", s.D, 2 * s.H, 2), w_d = filled("w_d", s.H, s.D, 3);
  const int64_t ws = ffn_workspace_rows(s.rows, default_ffn_tile_rows(s.D, s.H));
  Matrix gu("gu", ws, 2 * s.H), act("act", ws, s.H), y("y", s.rows, s.D);
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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// This thread's CPU time (OpenBLAS runs on the calling thread with one BLAS
// thread): unlike wall time, it does not count the time slices other jobs
// take on a shared machine.
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Times {
  double wall, cpu;
};
template <class F>
Times timed(F&& f) {
  const double c0 = thread_cpu_s();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return {seconds_since(t0), thread_cpu_s() - c0};
}

// Tiled expert FFN and the plain sgemm pair, interleaved per iteration.
void BM_FfnVsSgemm(benchmark::State& state) {
  const Shape s = shape_of(state);
  const int64_t tile = state.range(3) > 0 ? state.range(3) : default_ffn_tile_rows(s.D, s.H);
  Matrix x = filled("x", s.rows, s.D, 1), w_gu = filled("w_gu", s.D, 2 * s.H, 2), w_d = filled("w_d", s.H, s.D, 3);
  const int64_t ws = ffn_workspace_rows(s.rows, tile);
  Matrix gu_ws("gu_ws", ws, 2 * s.H), act_ws("act_ws", ws, s.H), y("y", s.rows, s.D);
  Matrix gu("gu", s.rows, 2 * s.H), act("act", s.rows, s.H);  // the sgemm pair's full outputs
  const ExpertWeightsView w{w_gu, w_d, nullptr, nullptr};
  const int m = static_cast<int>(s.rows), D = static_cast<int>(s.D), H = static_cast<int>(s.H);
  auto run_ffn = [&] {
    return timed([&] {
      expert_ffn(x, w, ActivationParams{}, gu_ws, act_ws, y);
      Kokkos::fence();
      benchmark::DoNotOptimize(y.data());
    });
  };
  auto run_pair = [&] {
    return timed([&] {
      sgemm_row_major(m, 2 * H, D, x.data(), w_gu.data(), gu.data());
      sgemm_row_major(m, D, H, act.data(), w_d.data(), y.data());
      benchmark::DoNotOptimize(y.data());
    });
  };
  if (flops_of(s) < 50e9) {  // warm-up where it is cheap
    run_ffn();
    run_pair();
  }
  std::vector<double> t_ffn, t_pair, ratio, c_ffn, c_pair, c_ratio;
  int64_t i = 0;
  for (auto _ : state) {
    Times a, b;
    if (i++ % 2 == 0) {
      a = run_ffn();
      b = run_pair();
    } else {
      b = run_pair();
      a = run_ffn();
    }
    t_ffn.push_back(a.wall);
    t_pair.push_back(b.wall);
    ratio.push_back(b.wall / a.wall);
    c_ffn.push_back(a.cpu);
    c_pair.push_back(b.cpu);
    c_ratio.push_back(b.cpu / a.cpu);
    state.SetIterationTime(a.wall + b.wall);
  }
  const double f = flops_of(s) * 1e-9;
  state.counters["ffn_GFLOPs"] = f / median(t_ffn);
  state.counters["sgemm_GFLOPs"] = f / median(t_pair);
  state.counters["ratio"] = median(ratio);
  state.counters["cpu_ffn_GFLOPs"] = f / median(c_ffn);
  state.counters["cpu_sgemm_GFLOPs"] = f / median(c_pair);
  state.counters["cpu_ratio"] = median(c_ratio);
  state.counters["tile"] = static_cast<double>(tile);
  state.counters["ws_MiB"] = static_cast<double>(ws * 3 * s.H * 4) / (1024.0 * 1024.0);
}

int64_t iterations_for(const Shape& s) {
  const double per_side = flops_of(s) / 100e9;  // seconds at 100 GFLOP/s
  return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(2.0 / per_side)), 3, 30);
}

void small_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "D", "H"});
  for (int64_t rows : {256, 1024, 4096}) {
    b->Args({rows, 128, 256});  // the default "small" preset
    b->Args({rows, 1024, 1024});
    b->Args({rows, 2048, 768});  // qwen3-30b-a3b
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_ExpertFfn)->Apply(small_shapes);
BENCHMARK(BM_PlainSgemmPair)->Apply(small_shapes);

constexpr Shape kShapes[] = {{0, 2048, 2048}, {0, 2880, 2880}, {0, 2048, 768}};

void register_large() {
  for (const Shape& sh : kShapes) {
    for (int64_t rows = 256; rows <= 65536; rows *= 2) {
      const Shape s{rows, sh.D, sh.H};
      benchmark::RegisterBenchmark("BM_FfnVsSgemm", BM_FfnVsSgemm)
          ->ArgNames({"rows", "D", "H", "tile"})
          ->Args({rows, sh.D, sh.H, 0})
          ->Iterations(iterations_for(s))
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (const Shape& sh : kShapes) {
    for (int64_t tile = 64; tile <= 8192; tile *= 2) {
      const Shape s{8192, sh.D, sh.H};
      benchmark::RegisterBenchmark("BM_TileSweep", BM_FfnVsSgemm)
          ->ArgNames({"rows", "D", "H", "tile"})
          ->Args({s.rows, sh.D, sh.H, tile})
          ->Iterations(iterations_for(s))
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}
// --shape=R,D,H[,T]: removed from argv; registers BM_Shape/FfnVsSgemm for it.
void register_shape_flag(int& argc, char** argv) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    long long r = 0, d = 0, h = 0, t = 0;
    const int got = std::sscanf(argv[i], "--shape=%lld,%lld,%lld,%lld", &r, &d, &h, &t);
    if (got >= 3 && r > 0 && d > 0 && h > 0 && t >= 0) {
      const Shape s{r, d, h};
      benchmark::RegisterBenchmark("BM_Shape/FfnVsSgemm", BM_FfnVsSgemm)
          ->ArgNames({"rows", "D", "H", "tile"})
          ->Args({r, d, h, t})
          ->Iterations(iterations_for(s))
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
}
}  // namespace

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);
  register_shape_flag(argc, argv);
  benchmark::Initialize(&argc, argv);
  register_large();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

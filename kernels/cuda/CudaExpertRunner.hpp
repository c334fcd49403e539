#pragma once
// Runs one rank's expert work on the local GPU: a sequence of expert blocks,
// each gate/up GEMM -> SwiGLU -> down GEMM (+ bias) at a dtype, on its own
// stream, timed with CUDA events. What `moe-ep emulate` runs per emulated
// rank, and what the GPU exactness test checks against a host reference.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/cuda/ExpertKernels.hpp"

namespace moe::cuda {

struct ExpertShape {
  int64_t hidden = 0;  // D
  int64_t ffn = 0;     // H
  SwigluParams act;    // act.gpt_oss also means the experts have biases
};

/// Milliseconds per phase, summed over the blocks of one run (CUDA events).
struct PhaseMs {
  double gate_up = 0.0;     // x * W_gu
  double activation = 0.0;  // SwiGLU (with the gate/up bias)
  double down = 0.0;        // act * W_d (+ the down bias)
};

class ExpertRunner {
 public:
  /// On the current device: a stream, a cuBLAS handle and events of its own.
  ExpertRunner(const ExpertShape& shape, DType dtype);
  ~ExpertRunner();
  ExpertRunner(const ExpertRunner&) = delete;
  ExpertRunner& operator=(const ExpertRunner&) = delete;

  /// Device bytes that reserve() with these arguments allocates.
  static int64_t bytes_needed(const ExpertShape& shape, DType dtype, int64_t max_rows, int64_t max_block_rows,
                              int weight_sets);
  /// Allocates the largest rank's buffers (input and output rows, one block's
  /// gate/up and activation workspaces, `weight_sets` experts' weights) and
  /// fills inputs and weights with seeded uniform values of realistic scale.
  void reserve(int64_t max_rows, int64_t max_block_rows, int weight_sets, uint64_t seed);
  int64_t reserved_bytes() const;

  /// Runs `num_blocks` consecutive blocks: block b takes the next block_rows[b]
  /// input rows and weight set b % weight_sets. Returns the milliseconds between
  /// CUDA events recorded around the whole sequence; with `phases`, events also
  /// bracket every phase of every block and their times are summed there.
  double run_ms(const int64_t* block_rows, std::size_t num_blocks, PhaseMs* phases = nullptr);

  /// Exactness checks: weight set `s` and the first `rows` input rows from fp32
  /// host arrays (converted to the dtype); outputs back to fp32 host.
  void set_weights(int s, const float* w_gu, const float* w_d, const float* b_gu, const float* b_d);
  void set_inputs(const float* x, int64_t rows);
  void get_outputs(float* y, int64_t rows);

  DType dtype() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::cuda

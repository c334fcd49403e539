#include "kernels/cuda/CudaExpertRunner.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

namespace moe::cuda {

// Named, not anonymous: ExpertRunner::Impl holds DeviceBuffers (GCC warns
// about an anonymous-namespace member type when files are built as one unit).
namespace runner_detail {
// A device allocation freed on scope exit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes) MOE_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

char* at(void* base, int64_t elems, DType t) {
  return static_cast<char*>(base) + elems * static_cast<int64_t>(dtype_bytes(t));
}
}  // namespace runner_detail
using runner_detail::at;
using runner_detail::DeviceBuffer;

struct ExpertRunner::Impl {
  ExpertShape shape;
  DType dtype;
  cudaStream_t stream = nullptr;
  std::unique_ptr<Blas> blas;
  DeviceBuffer x, y, gu, act, weights, biases;
  DeviceBuffer scratch;  // fp32 staging of uploads and downloads: grow-only, reused
  void* scratch_for(int64_t n) {
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
    if (bytes > scratch.bytes()) {
      MOE_CUDA_CHECK(cudaStreamSynchronize(stream));  // the old one may still be read on the stream
      scratch = DeviceBuffer();
      scratch = DeviceBuffer(bytes);
    }
    return scratch.get();
  }
  int64_t max_rows = 0, max_block = 0;
  int sets = 0;
  std::vector<cudaEvent_t> events;

  int64_t gu_elems() const { return shape.hidden * 2 * shape.ffn; }
  int64_t set_elems() const { return gu_elems() + shape.ffn * shape.hidden; }
  int64_t bias_floats() const { return shape.act.gpt_oss ? 2 * shape.ffn + shape.hidden : 0; }
  void* w_gu(int s) const { return at(weights.get(), s * set_elems(), dtype); }
  void* w_d(int s) const { return at(weights.get(), s * set_elems() + gu_elems(), dtype); }
  const float* b_gu(int s) const {
    return shape.act.gpt_oss ? static_cast<const float*>(biases.get()) + s * bias_floats() : nullptr;
  }
  const float* b_d(int s) const { return shape.act.gpt_oss ? b_gu(s) + 2 * shape.ffn : nullptr; }

  void ensure_events(std::size_t n) {
    while (events.size() < n) {
      cudaEvent_t e = nullptr;
      MOE_CUDA_CHECK(cudaEventCreate(&e));
      events.push_back(e);
    }
  }
  float elapsed(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0.0f;
    MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
  }
  // Copies fp32 host values to device memory of the runner's dtype.
  void upload(const float* host, void* dst, int64_t n) {
    if (n <= 0) return;
    void* tmp = scratch_for(n);
    MOE_CUDA_CHECK(
        cudaMemcpyAsync(tmp, host, static_cast<std::size_t>(n) * sizeof(float), cudaMemcpyHostToDevice, stream));
    convert(tmp, DType::F32, dst, dtype, n, stream);
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
};

ExpertRunner::ExpertRunner(const ExpertShape& shape, DType dtype) : impl_(std::make_unique<Impl>()) {
  impl_->shape = shape;
  impl_->dtype = dtype;
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  impl_->blas = std::make_unique<Blas>(impl_->stream);
}

ExpertRunner::~ExpertRunner() {
  if (!impl_) return;
  if (impl_->stream) cudaStreamSynchronize(impl_->stream);
  for (cudaEvent_t e : impl_->events) cudaEventDestroy(e);
  impl_->blas.reset();
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

DType ExpertRunner::dtype() const { return impl_->dtype; }

int64_t ExpertRunner::bytes_needed(const ExpertShape& s, DType t, int64_t max_rows, int64_t max_block_rows,
                                   int weight_sets) {
  const int64_t e = static_cast<int64_t>(dtype_bytes(t));
  const int64_t D = s.hidden, H = s.ffn;
  const int64_t rows = 2 * max_rows * D * e;              // input and output rows
  const int64_t work = max_block_rows * (2 * H + H) * e;  // gate/up and activation of one block
  const int64_t w = int64_t{weight_sets} * (3 * D * H * e + (s.act.gpt_oss ? (2 * H + D) * 4 : 0));
  return rows + work + w;
}

int64_t ExpertRunner::reserved_bytes() const {
  const Impl& m = *impl_;
  return static_cast<int64_t>(m.x.bytes() + m.y.bytes() + m.gu.bytes() + m.act.bytes() + m.weights.bytes() +
                              m.biases.bytes());
}

void ExpertRunner::reserve(int64_t max_rows, int64_t max_block_rows, int weight_sets, uint64_t seed) {
  Impl& m = *impl_;
  const int64_t D = m.shape.hidden, H = m.shape.ffn;
  const std::size_t e = dtype_bytes(m.dtype);
  // Free first, so that a larger reservation is not refused for the old one.
  m.x = DeviceBuffer();
  m.y = DeviceBuffer();
  m.gu = DeviceBuffer();
  m.act = DeviceBuffer();
  m.weights = DeviceBuffer();
  m.biases = DeviceBuffer();
  m.max_rows = max_rows;
  m.max_block = max_block_rows;
  m.sets = weight_sets;
  m.x = DeviceBuffer(static_cast<std::size_t>(max_rows * D) * e);
  m.y = DeviceBuffer(static_cast<std::size_t>(max_rows * D) * e);
  m.gu = DeviceBuffer(static_cast<std::size_t>(max_block_rows * 2 * H) * e);
  m.act = DeviceBuffer(static_cast<std::size_t>(max_block_rows * H) * e);
  m.weights = DeviceBuffer(static_cast<std::size_t>(weight_sets * m.set_elems()) * e);
  m.biases = DeviceBuffer(static_cast<std::size_t>(weight_sets * m.bias_floats()) * sizeof(float));
  // Scales as the runtime's synthetic weights: unit-variance tokens,
  // 1/sqrt(fan_in) matrices, small biases.
  fill_uniform(m.x.get(), m.dtype, max_rows * D, seed ^ 0x51ULL, std::sqrt(3.0f), m.stream);
  for (int s = 0; s < weight_sets; ++s) {
    fill_uniform(m.w_gu(s), m.dtype, m.gu_elems(), seed + 2 * static_cast<uint64_t>(s) + 1,
                 1.0f / std::sqrt(static_cast<float>(D)), m.stream);
    fill_uniform(m.w_d(s), m.dtype, H * D, seed + 2 * static_cast<uint64_t>(s) + 2,
                 1.0f / std::sqrt(static_cast<float>(H)), m.stream);
  }
  if (m.bias_floats() > 0)
    fill_uniform(m.biases.get(), DType::F32, weight_sets * m.bias_floats(), seed ^ 0xb1a5ULL, 0.1f, m.stream);
  MOE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
}

double ExpertRunner::run_ms(const int64_t* block_rows, std::size_t num_blocks, PhaseMs* phases) {
  Impl& m = *impl_;
  const int64_t D = m.shape.hidden, H = m.shape.ffn;
  const DType t = m.dtype;
  int64_t total = 0;
  for (std::size_t b = 0; b < num_blocks; ++b) {
    if (block_rows[b] > m.max_block)
      throw CudaError("ExpertRunner: a block of " + std::to_string(block_rows[b]) + " rows exceeds the reserved " +
                      std::to_string(m.max_block));
    total += block_rows[b];
  }
  if (total > m.max_rows)
    throw CudaError("ExpertRunner: " + std::to_string(total) + " rows exceed the reserved " +
                    std::to_string(m.max_rows));
  if (num_blocks > 0 && m.sets < 1) throw CudaError("ExpertRunner: reserve() was not called");
  // Events: [start, end] and, when instrumented, 3 per block after each phase
  // plus one before it.
  m.ensure_events(2 + (phases ? 4 * num_blocks : 0));
  cudaEvent_t start = m.events[0], stop = m.events[1];
  MOE_CUDA_CHECK(cudaEventRecord(start, m.stream));
  int64_t row = 0;
  for (std::size_t b = 0; b < num_blocks; ++b) {
    const int64_t n = block_rows[b];
    if (n == 0) continue;
    const int s = static_cast<int>(b % static_cast<std::size_t>(m.sets));
    cudaEvent_t* ev = phases ? &m.events[2 + 4 * b] : nullptr;
    if (ev) MOE_CUDA_CHECK(cudaEventRecord(ev[0], m.stream));
    m.blas->gemm(n, 2 * H, D, at(m.x.get(), row * D, t), D, m.w_gu(s), 2 * H, m.gu.get(), 2 * H, t, t);
    if (ev) MOE_CUDA_CHECK(cudaEventRecord(ev[1], m.stream));
    swiglu(m.gu.get(), m.b_gu(s), m.act.get(), t, n, H, m.shape.act, m.stream);
    if (ev) MOE_CUDA_CHECK(cudaEventRecord(ev[2], m.stream));
    void* y = at(m.y.get(), row * D, t);
    m.blas->gemm(n, D, H, m.act.get(), H, m.w_d(s), D, y, D, t, t);
    add_row_bias(y, t, m.b_d(s), n, D, m.stream);
    if (ev) MOE_CUDA_CHECK(cudaEventRecord(ev[3], m.stream));
    row += n;
  }
  MOE_CUDA_CHECK(cudaEventRecord(stop, m.stream));
  MOE_CUDA_CHECK(cudaEventSynchronize(stop));
  if (phases) {
    *phases = PhaseMs{};
    for (std::size_t b = 0; b < num_blocks; ++b) {
      if (block_rows[b] == 0) continue;
      cudaEvent_t* ev = &m.events[2 + 4 * b];
      phases->gate_up += m.elapsed(ev[0], ev[1]);
      phases->activation += m.elapsed(ev[1], ev[2]);
      phases->down += m.elapsed(ev[2], ev[3]);
    }
  }
  return m.elapsed(start, stop);
}

void ExpertRunner::set_weights(int s, const float* w_gu, const float* w_d, const float* b_gu, const float* b_d) {
  Impl& m = *impl_;
  if (s < 0 || s >= m.sets) throw CudaError("ExpertRunner::set_weights: no weight set " + std::to_string(s));
  m.upload(w_gu, m.w_gu(s), m.gu_elems());
  m.upload(w_d, m.w_d(s), m.shape.ffn * m.shape.hidden);
  if (m.shape.act.gpt_oss) {
    // On the runner's stream (non-blocking: a synchronous cudaMemcpy on the
    // legacy stream would not be ordered against it), then waited for, so the
    // caller may free the host arrays on return.
    float* b = static_cast<float*>(m.biases.get()) + s * m.bias_floats();
    MOE_CUDA_CHECK(cudaMemcpyAsync(b, b_gu, static_cast<std::size_t>(2 * m.shape.ffn) * sizeof(float),
                                   cudaMemcpyHostToDevice, m.stream));
    MOE_CUDA_CHECK(cudaMemcpyAsync(b + 2 * m.shape.ffn, b_d, static_cast<std::size_t>(m.shape.hidden) * sizeof(float),
                                   cudaMemcpyHostToDevice, m.stream));
    MOE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  }
}

void ExpertRunner::set_inputs(const float* x, int64_t rows) {
  Impl& m = *impl_;
  if (rows > m.max_rows) throw CudaError("ExpertRunner::set_inputs: more rows than reserved");
  m.upload(x, m.x.get(), rows * m.shape.hidden);
}

void ExpertRunner::get_outputs(float* y, int64_t rows) {
  Impl& m = *impl_;
  if (rows > m.max_rows) throw CudaError("ExpertRunner::get_outputs: more rows than reserved");
  const int64_t n = rows * m.shape.hidden;
  if (n <= 0) return;
  void* tmp = m.scratch_for(n);
  convert(m.y.get(), m.dtype, tmp, DType::F32, n, m.stream);
  MOE_CUDA_CHECK(
      cudaMemcpyAsync(y, tmp, static_cast<std::size_t>(n) * sizeof(float), cudaMemcpyDeviceToHost, m.stream));
  MOE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
}

}  // namespace moe::cuda

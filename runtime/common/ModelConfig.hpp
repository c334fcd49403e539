#pragma once
// Shape of one MoE layer and the presets of common models.

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/common/DType.hpp"

namespace moe {

enum class Activation { SwiGLU, GptOss };

struct ModelShape {
  std::string preset = "small";
  int num_experts = 32;   // N
  int hidden = 128;       // D
  int ffn = 256;          // H (expert intermediate size)
  int top_k = 4;          // K
  int64_t tokens = 2048;  // B, tokens per rank
  Activation activation = Activation::SwiGLU;
  // gpt-oss SwiGLU variant constants (used when activation == GptOss).
  float swiglu_limit = 7.0f;
  float swiglu_alpha = 1.702f;
  // What tokens, expert weights and exchanged rows are stored in (--dtype);
  // bf16 rows are packed two elements per fp32 word (hidden must be even).
  DType dtype = DType::F32;

  /// FLOPs of one token-slot through one expert (two GEMMs: 2*D*2H + 2*H*D).
  double flops_per_slot() const { return 6.0 * hidden * ffn; }
  /// Bytes of one expert's weights (W_gu, W_d and, for gpt-oss, the biases) in `dtype`.
  int64_t expert_weight_bytes() const;
  /// Elements of one expert's weights.
  int64_t expert_weight_elements() const;
  /// Bytes of one stored element (token, weight, exchanged row): 4 or 2.
  int64_t element_bytes() const { return dtype_bytes(dtype); }
  /// fp32 words of one stored token row (hidden elements).
  int64_t row_words() const { return int64_t{hidden} * element_bytes() / 4; }
};

/// The presets: "small" (default, seconds on 2 cores) and the shapes of the
/// models in docs/models.md. Throws std::invalid_argument naming the valid ones.
ModelShape preset_shape(const std::string& name);
std::vector<std::string> preset_names();
std::string activation_name(Activation a);

/// Checks a shape against a rank count; "" when valid, else a one-line reason
/// naming the flag and the valid range.
std::string validate_shape(const ModelShape& shape, int num_ranks);

}  // namespace moe

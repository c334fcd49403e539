#include "runtime/common/ModelConfig.hpp"

#include <sstream>
#include <stdexcept>

namespace moe {

namespace {
struct PresetRow {
  const char* name;
  int experts, hidden, ffn, top_k;
  Activation act;
};
// Shapes from ../shared/docs/llep-notes.md; "small" is the default demo size.
constexpr PresetRow kPresets[] = {
    {"small", 32, 128, 256, 4, Activation::SwiGLU},           {"gpt-oss-20b", 32, 2880, 2880, 4, Activation::GptOss},
    {"gpt-oss-120b", 128, 2880, 2880, 4, Activation::GptOss}, {"deepseek-v3", 256, 7168, 2048, 8, Activation::SwiGLU},
    {"kimi-k2", 384, 7168, 2048, 8, Activation::SwiGLU},      {"mixtral-8x7b", 8, 4096, 14336, 2, Activation::SwiGLU},
    {"qwen3-30b-a3b", 128, 2048, 768, 8, Activation::SwiGLU},
};
}  // namespace

int64_t ModelShape::expert_weight_elements() const {
  int64_t n = int64_t{hidden} * 2 * ffn + int64_t{ffn} * hidden;
  if (activation == Activation::GptOss) n += 2 * int64_t{ffn} + hidden;
  return n;
}

int64_t ModelShape::expert_weight_bytes() const { return expert_weight_elements() * element_bytes(); }

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.emplace_back(p.name);
  return names;
}

ModelShape preset_shape(const std::string& name) {
  for (const auto& p : kPresets) {
    if (name == p.name) {
      ModelShape s;
      s.preset = p.name;
      s.num_experts = p.experts;
      s.hidden = p.hidden;
      s.ffn = p.ffn;
      s.top_k = p.top_k;
      s.activation = p.act;
      return s;
    }
  }
  std::ostringstream msg;
  msg << "--preset: unknown preset '" << name << "' (valid:";
  for (const auto& n : preset_names()) msg << ' ' << n;
  msg << ')';
  throw std::invalid_argument(msg.str());
}

std::string activation_name(Activation a) { return a == Activation::GptOss ? "gpt-oss" : "swiglu"; }

std::string validate_shape(const ModelShape& s, int num_ranks) {
  std::ostringstream msg;
  if (s.num_experts < 1)
    msg << "--experts must be >= 1 (got " << s.num_experts << ")";
  else if (s.hidden < 1)
    msg << "--hidden must be >= 1 (got " << s.hidden << ")";
  else if (s.dtype == DType::BF16 && s.hidden % 2 != 0)
    msg << "--hidden must be even with --dtype bf16 (got " << s.hidden
        << "): bf16 rows are packed two elements per 32-bit word";
  else if (s.ffn < 1)
    msg << "--ffn must be >= 1 (got " << s.ffn << ")";
  else if (s.top_k < 1 || s.top_k > s.num_experts)
    msg << "--top-k must be in [1, " << s.num_experts << "] (got " << s.top_k << ")";
  else if (s.tokens < 0)
    msg << "--tokens must be >= 0 (got " << s.tokens << ")";
  else if (num_ranks < 1)
    msg << "number of ranks must be >= 1 (got " << num_ranks << ")";
  else if (s.num_experts % num_ranks != 0)
    msg << "--experts (" << s.num_experts << ") must be divisible by the number of ranks (" << num_ranks
        << "); valid rank counts divide " << s.num_experts;
  return msg.str();
}

}  // namespace moe

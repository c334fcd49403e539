#include "runtime/common/DType.hpp"

namespace moe {

const char* dtype_name(DType t) { return t == DType::BF16 ? "bf16" : "fp32"; }

std::optional<DType> parse_dtype(const std::string& text) {
  if (text == "fp32") return DType::F32;
  if (text == "bf16") return DType::BF16;
  return std::nullopt;
}

}  // namespace moe

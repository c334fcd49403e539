#pragma once
// The element type tokens, expert weights and the messages between ranks are
// stored and sent in (--dtype on compare and run; docs/dtype.md). Arithmetic
// is fp32 in both: bf16 is storage only (kernels/Bf16.hpp).

#include <cstdint>
#include <optional>
#include <string>

namespace moe {

enum class DType { F32, BF16 };

/// "fp32" | "bf16": the spelling of --dtype (emulate's too).
const char* dtype_name(DType t);
/// The dtype named `text`, or nullopt.
std::optional<DType> parse_dtype(const std::string& text);
/// Bytes of one element: 4 or 2.
inline int64_t dtype_bytes(DType t) { return t == DType::BF16 ? 2 : 4; }

}  // namespace moe

#pragma once
// Overflow-checked arithmetic for everything that sizes a buffer: element
// counts and byte counts are products of user-given dimensions (tokens x
// hidden, tokens x K, experts x packed weights, layers x experts, sums of
// --tokens-per-rank), and a product that wraps would allocate a small buffer
// that the kernels then write far past. Every size is computed here first and
// refused, with the flags that set it, when it does not fit in int64.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "runtime/common/Errors.hpp"

namespace moe {

/// a * b, or nullopt when it overflows int64 or either is negative.
inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return std::nullopt;
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// a + b, or nullopt when it overflows int64 or either is negative.
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return std::nullopt;
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

/// The product of `factors`, or nullopt on overflow / a negative factor.
inline std::optional<int64_t> checked_product(std::initializer_list<int64_t> factors) {
  int64_t r = 1;
  for (int64_t f : factors) {
    const auto p = checked_mul(r, f);
    if (!p) return std::nullopt;
    r = *p;
  }
  return r;
}

/// A running size in bytes or elements that throws InputError naming `flags`
/// as soon as a step overflows: SizeSum s("--tokens, --hidden"); s.add_product({B, D, 4});
class CheckedSize {
 public:
  explicit CheckedSize(std::string flags, std::string what = "buffer size")
      : flags_(std::move(flags)), what_(std::move(what)) {}
  CheckedSize& add(int64_t v) {
    const auto r = checked_add(value_, v);
    if (!r) overflow();
    value_ = *r;
    return *this;
  }
  CheckedSize& add_product(std::initializer_list<int64_t> factors) {
    const auto p = checked_product(factors);
    if (!p) overflow();
    return add(*p);
  }
  CheckedSize& times(int64_t f) {
    const auto r = checked_mul(value_, f);
    if (!r) overflow();
    value_ = *r;
    return *this;
  }
  int64_t value() const { return value_; }

 private:
  [[noreturn]] void overflow() const {
    throw InputError(flags_ + ": the " + what_ + " they give does not fit in 64 bits (overflow); use smaller values");
  }
  std::string flags_, what_;
  int64_t value_ = 0;
};

/// Throwing product: the product of `factors`, or InputError naming `flags`.
inline int64_t product_or_throw(std::initializer_list<int64_t> factors, const std::string& flags,
                                const std::string& what = "buffer size") {
  return CheckedSize(flags, what).add_product(factors).value();
}

}  // namespace moe

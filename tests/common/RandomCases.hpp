#pragma once
// How many random cases a property test draws: the count it names, or a
// tenth of it in the sanitizer run (the asan test preset sets
// MOE_TEST_SANITIZED), where the planners run 5-10x slower and the full
// counts still run in the CPU build. Thresholds on how often a case kind
// occurred scale the same way: random_cases(300) of random_cases(3000).
#include <cstdlib>

namespace moe_test {

inline int random_cases(int n) {
  static const bool sanitized = std::getenv("MOE_TEST_SANITIZED") != nullptr;
  return sanitized ? n / 10 : n;
}

}  // namespace moe_test

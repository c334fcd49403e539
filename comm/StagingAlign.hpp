#pragma once
// Offsets of the messages packed into one staging buffer (the NCCL
// communicator's and the staged MPI communicator's): every message starts on
// a 256-byte boundary, what cudaMalloc guarantees for a buffer's start, so
// each one is as aligned as its own allocation would be.
#include <cstddef>

namespace moe {

inline constexpr std::size_t kStagingAlign = 256;

inline constexpr std::size_t staging_aligned(std::size_t n) {
  return (n + kStagingAlign - 1) / kStagingAlign * kStagingAlign;
}

}  // namespace moe

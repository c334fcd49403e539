#pragma once
// Buffers of the layer step that persist across steps and only grow, so a
// step allocates nothing once its sizes have been seen (on a GPU every free
// would synchronise the device, and nothing may allocate while transfers are
// in flight). A step takes the rows it needs as a lease; the tracker counts
// the leased bytes for as long as the lease lives, exactly as if the buffer
// had been allocated for the step, so the memory model and peak_bytes keep
// their meaning: bytes the step uses (docs/memory.md).

#include <cstdint>
#include <string>
#include <utility>

#include "kernels/KernelTypes.hpp"
#include "runtime/layer/MemoryTracker.hpp"

namespace moe {

class Workspace {
 public:
  Workspace(MemoryTracker& tracker, std::string label, int64_t cols)
      : tracker_(&tracker), label_(std::move(label)), cols_(cols) {}

  /// Rows [0, rows) of the buffer while the lease lives.
  class Lease {
   public:
    Lease() = default;
    Lease(MemoryTracker* t, UnmanagedMatrix v) : tracker_(t), view_(v), bytes_(bytes_of(v)) { tracker_->add(bytes_); }
    ~Lease() { release(); }
    Lease(Lease&& o) noexcept { *this = std::move(o); }
    Lease& operator=(Lease&& o) noexcept {
      if (this != &o) {
        release();
        tracker_ = std::exchange(o.tracker_, nullptr);
        view_ = o.view_;
        bytes_ = std::exchange(o.bytes_, 0);
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    const UnmanagedMatrix& view() const { return view_; }

   private:
    static int64_t bytes_of(const UnmanagedMatrix& v) {
      return static_cast<int64_t>(v.extent(0) * v.extent(1) * sizeof(float));
    }
    void release() {
      if (tracker_) tracker_->remove(bytes_);
      tracker_ = nullptr;
      bytes_ = 0;
    }
    MemoryTracker* tracker_ = nullptr;
    UnmanagedMatrix view_;
    int64_t bytes_ = 0;
  };

  /// Grows the buffer (the only allocation) when `rows` exceeds it.
  Lease lease(int64_t rows) {
    if (rows > static_cast<int64_t>(buf_.extent(0)))
      buf_ = Matrix(Kokkos::view_alloc(Kokkos::WithoutInitializing, label_), static_cast<size_t>(rows),
                    static_cast<size_t>(cols_));
    return Lease(tracker_, UnmanagedMatrix(buf_.data(), static_cast<size_t>(rows), static_cast<size_t>(cols_)));
  }
  /// Rows allocated (the high-water mark of the leases).
  int64_t capacity_rows() const { return static_cast<int64_t>(buf_.extent(0)); }

 private:
  MemoryTracker* tracker_;
  std::string label_;
  int64_t cols_;
  Matrix buf_;
};

}  // namespace moe

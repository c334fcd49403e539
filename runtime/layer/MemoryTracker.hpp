#pragma once
// Accounting of the runtime's own buffers: every activation, workspace and
// weight buffer the runtime allocates goes through TrackedMatrix/TrackedVector,
// so peak bytes are measured, not guessed.

#include <cstdint>
#include <string>
#include <utility>

#include "kernels/KernelTypes.hpp"
#include "runtime/layer/ResidentLedger.hpp"

namespace moe {

class MemoryTracker {
 public:
  void add(int64_t bytes) {
    current_ += bytes;
    if (current_ > peak_) peak_ = current_;
  }
  void remove(int64_t bytes) { current_ -= bytes; }
  int64_t current() const { return current_; }
  int64_t peak() const { return peak_; }
  /// Starts a new measurement window: the peak becomes what is live now.
  void reset_peak() { peak_ = current_; }
  /// Stateful policies' resident replicas (their buffers are not in current()).
  ResidentLedger& residents() { return residents_; }
  const ResidentLedger& residents() const { return residents_; }

 private:
  ResidentLedger residents_;
  int64_t current_ = 0;
  int64_t peak_ = 0;
};

/// A Kokkos view whose bytes are counted by a MemoryTracker while it lives.
template <class ViewT>
class Tracked {
 public:
  Tracked() = default;
  template <class... Extents>
  Tracked(MemoryTracker& tracker, const std::string& label, Extents... extents)
      : view_(Kokkos::view_alloc(Kokkos::WithoutInitializing, label), static_cast<size_t>(extents)...),
        tracker_(&tracker),
        bytes_(static_cast<int64_t>(view_.span() * sizeof(typename ViewT::value_type))) {
    tracker_->add(bytes_);
  }
  ~Tracked() { release(); }
  Tracked(Tracked&& o) noexcept { *this = std::move(o); }
  Tracked& operator=(Tracked&& o) noexcept {
    if (this != &o) {
      release();
      view_ = std::move(o.view_);
      tracker_ = std::exchange(o.tracker_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;

  const ViewT& view() const { return view_; }
  int64_t bytes() const { return bytes_; }

 private:
  void release() {
    if (tracker_) tracker_->remove(bytes_);
    tracker_ = nullptr;
    view_ = ViewT();
    bytes_ = 0;
  }
  ViewT view_;
  MemoryTracker* tracker_ = nullptr;
  int64_t bytes_ = 0;
};

using TrackedMatrix = Tracked<Matrix>;
using TrackedVector = Tracked<Vector>;
using TrackedIndexVector = Tracked<IndexVector>;

}  // namespace moe

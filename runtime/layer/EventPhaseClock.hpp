#pragma once
// Phase times from events recorded on the streams that do the work: the
// layer's compute stream and the communicator's stream. begin()/end() only
// record events (no synchronisation: they run inside the dispatch stage,
// while weight transfers are in flight); resolve(), once per forward and once
// per backward after its exchanges, waits for the recorded events and adds
// each span's elapsed time to its phase. Events come from a pool that grows
// to the most spans of one step and is reused after.
//
// The events themselves are behind PhaseEventBackend, so that the
// bookkeeping is CUDA-free and tested without a GPU (tests/unit); the CUDA
// backend (cudaEvent_t, cudaEventElapsedTime) is make_cuda_phase_events(),
// built only on CUDA configurations (CudaPhaseEvents.cpp).

#include <memory>
#include <string>
#include <vector>

#include "runtime/layer/PhaseTimer.hpp"

namespace moe {

/// Events on streams, as opaque handles (cudaEvent_t, cudaStream_t on CUDA).
class PhaseEventBackend {
 public:
  using Event = void*;
  using Stream = void*;
  virtual ~PhaseEventBackend() = default;
  virtual Event create() = 0;
  virtual void destroy(Event e) noexcept = 0;
  /// Records `e` on `s` (asynchronous).
  virtual void record(Event e, Stream s) = 0;
  /// Waits until `e` has completed.
  virtual void synchronize(Event e) = 0;
  /// Milliseconds from `from` to `to`, both completed.
  virtual double elapsed_ms(Event from, Event to) = 0;
};

class EventPhaseClock final : public PhaseClock {
 public:
  /// `compute`: the stream of the layer's kernels; `comm`: the communicator's
  /// stream, or null when it has none (its marks then go on `compute`).
  EventPhaseClock(std::unique_ptr<PhaseEventBackend> events, PhaseEventBackend::Stream compute,
                  PhaseEventBackend::Stream comm);
  ~EventPhaseClock() override;
  EventPhaseClock(const EventPhaseClock&) = delete;
  EventPhaseClock& operator=(const EventPhaseClock&) = delete;

  PhaseClockNames names() const override { return {"cuda_event", "cuda_event", "cuda_event"}; }
  size_t begin(PhaseTimes& times, Phase phase, SpanKind kind, ClockStream on) override;
  void end(size_t span, ClockStream on) noexcept override;
  /// Waits for the recorded events and adds every closed span: wall and busy
  /// seconds from elapsed time between its two events; a phase's start is the
  /// host's wall_seconds() when the step's first span opened plus the time
  /// from the anchor event recorded then to the span's begin event. Throws
  /// std::runtime_error on an event failure (also one end() had).
  void resolve() override;
  void discard() noexcept override;

  /// Events created so far (the pool's size: stays put once warm).
  size_t pool_size() const { return pool_.size(); }
  /// Events in use by spans not yet resolved (anchor included).
  size_t events_in_use() const { return next_; }

 private:
  struct Span {
    PhaseTimes* times;
    Phase phase;
    SpanKind kind;
    PhaseEventBackend::Event begin, end;
  };
  PhaseEventBackend::Event acquire();
  PhaseEventBackend::Stream stream(ClockStream on) const { return on == ClockStream::Comm ? comm_ : compute_; }

  std::unique_ptr<PhaseEventBackend> events_;
  PhaseEventBackend::Stream compute_, comm_;
  std::vector<PhaseEventBackend::Event> pool_;
  size_t next_ = 0;  // pool_[0, next_) are recorded and not yet resolved
  std::vector<Span> spans_;
  PhaseEventBackend::Event anchor_ = nullptr;
  double anchor_host_ = 0.0;
  std::string error_;  // the first failure of end()
};

/// The CUDA events backend (cudaEventCreate, cudaEventRecord,
/// cudaEventSynchronize, cudaEventElapsedTime); defined on CUDA builds only
/// (MOE_LAYER_CUDA_EVENTS).
std::unique_ptr<PhaseEventBackend> make_cuda_phase_events();

}  // namespace moe

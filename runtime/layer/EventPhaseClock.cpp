#include "runtime/layer/EventPhaseClock.hpp"

#include <algorithm>
#include <stdexcept>

namespace moe {

EventPhaseClock::EventPhaseClock(std::unique_ptr<PhaseEventBackend> events, PhaseEventBackend::Stream compute,
                                 PhaseEventBackend::Stream comm)
    : events_(std::move(events)), compute_(compute), comm_(comm ? comm : compute) {}

EventPhaseClock::~EventPhaseClock() {
  for (PhaseEventBackend::Event e : pool_) events_->destroy(e);
}

PhaseEventBackend::Event EventPhaseClock::acquire() {
  if (next_ == pool_.size()) pool_.push_back(events_->create());
  return pool_[next_++];
}

size_t EventPhaseClock::begin(PhaseTimes& times, Phase phase, SpanKind kind, ClockStream on) {
  if (spans_.empty()) {  // the step's first span: anchor the event clock to the host's
    anchor_ = acquire();
    events_->record(anchor_, compute_);
    anchor_host_ = wall_seconds();
  }
  const PhaseEventBackend::Event e = acquire();
  events_->record(e, stream(on));
  spans_.push_back({&times, phase, kind, e, nullptr});
  return spans_.size() - 1;
}

void EventPhaseClock::end(size_t span, ClockStream on) noexcept {
  if (span >= spans_.size()) return;
  try {
    const PhaseEventBackend::Event e = acquire();
    events_->record(e, stream(on));
    spans_[span].end = e;
  } catch (const std::exception& ex) {
    if (error_.empty()) error_ = ex.what();
  }
}

void EventPhaseClock::resolve() {
  std::string error;
  std::swap(error, error_);
  std::vector<Span> spans;
  std::swap(spans, spans_);
  const size_t used = next_;
  next_ = 0;  // the events go back to the pool whatever happens below
  if (!error.empty()) throw std::runtime_error("phase timing: " + error);
  for (size_t i = 0; i < used; ++i) events_->synchronize(pool_[i]);
  for (const Span& s : spans) {
    if (!s.end) continue;  // never closed (cannot happen with the scopes)
    const double seconds = std::max(0.0, events_->elapsed_ms(s.begin, s.end) * 1e-3);
    if (s.kind == SpanKind::Wall) {
      s.times->mark_start(s.phase, anchor_host_ + std::max(0.0, events_->elapsed_ms(anchor_, s.begin) * 1e-3));
      s.times->wall_of(s.phase) += seconds;
    } else {
      s.times->busy_of(s.phase) += seconds;
    }
  }
}

void EventPhaseClock::discard() noexcept {
  spans_.clear();
  error_.clear();
  next_ = 0;
}

}  // namespace moe

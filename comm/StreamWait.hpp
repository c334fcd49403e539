#pragma once
// The waiting and teardown rules of the NCCL communicator, free of CUDA and
// NCCL so that tests/comm checks them without a GPU.
//
// wait_or_abort: polls until the work is done. A device error, an asynchronous
// NCCL error or the timeout aborts the communicators (ncclCommAbort, which
// does not wait for the peers) and throws CommError. For the timeout to be able
// to fire, nothing queued on the stream before the wait may block the host:
// the NCCL communicator copies to and from host memory only through pinned
// buffers, and copies into the caller's pageable memory only after the wait.
//
// teardown: a communicator that failed, or that is destroyed with work in
// flight (an exception unwound past wait_exchange), is aborted; only one whose
// streams drained within the limit is destroyed (ncclCommDestroy flushes and
// may wait for peers, which would hang behind a dead one).

#include <chrono>
#include <string>
#include <thread>

#include "comm/Communicator.hpp"

namespace moe {

enum class PollState { Done, Pending, Failed };

struct Poll {
  PollState state = PollState::Pending;
  std::string error;  // when Failed
};

/// `poll()` -> Poll; `abort()` tears the communicators down without waiting.
/// Throws CommError "<what>: <error>" or "<what> did not complete within T s ...".
template <class PollFn, class AbortFn>
void wait_or_abort(PollFn&& poll, AbortFn&& abort, double timeout_s, const std::string& what,
                   const std::string& where) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int spins = 0;; ++spins) {
    const Poll p = poll();
    if (p.state == PollState::Done) return;
    if (p.state == PollState::Failed) {
      abort();
      throw CommError(what + ": " + p.error + " [" + where + "]");
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (waited > timeout_s) {
      abort();
      throw CommError(what + " did not complete within " + std::to_string(static_cast<int>(timeout_s)) +
                      " s (a peer rank may have failed; MOE_COMM_TIMEOUT_S sets the limit) [" + where + "]");
    }
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

enum class Teardown { Destroy, Abort };

/// How to end a communicator: `failed` (an error was reported, or it was
/// aborted already), `in_flight` (an exchange was begun and never waited for),
/// `drained` (its streams completed within the teardown limit).
inline Teardown teardown_mode(bool failed, bool in_flight, bool drained) {
  return (failed || in_flight || !drained) ? Teardown::Abort : Teardown::Destroy;
}

}  // namespace moe

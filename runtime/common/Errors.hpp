#pragma once
// Error kinds the launcher turns into exit codes (see apps/LaunchRank.cpp).
#include <stdexcept>
#include <string>

namespace moe {

/// Invalid user input: a flag, config field or input file. The message is one
/// line naming the flag or field and what is valid. `collective` means every
/// rank detects the same error at the same point (so all can exit cleanly with
/// code 2); otherwise the job is aborted with code 2 so that no rank hangs.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what, bool collective = true)
      : std::runtime_error(what), collective_(collective) {}
  bool collective() const { return collective_; }

 private:
  bool collective_;
};

}  // namespace moe

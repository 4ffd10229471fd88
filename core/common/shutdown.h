// Clean shutdown on SIGINT / SIGTERM.
//
// Call ShutdownSignal::Install() first thing in main, before any thread exists: it blocks
// the two signals in the calling thread (every later thread inherits the mask) and starts
// one thread that waits for them with sigwait, so no code runs in a signal handler.
#pragma once

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace grpo {

class ShutdownSignal {
 public:
  // Installs the process-wide instance; idempotent.
  static ShutdownSignal& Install();

  // Blocks until a signal arrives or Trigger() is called; returns the signal number
  // (0 when triggered from inside the process).
  int Wait();
  // True once shutdown was requested.
  bool Requested() const { return done_.HasBeenNotified(); }
  // Waits at most `timeout`; true if shutdown was requested.
  bool WaitFor(absl::Duration timeout) { return done_.WaitForNotificationWithTimeout(timeout); }
  // Requests shutdown from inside the process (for example: max steps reached).
  void Trigger(int signal = 0);
  // Requests shutdown because of a fatal error: the process should exit with
  // `exit_code` (1; 2 for an error in the run's configuration or data, which
  // restarting cannot fix: `grpo run` does not restart a service that exits 2).
  void Fail(int exit_code = 1) {
    exit_code_ = exit_code;
    failed_ = true;
    Trigger();
  }
  bool Failed() const { return failed_.load(); }
  int FailureExitCode() const { return exit_code_.load(); }

 private:
  ShutdownSignal() = default;
  absl::Notification done_;
  std::atomic<int> signal_{0};
  std::atomic<bool> triggered_{false};
  std::atomic<bool> failed_{false};
  std::atomic<int> exit_code_{1};
};

}  // namespace grpo

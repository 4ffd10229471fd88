// Child processes for the launcher and the integration tests.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpo {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is the program path
  std::string log_path;           // stdout and stderr appended here ("" keeps the parent's)
  // Extra NAME=VALUE environment entries.
  std::vector<std::string> env;
};

// A started child. It runs in its own process group (so a terminal's Ctrl-C reaches
// only the parent, which stops children in order) and gets SIGTERM if the parent dies.
class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const ProcessSpec& spec);

  pid_t pid() const { return pid_; }
  // Non-blocking: the wait status once the child has exited.
  std::optional<int> Poll();
  // Sends a signal to the child's process group.
  void Signal(int sig) const;
  // Waits at most `timeout` for exit; returns the wait status if it exited.
  std::optional<int> WaitFor(absl::Duration timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns the wait status.
  int Stop(absl::Duration grace);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// "exited with status 1", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

// A TCP port on 127.0.0.1 that was free a moment ago.
absl::StatusOr<int> PickFreePort();

}  // namespace grpo

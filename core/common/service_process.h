// Starting one grpo service binary as a child process and waiting until it serves: the
// launcher and the integration tests share this.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/common/subprocess.h"

namespace grpo {

struct ServiceProcess {
  std::string name;  // "coordinator", "reward", "learner", "actor"
  ChildProcess proc;
  std::string log_path;
  int grpc_port = 0;
  int metrics_port = 0;
};

struct ServiceLaunch {
  std::string name;
  std::string binary;                // path of grpo-<name>
  std::string config_path;           // --config
  std::vector<std::string> sets;     // --set entries
  std::string run_dir;               // ready file and logs/<name>.log go here
  absl::Duration ready_timeout = absl::Seconds(120);
  std::vector<std::string> env;      // extra NAME=VALUE environment entries
};

// Spawns the service with --ready-file and waits until the file names its ports, the
// child exits (error with the last lines of its log), the timeout passes, or
// `cancelled` (optional) returns true.
absl::StatusOr<ServiceProcess> StartServiceProcess(const ServiceLaunch& launch,
                                                   const std::function<bool()>& cancelled = nullptr);

// The last `lines` lines of a file, each indented by four spaces.
std::string TailOfFile(const std::string& path, int lines);

}  // namespace grpo

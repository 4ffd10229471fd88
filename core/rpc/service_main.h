// The main() every service shares: flags (--config, --set, --ready-file), logging,
// config validation, the gRPC server with health checking, the metrics endpoint, and a
// clean stop on SIGTERM / SIGINT.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/config.h"
#include "core/common/shutdown.h"
#include "prometheus/registry.h"

namespace grpo::rpc {

// What a service plugs into ServiceMain.
class ServiceRunner {
 public:
  virtual ~ServiceRunner() = default;
  // gRPC services to register (may be empty: the server then serves health only).
  virtual std::vector<grpc::Service*> Services() = 0;
  // Told the port the server bound (the chosen one when the config said 0), before Start.
  virtual void Serving(const std::string& host, int port) {}
  // Starts background work once the server is up. `shutdown` may be triggered by the
  // runner itself to end the process (for example: the run is finished).
  virtual absl::Status Start(ShutdownSignal& shutdown) { return absl::OkStatus(); }
  // Stops background work and ends long streams; called before the server shuts down.
  virtual void Stop() {}
};

struct ServiceMainSpec {
  std::string name;         // "coordinator", "actor", ...
  std::string description;  // one line for --help
  // The section's serving address.
  std::function<ServeConfig(const RunConfig&)> serve;
  std::function<absl::StatusOr<std::unique_ptr<ServiceRunner>>(const RunConfig&, std::shared_ptr<prometheus::Registry>)>
      make;
};

// Returns the process exit code: 0 after a clean stop, 2 on bad flags or config, 1 when
// the service could not start or failed.
int ServiceMain(int argc, char** argv, const ServiceMainSpec& spec);

}  // namespace grpo::rpc

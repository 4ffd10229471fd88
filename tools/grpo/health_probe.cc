// grpo-health-probe: the container HEALTHCHECK (Dockerfile, docker-compose) through the
// standard gRPC health service, with the run config's TLS settings when it has them.
// Debian packages no grpc_health_probe, and Kubernetes probes gRPC natively.
//   grpo-health-probe --addr 127.0.0.1:50051 [--config /etc/grpo/run.yaml] [--timeout-ms 2000]
// Exits 0 when the server answers SERVING, 1 when it answers otherwise or not at all,
// 2 on a bad command line or config.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "core/common/config.h"
#include "core/rpc/rpc.h"

int main(int argc, char** argv) {
  CLI::App app{"grpo-health-probe: is a grpo service SERVING (grpc.health.v1)?"};
  std::string addr = "127.0.0.1:50051", config;
  int64_t timeout_ms = 2000;
  app.add_option("--addr", addr, "host:port of the service's gRPC server");
  app.add_option("--config", config, "run config whose security section to use (mutual TLS)");
  app.add_option("--timeout-ms", timeout_ms, "give up after this long");
  CLI11_PARSE(app, argc, argv);
  if (!config.empty()) {
    absl::StatusOr<grpo::RunConfig> cfg = grpo::LoadConfigWithOverrides(config, {});
    if (!cfg.ok()) {
      std::fprintf(stderr, "grpo-health-probe: %s\n", std::string(cfg.status().message()).c_str());
      return 2;
    }
    if (absl::Status s = grpo::rpc::ConfigureSecurity(cfg->security); !s.ok()) {
      std::fprintf(stderr, "grpo-health-probe: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  absl::StatusOr<bool> serving = grpo::rpc::CheckHealth(addr, absl::Milliseconds(timeout_ms));
  if (!serving.ok()) {
    std::fprintf(stderr, "grpo-health-probe: %s: %s\n", addr.c_str(), std::string(serving.status().message()).c_str());
    return 1;
  }
  if (!*serving) std::fprintf(stderr, "grpo-health-probe: %s is not SERVING\n", addr.c_str());
  return *serving ? 0 : 1;
}

#include "core/rpc/service_main.h"

#include <unistd.h>

#include <atomic>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/common/metrics_server.h"
#include "core/rpc/rpc.h"
#include "core/rpc/weight_stream.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace grpo::rpc {

int ServiceMain(int argc, char** argv, const ServiceMainSpec& spec) {
  ShutdownSignal& shutdown = ShutdownSignal::Install();
  KeepStreamBuffers();
  CLI::App app{spec.description, "grpo-" + spec.name};
  std::string config_path, ready_file;
  std::vector<std::string> overrides;
  app.add_option("--config", config_path, "run config YAML (default: the embedded demo config)");
  app.add_option("--set", overrides, "override a config field: section.key=value (repeatable)");
  app.add_option("--ready-file", ready_file, "write {grpc_port, metrics_port, pid} as JSON here once serving");
  CLI11_PARSE(app, argc, argv);

  InitLogging(spec.name);
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides(config_path, overrides);
  if (!cfg.ok()) {
    spdlog::error("{}", cfg.status().message());
    return 2;
  }
  ServeConfig serve = spec.serve(*cfg);
  if (absl::Status sec = ConfigureSecurity(cfg->security); !sec.ok()) {
    spdlog::error("{}", sec.message());
    return 2;
  }

  auto registry = std::make_shared<prometheus::Registry>();
  // Calls refused for want of credentials: counted, and logged at most every 10 s.
  prometheus::Counter* refused = &prometheus::BuildCounter()
                                      .Name("grpo_rpc_unauthenticated_total")
                                      .Help("Calls refused with UNAUTHENTICATED (no verified client certificate or bearer token)")
                                      .Register(*registry)
                                      .Add({});
  auto last_log = std::make_shared<std::atomic<int64_t>>(0);
  auto suppressed = std::make_shared<std::atomic<int64_t>>(0);
  SetUnauthenticatedObserver([refused, last_log, suppressed](const std::string& peer, const std::string& method,
                                                             const std::string& why) {
    refused->Increment();
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    int64_t last = last_log->load();
    if (now - last >= 10 && last_log->compare_exchange_strong(last, now)) {
      spdlog::warn("refused {} from {}: {} (UNAUTHENTICATED; {} more refused since the last such line)", method,
                   peer.empty() ? "an unverified peer" : peer, why, suppressed->exchange(0));
    } else {
      ++*suppressed;
    }
  });
  SetRpcMetricsRegistry(registry.get());
  prometheus::BuildGauge()
      .Name("grpo_build_info")
      .Help("Always 1; the labels say which build and service this is")
      .Register(*registry)
      .Add({{"service", spec.name}, {"version", GRPO_VERSION}, {"grpc", grpc::Version()}})
      .Set(1);
  // The standard process metric: a restarted service shows as a change of it
  // (deploy/prometheus/alerts.yml, GrpoServiceRestarting).
  prometheus::BuildGauge()
      .Name("process_start_time_seconds")
      .Help("Start time of the process since the Unix epoch, in seconds")
      .Register(*registry)
      .Add({})
      .Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
      MetricsServer::Start(registry, serve.host, static_cast<int>(serve.metrics_port));
  if (!metrics.ok()) {
    spdlog::error("metrics endpoint: {}", metrics.status().message());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<ServiceRunner>> runner = spec.make(*cfg, registry);
  if (!runner.ok()) {
    spdlog::error("{}", runner.status().message());
    return 1;
  }
  absl::StatusOr<ServerHandle> server = StartServer(serve.host, static_cast<int>(serve.port), (*runner)->Services());
  if (!server.ok()) {
    spdlog::error("{}", server.status().message());
    return 1;
  }
  spdlog::info("serving gRPC on {}:{}, metrics on http://{}:{}/metrics", serve.host, server->port, serve.host,
               (*metrics)->port());
  (*runner)->Serving(serve.host, server->port);
  absl::Status started = (*runner)->Start(shutdown);
  if (!started.ok()) {
    spdlog::error("{}", started.message());
    (*runner)->Stop();
    server->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    return 1;
  }
  if (!ready_file.empty()) {
    nlohmann::json j = {{"grpc_port", server->port}, {"metrics_port", (*metrics)->port()}, {"pid", ::getpid()}};
    absl::Status s = WriteFileAtomic(ready_file, j.dump());
    if (!s.ok()) spdlog::warn("ready file: {}", s.message());
  }

  int sig = shutdown.Wait();
  spdlog::info("stopping ({})", sig ? absl::StrCat("signal ", sig) : std::string("finished"));
  if (auto* health = server->server->GetHealthCheckService()) health->SetServingStatus(false);
  (*runner)->Stop();
  server->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  server->server->Wait();
  runner->reset();
  if (shutdown.Failed()) {
    spdlog::error("stopped after a fatal error");
    return shutdown.FailureExitCode();
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace grpo::rpc

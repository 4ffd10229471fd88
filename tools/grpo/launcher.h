// `grpo run`: starts coordinator, reward, learner and actor as child processes on
// loopback, shows one progress line, and stops them all on Ctrl-C, at the end of the run,
// or as soon as one of them dies.
#pragma once

#include <string>
#include <vector>

namespace grpo {

struct LaunchOptions {
  std::string config_path;             // "" = embedded demo config
  std::vector<std::string> overrides;  // --set section.key=value
  int64_t max_steps = -1;              // -1: keep the config's learner.max_steps
  std::string run_dir;                 // "" = runs/<name>-<timestamp>
  std::string bin_dir;                 // where the grpo-* binaries are
  bool progress = true;
  // Mutual TLS and a bearer token between the services: a development CA, a
  // certificate per service and a token are made in <run_dir>/tls (scripts/dev-ca.sh).
  bool secure = false;
  // Start a Prometheus (the `prometheus` binary on PATH) scraping every service through
  // file service discovery (<run_dir>/prometheus/targets.json, rewritten on each
  // restart), with deploy/prometheus/alerts.yml loaded, on 127.0.0.1:prometheus_port
  // (0: a free port). <run_dir>/prometheus/ready.json says {"port", "pid"}.
  // A staged run (pipeline.stages, tools/grpo/stages.h): run this stage again alone.
  std::string stage;
  bool prometheus = false;
  int prometheus_port = 0;
};

// Returns the process exit code.
int RunLocal(const LaunchOptions& opts);

}  // namespace grpo

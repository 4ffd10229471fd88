#include "tools/grpo/launcher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/common/shutdown.h"
#include "core/common/service_process.h"
#include "core/common/subprocess.h"
#include "tools/grpo/pipeline.h"
#include "tools/grpo/progress.h"
#include "tools/grpo/report.h"
#include "tools/grpo/stages.h"

namespace grpo {
namespace fs = std::filesystem;
namespace {

void Say(const std::string& msg) { std::fprintf(stderr, "%s\n", msg.c_str()); }

// The held-out table, when the run has one: before and after, and each of R1's stages
// of a staged run (whose "after" is its last stage's).
void PrintBeforeAfter(const fs::path& run_dir) {
  std::vector<std::pair<std::string, nlohmann::json>> rows;
  std::vector<std::string> names = {"before"};
  for (const std::string& s : R1StageNames()) names.push_back(s);
  names.push_back("after");
  for (const std::string& which : names) {
    if (which == "after" && rows.size() > 1 && rows.back().first != "before") continue;
    absl::StatusOr<std::string> t = ReadFile((run_dir / "eval" / (which + ".json")).string());
    if (!t.ok()) continue;
    nlohmann::json j = nlohmann::json::parse(*t, nullptr, false);
    if (!j.is_discarded()) rows.emplace_back(which, j);
  }
  if (rows.empty()) return;
  size_t w = 7;
  for (const auto& r : rows) w = std::max(w, r.first.size());
  std::printf("grpo: held-out (%s)\n  %-*s %7s %7s %7s %7s %9s %9s\n", (run_dir / "eval").c_str(), static_cast<int>(w), "",
              "pass@1", "pass@k", "maj@k", "format", "length", "language");
  for (const auto& [name, j] : rows) {
    std::printf("  %-*s %7.3f %7.3f %7.3f %7.3f %9.1f %9.3f   (k=%lld, n=%lld)\n", static_cast<int>(w), name.c_str(),
                j.value("pass@1", 0.0), j.value("pass@k", 0.0), j.value("maj@k", 0.0), j.value("format", 0.0),
                j.value("response_len_mean", 0.0), j.value("language_consistency", 1.0),
                static_cast<long long>(j.value("k", int64_t{0})), static_cast<long long>(j.value("n", int64_t{0})));
  }
}

// A supervised child: how to start it again, and its restarts so far.
struct Supervision {
  ServiceLaunch launch;
  int64_t restarts = 0;
  int64_t quick_deaths = 0;  // deaths in a row, each within kBackoffReset of its start
  absl::Time started = absl::Now();
  bool down = false;       // dead, waiting for restart_at
  absl::Time restart_at;
};

// As Kubernetes' CrashLoopBackOff, shorter: 0.5 s, 1 s, 2 s, ... at most 10 s for deaths
// in a row; a service that ran for kBackoffReset before dying starts again at 0.5 s.
constexpr absl::Duration kBackoffReset = absl::Seconds(10);
absl::Duration RestartBackoff(int64_t quick_deaths) {
  absl::Duration d = absl::Milliseconds(500);
  for (int64_t i = 1; i < quick_deaths && d < absl::Seconds(10); ++i) d *= 2;
  return std::min(d, absl::Seconds(10));
}

// run_dir/services.json: each service's pid, ports, restarts and whether it is up, for
// `grpo status`. Rewritten at start and at each death and restart.
void WriteServices(const fs::path& run_dir, const std::vector<ServiceProcess>& children,
                   const std::vector<Supervision>& supervision) {
  nlohmann::json j = nlohmann::json::array();
  for (size_t i = 0; i < children.size(); ++i) {
    j.push_back({{"name", children[i].name},
                 {"pid", children[i].proc.pid()},
                 {"grpc_port", children[i].grpc_port},
                 {"metrics_port", children[i].metrics_port},
                 {"restarts", supervision[i].restarts},
                 {"up", !supervision[i].down}});
  }
  (void)WriteFileAtomic((run_dir / "services.json").string(), j.dump(1));
  // --prometheus: the scrape targets, by file service discovery (Prometheus rereads the
  // file). `instance` is the service's name, stable across restarts.
  if (fs::exists(run_dir / "prometheus")) {
    nlohmann::json targets = nlohmann::json::array();
    for (const ServiceProcess& c : children) {
      targets.push_back({{"targets", {absl::StrCat("127.0.0.1:", c.metrics_port)}},
                         {"labels", {{"service", c.name}, {"instance", c.name}}}});
    }
    (void)WriteFileAtomic((run_dir / "prometheus" / "targets.json").string(), targets.dump(1));
  }
}

// The `prometheus` binary on PATH, or "".
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace

extern const char kEmbeddedDevCaScript[];

namespace {

// Runs the embedded scripts/dev-ca.sh into `dir` (keeps what is there).
absl::Status MakeDevCa(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat(dir.string(), ": ", ec.message()));
  const fs::path script = dir / "dev-ca.sh";
  if (absl::Status w = WriteFileAtomic(script.string(), kEmbeddedDevCaScript); !w.ok()) return w;
  ProcessSpec spec;
  spec.argv = {"/bin/bash", script.string(), dir.string()};
  spec.log_path = (dir / "dev-ca.log").string();
  absl::StatusOr<ChildProcess> p = ChildProcess::Spawn(spec);
  if (!p.ok()) return p.status();
  std::optional<int> st = p->WaitFor(absl::Seconds(60));
  if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
    absl::StatusOr<std::string> log = ReadFile(spec.log_path);
    return absl::InternalError(absl::StrCat("making the development CA failed: ", log.ok() ? *log : "(no log)"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunLocal(const LaunchOptions& opts) {
  ShutdownSignal& shutdown = ShutdownSignal::Install();
  // A run directory that already holds a run is resumed: its own config.yaml is the
  // base (so the run keeps its model, data and seeds), --set and --max-steps still
  // apply; the coordinator resumes its queue and the learner its newest checkpoint.
  fs::path run_dir = opts.run_dir;
  const bool resume = !run_dir.empty() && fs::exists(run_dir / "config.yaml") &&
                      (fs::exists(run_dir / "coordinator" / "state.json") || fs::exists(run_dir / "metrics.jsonl") ||
                       fs::exists(run_dir / "stages"));
  absl::StatusOr<RunConfig> cfg =
      LoadConfigWithOverrides(resume ? (run_dir / "config.yaml").string() : opts.config_path, opts.overrides);
  if (!cfg.ok()) {
    Say(absl::StrCat("grpo: ", cfg.status().message()));
    return 2;
  }
  if (resume && !opts.config_path.empty()) {
    Say(absl::StrCat("grpo: resuming ", run_dir.string(), " with its own config.yaml; --config ", opts.config_path,
                     " is ignored"));
  }
  if (opts.max_steps >= 0) cfg->learner.max_steps = opts.max_steps;
  const bool staged = !absl::StripAsciiWhitespace(cfg->pipeline.stages).empty();
  if (!opts.stage.empty() && (!staged || !resume)) {
    Say(absl::StrCat("grpo: --stage ", opts.stage, " runs a stage of a staged run again: it needs --run-dir of a run whose ",
                     "config sets pipeline.stages, and that run started"));
    return 2;
  }
  if (run_dir.empty()) {
    run_dir = fs::path("runs") / absl::StrCat(cfg->run.name, "-", absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::LocalTimeZone()));
  }
  std::error_code ec;
  if (!resume && (fs::exists(run_dir / "coordinator" / "state.json") || fs::exists(run_dir / "metrics.jsonl"))) {
    Say(absl::StrCat("grpo: ", run_dir.string(), " holds an incomplete run (no config.yaml); choose a new --run-dir"));
    return 2;
  }
  if (resume) Say(absl::StrCat("grpo: resuming the run in ", run_dir.string()));
  fs::create_directories(run_dir / "logs", ec);
  if (ec) {
    Say(absl::StrCat("grpo: cannot create run directory ", run_dir.string(), ": ", ec.message()));
    return 2;
  }
  run_dir = fs::absolute(run_dir);
  cfg->run.dir = run_dir.string();
  // --secure (or a resumed secure run): the services talk mutual TLS with a bearer token.
  const fs::path tls = run_dir / "tls";
  const bool secure = opts.secure || (resume && !cfg->security.ca_file.empty() &&
                                      cfg->security.ca_file == (tls / "ca.pem").string());
  if (secure) {
    if (absl::Status s = MakeDevCa(tls); !s.ok()) {
      Say(absl::StrCat("grpo: --secure: ", s.message()));
      return 1;
    }
    // The config's own files are the client's (grpo status); each service gets its own.
    cfg->security.ca_file = (tls / "ca.pem").string();
    cfg->security.cert_file = (tls / "client.pem").string();
    cfg->security.key_file = (tls / "client.key").string();
    cfg->security.token_file = (tls / "token").string();
    Say(absl::StrCat("grpo: mutual TLS and a bearer token between the services (", tls.string(), ")"));
  }
  for (ServeConfig* s : {&cfg->coordinator.serve, &cfg->reward.serve, &cfg->learner.serve, &cfg->actor.serve}) {
    s->host = "127.0.0.1";
    s->port = 0;
    s->metrics_port = 0;
  }
  absl::Status w = WriteFileAtomic((run_dir / "config.yaml").string(), ConfigToYaml(*cfg));
  if (!w.ok()) {
    Say(absl::StrCat("grpo: ", w.message()));
    return 2;
  }
  std::string prometheus_bin;
  if (opts.prometheus) {
    prometheus_bin = FindOnPath("prometheus");
    if (prometheus_bin.empty()) {
      Say("grpo: --prometheus needs the prometheus binary on PATH (Debian: apt install prometheus)");
      return 2;
    }
  }
  fs::path bin = opts.bin_dir;
  PipelineContext stages{run_dir, bin, &shutdown};
  if (absl::Status s = RunStagesBefore(*cfg, stages); !s.ok()) {
    Say(absl::StrCat("grpo: ", s.message()));
    return shutdown.Requested() ? 130 : 1;
  }
  if (staged) {
    // R1's stages: each runs its own commands (an RL stage a `grpo run` of its own).
    StageOptions so{opts.stage, secure, opts.progress};
    if (absl::Status s = RunR1Stages(*cfg, stages, so); !s.ok()) {
      Say(absl::StrCat("grpo: ", s.message()));
      return shutdown.Requested() ? 130 : s.code() == absl::StatusCode::kInvalidArgument ||
                                                  s.code() == absl::StatusCode::kFailedPrecondition
                                              ? 2
                                              : 1;
    }
    if (cfg->pipeline.report) {
      if (absl::Status s = WriteRunReport(run_dir.string()); !s.ok()) {
        Say(absl::StrCat("grpo: ", s.message()));
        return 1;
      }
      Say(absl::StrCat("grpo: report ", (run_dir / "report.html").string()));
    }
    PrintBeforeAfter(run_dir);
    return 0;
  }
  const int64_t max_steps = cfg->learner.max_steps;
  const bool tty = ::isatty(STDERR_FILENO) && opts.progress;
  Say(absl::StrCat("grpo: run directory ", run_dir.string(), " (logs in ", (run_dir / "logs").string(), ")"));

  // Progress follows the lines written from now on: a resumed run keeps its earlier
  // steps out of the display. Marked before any service starts, so a fast learner's
  // first lines are never skipped.
  MetricsTail tail((run_dir / "metrics.jsonl").string());
  tail.SkipExisting();

  std::vector<ServiceProcess> children;
  // What started each child, so that it can be started again (same index as children).
  std::vector<Supervision> supervision;
  auto stop_all = [&](absl::Duration grace) {
    // One at a time in reverse start order: actors stop producing, the learner finishes
    // talking to a coordinator that is still there, then reward and coordinator.
    for (size_t i = children.size(); i-- > 0;) {
      if (!supervision[i].down) children[i].proc.Stop(grace);
    }
  };
  auto start = [&](const std::string& name, const std::vector<std::string>& sets, const std::string& binary = "") {
    const std::string role = binary.empty() ? name : binary;
    ServiceLaunch launch{name, (bin / ("grpo-" + role)).string(), (run_dir / "config.yaml").string(), sets,
                         run_dir.string()};
    if (secure) {
      launch.sets.push_back(absl::StrCat("security.cert_file=", (tls / (role + ".pem")).string()));
      launch.sets.push_back(absl::StrCat("security.key_file=", (tls / (role + ".key")).string()));
    }
    absl::StatusOr<ServiceProcess> c = StartServiceProcess(launch, [&] { return shutdown.Requested(); });
    if (!c.ok()) {
      if (!shutdown.Requested()) Say(absl::StrCat("grpo: ", c.status().message()));
      return false;
    }
    children.push_back(*c);
    // A restart keeps the ports, so the others' addresses stay right.
    launch.sets.push_back(absl::StrCat(role, ".serve.port=", c->grpc_port));
    launch.sets.push_back(absl::StrCat(role, ".serve.metrics_port=", c->metrics_port));
    supervision.push_back(Supervision{std::move(launch)});
    return true;
  };
  if (!start("coordinator", {})) return 1;
  std::string coord = absl::StrCat("endpoints.coordinator=127.0.0.1:", children[0].grpc_port);
  std::vector<int> reward_ports;
  for (int64_t i = 0; i < cfg->run.reward_servers; ++i) {
    if (!start(i == 0 ? std::string("reward") : absl::StrCat("reward-", i), {coord}, "reward")) {
      stop_all(absl::Seconds(10));
      return shutdown.Requested() ? 130 : 1;
    }
    reward_ports.push_back(children.back().grpc_port);
  }
  const int reward_port = reward_ports[0];
  // Data parallelism: ranks 1.. first, so that stopping in reverse order reaches rank 0
  // first, which then tells the others to stop. They meet at rank 0's store, whose
  // address the coordinator hands out (unless learner.dist_address fixes it).
  // The learner's validation (learner.eval_every) scores through the reward service.
  std::vector<std::string> learner_sets = {coord, absl::StrCat("endpoints.reward=127.0.0.1:", reward_port)};
  for (int64_t r = 1; r < cfg->learner.world_size; ++r) {
    std::vector<std::string> sets = learner_sets;
    sets.push_back(absl::StrCat("learner.rank=", r));
    if (!start(absl::StrCat("learner-", r), sets, "learner")) {
      stop_all(absl::Seconds(10));
      return shutdown.Requested() ? 130 : 1;
    }
  }
  learner_sets.push_back("learner.rank=0");
  if (!start("learner", learner_sets)) {
    stop_all(absl::Seconds(10));
    return shutdown.Requested() ? 130 : 1;
  }
  const int learner_port = children.back().grpc_port;
  // Every actor gets every reward server and spreads its batches over them (round
  // robin), so a dead or slow one is not a pinned actor's problem.
  std::vector<std::string> reward_list;
  for (int p : reward_ports) reward_list.push_back(absl::StrCat("127.0.0.1:", p));
  for (int64_t i = 0; i < cfg->run.actors; ++i) {
    std::vector<std::string> actor_sets = {coord, absl::StrCat("endpoints.reward=", absl::StrJoin(reward_list, ",")),
                                           absl::StrCat("endpoints.learner=127.0.0.1:", learner_port)};
    if (!start(i == 0 ? std::string("actor") : absl::StrCat("actor-", i), actor_sets, "actor")) {
      stop_all(absl::Seconds(10));
      return shutdown.Requested() ? 130 : 1;
    }
  }
  std::string ports;
  for (const auto& c : children) absl::StrAppend(&ports, " ", c.name, "=", c.grpc_port, "/", c.metrics_port);
  Say(absl::StrCat("grpo: services up (gRPC/metrics ports:", ports, ")"));
  std::optional<ChildProcess> prometheus;
  if (opts.prometheus) {
    const fs::path pdir = run_dir / "prometheus";
    fs::create_directories(pdir, ec);
    extern const char kEmbeddedAlertRules[];
    absl::StatusOr<int> free_port = PickFreePort();
    const int pport = opts.prometheus_port > 0 ? opts.prometheus_port : free_port.ok() ? *free_port : 9090;
    absl::Status w1 = WriteFileAtomic((pdir / "alerts.yml").string(), kEmbeddedAlertRules);
    absl::Status w2 = WriteFileAtomic((pdir / "prometheus.yml").string(),
                                      "# Written by grpo run --prometheus: the run's services by file discovery.\n"
                                      "global: {scrape_interval: 2s, evaluation_interval: 5s}\n"
                                      "rule_files: [alerts.yml]\n"
                                      "scrape_configs:\n"
                                      "  - job_name: grpo\n"
                                      "    file_sd_configs:\n"
                                      "      - files: [targets.json]\n"
                                      "        refresh_interval: 5s\n");
    WriteServices(run_dir, children, supervision);  // and targets.json
    ProcessSpec spec;
    spec.argv = {prometheus_bin, absl::StrCat("--config.file=", (pdir / "prometheus.yml").string()),
                 absl::StrCat("--storage.tsdb.path=", (pdir / "data").string()),
                 absl::StrCat("--web.listen-address=127.0.0.1:", pport)};
    spec.log_path = (run_dir / "logs" / "prometheus.log").string();
    absl::StatusOr<ChildProcess> p = w1.ok() && w2.ok() ? ChildProcess::Spawn(spec)
                                                       : absl::StatusOr<ChildProcess>(w1.ok() ? w2 : w1);
    if (!p.ok()) {
      Say(absl::StrCat("grpo: --prometheus: ", p.status().message()));
      stop_all(absl::Seconds(10));
      return 1;
    }
    prometheus = *p;
    (void)WriteFileAtomic((pdir / "ready.json").string(),
                          nlohmann::json{{"port", pport}, {"pid", prometheus->pid()}}.dump());
    Say(absl::StrCat("grpo: Prometheus on http://127.0.0.1:", pport, " scraping ", children.size(),
                     " services, alert rules loaded (log: ", spec.log_path, ")"));
  }
  WriteServices(run_dir, children, supervision);

  nlohmann::json last;
  int exit_code = 0;
  std::optional<absl::Time> finishing;  // set once a child exited cleanly at the end of the run
  for (;;) {
    for (const auto& m : tail.Poll()) {
      last = m;
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", ProgressLine(m, max_steps, true).c_str());
      } else {
        Say(ProgressLine(m, max_steps, false));
      }
    }
    if (shutdown.Requested()) {
      if (tty) std::fprintf(stderr, "\n");
      Say("grpo: interrupted; stopping all services");
      exit_code = 130;
      break;
    }
    bool learner_done = false, failed = false;
    // Restarts that are due.
    for (size_t i = 0; i < children.size() && !failed; ++i) {
      Supervision& sv = supervision[i];
      if (!sv.down || absl::Now() < sv.restart_at || finishing) continue;
      absl::StatusOr<ServiceProcess> c = StartServiceProcess(sv.launch, [&] { return shutdown.Requested(); });
      if (c.ok()) {
        children[i] = *c;
        sv.down = false;
        sv.started = absl::Now();
        Say(absl::StrCat("grpo: ", sv.launch.name, " restarted (pid ", c->proc.pid(), ", restart ", sv.restarts, " of ",
                         cfg->run.max_restarts, ")"));
        WriteServices(run_dir, children, supervision);
      } else if (shutdown.Requested()) {
        break;
      } else if (sv.restarts >= cfg->run.max_restarts) {
        Say(absl::StrCat("grpo: ", sv.launch.name, " could not be restarted and has used its ", cfg->run.max_restarts,
                         " restart(s) (run.max_restarts); stopping the run: ", c.status().message()));
        failed = true;
      } else {
        ++sv.restarts;
        ++sv.quick_deaths;
        sv.restart_at = absl::Now() + RestartBackoff(sv.quick_deaths);
        Say(absl::StrCat("grpo: restarting ", sv.launch.name, " failed (", c.status().message(), "); trying again (",
                         sv.restarts, " of ", cfg->run.max_restarts, ")"));
      }
    }
    if (failed) {
      exit_code = 1;
      break;
    }
    for (size_t i = 0; i < children.size(); ++i) {
      ServiceProcess& c = children[i];
      Supervision& sv = supervision[i];
      if (sv.down) continue;
      std::optional<int> st = c.proc.Poll();
      if (!st) continue;
      bool clean = WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
      // `last` is null until the first metrics line has been read.
      auto over = [&] { return max_steps > 0 && last.is_object() && last.value("step", int64_t{0}) >= max_steps; };
      if (clean && !over()) {
        // The learner writes the last step's line before it ends the run, but that may
        // have happened since this loop read the file: read it again before judging.
        for (const auto& m : tail.Poll()) last = m;
      }
      bool run_over = over();
      if (c.name == "learner" && clean) {
        learner_done = true;
      } else if (clean && (run_over || finishing)) {
        if (!finishing) finishing = absl::Now();
      } else {
        if (tty) std::fprintf(stderr, "\n");
        // Exit status 2 is a configuration error: starting it again would fail the same way.
        // A failure while the run is ending is not restarted either.
        const bool config_error = WIFEXITED(*st) && WEXITSTATUS(*st) == 2;
        // The learner is not done with the last step's metrics line: it still publishes,
        // completes leases and declares the run finished. Restarted (with its other ranks,
        // which fail at their next collective), it resumes from its checkpoint, trains
        // what the checkpoint lacks (nothing past max_steps) and ends the run.
        const bool ended = finishing || (run_over && !absl::StartsWith(c.name, "learner"));
        if (config_error || ended || sv.restarts >= cfg->run.max_restarts) {
          Say(absl::StrCat("grpo: ", c.name, " ", DescribeWaitStatus(*st),
                           config_error ? " (a configuration error)"
                           : ended      ? " as the run ended"
                                                     : absl::StrCat(" and has used its ", cfg->run.max_restarts,
                                                                    " restart(s) (run.max_restarts)"),
                           "; stopping the run. Last lines of ", c.log_path, ":\n", TailOfFile(c.log_path, 15)));
          failed = true;
          break;
        }
        ++sv.restarts;
        sv.quick_deaths = absl::Now() - sv.started >= kBackoffReset ? 1 : sv.quick_deaths + 1;
        sv.down = true;
        sv.restart_at = absl::Now() + RestartBackoff(sv.quick_deaths);
        WriteServices(run_dir, children, supervision);
        Say(absl::StrCat("grpo: ", c.name, " ", DescribeWaitStatus(*st), "; restarting it in ",
                         absl::FormatDuration(RestartBackoff(sv.quick_deaths)), " (restart ", sv.restarts, " of ",
                         cfg->run.max_restarts, "). Last lines of ", c.log_path, ":\n", TailOfFile(c.log_path, 5)));
      }
    }
    if (failed) {
      exit_code = 1;
      break;
    }
    if (learner_done) {
      if (tty) std::fprintf(stderr, "\n");
      break;
    }
    if (finishing && absl::Now() - *finishing > absl::Seconds(30)) {
      Say("grpo: a service finished but the learner did not exit within 30 s; stopping");
      exit_code = 1;
      break;
    }
    shutdown.WaitFor(absl::Milliseconds(100));
  }
  stop_all(absl::Seconds(10));
  if (prometheus) prometheus->Stop(absl::Seconds(5));
  for (const auto& m : tail.Poll()) last = m;
  if (!last.is_null()) {
    std::printf("grpo: %s after step %lld: reward %.3f, accuracy %.3f (metrics: %s)\n",
                exit_code == 0 ? "finished" : "stopped", static_cast<long long>(last.value("step", int64_t{0})),
                last.value("reward_mean", 0.0), last.value("accuracy", 0.0), (run_dir / "metrics.jsonl").c_str());
  }
  if (exit_code == 0) {
    if (absl::Status s = RunStagesAfter(*cfg, stages); !s.ok()) {
      Say(absl::StrCat("grpo: ", s.message()));
      return shutdown.Requested() ? 130 : 1;
    }
    PrintBeforeAfter(run_dir);
  }
  return exit_code;
}

}  // namespace grpo

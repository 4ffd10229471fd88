// The four real services as separate processes on loopback, talking real gRPC.
#include <signal.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <chrono>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <iostream>
#include <iterator>
#include <algorithm>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/common/metrics_server.h"
#include "core/common/service_process.h"
#include "core/model/safetensors.h"
#include "core/policy/policy.h"
#include "core/rpc/rpc.h"
#include "grpo/v1/reward.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpo/v1/actor.grpc.pb.h"
#include "grpo/v1/coordinator.grpc.pb.h"
#include "grpo/v1/learner.grpc.pb.h"
#include "grpo/v1/weights.grpc.pb.h"
#include "core/common/dataset.h"
#include "tests/cli_util.h"
#include "tests/test_configs.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string BinDir() {
  const char* d = std::getenv("GRPO_BIN_DIR");
  return d ? d : "build/bin";
}

// Keeps a failed test's run directory (logs) for inspection.
void RemoveUnlessFailed(const fs::path& dir) {
  if (!::testing::Test::HasFailure()) fs::remove_all(dir);
}

fs::path FreshDir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / absl::StrCat("grpo-it-", name, "-", ::getpid());
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// Polls `done` until it holds or `timeout` passes; returns whether it held.
bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(2);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Milliseconds(50));
  }
  return true;
}

std::vector<nlohmann::json> ReadJsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// A small, fast run: 16 tasks, 4 groups of 4 completions per step.
std::vector<std::string> SmallRun(const fs::path& dir, int64_t max_steps) {
  std::vector<std::string> sets = {absl::StrCat("run.dir=", dir.string())};
  for (const std::string& s : testing::ClassicRunOverrides()) sets.push_back(s);
  for (std::string s : {"data.num_tasks=16", "data.max_operand=4", "actor.group_size=4", "actor.prompts_per_request=2",
                        "actor.max_new_tokens=8", "learner.prompts_per_step=4", "learner.beta=0.04",
                        "model.hidden_size=32", "model.intermediate_size=64", "model.num_layers=1"}) {
    sets.push_back(s);
  }
  sets.push_back(absl::StrCat("learner.max_steps=", max_steps));
  return sets;
}

// The ready file a service wrote under `dir` ({grpc_port, metrics_port, pid}), or null.
nlohmann::json ReadyFile(const fs::path& dir, const std::string& name) {
  absl::StatusOr<std::string> r = ReadFile((dir / absl::StrCat(name, ".ready.json")).string());
  if (!r.ok()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(*r, nullptr, false);
  return j.is_object() ? j : nlohmann::json(nullptr);
}

// Pid a service wrote to its ready file under `dir` (-1 if unreadable).
pid_t ServicePid(const fs::path& dir, const std::string& name) {
  nlohmann::json j = ReadyFile(dir, name);
  return j.is_object() ? j.value("pid", -1) : -1;
}

// Counter `name` of the service whose ready file under `dir` is `service` (-1 if unread).
double ServiceCounter(const fs::path& dir, const std::string& service, const std::string& name) {
  nlohmann::json j = ReadyFile(dir, service);
  if (!j.is_object()) return -1;
  absl::StatusOr<std::string> text = HttpGet("127.0.0.1", j.value("metrics_port", 0), "/metrics");
  if (!text.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      double v = -1;
      return absl::SimpleAtod(line.substr(name.size() + 1), &v) ? v : -1;
    }
  }
  return -1;
}

// Blocks until metrics.jsonl has its first step (bounded).
bool WaitForFirstStep(const fs::path& dir) {
  return WaitUntil([&] { return fs::exists(dir / "metrics.jsonl") && fs::file_size(dir / "metrics.jsonl") > 0; },
                   absl::Seconds(120));
}

// Starts `grpo run` on a SmallRun config in `dir` (no step limit unless `extra` sets one),
// its output going to dir/<out>.
absl::StatusOr<ChildProcess> SpawnGrpoRun(const fs::path& dir, std::vector<std::string> extra, const std::string& out,
                                          std::vector<std::string> env = {}) {
  ProcessSpec spec;
  spec.env = std::move(env);
  spec.argv = {BinDir() + "/grpo", "run", "--run-dir", dir.string(), "--no-progress"};
  std::vector<std::string> sets = SmallRun(dir, 0);
  for (size_t i = 1; i < sets.size(); ++i) {  // sets[0] is run.dir, given by --run-dir
    spec.argv.push_back("--set");
    spec.argv.push_back(sets[i]);
  }
  spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());  // after: its --set wins
  spec.log_path = (dir / out).string();
  return ChildProcess::Spawn(spec);
}

// Runs `grpo run` on a SmallRun config in `dir` with `extra` arguments to its end (they
// must set a step limit) and checks it exited 0; failures show the launcher's output.
void RunGrpoToEnd(const fs::path& dir, std::vector<std::string> extra) {
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(dir, std::move(extra), "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  std::optional<int> st = p->WaitFor(absl::Seconds(180));
  ASSERT_TRUE(st.has_value()) << "grpo run did not finish";
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
      << DescribeWaitStatus(*st) << "\n" << TailOfFile((dir / "launcher.out").string(), 40);
}

// Runs `grpo run --run-dir dir` with only these `--set` overrides (no SmallRun: the
// pipeline's own stages) to its end, and checks it exited 0; `out` gets the tail of its
// output.
void RunPipelineToEnd(const fs::path& dir, const std::vector<std::string>& sets, std::string* out) {
  ProcessSpec spec;
  spec.argv = {BinDir() + "/grpo", "run", "--run-dir", dir.string(), "--no-progress"};
  for (const std::string& s : sets) spec.argv.insert(spec.argv.end(), {"--set", s});
  spec.log_path = (dir / "launcher.out").string();
  absl::StatusOr<ChildProcess> p = ChildProcess::Spawn(spec);
  ASSERT_TRUE(p.ok()) << p.status();
  std::optional<int> st = p->WaitFor(absl::Seconds(300));
  ASSERT_TRUE(st.has_value()) << "grpo run did not finish\n" << TailOfFile((dir / "launcher.out").string(), 40);
  *out = TailOfFile((dir / "launcher.out").string(), 60);
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << *out;
}

class Cluster {
 public:
  Cluster(const fs::path& dir, std::vector<std::string> sets) : dir_(dir) {
    absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides("", sets);
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    config_ = (dir / "config.yaml").string();
    EXPECT_TRUE(WriteFileAtomic(config_, ConfigToYaml(*cfg)).ok());
  }
  ~Cluster() {
    for (auto it = procs_.rbegin(); it != procs_.rend(); ++it) it->proc.Stop(absl::Seconds(10));
    RemoveUnlessFailed(dir_);
  }

  ServiceProcess& Start(const std::string& name, const std::string& instance = "",
                        std::vector<std::string> sets = {}, std::vector<std::string> env = {}) {
    // Endpoints the caller sets (through a proxy, say) are kept.
    auto given = [&](const std::string& key) {
      return std::any_of(sets.begin(), sets.end(), [&](const std::string& s) { return absl::StartsWith(s, key + "="); });
    };
    std::vector<std::string> wired;
    if (name != "coordinator" && !given("endpoints.coordinator")) {
      wired.push_back(absl::StrCat("endpoints.coordinator=127.0.0.1:", Port("coordinator")));
    }
    if (name == "actor") {
      if (!given("endpoints.reward")) wired.push_back(absl::StrCat("endpoints.reward=127.0.0.1:", Port("reward")));
      if (!given("endpoints.learner")) wired.push_back(absl::StrCat("endpoints.learner=127.0.0.1:", Port("learner")));
    }
    sets.insert(sets.begin(), wired.begin(), wired.end());
    ServiceLaunch launch{instance.empty() ? name : instance, absl::StrCat(BinDir(), "/grpo-", name), config_, sets,
                         dir_.string()};
    launch.env = std::move(env);
    absl::StatusOr<ServiceProcess> p = StartServiceProcess(launch);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) std::abort();
    procs_.push_back(*p);
    return procs_.back();
  }
  ServiceProcess& Get(const std::string& name) {
    for (auto& p : procs_) {
      if (p.name == name) return p;
    }
    std::abort();
  }
  int Port(const std::string& name) { return Get(name).grpc_port; }
  std::string Address(const std::string& name) { return absl::StrCat("127.0.0.1:", Port(name)); }

  v1::RunStatusResponse Status(bool prompts = false) {
    auto stub = v1::Coordinator::NewStub(rpc::MakeChannel(Address("coordinator")));
    v1::RunStatusRequest req;
    req.set_include_prompts(prompts);
    v1::RunStatusResponse resp;
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(5));
    grpc::Status s = stub->GetRunStatus(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  const fs::path dir_;

 private:
  std::string config_;
  std::vector<ServiceProcess> procs_;
};

TEST(Integration, FourServicesRunGrpoStepsOnLoopback) {
  fs::path dir = FreshDir("four");
  Cluster c(dir, SmallRun(dir, 12));
  c.Start("coordinator");
  c.Start("reward");
  c.Start("learner");  // publishes version 0, then waits for groups: nothing runs before the actor

  // Every service answers the standard health check and serves Prometheus metrics.
  auto check = [&](const char* name) {
    absl::StatusOr<bool> serving = rpc::CheckHealth(c.Address(name), absl::Seconds(10));
    ASSERT_TRUE(serving.ok()) << name << ": " << serving.status();
    EXPECT_TRUE(*serving) << name;
    absl::StatusOr<std::string> metrics = HttpGet("127.0.0.1", c.Get(name).metrics_port, "/metrics");
    ASSERT_TRUE(metrics.ok()) << name << ": " << metrics.status();
    EXPECT_THAT(*metrics, HasSubstr(absl::StrCat("grpo_", name, "_"))) << name;
  };
  for (const char* name : {"coordinator", "reward", "learner"}) check(name);
  c.Start("actor");
  check("actor");

  // Watch the weight version the actor samples with while the learner trains.
  auto actor = v1::Actor::NewStub(rpc::MakeChannel(c.Address("actor")));
  std::vector<int64_t> seen;
  ServiceProcess& learner = c.Get("learner");
  ASSERT_TRUE(WaitUntil([&] {
    v1::ActorStatusResponse st;
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(2));
    if (actor->GetStatus(ctx.get(), v1::ActorStatusRequest(), &st).ok() &&
        (seen.empty() || seen.back() != st.policy_version())) {
      seen.push_back(st.policy_version());
    }
    return learner.proc.Poll().has_value();
  }, absl::Seconds(120))) << "the learner did not finish 12 steps";
  std::optional<int> learner_status = learner.proc.Poll();
  EXPECT_TRUE(WIFEXITED(*learner_status) && WEXITSTATUS(*learner_status) == 0) << DescribeWaitStatus(*learner_status)
                                                                               << TailOfFile(learner.log_path, 20);
  ASSERT_FALSE(seen.empty());
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]) << "versions go only forward";
  EXPECT_GE(seen.back(), 2) << "the actor sampled with newer weights as the learner published them";

  // The learner wrote one metrics line per step; every step published a new version.
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 12u);
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i]["step"], i + 1);
    EXPECT_EQ(m[i]["version"], i + 1);
    for (const char* k : {"reward_mean", "accuracy", "loss", "kl", "tokens_per_s", "policy_version_max"}) {
      EXPECT_TRUE(m[i].contains(k)) << k;
    }
    EXPECT_EQ(m[i]["groups"], 4);
    EXPECT_GE(m[i]["kl"].get<double>(), 0.0);
  }

  // Every prompt the learner trained on completed exactly once; nothing was trained twice.
  v1::RunStatusResponse st = c.Status(/*prompts=*/true);
  EXPECT_EQ(st.step(), 12u);
  EXPECT_EQ(st.latest_version(), 12);
  EXPECT_TRUE(st.run_finished());
  EXPECT_EQ(st.leases_completed(), 48u);
  EXPECT_EQ(st.duplicate_completions(), 0u);
  uint32_t completed_units = 0;
  for (const auto& p : st.prompts()) {
    EXPECT_LE(p.completions(), 1u) << p.prompt_id() << " epoch " << p.epoch();
    EXPECT_GE(p.leases_issued(), 1u);
    completed_units += p.completions();
  }
  EXPECT_EQ(completed_units, 48u);
  EXPECT_EQ(st.leases_issued(), st.leases_completed() + st.leases_outstanding() + st.leases_expired());

  // SIGTERM stops each remaining service cleanly (exit status 0).
  for (const char* name : {"actor", "reward", "coordinator"}) {
    ServiceProcess& p = c.Get(name);
    int status = p.proc.Poll() ? *p.proc.Poll() : p.proc.Stop(absl::Seconds(20));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << name << " " << DescribeWaitStatus(status) << "\n" << TailOfFile(p.log_path, 20);
  }
}

TEST(Integration, ActorKilledMidRunItsLeasesComeBackAndAnotherActorFinishes) {
  fs::path dir = FreshDir("actor-death");
  std::vector<std::string> sets = SmallRun(dir, 6);
  sets.push_back("coordinator.heartbeat_timeout_ms=600");
  Cluster c(dir, sets);
  c.Start("coordinator");
  c.Start("reward");
  c.Start("learner");
  ServiceProcess& first = c.Start("actor", "actor-a");
  ASSERT_TRUE(WaitUntil([&] { return c.Status().step() >= 1; }, absl::Seconds(60)));
  first.proc.Signal(SIGKILL);
  first.proc.WaitFor(absl::Seconds(10));
  // The coordinator notices the silence and drops the member (its leases are re-queued).
  ASSERT_TRUE(WaitUntil([&] { return c.Status().members() == 0; }, absl::Seconds(30)));
  uint64_t step_at_death = c.Status().step();
  c.Start("actor", "actor-b");
  ServiceProcess& learner = c.Get("learner");
  ASSERT_TRUE(WaitUntil([&] { return learner.proc.Poll().has_value(); }, absl::Seconds(120)))
      << TailOfFile(learner.log_path, 20);
  v1::RunStatusResponse st = c.Status(true);
  EXPECT_EQ(st.step(), 6u);
  EXPECT_GT(st.step(), step_at_death);
  EXPECT_EQ(st.leases_completed(), 24u);
  for (const auto& p : st.prompts()) EXPECT_LE(p.completions(), 1u) << p.prompt_id();
  // The learner de-duplicates: it never trained a (prompt, epoch) twice.
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 6u);
}

TEST(Integration, LauncherRunsTheLoopForMaxStepsAndStopsCleanly) {
  fs::path dir = FreshDir("launcher");
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(dir, {"--max-steps", "2"}, "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  std::optional<int> st = p->WaitFor(absl::Seconds(120));
  ASSERT_TRUE(st.has_value()) << "grpo run did not finish";
  std::string out = TailOfFile((dir / "launcher.out").string(), 40);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << out;
  EXPECT_THAT(out, HasSubstr("step 2/2"));
  EXPECT_THAT(out, HasSubstr("finished after step 2"));
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1]["version"], 2);
  for (const char* name : {"coordinator", "reward", "learner", "actor"}) {
    EXPECT_TRUE(fs::exists(dir / "logs" / absl::StrCat(name, ".log"))) << name;
  }
  EXPECT_TRUE(fs::exists(dir / "config.yaml"));
  RemoveUnlessFailed(dir);
}

TEST(Integration, LauncherStopsEverythingWhenAChildDiesAndSaysWhich) {
  fs::path dir = FreshDir("child-death");
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(dir, {"--set", "run.max_restarts=0"}, "launcher.out");
  ASSERT_TRUE(p.ok());
  // Wait for the first training step, then kill the actor.
  ASSERT_TRUE(WaitForFirstStep(dir));
  pid_t actor = ServicePid(dir, "actor");
  ASSERT_GT(actor, 0);
  ASSERT_EQ(::kill(actor, SIGKILL), 0);
  std::optional<int> st = p->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(st.has_value()) << "the launcher did not stop";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << DescribeWaitStatus(*st);
  std::string out = TailOfFile((dir / "launcher.out").string(), 60);
  EXPECT_THAT(out, HasSubstr("grpo: actor killed by signal 9"));
  EXPECT_THAT(out, HasSubstr("and has used its 0 restart(s) (run.max_restarts); stopping the run"));
  EXPECT_THAT(out, HasSubstr("actor.log"));
  // The other services are gone too.
  for (const char* name : {"coordinator", "reward", "learner"}) {
    pid_t pid = ServicePid(dir, name);
    ASSERT_GT(pid, 0) << name;
    EXPECT_NE(::kill(pid, 0), 0) << name << " still running";
  }
  RemoveUnlessFailed(dir);
}

// Every training step 1..steps is in metrics.jsonl exactly once.
void ExpectEveryStepOnce(const fs::path& dir, int64_t steps, const std::string& context = "") {
  std::map<int64_t, int> seen;
  for (const nlohmann::json& m : ReadJsonl(dir / "metrics.jsonl")) {
    if (m.contains("loss")) ++seen[m.value("step", int64_t{-1})];
  }
  for (int64_t s = 1; s <= steps; ++s) EXPECT_EQ(seen[s], 1) << "step " << s << " in metrics.jsonl " << context;
  EXPECT_EQ(seen.size(), static_cast<size_t>(steps)) << context;
}

// Waits (bounded) for `grpo run` to end, checks it exited 0, and returns the tail of its
// output in *out. Use with ASSERT_NO_FATAL_FAILURE.
void ExpectRunFinished(ChildProcess& p, const fs::path& dir, std::string* out) {
  std::optional<int> st = p.WaitFor(absl::Seconds(240));
  *out = TailOfFile((dir / "launcher.out").string(), 200);
  ASSERT_TRUE(st.has_value()) << "grpo run did not finish\n" << *out;
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << *out;
}

// The coordinator's ledger against the learner's after a finished run: the units
// (prompt, epoch) the coordinator has issued and does not hold as pending are exactly
// the ones the learner's newest checkpoint says it trained, and the run's steps trained
// that many groups, so every unit was trained once (generated tasks are arith-NNNNNN).
void ExpectLedgerAgrees(const fs::path& dir, int64_t steps, int64_t per_step) {
  absl::StatusOr<std::string> text = ReadFile((dir / "coordinator" / "state.json").string());
  ASSERT_TRUE(text.ok()) << text.status();
  const nlohmann::json state = nlohmann::json::parse(*text);
  const int64_t n = state.at("dataset_size").get<int64_t>(), cursor = state.at("cursor").get<int64_t>();
  const uint32_t epoch = state.at("epoch").get<uint32_t>();
  auto id = [](int64_t t) { return absl::StrFormat("arith-%06d", t); };
  std::set<std::pair<std::string, uint32_t>> done;
  for (uint32_t e = 0; e < epoch; ++e) {
    for (int64_t t = 0; t < n; ++t) done.emplace(id(t), e);
  }
  for (int64_t t = 0; t < cursor; ++t) done.emplace(id(t), epoch);
  for (const auto& p : state.at("pending")) done.erase({id(p.at(0).get<int64_t>()), p.at(1).get<uint32_t>()});
  std::optional<fs::path> newest;
  for (const auto& e : fs::directory_iterator(dir / "checkpoints")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && name.find(".tmp") == std::string::npos && (!newest || e.path() > *newest)) {
      newest = e.path();
    }
  }
  ASSERT_TRUE(newest.has_value()) << "no checkpoint under " << dir;
  absl::StatusOr<std::string> ck = ReadFile((*newest / "state.json").string());
  ASSERT_TRUE(ck.ok()) << ck.status();
  const nlohmann::json learner = nlohmann::json::parse(*ck);
  EXPECT_EQ(learner.at("step").get<int64_t>(), steps) << *newest;
  std::set<std::pair<std::string, uint32_t>> trained;
  for (const auto& u : learner.at("seen")) trained.emplace(u.at(0).get<std::string>(), u.at(1).get<uint32_t>());
  EXPECT_EQ(trained.size(), static_cast<size_t>(steps * per_step)) << "units trained by the final checkpoint";
  std::vector<std::string> only_coordinator, only_learner;
  for (const auto& u : done) {
    if (!trained.count(u)) only_coordinator.push_back(absl::StrCat(u.first, "/", u.second));
  }
  for (const auto& u : trained) {
    if (!done.count(u)) only_learner.push_back(absl::StrCat(u.first, "/", u.second));
  }
  EXPECT_TRUE(only_coordinator.empty()) << "done at the coordinator, never trained: "
                                        << absl::StrJoin(only_coordinator, " ");
  EXPECT_TRUE(only_learner.empty()) << "trained, still pending or never issued at the coordinator: "
                                    << absl::StrJoin(only_learner, " ");
}

// A TCP proxy on loopback that can cut every connection through it at once, as a
// network fault between two live processes would: both ends get a reset (SO_LINGER 0)
// mid-stream. One thread polls the listener and every connection.
class TcpProxy {
 public:
  explicit TcpProxy(int target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 64), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    EXPECT_EQ(::pipe2(wake_, O_CLOEXEC | O_NONBLOCK), 0);
    thread_ = std::thread([this] { Loop(); });
  }
  ~TcpProxy() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    (void)!::write(wake_[1], "x", 1);
    thread_.join();
    for (auto [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // Resets every open connection; returns how many there were.
  int CutAll() {
    std::unique_lock<std::mutex> l(mu_);
    const uint64_t ticket = ++cut_requested_;
    (void)!::write(wake_[1], "x", 1);
    cv_.wait(l, [&] { return cut_done_ >= ticket || stop_; });
    return last_cut_;
  }

 private:
  static void Reset(int fd) {
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
  }
  void Loop() {
    char buf[1 << 16];
    while (true) {
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      for (auto [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) return;
      if (fds[1].revents) {
        while (::read(wake_[0], buf, sizeof buf) > 0) {
        }
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) return;
        if (cut_requested_ > cut_done_) {
          last_cut_ = static_cast<int>(pairs_.size());
          for (auto [a, b] : pairs_) {
            Reset(a);
            Reset(b);
          }
          pairs_.clear();
          cut_done_ = cut_requested_;
          cv_.notify_all();
          continue;  // the pollfds name closed sockets
        }
      }
      if (fds[0].revents & POLLIN) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          int t = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          a.sin_port = htons(static_cast<uint16_t>(target_port_));
          if (::connect(t, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            pairs_.emplace_back(c, t);
          } else {
            ::close(t);
            Reset(c);
          }
        }
      }
      std::vector<size_t> dead;
      for (size_t i = 2; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        const size_t pair = (i - 2) / 2;
        const int from = fds[i].fd, to = (i % 2 == 0) ? pairs_[pair].second : pairs_[pair].first;
        ssize_t n = ::read(from, buf, sizeof buf);
        bool ok = n > 0;
        for (ssize_t off = 0; ok && off < n;) {
          ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
          if (w <= 0) ok = false;
          off += w > 0 ? w : 0;
        }
        if (!ok && (dead.empty() || dead.back() != pair)) dead.push_back(pair);
      }
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        ::close(pairs_[*it].first);
        ::close(pairs_[*it].second);
        pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(*it));
      }
    }
  }

  int target_port_ = 0, port_ = 0, listen_fd_ = -1, wake_[2] = {-1, -1};
  std::vector<std::pair<int, int>> pairs_;  // (accepted, to the target); the loop thread's
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t cut_requested_ = 0, cut_done_ = 0;
  int last_cut_ = 0;
  std::thread thread_;
};

// Connections between live processes cut mid-stream (actor to reward, learner and
// coordinator; learner to coordinator) are retried like crashes: the run finishes with
// every step once and the ledgers agreeing.
TEST(Integration, CutConnectionsAreRetriedAndTheRunFinishes) {
  fs::path dir = FreshDir("cut");
  const int64_t steps = 40;
  std::vector<std::string> sets = SmallRun(dir, steps);
  sets.push_back("learner.checkpoint_every=5");
  Cluster c(dir, sets);
  c.Start("coordinator");
  c.Start("reward");
  TcpProxy to_coordinator(c.Port("coordinator")), to_reward(c.Port("reward"));
  c.Start("learner", "", {"endpoints.coordinator=" + to_coordinator.address()});
  TcpProxy to_learner(c.Port("learner"));
  c.Start("actor", "", {"endpoints.coordinator=" + to_coordinator.address(), "endpoints.reward=" + to_reward.address(),
                        "endpoints.learner=" + to_learner.address()});
  ServiceProcess& learner = c.Get("learner");
  ASSERT_TRUE(WaitForFirstStep(dir));
  int cuts = 0, live = 0;
  std::optional<int> done;
  // A fault every 300 ms (or the learner is done).
  for (int i = 0; i < 12 && !(done = learner.proc.WaitFor(absl::Milliseconds(300))); ++i) {
    const int n = to_coordinator.CutAll() + to_reward.CutAll() + to_learner.CutAll();
    live += n;
    cuts += n > 0;
  }
  ASSERT_TRUE(WaitUntil([&] { return (done = learner.proc.Poll()).has_value(); }, absl::Seconds(180)))
      << "the learner did not finish\n" << TailOfFile(learner.log_path, 40);
  EXPECT_TRUE(WIFEXITED(*done) && WEXITSTATUS(*done) == 0) << DescribeWaitStatus(*done) << TailOfFile(learner.log_path, 40);
  EXPECT_GE(cuts, 5) << "connections reset while live: " << live;
  ExpectEveryStepOnce(dir, steps);
  ExpectLedgerAgrees(dir, steps, 4);
  std::cerr << "cut: " << cuts << " rounds, " << live << " live connections reset\n";
}

// Persisting a new version (slowed to 4 s here, as a large one on a slow disk would be)
// is nobody's wait (issue #24): Publish returns once the version is servable, and while
// the weights writer is on the disk actors still lease work, heartbeat, read the run's
// status and fetch the new version. The version then reaches the disk, and state.json
// names it only once its bytes are there.
TEST(Integration, CallsGoOnWhileTheCoordinatorPersistsAVersion) {
  fs::path dir = FreshDir("persist");
  Cluster c(dir, SmallRun(dir, 0));
  c.Start("coordinator", "", {}, {"GRPO_TEST_PERSIST_DELAY_MS=4000"});
  auto stub = v1::Coordinator::NewStub(rpc::MakeChannel(c.Address("coordinator")));
  std::string blob(1 << 20, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 131 % 251);
  std::atomic<bool> published{false};
  absl::Time publish_start = absl::Now(), publish_end;
  std::thread publisher([&] {
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(60));
    // A plain protobuf client (the generated stub, fields in number order: data before
    // total_size and crc32) against the coordinator's zero-copy server.
    auto weights = v1::Weights::NewStub(rpc::MakeChannel(c.Address("coordinator")));
    v1::PublishWeightsResponse resp;
    auto writer = weights->Publish(ctx.get(), &resp);
    v1::WeightChunk chunk;
    chunk.set_version(1);
    chunk.set_step(1);
    chunk.set_total_size(blob.size());
    chunk.set_crc32(Crc32(blob));
    chunk.set_data(blob);
    EXPECT_TRUE(writer->Write(chunk));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    publish_end = absl::Now();
    published = true;
  });
  publisher.join();
  EXPECT_LT(publish_end - publish_start, absl::Seconds(3)) << "the publish waited for the disk";
  const fs::path state = dir / "coordinator" / "state.json";
  auto state_version = [&]() -> int64_t {
    std::ifstream f(state);
    nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
    return j.is_object() && j.contains("version") ? j["version"].get<int64_t>() : -1;
  };
  ASSERT_TRUE(WaitUntil([&] { return c.Status().latest_version() == 1; }, absl::Seconds(30)));
  v1::RegisterRequest reg;
  reg.set_role(v1::ROLE_ACTOR);
  reg.set_name("probe");
  v1::RegisterResponse member;
  std::vector<std::string> done_while_persisting;
  auto call = [&](const std::string& what, const std::function<grpc::Status(grpc::ClientContext*)>& fn) {
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(10));
    grpc::Status s = fn(ctx.get());
    EXPECT_TRUE(s.ok()) << what << ": " << s.error_message();
    if (state_version() != 1) done_while_persisting.push_back(what);
  };
  call("Register", [&](grpc::ClientContext* ctx) { return stub->Register(ctx, reg, &member); });
  call("Heartbeat", [&](grpc::ClientContext* ctx) {
    v1::HeartbeatRequest req;
    req.set_member_id(member.member_id());
    v1::HeartbeatResponse resp;
    return stub->Heartbeat(ctx, req, &resp);
  });
  call("AcquireWork", [&](grpc::ClientContext* ctx) {
    v1::AcquireWorkRequest req;
    req.set_member_id(member.member_id());
    req.set_max_items(2);
    v1::AcquireWorkResponse resp;
    grpc::Status s = stub->AcquireWork(ctx, req, &resp);
    EXPECT_EQ(resp.items_size(), 2);
    return s;
  });
  call("GetRunStatus", [&](grpc::ClientContext* ctx) {
    v1::RunStatusResponse resp;
    return stub->GetRunStatus(ctx, v1::RunStatusRequest(), &resp);
  });
  auto weights = v1::Weights::NewStub(rpc::MakeChannel(c.Address("coordinator")));
  call("FetchWeights", [&](grpc::ClientContext* ctx) {
    v1::FetchWeightsRequest req;
    req.set_version(1);
    auto reader = weights->Fetch(ctx, req);
    std::string got;
    v1::WeightChunk chunk;
    while (reader->Read(&chunk)) got += chunk.data();
    EXPECT_TRUE(got == blob) << "fetched " << got.size() << " bytes";
    return reader->Finish();
  });
  EXPECT_EQ(done_while_persisting.size(), 5u) << "finished while the version was being written: "
                                               << absl::StrJoin(done_while_persisting, ", ");
  // Then it is on disk, bytes first: state.json names it with the CRC of the file.
  ASSERT_TRUE(WaitUntil([&] { return state_version() == 1; }, absl::Seconds(30))) << "version 1 never persisted";
  EXPECT_GE(absl::Now() - publish_start, absl::Seconds(4)) << "the write was not slowed: the test shows nothing";
  std::ifstream f(state);
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  std::ifstream w(dir / "coordinator" / "weights.safetensors", std::ios::binary);
  std::string on_disk((std::istreambuf_iterator<char>(w)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(on_disk == blob);
  EXPECT_EQ(j["crc32"].get<uint32_t>(), Crc32(blob));
}

// `grpo run --secure`: mutual TLS and a bearer token between the services. While it
// runs, a caller without a client certificate, or with one but no token (or the wrong
// one), is refused with UNAUTHENTICATED, counted and logged; plaintext gets no answer;
// health checks stay open; the client certificate and token of the run's config.yaml
// (what `grpo status` uses) work. The run finishes by itself.
TEST(Integration, SecureRunRefusesUnauthenticatedCallsAndFinishes) {
  fs::path dir = FreshDir("secure");
  const int64_t steps = 300;  // long enough to still be running while the probes below go
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(dir, {"--max-steps", std::to_string(steps), "--secure"}, "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(WaitForFirstStep(dir)) << TailOfFile((dir / "launcher.out").string(), 40);
  const fs::path tls = dir / "tls";
  auto pem = [&](const std::string& name) { return *ReadFile((tls / name).string()); };
  const std::string address = absl::StrCat("127.0.0.1:", ReadyFile(dir, "coordinator").value("grpc_port", 0));
  auto status_with = [&](std::shared_ptr<grpc::ChannelCredentials> creds) {
    auto stub = v1::Coordinator::NewStub(grpc::CreateChannel(address, creds));
    v1::RunStatusResponse resp;
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(10));
    return stub->GetRunStatus(ctx.get(), v1::RunStatusRequest(), &resp);
  };
  grpc::SslCredentialsOptions server_only;
  server_only.pem_root_certs = pem("ca.pem");
  grpc::SslCredentialsOptions with_cert = server_only;
  with_cert.pem_cert_chain = pem("client.pem");
  with_cert.pem_private_key = pem("client.key");
  class Token : public grpc::MetadataCredentialsPlugin {
   public:
    explicit Token(std::string t) : t_(std::move(t)) {}
    grpc::Status GetMetadata(grpc::string_ref, grpc::string_ref, const grpc::AuthContext&,
                             std::multimap<grpc::string, grpc::string>* md) override {
      md->insert({"authorization", "Bearer " + t_});
      return grpc::Status::OK;
    }

   private:
    std::string t_;
  };
  const std::string token(absl::StripAsciiWhitespace(pem("token")));
  auto with_token = [&](const grpc::SslCredentialsOptions& o, const std::string& t) {
    return grpc::CompositeChannelCredentials(grpc::SslCredentials(o),
                                             grpc::MetadataCredentialsFromPlugin(std::make_unique<Token>(t)));
  };
  // Refused: no client certificate; a certificate but no token; a wrong token.
  for (const auto& [what, creds] :
       std::vector<std::pair<std::string, std::shared_ptr<grpc::ChannelCredentials>>>{
           {"no client certificate", with_token(server_only, token)},
           {"no token", grpc::SslCredentials(with_cert)},
           {"wrong token", with_token(with_cert, "wrong-" + token)}}) {
    grpc::Status s = status_with(creds);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << what << ": " << s.error_message();
  }
  // Plaintext to a TLS port gets no answer at all.
  EXPECT_EQ(status_with(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
  // Health stays open to any TLS caller.
  {
    auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(address, grpc::SslCredentials(server_only)));
    grpc::health::v1::HealthCheckResponse resp;
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(10));
    grpc::Status s = health->Check(ctx.get(), grpc::health::v1::HealthCheckRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  // The run's own client credentials work; so does `grpo status` (from config.yaml).
  EXPECT_TRUE(status_with(with_token(with_cert, token)).ok());
  testing::CliResult cli = testing::RunGrpo({"status", "--run-dir", dir.string(), "--json"}, dir);
  EXPECT_EQ(cli.status, 0) << cli.err;
  EXPECT_GE(ServiceCounter(dir, "coordinator", "grpo_rpc_unauthenticated_total"), 3);
  std::string out;
  ASSERT_NO_FATAL_FAILURE(ExpectRunFinished(*p, dir, &out));
  EXPECT_THAT(TailOfFile((dir / "launcher.out").string(), 100000), HasSubstr("mutual TLS and a bearer token"));
  EXPECT_THAT(TailOfFile((dir / "logs" / "coordinator.log").string(), 400), HasSubstr("UNAUTHENTICATED"));
  ExpectEveryStepOnce(dir, steps);
  RemoveUnlessFailed(dir);
}

// `grpo run` supervises: a service killed with SIGKILL mid-run is started again on its
// ports, the others reconnect, and the run finishes by itself with every step in
// metrics.jsonl exactly once.
class LauncherRestarts : public ::testing::TestWithParam<const char*> {};

TEST_P(LauncherRestarts, AKilledServiceIsRestartedAndTheRunFinishes) {
  const std::string name = GetParam();
  fs::path dir = FreshDir(absl::StrCat("restart-", name));
  const int64_t steps = 30;
  // Checkpoints every 4 steps: a learner killed after step 1-3 loses those steps, and
  // their prompts must be trained again (the ledger check below).
  absl::StatusOr<ChildProcess> p =
      SpawnGrpoRun(dir, {"--max-steps", std::to_string(steps), "--set", "learner.checkpoint_every=4"}, "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(WaitForFirstStep(dir));
  pid_t pid = ServicePid(dir, name);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  std::string out;
  ASSERT_NO_FATAL_FAILURE(ExpectRunFinished(*p, dir, &out));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("grpo: ", name, " killed by signal 9")));
  EXPECT_THAT(out, HasSubstr("; restarting it in "));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("grpo: ", name, " restarted (pid ")));
  EXPECT_NE(ServicePid(dir, name), pid);
  ExpectEveryStepOnce(dir, steps);
  ExpectLedgerAgrees(dir, steps, 4);
  RemoveUnlessFailed(dir);
}

// The learner killed (SIGKILL) at a chosen point of a step: after training but before
// anything is written, after its metrics line, after its checkpoint, after publishing,
// and after completing its leases. Step 6 is a checkpoint step (every 3), so each point
// leaves a different state on disk and at the coordinator; the run finishes with every
// step once and the ledgers agreeing.
class LearnerKilledAt : public ::testing::TestWithParam<const char*> {};

TEST_P(LearnerKilledAt, TheRunFinishesWithEveryStepAndPromptOnce) {
  const std::string point = GetParam();
  fs::path dir = FreshDir(absl::StrCat("kill-at-", point));
  const int64_t steps = 12;
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(dir, {"--max-steps", std::to_string(steps), "--set",
                                                      "learner.checkpoint_every=3"},
                                                "launcher.out", {absl::StrCat("GRPO_TEST_KILL_AT=", point, ":6")});
  ASSERT_TRUE(p.ok()) << p.status();
  std::string out;
  ASSERT_NO_FATAL_FAILURE(ExpectRunFinished(*p, dir, &out));
  EXPECT_TRUE(fs::exists(dir / absl::StrCat("killed-at-", point, "-6"))) << "the learner never reached the point";
  EXPECT_THAT(out, HasSubstr("grpo: learner killed by signal 9"));
  ExpectEveryStepOnce(dir, steps);
  ExpectLedgerAgrees(dir, steps, 4);
  RemoveUnlessFailed(dir);
}

// The learner killed after the checkpoint of the last step, before it declared the run
// finished: the restarted learner resumes at max_steps and finishes the run without
// training a step past it (it once trained step max_steps + 1, which an interrupted R1
// stage then showed as a ninth step of eight).
// With two ranks, rank 1 fails at its next collective and is restarted too.
class LastCheckpointKill : public ::testing::TestWithParam<int> {};

TEST_P(LastCheckpointKill, ALearnerKilledAfterTheLastCheckpointTrainsNoFurtherStep) {
  const int ranks = GetParam();
  fs::path dir = FreshDir(absl::StrCat("kill-at-last-checkpoint-", ranks));
  const int64_t steps = 6;
  absl::StatusOr<ChildProcess> p =
      SpawnGrpoRun(dir, {"--max-steps", std::to_string(steps), "--set", "learner.checkpoint_every=3", "--set",
                         absl::StrCat("learner.world_size=", ranks), "--set", "run.max_restarts=10"},
                   "launcher.out", {absl::StrCat("GRPO_TEST_KILL_AT=checkpoint:", steps)});
  ASSERT_TRUE(p.ok()) << p.status();
  std::string out;
  ASSERT_NO_FATAL_FAILURE(ExpectRunFinished(*p, dir, &out));
  EXPECT_TRUE(fs::exists(dir / absl::StrCat("killed-at-checkpoint-", steps))) << "the learner never reached the point";
  EXPECT_THAT(out, HasSubstr("grpo: learner killed by signal 9"));
  ExpectEveryStepOnce(dir, steps);
  ExpectLedgerAgrees(dir, steps, 4);
  RemoveUnlessFailed(dir);
}

// Two learner ranks under `grpo run`: either killed (SIGKILL) breaks the group; the
// other fails at its next collective, both are restarted, meet again and resume from
// rank 0's checkpoint. The run finishes with every step and prompt once.
class LearnerRankRestarts : public ::testing::TestWithParam<const char*> {};

TEST_P(LearnerRankRestarts, TheGroupReformsAndTheRunFinishes) {
  const std::string name = GetParam();
  fs::path dir = FreshDir(absl::StrCat("restart-dp-", name));
  const int64_t steps = 20;
  absl::StatusOr<ChildProcess> p =
      SpawnGrpoRun(dir, {"--max-steps", std::to_string(steps), "--set", "learner.world_size=2", "--set",
                         "learner.checkpoint_every=4", "--set", "run.max_restarts=10"},
                   "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(WaitForFirstStep(dir));
  pid_t pid = ServicePid(dir, name);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  std::string out;
  ASSERT_NO_FATAL_FAILURE(ExpectRunFinished(*p, dir, &out));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("grpo: ", name, " killed by signal 9")));
  ExpectEveryStepOnce(dir, steps);
  for (const nlohmann::json& m : ReadJsonl(dir / "metrics.jsonl")) {
    if (m.contains("loss")) EXPECT_EQ(m.value("world_size", int64_t{0}), 2);
  }
  ExpectLedgerAgrees(dir, steps, 4);
  RemoveUnlessFailed(dir);
}

INSTANTIATE_TEST_SUITE_P(Ranks, LearnerRankRestarts, ::testing::Values("learner", "learner-1"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param) == "learner" ? std::string("rank0") : std::string("rank1");
                         });

INSTANTIATE_TEST_SUITE_P(Ranks, LastCheckpointKill, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& i) { return absl::StrCat("world", i.param); });

INSTANTIATE_TEST_SUITE_P(Points, LearnerKilledAt,
                         ::testing::Values("trained", "metrics", "checkpoint", "published", "completed"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

INSTANTIATE_TEST_SUITE_P(Services, LauncherRestarts, ::testing::Values("coordinator", "reward", "actor", "learner"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });


// Chaos: a SIGKILL of a random service every 1.5-3 s (seeded; at most 12) through the
// first two thirds of a run.
// The run finishes by itself, and every step is in metrics.jsonl exactly once.
TEST(Integration, ChaosRandomKillsAndTheRunStillFinishesWithEveryStepOnce) {
  fs::path dir = FreshDir("chaos");
  const int64_t steps = 1500;  // about 40 s without kills
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(
      dir, {"--max-steps", std::to_string(steps), "--set", "run.max_restarts=100", "--set", "learner.checkpoint_every=7",
            // Versions as patches (bf16 actors at an RL learning rate): kills meet the
            // delta path too (a restarted coordinator lacks the base, a restarted actor
            // holds nothing, a restarted learner starts in full).
            "--set", "actor.dtype=bf16", "--set", "learner.lr=0.000001", "--set", "learner.delta_full_every=5"},
      "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(WaitForFirstStep(dir));
  std::mt19937 rng(20261127);
  const std::vector<std::string> names = {"coordinator", "reward", "learner", "actor"};
  std::map<std::string, int> kills;
  auto lines = [&] {
    std::ifstream in(dir / "metrics.jsonl");
    return static_cast<int64_t>(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
  };
  std::optional<int> st;
  // Kills stop in the last third: one landing as the run ends stops it by design.
  int total = 0;
  while (!(st = p->WaitFor(absl::Milliseconds(1500 + rng() % 1500))) && lines() < steps * 2 / 3 && total < 12) {
    const std::string& name = names[rng() % names.size()];
    pid_t pid = ServicePid(dir, name);
    if (pid > 0 && ::kill(pid, SIGKILL) == 0) {
      ++kills[name];
      ++total;
    }
  }
  if (!st) st = p->WaitFor(absl::Seconds(240));
  std::string out = TailOfFile((dir / "launcher.out").string(), 400);
  ASSERT_TRUE(st.has_value()) << "grpo run did not finish\n" << out;
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << out;
  std::string summary;
  for (const auto& [name, n] : kills) absl::StrAppend(&summary, name, "=", n, " ");
  EXPECT_GE(total, 5) << "too little chaos: " << summary;
  ExpectEveryStepOnce(dir, steps, "kills " + summary);
  ExpectLedgerAgrees(dir, steps, 4);
  uint64_t most_patches = 0;  // the publisher's count restarts with the learner: the most any line saw
  for (const nlohmann::json& line : ReadJsonl(dir / "metrics.jsonl")) {
    if (line.contains("weights_sent")) most_patches = std::max<uint64_t>(most_patches, line["weights_sent"]["delta"]);
  }
  EXPECT_GE(most_patches, 10u) << "versions went out as patches";
  std::cerr << "chaos: " << total << " kills (" << summary << "), up to " << most_patches << " patched versions\n";
  RemoveUnlessFailed(dir);
}

TEST(ChannelTarget, ListsBecomeIpTargetsAndBadEntriesAreNamed) {
  EXPECT_EQ(*rpc::ChannelTarget("reward.grpo.svc:50051"), "reward.grpo.svc:50051");
  EXPECT_EQ(*rpc::ChannelTarget("dns:///reward:50051"), "dns:///reward:50051");
  EXPECT_EQ(*rpc::ChannelTarget("127.0.0.1:1, 10.0.0.2:2"), "ipv4:127.0.0.1:1,10.0.0.2:2");
  EXPECT_EQ(*rpc::ChannelTarget("[::1]:1,[fe80::1]:2"), "ipv6:[::1]:1,[fe80::1]:2");
  for (const char* bad : {"127.0.0.1:1,reward:2", "127.0.0.1:1,127.0.0.1:0", "127.0.0.1:1,[::1]:2", ",", "1.2.3.4,5.6.7.8:9"}) {
    absl::StatusOr<std::string> t = rpc::ChannelTarget(bad);
    EXPECT_FALSE(t.ok()) << bad << " -> " << *t;
  }
  EXPECT_THAT(std::string(rpc::ChannelTarget("127.0.0.1:1,reward:2").status().message()), HasSubstr("'reward:2'"));
}

// With several reward servers, one actor spreads its batches over all of them.
TEST(Integration, AnActorBalancesItsBatchesOverEveryRewardServer) {
  fs::path dir = FreshDir("balance");
  absl::StatusOr<ChildProcess> p =
      SpawnGrpoRun(dir, {"--max-steps", "400", "--set", "run.reward_servers=2",
                         // heartbeats (which carry each actor's token count) every second
                         "--set", "coordinator.heartbeat_timeout_ms=3000"},
                   "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(WaitForFirstStep(dir));
  EXPECT_TRUE(WaitUntil([&] { return ServiceCounter(dir, "reward", "grpo_reward_groups_total") > 0 &&
                                     ServiceCounter(dir, "reward-1", "grpo_reward_groups_total") > 0; },
                        absl::Seconds(60)))
      << "groups scored: " << ServiceCounter(dir, "reward", "grpo_reward_groups_total") << " and "
      << ServiceCounter(dir, "reward-1", "grpo_reward_groups_total");

  // Every group so far carried the CRC of the weights it was sampled with, and it matched.
  EXPECT_EQ(ServiceCounter(dir, "learner", "grpo_learner_weight_hash_mismatches_total"), 0);
  EXPECT_EQ(ServiceCounter(dir, "learner", "grpo_learner_unverified_groups_total"), 0);
  // `grpo status` on the live run: the coordinator's view and the supervised services.
  testing::CliResult r = testing::RunGrpo({"status", "--run-dir", dir.string(), "--json"}, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string& out = r.out;
  nlohmann::json st = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(st.is_object()) << out;
  EXPECT_GE(st["step"].get<int64_t>(), 1) << out;
  EXPECT_GE(st["version"].get<int64_t>(), 1) << out;
  ASSERT_TRUE(st["members"].is_array()) << out;
  bool actor = false;
  for (const auto& m : st["members"]) {
    if (m["role"] != "ROLE_ACTOR") continue;
    actor = true;
    // Its load: it has been leased prompts (and holds at most what it asked for).
    EXPECT_GT(m["leases_issued"].get<uint64_t>(), 0u) << out;
    EXPECT_LE(m["leases_held"].get<uint32_t>(), 64u) << out;
    EXPECT_GE(m["tokens_per_s"].get<double>(), 0.0) << out;
  }
  EXPECT_TRUE(actor) << out;
  // Its throughput comes with its heartbeats (every heartbeat_timeout / 3).
  EXPECT_TRUE(WaitUntil([&] {
    nlohmann::json s = nlohmann::json::parse(testing::RunGrpo({"status", "--run-dir", dir.string(), "--json"}, dir).out,
                                             nullptr, false);
    if (!s.is_object() || !s["members"].is_array()) return false;
    for (const auto& m : s["members"]) {
      if (m["role"] == "ROLE_ACTOR" && m["tokens_generated"].get<uint64_t>() > 0) return true;
    }
    return false;
  }, absl::Seconds(30))) << "no actor reported the tokens it sampled";
  std::set<std::string> services;
  for (const auto& sv : st["services"]) {
    services.insert(sv["name"].get<std::string>());
    EXPECT_EQ(sv["restarts"], 0) << out;
    EXPECT_EQ(sv["up"], true) << out;
  }
  EXPECT_EQ(services, (std::set<std::string>{"coordinator", "reward", "reward-1", "learner", "actor"})) << out;
  EXPECT_EQ(testing::RunGrpo({"status"}, dir).status, 2);
  r = testing::RunGrpo({"status", "--coordinator", "127.0.0.1:1"}, dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("coordinator at 127.0.0.1:1"));
  ASSERT_EQ(::kill(p->pid(), SIGINT), 0);
  ASSERT_TRUE(p->WaitFor(absl::Seconds(60)).has_value());
  RemoveUnlessFailed(dir);
}

// Every prompt longer than the model's context (here a template padding each prompt
// past model.max_position_embeddings): the actors skip them, the learner rejects the
// empty groups, and rather than cycle the dataset's epochs for ever the learner stops
// the run as misconfigured (exit 2, not restarted), saying why.
TEST(Integration, ARunWhosePromptsAllOverflowTheContextStopsWithAConfigurationError) {
  fs::path dir = FreshDir("too-long");
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(
      dir, {"--max-steps", "5", "--set", "model.max_position_embeddings=32", "--set",
            absl::StrCat("model.prompt_template={prompt}=", std::string(40, '0'))},
      "launcher.out");
  ASSERT_TRUE(p.ok()) << p.status();
  std::optional<int> st = p->WaitFor(absl::Seconds(180));
  ASSERT_TRUE(st.has_value()) << "grpo run did not stop\n" << TailOfFile((dir / "launcher.out").string(), 20);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << DescribeWaitStatus(*st);
  const std::string out = TailOfFile((dir / "launcher.out").string(), 40);
  EXPECT_THAT(out, HasSubstr("a configuration error")) << out;
  EXPECT_THAT(out, HasSubstr("nothing in this run can train")) << out;
  absl::StatusOr<std::string> actor_log = ReadFile((dir / "logs" / "actor.log").string());
  ASSERT_TRUE(actor_log.ok()) << actor_log.status();
  EXPECT_THAT(*actor_log, HasSubstr("the model's context is 32"));
  RemoveUnlessFailed(dir);
}

TEST(Integration, CtrlCStopsTheLauncherAndEveryService) {
  fs::path dir = FreshDir("ctrl-c");
  absl::StatusOr<ChildProcess> p = SpawnGrpoRun(dir, {}, "launcher.out");
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(WaitForFirstStep(dir));
  p->Signal(SIGINT);  // what a terminal's Ctrl-C sends to the launcher
  std::optional<int> st = p->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(st.has_value()) << "the launcher did not stop";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 130) << DescribeWaitStatus(*st);
  EXPECT_THAT(TailOfFile((dir / "launcher.out").string(), 20), HasSubstr("interrupted; stopping all services"));
  for (const char* name : {"coordinator", "reward", "learner", "actor"}) {
    pid_t pid = ServicePid(dir, name);
    ASSERT_GT(pid, 0) << name;
    EXPECT_NE(::kill(pid, 0), 0) << name << " still running";
    // Each service logged a clean stop.
    EXPECT_THAT(TailOfFile((dir / "logs" / absl::StrCat(name, ".log")).string(), 3), HasSubstr("stopped")) << name;
  }
  // The same run directory resumes the run: the learner continues from the checkpoint
  // it wrote on SIGTERM, and metrics.jsonl goes on without repeating a step.
  std::vector<nlohmann::json> before = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_FALSE(before.empty());
  const int64_t last = before.back()["step"].get<int64_t>();
  EXPECT_FALSE(fs::is_empty(dir / "checkpoints")) << "no checkpoint written on SIGTERM";
  absl::StatusOr<ChildProcess> again =
      SpawnGrpoRun(dir, {"--max-steps", std::to_string(last + 2)}, "again.out");
  ASSERT_TRUE(again.ok());
  st = again->WaitFor(absl::Seconds(120));
  ASSERT_TRUE(st.has_value());
  std::string out = TailOfFile((dir / "again.out").string(), 30);
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << out;
  EXPECT_THAT(out, HasSubstr("resuming the run"));
  std::vector<nlohmann::json> after = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_GT(after.size(), before.size());
  for (size_t i = 1; i < after.size(); ++i) {
    EXPECT_GT(after[i]["step"].get<int64_t>(), after[i - 1]["step"].get<int64_t>()) << "step repeated or reordered";
    EXPECT_GT(after[i]["version"].get<int64_t>(), after[i - 1]["version"].get<int64_t>());
  }
  EXPECT_EQ(after.back()["step"].get<int64_t>(), last + 2);
  RemoveUnlessFailed(dir);
}

TEST(Integration, BadConfigIsRejectedByNameBeforeAnythingStarts) {
  ProcessSpec spec;
  fs::path dir = FreshDir("badcfg");
  spec.argv = {BinDir() + "/grpo-learner", "--set", "learner.lrr=1"};
  spec.log_path = (dir / "out").string();
  absl::StatusOr<ChildProcess> p = ChildProcess::Spawn(spec);
  ASSERT_TRUE(p.ok());
  std::optional<int> st = p->WaitFor(absl::Seconds(30));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(WEXITSTATUS(*st), 2);
  EXPECT_THAT(TailOfFile(spec.log_path, 5), HasSubstr("unknown config key 'learner.lrr'"));
  RemoveUnlessFailed(dir);
}

// The objective's variants run end to end: DAPO-style token-mean loss with
// clip-higher and dynamic sampling, Dr. GRPO's unscaled advantages, a k1 KL term and
// truncated importance weights. Groups with equal rewards are filtered, not trained.
TEST(Integration, LossVariantsTrainEndToEnd) {
  fs::path dir = FreshDir("variants");
  ASSERT_NO_FATAL_FAILURE((RunGrpoToEnd(
      dir,
      {"--max-steps", "2", "--set", "learner.loss_agg=token-mean", "--set", "learner.clip_eps_high=0.28", "--set",
       "learner.dynamic_sampling=true", "--set", "learner.scale_rewards=false", "--set", "learner.kl_estimator=k1",
       "--set", "learner.importance_cap=2", "--set", "reward.overlong_weight=1", "--set",
       "reward.overlong_max_tokens=8", "--set", "reward.overlong_buffer_tokens=8"})));
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  for (const auto& j : m) {
    EXPECT_TRUE(std::isfinite(j["loss"].get<double>())) << j.dump();
    EXPECT_GT(j["reward_std"].get<double>(), 0.0) << "a trained batch has no signal: " << j.dump();
    // min(pi_now / pi_sampled, cap): near 1 (samples at most a version or two old), never above the cap.
    EXPECT_GT(j["importance_weight_mean"].get<double>(), 0.5) << j.dump();
    EXPECT_LE(j["importance_weight_mean"].get<double>(), 2.0) << j.dump();
    // Every reward component's mean, the overlong penalty included.
    EXPECT_DOUBLE_EQ(j["rewards"]["accuracy"].get<double>(), j["accuracy"].get<double>()) << j.dump();
    EXPECT_DOUBLE_EQ(j["rewards"]["format"].get<double>(), j["format"].get<double>()) << j.dump();
    EXPECT_TRUE(j["rewards"].contains("overlong")) << j.dump();
  }
  RemoveUnlessFailed(dir);
}

// Warm-up then cosine learning rate, and the reference policy refreshed every step
// (R1-Zero's reset): the KL to a reference that equals the weights is exactly 0.
TEST(Integration, LearningRateScheduleAndReferenceRefresh) {
  fs::path dir = FreshDir("schedule");
  ASSERT_NO_FATAL_FAILURE((RunGrpoToEnd(
      dir,
      {"--max-steps", "4", "--set", "learner.warmup_steps=2", "--set",
       "learner.lr_schedule=cosine", "--set", "learner.min_lr_ratio=0.1", "--set", "learner.ref_refresh_steps=1"})));
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 4u);
  const double lr = m[1]["lr"].get<double>();  // the peak, at the end of warm-up
  ASSERT_GT(lr, 0);
  EXPECT_NEAR(m[0]["lr"].get<double>(), lr * 0.5, 1e-12);
  EXPECT_NEAR(m[2]["lr"].get<double>(), lr * (0.1 + 0.9 * 0.5), 1e-12);  // half-way down the cosine
  EXPECT_NEAR(m[3]["lr"].get<double>(), lr * 0.1, 1e-12);
  for (const auto& j : m) EXPECT_EQ(j["kl"].get<double>(), 0.0) << j.dump();
  // Without the refresh the weights move away from the reference: KL > 0 after step 1.
  fs::path dir2 = FreshDir("no-refresh");
  ASSERT_NO_FATAL_FAILURE((RunGrpoToEnd(dir2, {"--max-steps", "3"})));
  std::vector<nlohmann::json> m2 = ReadJsonl(dir2 / "metrics.jsonl");
  ASSERT_EQ(m2.size(), 3u);
  EXPECT_GT(m2[2]["kl"].get<double>(), 0.0);
  RemoveUnlessFailed(dir);
  RemoveUnlessFailed(dir2);
}

// A valid scored group of 4 one-token completions with distinct rewards.
v1::ScoredGroup FixedGroup(uint64_t lease, const std::string& id, int salt) {
  v1::ScoredGroup g;
  v1::RolloutGroup* r = g.mutable_group();
  r->mutable_item()->set_lease_id(lease);
  r->mutable_item()->set_prompt_id(id);
  r->add_prompt_token_ids(1);
  r->add_prompt_token_ids(8 + salt % 5);
  r->set_temperature(1.0f);
  for (int i = 0; i < 4; ++i) {
    v1::Completion* comp = r->add_completions();
    comp->add_token_ids(8 + (salt + i) % 7);
    comp->add_token_ids(9 + (salt * 3 + i) % 5);
    comp->add_logprobs(-2.0f);
    comp->add_logprobs(-2.5f);
    g.add_scores()->set_reward(static_cast<float>((salt + i) % 3));
  }
  return g;
}

// Sends groups [from, to) of the fixed sequence to the learner, reading each ack.
void SendGroups(Cluster& c, const std::string& learner, int from, int to) {
  auto stub = v1::Learner::NewStub(rpc::MakeChannel(c.Address(learner)));
  auto ctx = rpc::ContextWithDeadline(absl::Seconds(60));
  auto stream = stub->SubmitGroups(ctx.get());
  for (int i = from; i < to; ++i) {
    ASSERT_TRUE(stream->Write(FixedGroup(1000 + i, absl::StrCat("p", i), i)));
    v1::SubmitAck ack;
    ASSERT_TRUE(stream->Read(&ack));
    ASSERT_EQ(ack.outcome(), v1::SubmitAck::ACCEPTED) << ack.detail();
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// The weights of `version` as the coordinator serves them (waits until published).
std::string FetchWeights(Cluster& c, uint64_t version) {
  auto stub = v1::Weights::NewStub(rpc::MakeChannel(c.Address("coordinator")));
  std::string blob;
  EXPECT_TRUE(WaitUntil([&] {
    blob.clear();
    v1::FetchWeightsRequest req;
    req.set_version(version);
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(10));
    auto reader = stub->Fetch(ctx.get(), req);
    v1::WeightChunk chunk;
    bool right = true;
    while (reader->Read(&chunk)) {
      right &= chunk.version() == version;
      blob += chunk.data();
    }
    return reader->Finish().ok() && right && !blob.empty();
  }, absl::Seconds(60))) << "version " << version << " never appeared";
  return blob;
}

// kill -9 the learner after step 2, restart it: it resumes from its checkpoint, and
// step 3's weights are bit-identical to those of an uninterrupted run on the same data
// (with two passes of two minibatches per step).
TEST(Integration, LearnerKilledMidRunResumesExactly) {
  auto cluster_sets = [](const fs::path& dir) {
    std::vector<std::string> sets = SmallRun(dir, 0);
    sets.push_back("learner.prompts_per_step=2");
    sets.push_back("learner.checkpoint_every=1");
    sets.push_back("learner.max_staleness=100");
    // Several shuffled minibatches per step, accumulated in micro-batches: the shuffle
    // is seeded by (run.seed, step, pass), so it needs no saved RNG state.
    sets.push_back("learner.epochs=2");
    sets.push_back("learner.minibatches=2");
    sets.push_back("learner.micro_batch_size=3");
    return sets;
  };
  fs::path dir_a = FreshDir("resume-a");
  std::string uninterrupted;
  {
    Cluster a(dir_a, cluster_sets(dir_a));
    a.Start("coordinator");
    a.Start("learner");
    SendGroups(a, "learner", 0, 6);
    uninterrupted = FetchWeights(a, 3);
  }
  fs::path dir_b = FreshDir("resume-b");
  Cluster b(dir_b, cluster_sets(dir_b));
  b.Start("coordinator");
  ServiceProcess& first = b.Start("learner");
  SendGroups(b, "learner", 0, 4);
  FetchWeights(b, 2);  // step 2 published, so its checkpoint (written first) exists
  first.proc.Signal(SIGKILL);
  ASSERT_TRUE(first.proc.WaitFor(absl::Seconds(10)).has_value());
  // A corrupt newer checkpoint must be skipped with a warning.
  fs::create_directories(dir_b / "checkpoints" / "step-00000009");
  ASSERT_TRUE(WriteFileAtomic((dir_b / "checkpoints" / "step-00000009" / "manifest.json").string(),
                              R"({"files": {"model.safetensors": 1}})").ok());
  ServiceProcess& second = b.Start("learner", "learner2");
  SendGroups(b, "learner2", 4, 6);
  std::string resumed = FetchWeights(b, 3);
  EXPECT_TRUE(resumed == uninterrupted) << "step 3 weights differ after resume (" << resumed.size() << " vs "
                                        << uninterrupted.size() << " bytes)";
  EXPECT_THAT(TailOfFile(second.log_path, 200), HasSubstr("skipping checkpoint"));
  EXPECT_THAT(TailOfFile(second.log_path, 200), HasSubstr("resumed from"));
  RemoveUnlessFailed(dir_a);
}

// The reward service answers with the scores only (the actor still holds the group):
// ids to join on and one Score per completion, well under half of the group's bytes.
TEST(Integration, TheRewardServiceAnswersWithScoresOnly) {
  fs::path dir = FreshDir("scores-only");
  Cluster c(dir, SmallRun(dir, 0));
  c.Start("coordinator");
  c.Start("reward");
  v1::RolloutGroup g;
  g.mutable_item()->set_lease_id(77);
  g.mutable_item()->set_prompt_id("arith-000003");
  g.mutable_item()->set_task("math");
  g.mutable_item()->set_prompt("3+4");
  g.mutable_item()->set_answer("7");
  for (int i = 0; i < 8; ++i) {
    v1::Completion* comp = g.add_completions();
    comp->set_text(i % 2 ? "<think>3+4 is 7</think><answer>7</answer>" : "<answer>8</answer>");
    for (int t = 0; t < 24; ++t) {
      comp->add_token_ids(5 + t);
      comp->add_logprobs(-1.5f);
    }
  }
  auto stub = v1::Reward::NewStub(rpc::MakeChannel(c.Address("reward")));
  auto ctx = rpc::ContextWithDeadline(absl::Seconds(30));
  auto stream = stub->Score(ctx.get());
  v1::GroupScores scores;
  ASSERT_TRUE(stream->Write(g));
  ASSERT_TRUE(stream->Read(&scores));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(scores.lease_id(), 77u);
  EXPECT_EQ(scores.prompt_id(), "arith-000003");
  ASSERT_EQ(scores.scores_size(), 8);
  EXPECT_GT(scores.scores(1).reward(), scores.scores(0).reward());
  EXPECT_LT(scores.ByteSizeLong() * 2, g.ByteSizeLong()) << scores.ByteSizeLong() << " vs " << g.ByteSizeLong();
  std::cerr << "scores: " << scores.ByteSizeLong() << " bytes for a group of " << g.ByteSizeLong() << "\n";
}

// Integrity end to end: a group whose weights' CRC-32 is not the one the learner
// published under the version it claims (a mislabelled or corrupt policy, the silent
// staleness other systems shipped) is refused, counted, and its prompt queued again.
TEST(Integration, TheLearnerRefusesGroupsWhoseWeightsAreNotTheVersionTheyClaim) {
  fs::path dir = FreshDir("weights-crc");
  std::vector<std::string> sets = SmallRun(dir, 0);
  sets.push_back("learner.prompts_per_step=8");  // no step: only admission is under test
  Cluster c(dir, sets);
  c.Start("coordinator");
  c.Start("learner");
  const uint32_t crc = Crc32(FetchWeights(c, 0));
  auto stub = v1::Learner::NewStub(rpc::MakeChannel(c.Address("learner")));
  auto ctx = rpc::ContextWithDeadline(absl::Seconds(30));
  auto stream = stub->SubmitGroups(ctx.get());
  v1::ScoredGroup bad = FixedGroup(1, "p1", 1);
  bad.mutable_group()->set_policy_crc32(crc ^ 0x10);
  v1::ScoredGroup good = FixedGroup(2, "p2", 2);
  good.mutable_group()->set_policy_crc32(crc);
  v1::SubmitAck ack;
  ASSERT_TRUE(stream->Write(bad));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.outcome(), v1::SubmitAck::REJECTED);
  EXPECT_THAT(ack.detail(), HasSubstr("CRC-32"));
  ASSERT_TRUE(stream->Write(good));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.outcome(), v1::SubmitAck::ACCEPTED) << ack.detail();
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  absl::StatusOr<std::string> metrics = HttpGet("127.0.0.1", c.Get("learner").metrics_port, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("grpo_learner_weight_hash_mismatches_total 1"));
  EXPECT_THAT(*metrics, HasSubstr("grpo_learner_unverified_groups_total 0"));
}

// learner.world_size = 2: two learner processes in one Gloo group. Rank 0 takes the
// groups and broadcasts each batch; each rank trains half; gradients are all-reduced.
// The published weights equal a single learner's on the same groups (fp32 tolerance),
// also across a kill -9 of rank 0 and a restart of both ranks.
TEST(Integration, TwoLearnerRanksPublishTheWeightsOfOneLearnerAndResumeTogether) {
  auto sets_for = [](const fs::path& dir, int world) {
    std::vector<std::string> sets = SmallRun(dir, 0);
    sets.push_back("learner.prompts_per_step=4");
    sets.push_back("learner.max_staleness=100");
    sets.push_back("learner.checkpoint_every=1");
    sets.push_back(absl::StrCat("learner.world_size=", world));
    return sets;
  };
  fs::path dir_a = FreshDir("dp-one");
  std::string one, one_step3;
  {
    Cluster a(dir_a, sets_for(dir_a, 1));
    a.Start("coordinator");
    a.Start("learner");
    SendGroups(a, "learner", 0, 12);
    one = FetchWeights(a, 2);
    one_step3 = FetchWeights(a, 3);
  }
  std::string two_step3;
  fs::path dir_b = FreshDir("dp-two");
  std::string two;
  std::string rank1_log;
  {
    Cluster b(dir_b, sets_for(dir_b, 2));
    b.Start("coordinator");
    // Rank 1 starts first and waits for rank 0 to announce its store through the
    // coordinator (learner.dist_address unset).
    b.Start("learner", "learner-1", {"learner.rank=1"});
    b.Start("learner");
    SendGroups(b, "learner", 0, 8);
    two = FetchWeights(b, 2);
    rank1_log = b.Get("learner-1").log_path;
    // Rank 1 takes no groups itself.
    auto stub = v1::Learner::NewStub(rpc::MakeChannel(b.Address("learner-1")));
    auto ctx = rpc::ContextWithDeadline(absl::Seconds(10));
    auto stream = stub->SubmitGroups(ctx.get());
    stream->Write(FixedGroup(1, "x", 0));
    stream->WritesDone();
    grpc::Status st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_THAT(TailOfFile(rank1_log, 50), HasSubstr("learner group formed"));
    EXPECT_THAT(TailOfFile(rank1_log, 50), HasSubstr("rank 1 step 2: 2 group(s)"));

    // kill -9 rank 0: rank 1 notices the group is gone and fails. Both restart; rank 0
    // resumes from its step-2 checkpoint and hands its state to the new rank 1 (which
    // reads no checkpoint), and step 3 matches the uninterrupted single learner.
    b.Get("learner").proc.Signal(SIGKILL);
    ASSERT_TRUE(b.Get("learner").proc.WaitFor(absl::Seconds(10)).has_value());
    std::optional<int> r1 = b.Get("learner-1").proc.WaitFor(absl::Seconds(60));
    ASSERT_TRUE(r1.has_value()) << "rank 1 outlived rank 0";
    EXPECT_FALSE(WIFEXITED(*r1) && WEXITSTATUS(*r1) == 0);
    b.Start("learner", "learner-1b", {"learner.rank=1"});
    b.Start("learner", "learner-0b");
    SendGroups(b, "learner-0b", 8, 12);
    two_step3 = FetchWeights(b, 3);
    EXPECT_THAT(TailOfFile(b.Get("learner-1b").log_path, 50), HasSubstr("took rank 0's state at step 2"));
  }
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides("", sets_for(dir_a, 1));
  ASSERT_TRUE(cfg.ok());
  auto a = BuildPolicy(*cfg, 1), b = BuildPolicy(*cfg, 2);
  ASSERT_TRUE(a.ok() && b.ok());
  auto max_diff = [&](const std::string& x, const std::string& y) {
    EXPECT_TRUE(LoadWeightsBlob((*a)->model, x).ok());
    EXPECT_TRUE(LoadWeightsBlob((*b)->model, y).ok());
    auto pb = (*b)->model->named_parameters();
    double d = 0;
    for (const auto& p : (*a)->model->named_parameters()) d = std::max(d, (p.value() - pb[p.key()]).abs().max().item<double>());
    return d;
  };
  EXPECT_LT(max_diff(one_step3, two_step3), 1e-5);
  ASSERT_TRUE(LoadWeightsBlob((*a)->model, one).ok());
  ASSERT_TRUE(LoadWeightsBlob((*b)->model, two).ok());
  auto pb = (*b)->model->named_parameters();
  double diff = 0, moved = 0;
  auto init = BuildPolicy(*cfg, static_cast<uint64_t>(cfg->run.seed));
  ASSERT_TRUE(init.ok());
  auto pi = (*init)->model->named_parameters();
  for (const auto& p : (*a)->model->named_parameters()) {
    diff = std::max(diff, (p.value() - pb[p.key()]).abs().max().item<double>());
    moved = std::max(moved, (p.value() - pi[p.key()]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 1e-4);  // two steps did change the weights
  EXPECT_LT(diff, 1e-5);
  RemoveUnlessFailed(dir_a);
  RemoveUnlessFailed(dir_b);
}

// `grpo run` with learner.world_size = 2 starts both ranks and runs to the end.
TEST(Integration, LauncherRunsTwoLearnerRanks) {
  fs::path dir = FreshDir("dp-launcher");
  ASSERT_NO_FATAL_FAILURE((RunGrpoToEnd(dir, {"--max-steps", "3", "--set", "learner.world_size=2"})));
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 3u);
  for (const auto& j : m) EXPECT_EQ(j["world_size"].get<int64_t>(), 2) << j.dump();
  std::string rank1 = TailOfFile((dir / "logs" / "learner-1.log").string(), 100);
  EXPECT_THAT(rank1, HasSubstr("rank 1 step 3"));
  EXPECT_THAT(rank1, HasSubstr("rank 0 ended training"));
  RemoveUnlessFailed(dir);
}

// A group may wait in the buffer while newer versions are published. The learner
// admits a group only where it will be trained within the bound (otherwise the stream
// waits) and checks again at batch time (dropping and re-queueing the stale), so no
// step trains on a group more than learner.max_staleness versions old. Eight groups
// per actor request and two per step: without either, some wait behind a full buffer.
TEST(Integration, GroupsThatGoStaleInTheBufferAreNotTrainedOn) {
  fs::path dir = FreshDir("stale-buffer");
  ASSERT_NO_FATAL_FAILURE((RunGrpoToEnd(
      dir, {"--max-steps", "12", "--set", "learner.max_staleness=1", "--set", "learner.prompts_per_step=2",
            "--set", "learner.buffer_groups=16", "--set", "actor.prompts_per_request=8"})));
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 12u);
  for (const auto& j : m) {
    for (const auto& [lag, n] : j["staleness"].items()) EXPECT_LE(std::stoi(lag), 1) << j.dump();
    EXPECT_GE(j["stale_dropped"].get<int64_t>(), 0) << j.dump();
  }
  RemoveUnlessFailed(dir);
}

// DAPO's overlong filtering: with learner.mask_truncated, truncated completions give
// no gradient (a batch of only truncated completions leaves the weights as they are),
// and the step's metrics carry entropy, the longest completion and the staleness counts.
TEST(Integration, TruncatedCompletionsCanBeMaskedAndStepsReportEntropyAndStaleness) {
  fs::path dir = FreshDir("mask-truncated");
  std::vector<std::string> sets = SmallRun(dir, 0);
  sets.push_back("learner.prompts_per_step=2");
  sets.push_back("learner.mask_truncated=true");
  Cluster c(dir, sets);
  c.Start("coordinator");
  c.Start("learner");
  auto stub = v1::Learner::NewStub(rpc::MakeChannel(c.Address("learner")));
  auto ctx = rpc::ContextWithDeadline(absl::Seconds(60));
  auto stream = stub->SubmitGroups(ctx.get());
  for (int i = 0; i < 2; ++i) {
    v1::ScoredGroup g = FixedGroup(2000 + i, absl::StrCat("t", i), i);
    for (auto& comp : *g.mutable_group()->mutable_completions()) comp.set_truncated(true);
    ASSERT_TRUE(stream->Write(g));
    v1::SubmitAck ack;
    ASSERT_TRUE(stream->Read(&ack));
    ASSERT_EQ(ack.outcome(), v1::SubmitAck::ACCEPTED) << ack.detail();
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  {
    auto before = model::ParseSafetensors(FetchWeights(c, 0));
    auto after = model::ParseSafetensors(FetchWeights(c, 1));
    ASSERT_TRUE(before.ok() && after.ok());
    for (const auto& [name, t] : *before) {
      EXPECT_TRUE(torch::equal(t, after->at(name))) << name << ": masked completions moved the weights";
    }
  }
  ASSERT_TRUE(WaitUntil([&] { return ReadJsonl(dir / "metrics.jsonl").size() == 1; }, absl::Seconds(30)));
  nlohmann::json m = ReadJsonl(dir / "metrics.jsonl")[0];
  EXPECT_EQ(m["grad_norm"].get<double>(), 0.0) << m.dump();
  EXPECT_EQ(m["completion_len_max"].get<int64_t>(), 2);
  EXPECT_EQ(m["truncated_share"].get<double>(), 1.0);
  EXPECT_EQ(m["staleness"]["0"].get<int64_t>(), 2) << m.dump();  // both groups sampled with the current version
  EXPECT_GT(m["entropy"].get<double>(), 0.0);
}


// Versions go out in the actors' dtype (issue #24): with actor.dtype=bf16 the learner,
// training in fp32, publishes bf16 bytes (half of fp32's), and the CRC the coordinator
// checked is of exactly those bytes.
TEST(Integration, VersionsGoOutInTheActorsDtype) {
  fs::path dir = FreshDir("bf16-versions");
  std::vector<std::string> sets = SmallRun(dir, 0);
  sets.push_back("actor.dtype=bf16");
  Cluster c(dir, sets);
  c.Start("coordinator");
  c.Start("learner");
  const std::string blob = FetchWeights(c, 0);
  absl::StatusOr<model::TensorMap> parsed = model::ParseSafetensors(blob);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  int64_t fp32_bytes = 0, sent_bytes = 0;
  for (const auto& [name, t] : *parsed) {
    EXPECT_EQ(t.scalar_type(), torch::kBFloat16) << name;
    fp32_bytes += t.numel() * 4;
    sent_bytes += t.numel() * t.element_size();
  }
  EXPECT_EQ(sent_bytes * 2, fp32_bytes);
  EXPECT_LT(blob.size(), static_cast<size_t>(fp32_bytes) * 6 / 10) << "not half the fp32 bytes";
  EXPECT_EQ(c.Status().latest_version(), 0);
  RemoveUnlessFailed(dir);
}

// The value of one sample ("name{labels}" as exposed) in Prometheus text, -1 if absent.
double SampleValue(const std::string& text, const std::string& sample) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, sample + " ")) return std::atof(std::string(line.substr(sample.size() + 1)).c_str());
  }
  return -1;
}

// Delta versions over real processes (issue #24): actors in bf16 at an RL learning rate
// get most versions as patches against the one they hold, relayed and applied, with a
// full version every learner.delta_full_every; every group they send carries the CRC of
// the full version the learner published (the learner checks it), and the run finishes.
TEST(Integration, VersionsGoOutAsPatchesThatActorsApply) {
  fs::path dir = FreshDir("delta-versions");
  std::vector<std::string> sets = SmallRun(dir, 10);
  sets.push_back("actor.dtype=bf16");
  sets.push_back("learner.lr=0.000001");
  sets.push_back("learner.delta_full_every=4");
  Cluster c(dir, sets);
  c.Start("coordinator");
  c.Start("reward");
  c.Start("learner");
  c.Start("actor");
  ServiceProcess& learner = c.Get("learner");
  std::string actor_metrics;  // the actor stops with the run: scraped while it runs
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<std::string> got = HttpGet("127.0.0.1", c.Get("actor").metrics_port, "/metrics");
    if (got.ok() && absl::StrContains(*got, "grpo_actor_weight_versions_total")) actor_metrics = *got;
    return learner.proc.Poll().has_value();
  }, absl::Seconds(120))) << "the learner did not finish 10 steps";
  std::optional<int> status = learner.proc.Poll();
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << DescribeWaitStatus(*status)
                                                              << TailOfFile(learner.log_path, 20);
  std::vector<nlohmann::json> m = ReadJsonl(dir / "metrics.jsonl");
  ASSERT_EQ(m.size(), 10u);
  // Version 0 goes out before the first step, in full; after it the publisher's: 1 full,
  // 2-4 patches, 5 full, 6-8 patches, 9 full (the last line counts versions up to 9).
  const nlohmann::json& last = m.back();
  ASSERT_TRUE(last.contains("weights_sent")) << last.dump();
  const uint64_t full = last["weights_sent"]["full"], delta = last["weights_sent"]["delta"];
  EXPECT_EQ(full + delta, 9u) << last.dump();
  EXPECT_GE(full, 3u) << "a full version at least every 4";
  EXPECT_GE(delta, 5u) << "at lr 1e-6 bf16 patches are far smaller than the version";
  const double full_each = last["weight_bytes_sent"]["full"].get<double>() / static_cast<double>(full);
  const double delta_each = last["weight_bytes_sent"]["delta"].get<double>() / static_cast<double>(std::max<uint64_t>(delta, 1));
  EXPECT_LT(delta_each, full_each * 0.2) << "patch bytes per version against full";
  // The actor applied patches (its metrics as last scraped during the run, and its log),
  // none refused, and the learner found every group's CRC to be that of a version it
  // published.
  EXPECT_GE(SampleValue(actor_metrics, "grpo_actor_weight_versions_total{kind=\"delta\"}"), 1) << actor_metrics;
  EXPECT_EQ(SampleValue(actor_metrics, "grpo_actor_weight_patches_refused_total"), 0);
  const std::string actor_log = TailOfFile(c.Get("actor").log_path, 2000);
  EXPECT_THAT(actor_log, HasSubstr(", as a patch,"));
  EXPECT_THAT(actor_log, Not(HasSubstr("is refused")));
  const std::string coordinator_log = TailOfFile(c.Get("coordinator").log_path, 2000);
  EXPECT_THAT(coordinator_log, HasSubstr("as a patch of"));
  EXPECT_THAT(coordinator_log, Not(HasSubstr("refused")));
  const std::string log = TailOfFile(learner.log_path, 400);
  EXPECT_THAT(log, Not(HasSubstr("CRC-32"))) << "no group was refused for its weights";
  RemoveUnlessFailed(dir);
}

// Dynamic sampling over the real SubmitGroups stream: a group whose rewards are all
// equal is FILTERED (and its lease completed), one with a spread is ACCEPTED.
TEST(Integration, DynamicSamplingFiltersGroupsWithoutSignal) {
  fs::path dir = FreshDir("dynamic");
  std::vector<std::string> sets = SmallRun(dir, 0);
  sets.push_back("learner.dynamic_sampling=true");
  Cluster c(dir, sets);
  c.Start("coordinator");
  c.Start("learner");
  auto learner = v1::Learner::NewStub(rpc::MakeChannel(c.Address("learner")));
  auto group = [](uint64_t lease, const std::string& id, std::vector<float> rewards) {
    v1::ScoredGroup g;
    v1::RolloutGroup* r = g.mutable_group();
    r->mutable_item()->set_lease_id(lease);
    r->mutable_item()->set_prompt_id(id);
    r->add_prompt_token_ids(1);
    r->set_temperature(1.0f);
    for (float rw : rewards) {
      v1::Completion* comp = r->add_completions();
      comp->add_token_ids(8);
      comp->add_logprobs(-1.0f);
      g.add_scores()->set_reward(rw);
    }
    return g;
  };
  auto ctx = rpc::ContextWithDeadline(absl::Seconds(30));
  auto stream = learner->SubmitGroups(ctx.get());
  v1::SubmitAck ack;
  ASSERT_TRUE(stream->Write(group(1001, "p1", {0.5f, 0.5f, 0.5f, 0.5f})));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.outcome(), v1::SubmitAck::FILTERED) << ack.detail();
  ASSERT_TRUE(stream->Write(group(1002, "p2", {0.0f, 1.0f, 0.0f, 0.0f})));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.outcome(), v1::SubmitAck::ACCEPTED) << ack.detail();
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// Code tasks travel from the dataset to the reward service, which runs each completion
// in the sandbox (a random policy writes nonsense programs: they score 0, but no
// completion may fail to be judged).
TEST(Integration, CodeTasksAreJudgedInTheSandboxDuringARun) {
  fs::path dir = FreshDir("code-run");
  std::string tasks;
  for (int i = 0; i < 4; ++i) {
    tasks += absl::StrCat(R"({"id": "c)", i, R"(", "prompt": "1+)", i,
                          R"(=", "language": "python", "tests": [{"input": "", "output": ")", 1 + i, R"(\n"}]})", "\n");
  }
  fs::path data = FreshDir("code-data");
  ASSERT_TRUE(WriteFileAtomic((data / "code.jsonl").string(), tasks).ok());
  fs::path run = dir;
  ASSERT_NO_FATAL_FAILURE((RunGrpoToEnd(run, {"--max-steps", "2", "--set",
                                            absl::StrCat("data.path=", (data / "code.jsonl").string()), "--set",
                                            "reward.sandbox_time_limit_ms=500"})));
  EXPECT_EQ(ReadJsonl(run / "metrics.jsonl").size(), 2u);
  absl::StatusOr<std::string> log = ReadFile((run / "logs" / "reward.log").string());
  ASSERT_TRUE(log.ok());
  EXPECT_THAT(*log, ::testing::Not(HasSubstr("sandbox")));
  EXPECT_THAT(*log, ::testing::Not(HasSubstr("prompt c")));  // no completion failed to be judged
  RemoveUnlessFailed(dir);
  fs::remove_all(data);
}

// The R1-Zero pipeline of `grpo run`, in miniature: disjoint train and held-out sets,
// a base model pretrained on generated text, the held-out evaluation before and after,
// validation during training (step 0, every eval_every steps, the last), the report.
TEST(Integration, PipelineBuildsABaseModelEvaluatesTrainsAndReports) {
  fs::path dir = FreshDir("pipeline");
  std::string out;
  ASSERT_NO_FATAL_FAILURE(RunPipelineToEnd(
      dir,
      {"data.num_tasks=64", "pipeline.test_tasks=12", "pipeline.base_docs=600", "pipeline.base_hidden_size=32",
       "pipeline.base_intermediate_size=64", "pipeline.base_layers=1", "pipeline.base_heads=2",
       "pipeline.base_kv_heads=1", "pipeline.base_context=192", "pipeline.base_merges=300", "sft.batch_size=32",
       "actor.group_size=4", "actor.prompts_per_request=2", "learner.prompts_per_step=2", "learner.max_steps=4",
       "learner.eval_every=2", "eval.k=2", "actor.max_new_tokens=24", "eval.max_new_tokens=24"},
      &out));

  // Disjoint data; no held-out sum anywhere in the pretraining corpus.
  auto train = LoadDataset((dir / "data" / "train.jsonl").string());
  auto test = LoadDataset((dir / "data" / "test.jsonl").string());
  ASSERT_TRUE(train.ok() && test.ok());
  EXPECT_EQ(test->size(), 12u);
  std::set<std::string> held_out;
  for (const Task& t : *test) held_out.insert(t.prompt);
  for (const Task& t : *train) EXPECT_FALSE(held_out.count(t.prompt)) << t.prompt;
  for (const auto& doc : ReadJsonl(dir / "data" / "pretrain.jsonl")) {
    std::string text = doc["text"], word;
    for (char c : text + " ") {
      if (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-') {
        word += c;
      } else {
        EXPECT_FALSE(held_out.count(word)) << "held-out " << word << " in: " << text;
        word.clear();
      }
    }
  }
  EXPECT_TRUE(fs::exists(dir / "base" / "model" / "model.safetensors"));
  auto cfg = LoadConfigWithOverrides((dir / "config.yaml").string(), {});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->model.path, (dir / "base" / "model").string());

  for (const char* which : {"before", "after"}) {
    auto text = ReadFile((dir / "eval" / (std::string(which) + ".json")).string());
    ASSERT_TRUE(text.ok()) << which;
    nlohmann::json j = nlohmann::json::parse(*text);
    for (const char* k : {"pass@1", "pass@k", "maj@k", "k", "format", "response_len_mean", "n"}) {
      EXPECT_TRUE(j.contains(k)) << which << " " << k;
    }
    EXPECT_EQ(j["n"], 12);
    EXPECT_EQ(j["k"], 2);
    EXPECT_EQ(ReadJsonl(dir / "eval" / (std::string(which) + "_samples.jsonl")).size(), 24u);
  }
  EXPECT_THAT(out, HasSubstr("held-out"));

  // Validation lines: step 0 before training, steps 2 and 4 (the last).
  std::map<int64_t, nlohmann::json> evals;
  for (const auto& m : ReadJsonl(dir / "metrics.jsonl")) {
    if (m.contains("eval_pass1")) evals[m["step"].get<int64_t>()] = m;
  }
  ASSERT_EQ(evals.size(), 3u) << "eval lines at steps 0, 2 and 4";
  for (int64_t s : {0, 2, 4}) {
    ASSERT_TRUE(evals.count(s)) << s;
    for (const char* k : {"eval_pass1", "eval_majk", "eval_format", "eval_len"}) EXPECT_TRUE(evals[s].contains(k)) << k;
  }

  // The report draws its charts in a real browser.
  ASSERT_TRUE(fs::exists(dir / "report.html"));
  const char* chromium = "/usr/bin/chromium";
  ASSERT_TRUE(fs::exists(chromium)) << "chromium is needed for the report test (scripts/install-deps.sh installs it)";
  const fs::path dom = dir / "report.dom.html";
  const std::string cmd = absl::StrCat(chromium, " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage ",
                                       "--user-data-dir=", (dir / "chromium-profile").string(), " --dump-dom 'file://",
                                       (dir / "report.html").string(), "' > '", dom.string(), "' 2>/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto rendered = ReadFile(dom.string());
  ASSERT_TRUE(rendered.ok());
  EXPECT_THAT(*rendered, HasSubstr("data-ready=\"1\""));
  for (int i = 0; i < 8; ++i) {
    const std::string id = absl::StrCat("id=\"chart-", i, "\"");
    const size_t at = rendered->find(id);
    ASSERT_NE(at, std::string::npos) << id;
    // Each chart drew points: data-drawn is set and not 0 (the element's attributes
    // sit next to its id).
    const std::string tag = rendered->substr(rendered->rfind('<', at), 200);
    EXPECT_THAT(tag, HasSubstr("data-drawn=\"")) << tag;
    EXPECT_THAT(tag, Not(HasSubstr("data-drawn=\"0\""))) << tag;
  }
  EXPECT_THAT(*rendered, HasSubstr("<path class=\"series\""));
  EXPECT_THAT(*rendered, HasSubstr("id=\"before-after\""));
  EXPECT_THAT(*rendered, HasSubstr("<th>language_consistency</th>"));
  RemoveUnlessFailed(dir);
}

// The code task family (pipeline.tasks = programs) through the whole pipeline: tasks with
// hidden tests, a base model pretrained on programs, GRPO scored in the real sandbox, and
// held-out evaluations that count how the programs fared (outcomes, summing to 1).
TEST(Integration, ProgramTasksRunThroughTheSandboxAndEvaluationsCountOutcomes) {
  fs::path dir = FreshDir("programs");
  std::string out;
  ASSERT_NO_FATAL_FAILURE(RunPipelineToEnd(
      dir,
      {"pipeline.tasks=programs", "data.num_tasks=64", "pipeline.test_tasks=8", "pipeline.code_tests=3",
       "pipeline.base_docs=600", "pipeline.base_hidden_size=32", "pipeline.base_intermediate_size=64",
       "pipeline.base_layers=1", "pipeline.base_heads=2", "pipeline.base_kv_heads=1", "pipeline.base_context=192",
       "pipeline.base_merges=300", "pipeline.eval_before_after=true", "sft.batch_size=32", "actor.group_size=4",
       "actor.prompts_per_request=2", "learner.prompts_per_step=2", "learner.max_steps=2", "learner.eval_every=0",
       "eval.k=2", "actor.max_new_tokens=24", "eval.max_new_tokens=24", "reward.sandbox_time_limit_ms=1000",
       "reward.code_reward=all_or_nothing"},
      &out));
  auto test = LoadDataset((dir / "data" / "test.jsonl").string());
  ASSERT_TRUE(test.ok()) << test.status();
  ASSERT_EQ(test->size(), 8u);
  for (const Task& t : *test) {
    EXPECT_EQ(t.task, "code");
    EXPECT_EQ(t.tests.size(), 3u);
  }
  EXPECT_TRUE(fs::exists(dir / "data" / "pretrain.jsonl"));
  for (const char* which : {"before", "after"}) {
    auto text = ReadFile((dir / "eval" / (std::string(which) + ".json")).string());
    ASSERT_TRUE(text.ok()) << which;
    nlohmann::json j = nlohmann::json::parse(*text);
    ASSERT_TRUE(j.contains("outcomes")) << *text;
    double total = 0;
    for (const auto& [name, share] : j["outcomes"].items()) {
      EXPECT_THAT((std::vector<std::string>{"ok", "wrong_answer", "compile_error", "runtime_error", "time_limit",
                                            "memory_limit", "output_limit", "denied"}),
                  ::testing::Contains(name));
      total += share.get<double>();
    }
    EXPECT_NEAR(total, 1.0, 1e-9) << *text;
    EXPECT_TRUE(j["by_task"].contains("code"));
    for (const auto& s : ReadJsonl(dir / "eval" / (std::string(which) + "_samples.jsonl"))) {
      EXPECT_TRUE(s.contains("outcome")) << s.dump();
    }
  }
  // Each step says how long it waited for scored groups and how long it took in all.
  int steps = 0;
  for (const auto& m : ReadJsonl(dir / "metrics.jsonl")) {
    if (!m.contains("reward_mean")) continue;
    ++steps;
    ASSERT_TRUE(m.contains("wait_s") && m.contains("step_s") && m.contains("train_s")) << m.dump();
    EXPECT_GE(m["wait_s"].get<double>(), 0.0);
    EXPECT_LE(m["train_s"].get<double>(), m["step_s"].get<double>() + 1e-6);
  }
  EXPECT_EQ(steps, 2);
  RemoveUnlessFailed(dir);
}

// R1's four stages (tools/grpo/stages.h) on a tiny model: Ctrl-C in the middle of
// reasoning_rl, and the same command resumes at that stage without redoing cold_start;
// every stage leaves its model, done.json and eval/<stage>.json; --stage runs one stage
// again alone; the report has a row and curves per stage.
TEST(Integration, R1StagesResumeAtTheInterruptedStageAndOneRunsAgainAlone) {
  fs::path dir = FreshDir("r1-stages");
  const int64_t rl_steps = 8;
  // A tiny base model and a short prompt template; 60 passes over the cold-start chains
  // teach it the format (0.96) so that rejection sampling keeps some samples.
  auto spawn = [&](std::vector<std::string> extra, const std::string& out) {
    ProcessSpec spec;
    spec.argv = {BinDir() + "/grpo", "run", "--run-dir", dir.string(), "--no-progress"};
    for (const std::string& s : std::vector<std::string>{
             "data.num_tasks=96", "data.max_operand=3", "pipeline.test_tasks=12", "pipeline.base_docs=600",
          "pipeline.base_hidden_size=32", "pipeline.base_intermediate_size=64", "pipeline.base_layers=1",
          "pipeline.base_heads=2", "pipeline.base_kv_heads=1", "pipeline.base_context=192", "pipeline.base_merges=300",
          "pipeline.words_share=0.5", "pipeline.base_words_share=0.4", "pipeline.base_mixed_share=0.2",
          "pipeline.base_instruction_share=0.4", "pipeline.eval_before_after=true",
          "pipeline.stages=cold_start,reasoning_rl,rejection_sft,final_rl", "pipeline.cold_start_tasks=96",
          "pipeline.cold_start_epochs=60", "pipeline.cold_start_lr=0.003", "pipeline.base_threads=1",
          "model.prompt_template={prompt} =", absl::StrCat("pipeline.rl_steps=", rl_steps),
          "pipeline.final_rl_steps=2", "pipeline.rejection_tasks=64", "pipeline.rejection_samples=8",
          "pipeline.rejection_min_language=0", "pipeline.rejection_other_docs=32", "pipeline.rejection_epochs=2",
          "sft.batch_size=16", "actor.group_size=4", "actor.prompts_per_request=2", "learner.prompts_per_step=2",
          "learner.eval_every=4", "eval.k=2", "actor.max_new_tokens=32", "eval.max_new_tokens=32",
          "reward.language_weight=0.5", "pipeline.rl_lr=0.0002"}) {
      spec.argv.insert(spec.argv.end(), {"--set", s});
    }
    spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
    spec.log_path = (dir / out).string();
    return ChildProcess::Spawn(spec);
  };
  auto read = [&](const fs::path& p) {
    absl::StatusOr<std::string> t = ReadFile(p.string());
    return t.ok() ? *t : std::string();
  };
  const fs::path stages = dir / "stages";
  // Lines with a training step (validation lines carry only eval_*).
  auto train_steps = [&](const fs::path& metrics) {
    std::vector<int64_t> out;
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.contains("reward_mean")) out.push_back(j["step"].get<int64_t>());
    }
    return out;
  };

  // 1. Interrupted once reasoning_rl has trained a step.
  absl::StatusOr<ChildProcess> p = spawn({}, "first.out");
  ASSERT_TRUE(p.ok()) << p.status();
  const bool reached = WaitUntil([&] { return !train_steps(stages / "reasoning_rl" / "metrics.jsonl").empty(); },
                                 absl::Seconds(300));
  ASSERT_TRUE(reached) << "reasoning_rl never trained a step\n" << TailOfFile((dir / "first.out").string(), 40);
  p->Signal(SIGINT);
  std::optional<int> st = p->WaitFor(absl::Seconds(120));
  ASSERT_TRUE(st.has_value()) << "the launcher did not stop";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 130) << DescribeWaitStatus(*st) << "\n"
                                                          << TailOfFile((dir / "first.out").string(), 30);
  ASSERT_TRUE(fs::exists(stages / "cold_start" / "done.json"));
  ASSERT_FALSE(fs::exists(stages / "reasoning_rl" / "done.json")) << "reasoning_rl finished before the interrupt";
  const std::string cold_done = read(stages / "cold_start" / "done.json");
  const int64_t trained_before = static_cast<int64_t>(train_steps(stages / "reasoning_rl" / "metrics.jsonl").size());
  // One stage alone needs the stage before it done.
  absl::StatusOr<ChildProcess> early = spawn({"--stage", "rejection_sft"}, "early.out");
  ASSERT_TRUE(early.ok());
  st = early->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 2) << DescribeWaitStatus(*st);
  EXPECT_THAT(read(dir / "early.out"), HasSubstr("starts from reasoning_rl's model, and reasoning_rl is not done"));
  EXPECT_EQ(read(stages / "cold_start" / "done.json"), cold_done);

  // 2. The same command resumes at reasoning_rl and runs the pipeline to its end.
  absl::StatusOr<ChildProcess> again = spawn({}, "again.out");
  ASSERT_TRUE(again.ok());
  st = again->WaitFor(absl::Seconds(400));
  ASSERT_TRUE(st.has_value()) << "the resumed pipeline did not finish";
  std::string out = TailOfFile((dir / "again.out").string(), 80);
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << out;
  EXPECT_THAT(out, HasSubstr("resuming the run"));
  EXPECT_THAT(out, HasSubstr("grpo: cold_start done ("));
  EXPECT_EQ(read(stages / "cold_start" / "done.json"), cold_done) << "cold_start ran again";
  std::vector<int64_t> steps = train_steps(stages / "reasoning_rl" / "metrics.jsonl");
  ASSERT_EQ(static_cast<int64_t>(steps.size()), rl_steps) << "every step once, those before the interrupt kept";
  for (int64_t i = 0; i < rl_steps; ++i) EXPECT_EQ(steps[static_cast<size_t>(i)], i + 1);
  EXPECT_GE(trained_before, 1);
  // The RL stages train at pipeline.rl_lr, from the previous stage's model.
  for (const char* name : {"reasoning_rl", "final_rl"}) {
    auto stage_cfg = LoadConfigWithOverrides((stages / name / "config.yaml").string(), {});
    ASSERT_TRUE(stage_cfg.ok()) << stage_cfg.status();
    EXPECT_DOUBLE_EQ(stage_cfg->learner.lr, 0.0002) << name;
  }
  nlohmann::json rl_done = nlohmann::json::parse(read(stages / "reasoning_rl" / "done.json"));
  EXPECT_TRUE(rl_done["resumed"].get<bool>());
  // Validation in the RL stages carries language consistency.
  bool eval_language = false;
  for (const auto& m : ReadJsonl(stages / "reasoning_rl" / "metrics.jsonl")) eval_language |= m.contains("eval_language");
  EXPECT_TRUE(eval_language);

  for (const std::string name : {"cold_start", "reasoning_rl", "rejection_sft", "final_rl"}) {
    EXPECT_TRUE(fs::exists(stages / name / "model" / "model.safetensors")) << name;
    nlohmann::json done = nlohmann::json::parse(read(stages / name / "done.json"));
    EXPECT_EQ(done["stage"], name);
    EXPECT_GT(done["seconds"].get<double>(), 0) << name;
    const std::string text = read(dir / "eval" / (name + ".json"));
    ASSERT_FALSE(text.empty()) << name;
    nlohmann::json e = nlohmann::json::parse(text);
    for (const char* k : {"pass@1", "pass@k", "maj@k", "k", "format", "response_len_mean", "n", "language_consistency"}) {
      EXPECT_TRUE(e.contains(k)) << name << " " << k;
    }
    EXPECT_EQ(e["n"], 12);
    EXPECT_EQ(ReadJsonl(dir / "eval" / (name + "_samples.jsonl")).size(), 24u) << name;
    EXPECT_THAT(out, HasSubstr("  " + name + " ")) << "the held-out table has a row for " << name;
  }
  EXPECT_TRUE(fs::exists(dir / "eval" / "before.json"));
  // rejection_sft trained the base model on the kept samples and pretraining documents.
  nlohmann::json rej = nlohmann::json::parse(read(stages / "rejection_sft" / "done.json"));
  EXPECT_EQ(rej["from_model"], (dir / "base" / "model").string());
  EXPECT_EQ(rej["sampled_from"], (stages / "reasoning_rl" / "model").string());
  const std::vector<nlohmann::json> kept = ReadJsonl(stages / "rejection_sft" / "samples.jsonl");
  ASSERT_FALSE(kept.empty());
  for (const auto& l : kept) EXPECT_TRUE(l.contains("prompt") && l.contains("completion")) << l.dump();
  EXPECT_EQ(ReadJsonl(stages / "rejection_sft" / "data.jsonl").size(), kept.size() + 32);
  EXPECT_THAT(out, HasSubstr(absl::StrCat("on ", kept.size(), " kept samples and 32 pretraining documents")));
  // The run's result is the last stage's.
  EXPECT_EQ(read(dir / "eval" / "after.json"), read(dir / "eval" / "final_rl.json"));
  EXPECT_EQ(read(dir / "final_model" / "model.safetensors"), read(stages / "final_rl" / "model" / "model.safetensors"));
  EXPECT_THAT(out, HasSubstr("language"));

  // 3. One stage again, alone: the others stay as they were.
  const std::string final_done = read(stages / "final_rl" / "done.json");
  const std::string rej_done = read(stages / "rejection_sft" / "done.json");
  absl::StatusOr<ChildProcess> one = spawn({"--stage", "rejection_sft"}, "stage.out");
  ASSERT_TRUE(one.ok());
  st = one->WaitFor(absl::Seconds(300));
  ASSERT_TRUE(st.has_value());
  out = TailOfFile((dir / "stage.out").string(), 40);
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << out;
  EXPECT_NE(read(stages / "rejection_sft" / "done.json"), rej_done) << "rejection_sft did not run again";
  EXPECT_EQ(read(stages / "final_rl" / "done.json"), final_done);
  EXPECT_EQ(read(stages / "cold_start" / "done.json"), cold_done);
  EXPECT_THAT(out, HasSubstr("final_rl were made from the earlier rejection_sft"));
  EXPECT_THAT(out, Not(HasSubstr("reasoning_rl:")));

  // --stage needs a staged run that started.
  fs::path plain = FreshDir("r1-stages-plain");
  ProcessSpec bad;
  bad.argv = {BinDir() + "/grpo", "run", "--run-dir", plain.string(), "--stage", "final_rl"};
  bad.log_path = (plain / "out").string();
  absl::StatusOr<ChildProcess> b = ChildProcess::Spawn(bad);
  ASSERT_TRUE(b.ok());
  st = b->WaitFor(absl::Seconds(30));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 2) << DescribeWaitStatus(*st);
  EXPECT_THAT(read(plain / "out"), HasSubstr("--stage final_rl"));
  fs::remove_all(plain);

  // 4. The report: a row per stage and each stage's curves, drawn in a real browser.
  const fs::path dom = dir / "report.dom.html";
  const std::string cmd = absl::StrCat("/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage ",
                                       "--user-data-dir=", (dir / "chromium-profile").string(), " --dump-dom 'file://",
                                       (dir / "report.html").string(), "' > '", dom.string(), "' 2>/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string rendered = read(dom);
  EXPECT_THAT(rendered, HasSubstr("data-ready=\"1\""));
  EXPECT_THAT(rendered, HasSubstr("id=\"stages\""));
  for (const std::string id : {"stage-cold_start-0", "stage-reasoning_rl-0", "stage-reasoning_rl-1",
                               "stage-rejection_sft-0", "stage-final_rl-0", "chart-0", "chart-7"}) {
    const size_t at = rendered.find("id=\"" + id + "\"");
    ASSERT_NE(at, std::string::npos) << id;
    const std::string tag = rendered.substr(rendered.rfind('<', at), 200);
    EXPECT_THAT(tag, Not(HasSubstr("data-drawn=\"0\""))) << tag;
  }
  RemoveUnlessFailed(dir);
}

}  // namespace
}  // namespace grpo

// grpo status [--run-dir DIR | --coordinator ADDR] [--json]: where a run stands. From the
// coordinator (GetRunStatus): step, version, epoch, leases, members with the version
// each samples with; with --run-dir also the services `grpo run` supervises (pid, ports,
// restarts, up) from services.json and the last step's throughput from metrics.jsonl.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/rpc/rpc.h"
#include "grpo/v1/coordinator.grpc.pb.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct StatusOptions {
  std::string run_dir;
  std::string coordinator;
  std::string config;
  bool json = false;
};

nlohmann::json ReadJson(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

// The last line of metrics.jsonl that is a training step.
nlohmann::json LastStep(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  nlohmann::json last = nullptr;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("loss")) last = std::move(j);
  }
  return last;
}

int RunStatusCommand(const StatusOptions& o) {
  std::string address = o.coordinator;
  nlohmann::json services = nullptr, last = nullptr;
  if (!o.run_dir.empty()) {
    if (address.empty()) {
      nlohmann::json ready = ReadJson(o.run_dir + "/coordinator.ready.json");
      if (!ready.is_object() || ready.value("grpc_port", 0) <= 0) {
        std::cerr << "grpo status: " << o.run_dir << "/coordinator.ready.json is missing or unreadable (is a run "
                  << "going on there?); or give --coordinator ADDR\n";
        return 1;
      }
      address = absl::StrCat("127.0.0.1:", ready.value("grpc_port", 0));
    }
    services = ReadJson(o.run_dir + "/services.json");
    last = LastStep(o.run_dir + "/metrics.jsonl");
  }
  if (address.empty()) {
    std::cerr << "grpo status: give --run-dir DIR or --coordinator ADDR\n";
    return 2;
  }
  // The run's security section (TLS files, token): from --config, else the run's config.yaml.
  std::string config = o.config;
  if (config.empty() && !o.run_dir.empty() && std::ifstream(o.run_dir + "/config.yaml")) config = o.run_dir + "/config.yaml";
  if (!config.empty()) {
    absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides(config, {});
    if (!cfg.ok()) {
      std::cerr << "grpo status: " << cfg.status().message() << "\n";
      return 2;
    }
    if (absl::Status s = rpc::ConfigureSecurity(cfg->security); !s.ok()) {
      std::cerr << "grpo status: " << s.message() << "\n";
      return 2;
    }
  }
  auto stub = v1::Coordinator::NewStub(rpc::MakeChannel(address));
  v1::RunStatusRequest req;
  v1::RunStatusResponse resp;
  auto ctx = rpc::ContextWithDeadline(absl::Seconds(5));
  grpc::Status s = stub->GetRunStatus(ctx.get(), req, &resp);
  if (!s.ok()) {
    std::cerr << "grpo status: coordinator at " << address << ": " << s.error_message() << "\n";
    return 1;
  }
  nlohmann::ordered_json out;
  out["coordinator"] = address;
  out["step"] = resp.step();
  out["version"] = resp.latest_version();
  out["epoch"] = resp.epoch();
  out["dataset_size"] = resp.dataset_size();
  out["run_finished"] = resp.run_finished();
  out["leases"] = {{"issued", resp.leases_issued()},       {"completed", resp.leases_completed()},
                   {"outstanding", resp.leases_outstanding()}, {"expired", resp.leases_expired()},
                   {"released", resp.leases_released()},   {"duplicate_completions", resp.duplicate_completions()}};
  nlohmann::ordered_json members = nlohmann::ordered_json::array();
  for (const v1::MemberStatus& m : resp.member_list()) {
    members.push_back({{"id", m.member_id()},
                       {"role", v1::Role_Name(m.role())},
                       {"name", m.name()},
                       {"policy_version", m.policy_version()},
                       {"behind", m.policy_version() < 0 ? -1 : resp.latest_version() - m.policy_version()},
                       {"seconds_since_heartbeat", m.seconds_since_heartbeat()},
                       {"leases_held", m.leases_held()},
                       {"leases_issued", m.leases_issued()},
                       {"tokens_generated", m.tokens_generated()},
                       {"tokens_per_s", m.tokens_per_second()}});
  }
  out["members"] = members;
  if (!services.is_null()) out["services"] = services;
  if (last.is_object()) {
    out["throughput"] = {{"step", last.value("step", 0)},
                         {"tokens_per_s", last.value("tokens_per_s", 0.0)},
                         {"train_s", last.value("train_s", 0.0)}};
  }
  if (o.json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("coordinator %s: step %llu, version %lld, epoch %u of a %llu-task dataset%s\n", address.c_str(),
              static_cast<unsigned long long>(resp.step()), static_cast<long long>(resp.latest_version()),
              resp.epoch(), static_cast<unsigned long long>(resp.dataset_size()),
              resp.run_finished() ? " (run finished)" : "");
  std::printf("leases: %llu issued, %llu completed, %llu outstanding, %llu expired (%llu released)\n",
              static_cast<unsigned long long>(resp.leases_issued()),
              static_cast<unsigned long long>(resp.leases_completed()),
              static_cast<unsigned long long>(resp.leases_outstanding()),
              static_cast<unsigned long long>(resp.leases_expired()),
              static_cast<unsigned long long>(resp.leases_released()));
  std::printf("members:\n");
  for (const auto& m : out["members"]) {
    std::printf("  %-12s %-14s version %5lld  heartbeat %.1f s ago  leases held %u, %llu in all  %.0f tokens/s\n",
                m["id"].get<std::string>().c_str(), m["role"].get<std::string>().c_str(),
                static_cast<long long>(m["policy_version"].get<int64_t>()), m["seconds_since_heartbeat"].get<double>(),
                m["leases_held"].get<uint32_t>(), static_cast<unsigned long long>(m["leases_issued"].get<uint64_t>()),
                m["tokens_per_s"].get<double>());
  }
  if (services.is_array()) {
    std::printf("services:\n");
    for (const auto& sv : services) {
      std::printf("  %-12s pid %-7d grpc %-5d metrics %-5d restarts %lld%s\n", sv.value("name", "").c_str(),
                  sv.value("pid", 0), sv.value("grpc_port", 0), sv.value("metrics_port", 0),
                  static_cast<long long>(sv.value("restarts", int64_t{0})), sv.value("up", true) ? "" : "  (down)");
    }
  }
  if (last.is_object()) {
    std::printf("last step %lld: %.0f tokens/s, %.2f s training\n", static_cast<long long>(last.value("step", 0)),
                last.value("tokens_per_s", 0.0), last.value("train_s", 0.0));
  }
  return 0;
}

}  // namespace

Subcommand AddStatusCommand(CLI::App& app) {
  auto o = std::make_shared<StatusOptions>();
  CLI::App* cmd = app.add_subcommand("status", "where a run stands: step, version, leases, members, services");
  cmd->add_option("--run-dir", o->run_dir, "a run directory of `grpo run` (finds the coordinator there)");
  cmd->add_option("--coordinator", o->coordinator, "the coordinator's host:port");
  cmd->add_option("--config", o->config, "run config whose security section to use (default: the run directory's config.yaml)");
  cmd->add_flag("--json", o->json, "print JSON");
  return {cmd, [o] { return RunStatusCommand(*o); }};
}

}  // namespace grpo

// The actor: leases prompts from the coordinator, samples G completions per prompt with
// the newest policy it has, has them scored by the reward service and hands the scored
// groups to the learner. Stateless: if it dies, its leases expire and come back.
//
// Threads: one generation loop (owns the model), one heartbeat thread, one thread
// watching for new weight versions. Stop() cancels every open call and joins them.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/common/config.h"
#include "core/model/generator.h"
#include "core/policy/policy.h"
#include "core/rpc/service_main.h"
#include "core/rpc/weight_stream.h"
#include "grpo/v1/actor.grpc.pb.h"
#include "grpo/v1/coordinator.grpc.pb.h"
#include "grpo/v1/learner.grpc.pb.h"
#include "grpo/v1/reward.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace grpo {

class Actor final : public rpc::ServiceRunner, public v1::Actor::Service {
 public:
  static absl::StatusOr<std::unique_ptr<Actor>> Create(const RunConfig& cfg,
                                                       std::shared_ptr<prometheus::Registry> registry);
  ~Actor() override;

  // Its status service, and grpo.v1.Weights (Fetch only) relaying weights to peers.
  std::vector<grpc::Service*> Services() override { return {this, weight_service_.get()}; }
  void Serving(const std::string& host, int port) override;
  grpc::Status GetStatus(grpc::ServerContext*, const v1::ActorStatusRequest*, v1::ActorStatusResponse*) override;
  absl::Status Start(ShutdownSignal& shutdown) override;
  void Stop() override;

 private:
  Actor(const RunConfig& cfg, std::unique_ptr<Policy> policy, std::shared_ptr<prometheus::Registry> registry);

  void Loop();
  void HeartbeatLoop();
  void WatchLoop();
  bool RegisterWithRetry();
  // Fetches and loads `version` (-1: newest); on failure keeps the current weights.
  absl::Status UpdateWeights(int64_t version);
  // Samples G completions for each item, all items decoding together.
  absl::StatusOr<std::vector<v1::RolloutGroup>> Generate(const std::vector<v1::WorkItem>& items);
  absl::StatusOr<std::vector<v1::ScoredGroup>> Score(const std::vector<v1::RolloutGroup>& groups);
  absl::Status Submit(const std::vector<v1::ScoredGroup>& groups);
  // Waits up to `timeout` or until a newer version is announced or Stop() is called.
  void WaitForNews(absl::Duration timeout);
  // A context registered for cancellation by Stop().
  std::shared_ptr<grpc::ClientContext> NewContext(absl::Duration timeout);
  void ForgetContext(const std::shared_ptr<grpc::ClientContext>& ctx);

  const RunConfig cfg_;
  std::unique_ptr<Policy> policy_;  // used by the loop thread only
  std::unique_ptr<model::Generator> generator_;  // over policy_->model; loop thread only
  std::unique_ptr<v1::Coordinator::Stub> coordinator_;
  // Fetches versions as the coordinator plans, and holds the one being received for
  // weight_service_ to relay to peers.
  std::unique_ptr<rpc::WeightFetcher> fetcher_;
  std::unique_ptr<rpc::WeightService> weight_service_;
  std::string relay_address_;  // set by Serving() before Start(); empty: no relay
  std::unique_ptr<v1::Reward::Stub> reward_;
  std::unique_ptr<v1::Learner::Stub> learner_;
  ShutdownSignal* shutdown_ = nullptr;

  absl::Mutex mu_;
  std::string member_id_ ABSL_GUARDED_BY(mu_);
  int64_t announced_version_ ABSL_GUARDED_BY(mu_) = -1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<grpc::ClientContext>> open_calls_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> version_{-1};  // weights the model holds
  std::atomic<uint32_t> weights_crc_{0};  // their blob's CRC-32 (set before version_)
  std::atomic<uint64_t> groups_submitted_{0}, tokens_generated_{0}, weight_updates_n_{0};
  uint64_t rng_seed_ = 0;  // guarded by mu_

  std::thread loop_, heartbeat_, watcher_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* version_gauge_;
  prometheus::Counter* tokens_;
  prometheus::Counter* groups_;
  prometheus::Counter* weight_updates_;
  prometheus::Histogram* weight_fetch_seconds_;
  prometheus::Counter* weight_bytes_from_peers_;
  prometheus::Counter* weight_bytes_from_coordinator_;
  prometheus::Counter* weight_bytes_relayed_;
  prometheus::Counter* weight_source_failures_;
  prometheus::Counter* weight_versions_full_;
  prometheus::Counter* weight_versions_delta_;
  prometheus::Counter* weight_patches_refused_;
  prometheus::Histogram* generation_seconds_;
  prometheus::Counter* failed_batches_;
  prometheus::Counter* score_resends_;
  prometheus::Counter* prompts_too_long_;
};

}  // namespace grpo

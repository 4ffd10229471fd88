// The reward service: scores streams of rollout groups with the rule-based rewards.
// Stateless; each stream is served by its own gRPC thread. No LibTorch.
#pragma once

#include <atomic>
#include <memory>

#include "core/common/config.h"
#include "services/reward/scorer.h"
#include "grpo/v1/reward.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace grpo {

class RewardService final : public v1::Reward::Service {
 public:
  RewardService(std::unique_ptr<reward::Scorer> scorer, prometheus::Registry& registry);
  grpc::Status Score(grpc::ServerContext* ctx,
                     grpc::ServerReaderWriter<v1::GroupScores, v1::RolloutGroup>* stream) override;

 private:
  std::unique_ptr<reward::Scorer> scorer_;
  std::atomic<int64_t> logged_errors_{0};
  prometheus::Counter* groups_;
  prometheus::Counter* completions_;
  prometheus::Counter* errors_;
  prometheus::Histogram* completion_reward_;
  prometheus::Histogram* score_seconds_;
  prometheus::Histogram* math_check_seconds_;
  prometheus::Family<prometheus::Histogram>* sandbox_run_seconds_;
};

}  // namespace grpo

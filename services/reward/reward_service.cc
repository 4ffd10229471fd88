#include "services/reward/reward_service.h"

#include <chrono>

#include "core/common/logging.h"
#include "services/reward/rewards.h"

namespace grpo {

RewardService::RewardService(std::unique_ptr<reward::Scorer> scorer, prometheus::Registry& r)
    : scorer_(std::move(scorer)) {
  groups_ = &prometheus::BuildCounter().Name("grpo_reward_groups_total").Help("Groups scored").Register(r).Add({});
  completions_ = &prometheus::BuildCounter().Name("grpo_reward_completions_total").Help("Completions scored").Register(r).Add({});
  errors_ = &prometheus::BuildCounter().Name("grpo_reward_errors_total").Help("Groups or completions that could not be scored").Register(r).Add({});
  reward_sum_ = &prometheus::BuildCounter().Name("grpo_reward_reward_sum_total").Help("Sum of rewards given (divide by completions for the mean)").Register(r).Add({});
  score_seconds_ = &prometheus::BuildHistogram().Name("grpo_reward_group_seconds").Help("Time to score one group")
                        .Register(r).Add({}, prometheus::Histogram::BucketBoundaries{1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10});
}

grpc::Status RewardService::Score(grpc::ServerContext* ctx,
                                  grpc::ServerReaderWriter<v1::GroupScores, v1::RolloutGroup>* stream) {
  v1::RolloutGroup group;
  while (stream->Read(&group)) {
    auto t0 = std::chrono::steady_clock::now();
    v1::GroupScores scored = scorer_->Scores(group);
    score_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    groups_->Increment();
    completions_->Increment(scored.scores_size());
    if (!scored.error().empty()) {
      errors_->Increment();
      spdlog::warn("group of lease {}: {}", group.item().lease_id(), scored.error());
    }
    for (const auto& s : scored.scores()) {
      reward_sum_->Increment(std::max(0.0f, s.reward()));
      if (!s.error().empty()) {
        errors_->Increment();
        // The first errors and then one in a thousand: enough to see a broken checker
        // or sandbox in the log without flooding it.
        const int64_t n = logged_errors_.fetch_add(1);
        if (n < 10 || n % 1000 == 0) spdlog::warn("prompt {}: {}", group.item().prompt_id(), s.error());
      }
    }
    if (!stream->Write(scored)) break;
  }
  return ctx->IsCancelled() ? grpc::Status::CANCELLED : grpc::Status::OK;
}

}  // namespace grpo

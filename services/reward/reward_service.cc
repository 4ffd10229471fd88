#include "services/reward/reward_service.h"

#include <chrono>

#include "core/common/logging.h"
#include "services/reward/rewards.h"
#include "prometheus/gauge.h"

namespace grpo {

RewardService::RewardService(std::unique_ptr<reward::Scorer> scorer, prometheus::Registry& r)
    : scorer_(std::move(scorer)) {
  groups_ = &prometheus::BuildCounter().Name("grpo_reward_groups_total").Help("Groups scored").Register(r).Add({});
  completions_ = &prometheus::BuildCounter().Name("grpo_reward_completions_total").Help("Completions scored").Register(r).Add({});
  errors_ = &prometheus::BuildCounter().Name("grpo_reward_errors_total").Help("Groups or completions that could not be scored").Register(r).Add({});
  // A histogram, not a counter: rewards may be negative (overlong penalty), and its
  // _sum / _count is the mean reward over any window.
  completion_reward_ = &prometheus::BuildHistogram().Name("grpo_reward_completion_reward").Help("Reward given to each completion")
                            .Register(r).Add({}, prometheus::Histogram::BucketBoundaries{-1, -0.5, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2});
  math_check_seconds_ = &prometheus::BuildHistogram().Name("grpo_reward_math_check_seconds").Help("Time of one math answer check")
                             .Register(r).Add({}, prometheus::Histogram::BucketBoundaries{1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10});
  sandbox_run_seconds_ = &prometheus::BuildHistogram().Name("grpo_reward_sandbox_run_seconds")
                              .Help("Wall time of one sandboxed program's executions (compile and tests), by status").Register(r);
  prometheus::BuildGauge()
      .Name("grpo_reward_sandbox_available")
      .Help("1 when this reward server can run code in its sandbox, 0 when the sandbox could not be set up")
      .Register(r)
      .Add({})
      .Set(scorer_->SandboxAvailable() ? 1 : 0);
  auto* math = math_check_seconds_;
  auto* sandbox_runs = sandbox_run_seconds_;
  scorer_->SetObservers({[math](double s) { math->Observe(s); },
                         [sandbox_runs](std::string_view status, double s) {
                           // Family::Add returns the existing series for known labels.
                           sandbox_runs->Add({{"status", std::string(status)}},
                                             prometheus::Histogram::BucketBoundaries{0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30})
                               .Observe(s);
                         }});
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
      completion_reward_->Observe(s.reward());
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

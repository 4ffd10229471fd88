// grpo-reward: the reward service.
#include "core/rpc/service_main.h"
#include "services/reward/reward_service.h"

namespace {
class Runner : public grpo::rpc::ServiceRunner {
 public:
  Runner(std::unique_ptr<grpo::reward::Scorer> scorer, prometheus::Registry& r) : service_(std::move(scorer), r) {}
  std::vector<grpc::Service*> Services() override { return {&service_}; }

 private:
  grpo::RewardService service_;
};
}  // namespace

int main(int argc, char** argv) {
  return grpo::rpc::ServiceMain(argc, argv, {
      "reward", "grpo-reward: scores rollout groups with rule-based rewards",
      [](const grpo::RunConfig& c) { return c.reward.serve; },
      [](const grpo::RunConfig& c, std::shared_ptr<prometheus::Registry> r)
          -> absl::StatusOr<std::unique_ptr<grpo::rpc::ServiceRunner>> {
        absl::StatusOr<std::unique_ptr<grpo::reward::Scorer>> scorer = grpo::reward::Scorer::Create(c);
        if (!scorer.ok()) return scorer.status();
        return std::make_unique<Runner>(std::move(*scorer), *r);
      }});
}

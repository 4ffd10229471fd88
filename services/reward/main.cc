// grpo-reward: the reward service.
#include "core/rpc/service_main.h"
#include "services/reward/reward_service.h"

namespace {
class Runner : public grpo::rpc::ServiceRunner {
 public:
  Runner(const grpo::RunConfig& cfg, prometheus::Registry& r) : service_(cfg.reward, r) {}
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
          -> absl::StatusOr<std::unique_ptr<grpo::rpc::ServiceRunner>> { return std::make_unique<Runner>(c, *r); }});
}

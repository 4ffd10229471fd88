// grpo-learner: runs GRPO updates and publishes weight versions.
#include "core/rpc/service_main.h"
#include "services/learner/learner.h"

int main(int argc, char** argv) {
  return grpo::rpc::ServiceMain(argc, argv, {
      "learner", "grpo-learner: trains the policy with GRPO on scored groups",
      [](const grpo::RunConfig& c) { return c.learner.serve; },
      [](const grpo::RunConfig& c, std::shared_ptr<prometheus::Registry> r)
          -> absl::StatusOr<std::unique_ptr<grpo::rpc::ServiceRunner>> {
        auto l = grpo::Learner::Create(c, std::move(r));
        if (!l.ok()) return l.status();
        return std::unique_ptr<grpo::rpc::ServiceRunner>(std::move(*l));
      }});
}

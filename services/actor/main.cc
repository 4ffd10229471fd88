// grpo-actor: generates rollout groups.
#include "core/rpc/service_main.h"
#include "services/actor/actor.h"

int main(int argc, char** argv) {
  return grpo::rpc::ServiceMain(argc, argv, {
      "actor", "grpo-actor: samples G completions per leased prompt with the newest policy",
      [](const grpo::RunConfig& c) { return c.actor.serve; },
      [](const grpo::RunConfig& c, std::shared_ptr<prometheus::Registry> r)
          -> absl::StatusOr<std::unique_ptr<grpo::rpc::ServiceRunner>> {
        auto a = grpo::Actor::Create(c, std::move(r));
        if (!a.ok()) return a.status();
        return std::unique_ptr<grpo::rpc::ServiceRunner>(std::move(*a));
      }});
}

// grpo-coordinator: the control plane of a run.
#include "core/rpc/service_main.h"
#include "services/coordinator/coordinator.h"

namespace {
class Runner : public grpo::rpc::ServiceRunner {
 public:
  explicit Runner(std::unique_ptr<grpo::CoordinatorService> s) : service_(std::move(s)) {}
  std::vector<grpc::Service*> Services() override { return service_->GrpcServices(); }
  void Stop() override { service_->Shutdown(); }

 private:
  std::unique_ptr<grpo::CoordinatorService> service_;
};
}  // namespace

int main(int argc, char** argv) {
  return grpo::rpc::ServiceMain(argc, argv, {
      "coordinator", "grpo-coordinator: prompt leases, weight versions and run state",
      [](const grpo::RunConfig& c) { return c.coordinator.serve; },
      [](const grpo::RunConfig& c, std::shared_ptr<prometheus::Registry> r)
          -> absl::StatusOr<std::unique_ptr<grpo::rpc::ServiceRunner>> {
        auto s = grpo::CoordinatorService::Create(c, std::move(r));
        if (!s.ok()) return s.status();
        return std::make_unique<Runner>(std::move(*s));
      }});
}

// The metrics endpoint in a process that links and uses LibTorch with OpenBLAS: the
// situation in which prometheus-cpp's civetweb Exposer cannot start its threads.
#include "core/common/metrics_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "prometheus/counter.h"

namespace grpo {
namespace {

using ::testing::HasSubstr;

TEST(MetricsServer, ServesRegistryInAProcessUsingTorch) {
  // Use LibTorch on several threads first, so its thread-local state and BLAS are live.
  torch::set_num_threads(2);
  torch::Tensor a = torch::randn({256, 256});
  torch::Tensor b = torch::mm(a, a);
  ASSERT_EQ(b.size(0), 256);

  auto registry = std::make_shared<prometheus::Registry>();
  auto& c = prometheus::BuildCounter().Name("grpo_test_events_total").Help("events").Register(*registry).Add({{"kind", "x"}});
  c.Increment(3);
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);

  absl::StatusOr<std::string> body = HttpGet("127.0.0.1", (*server)->port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("# TYPE grpo_test_events_total counter"));
  EXPECT_THAT(*body, HasSubstr("grpo_test_events_total{kind=\"x\"} 3"));

  // Updates made while serving show up in the next scrape, from another thread too.
  std::thread([&] { c.Increment(); }).join();
  body = HttpGet("127.0.0.1", (*server)->port(), "/metrics");
  ASSERT_TRUE(body.ok());
  EXPECT_THAT(*body, HasSubstr("grpo_test_events_total{kind=\"x\"} 4"));

  EXPECT_FALSE(HttpGet("127.0.0.1", (*server)->port(), "/nope").ok());
}

TEST(MetricsServer, BusyPortIsAClearError) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = MetricsServer::Start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(first.ok());
  auto second = MetricsServer::Start(registry, "127.0.0.1", (*first)->port());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("bind"));
}

TEST(MetricsServer, SilentClientDoesNotBlockOthers) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = MetricsServer::Start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(server.ok());
  // A client that connects and sends nothing is dropped after its read deadline.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>((*server)->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  absl::StatusOr<std::string> body = HttpGet("127.0.0.1", (*server)->port(), "/metrics", 5000);
  EXPECT_TRUE(body.ok()) << body.status();
  ::close(fd);
}

}  // namespace
}  // namespace grpo

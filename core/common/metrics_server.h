// MetricsServer: serves a prometheus-cpp Registry over HTTP (GET /metrics, text format).
//
// Why not prometheus::Exposer: it runs civetweb, whose worker threads get 100 KiB stacks.
// In a process that loads LibTorch and OpenBLAS the static thread-local storage of those
// libraries alone exceeds that, pthread_create fails and the Exposer dies with "null
// context when constructing CivetServer". This server accepts on one thread of its own
// with the default (8 MiB) stack and answers scrapes sequentially, which is all a
// Prometheus scrape every few seconds needs.
//
// Thread-safe: the registry may be updated from any thread while being scraped.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace grpo {

class MetricsServer {
 public:
  // Binds host:port (port 0: any free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      std::shared_ptr<prometheus::Registry> registry, const std::string& host, int port);
  ~MetricsServer();  // stops serving and joins the thread

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }
  // Text exposition of the registry, as served.
  std::string Render() const;

 private:
  MetricsServer(std::shared_ptr<prometheus::Registry> registry, int listen_fd, int port);
  void Loop();
  void HandleConnection(int fd);

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_;
  int port_;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Fetches http://host:port/path with a bounded wait; for tests and the launcher.
absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path,
                                    int timeout_ms = 5000);

}  // namespace grpo

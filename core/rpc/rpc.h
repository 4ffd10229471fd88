// gRPC helpers shared by every service: servers with the standard health service,
// channels, deadlines and retries, status conversion.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/common/config.h"
#include "prometheus/registry.h"

namespace grpo::rpc {

// Process-wide transport security: set once at start, before any server or channel,
// from the config's `security` section; every StartServer and MakeChannel after that
// uses it. Without it everything is plaintext.
//   Servers: TLS with this process's certificate; a caller's certificate is verified
//   against the CA when presented. Every call must come from a peer with a verified
//   certificate and, when there is a token, carry "authorization: Bearer <token>";
//   otherwise it is refused with UNAUTHENTICATED before any handler runs, and reported
//   to the observer. The grpc.health.v1.Health service is open to any TLS caller (probes).
//   Channels: TLS verified against the CA (host name, or security.server_name), this
//   process's certificate as the client certificate, and the token on every call.
struct Security {
  std::string ca_pem, cert_pem, key_pem, token, server_name;
  bool tls() const { return !ca_pem.empty(); }
};
// Reads the section's files; errors name the field and the file. An empty section
// turns security off.
absl::Status ConfigureSecurity(const SecurityConfig& cfg);
void SetSecurity(Security security);
Security CurrentSecurity();  // a copy
// Told of every refused call: peer, method and why. ServiceMain counts and logs them.
void SetUnauthenticatedObserver(std::function<void(const std::string& peer, const std::string& method,
                                                   const std::string& why)> observer);

// Servers started after this count every RPC in `registry` (which must outlive them):
// grpo_rpc_server_handled_total and grpo_rpc_server_handling_seconds, labelled
// grpc_service, grpc_method and grpc_code. ServiceMain sets it; null turns it off.
void SetRpcMetricsRegistry(prometheus::Registry* registry);

// Largest message any service sends or accepts (weight chunks are far smaller).
inline constexpr int kMaxMessageBytes = 64 << 20;

struct ServerHandle {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (the chosen one when 0 was asked)
};

// Builds and starts a server on host:port with the standard grpc.health.v1 service
// (reporting SERVING for "" and every registered service).
absl::StatusOr<ServerHandle> StartServer(const std::string& host, int port,
                                         const std::vector<grpc::Service*>& services);

// A channel (TLS and the token when security is configured) with keepalive and the
// message size limit. `address` is
// "host:port" (a DNS name that resolves to several addresses, such as a headless
// Service, is used whole), a list "ip:port,ip:port" of IPv4 or [IPv6] literals, or a
// gRPC target URI ("dns:///reward:50051"). Calls are spread round robin over every
// address the target resolves to, and one that is down is skipped.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// The gRPC target for `address` as above: a list becomes "ipv4:a,b" / "ipv6:a,b"; an
// error names an entry of a list that is not an IP literal with a port.
absl::StatusOr<std::string> ChannelTarget(const std::string& address);

// Waits until the channel is connected or the timeout passes.
bool WaitForConnected(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout);

// A context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration timeout);

absl::Status ToAbsl(const grpc::Status& s);
grpc::Status ToGrpc(const absl::Status& s);

// Whether a failed call may be retried (the server may not have seen it, or it is busy).
bool IsRetryable(const grpc::Status& s);

struct RetryPolicy {
  int max_attempts = 8;
  absl::Duration per_call_timeout = absl::Seconds(10);
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
};

// Calls `call(ctx)` until it succeeds, fails with a non-retryable status, or attempts run
// out; each attempt gets a fresh context with the per-call deadline. `stop` (optional)
// ends the retries early (shutdown). Only for idempotent RPCs.
grpc::Status CallWithRetry(const std::function<grpc::Status(grpc::ClientContext*)>& call,
                           const RetryPolicy& policy = {},
                           const std::function<bool()>& stop = nullptr);

// Health check of one server (service "" = the whole server).
absl::StatusOr<bool> CheckHealth(const std::string& address, absl::Duration timeout,
                                 const std::string& service = "");

}  // namespace grpo::rpc

#include "core/rpc/rpc.h"

#include <arpa/inet.h>
#include <grpcpp/health_check_service_interface.h>

#include <cstdio>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace grpo::rpc {

absl::StatusOr<ServerHandle> StartServer(const std::string& host, int port,
                                         const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  ServerHandle h;
  builder.AddListeningPort(absl::StrCat(host, ":", port), grpc::InsecureServerCredentials(), &h.port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  for (grpc::Service* s : services) builder.RegisterService(s);
  h.server = builder.BuildAndStart();
  if (!h.server || h.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve gRPC on ", host, ":", port,
                                               " (address in use or not local?)"));
  }
  if (auto* health = h.server->GetHealthCheckService()) health->SetServingStatus(true);
  return h;
}

absl::StatusOr<std::string> ChannelTarget(const std::string& address) {
  if (address.find(',') == std::string::npos) return address;
  std::vector<std::string> entries;
  bool v6 = false;
  for (absl::string_view e : absl::StrSplit(address, ',', absl::SkipWhitespace())) {
    std::string entry(absl::StripAsciiWhitespace(e));
    const size_t colon = entry.rfind(':');
    int port = 0;
    std::string host = colon == std::string::npos ? "" : entry.substr(0, colon);
    const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    in6_addr buf;
    const bool ok = colon != std::string::npos && absl::SimpleAtoi(entry.substr(colon + 1), &port) && port > 0 &&
                    port < 65536 && ::inet_pton(bracketed ? AF_INET6 : AF_INET, host.c_str(), &buf) == 1;
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("endpoint list ", address, ": '", entry,
                                                     "' is not ip:port (a list takes IP literals; for a DNS name "
                                                     "with many addresses give the one name)"));
    }
    if (!entries.empty() && bracketed != v6) {
      return absl::InvalidArgumentError(absl::StrCat("endpoint list ", address, " mixes IPv4 and IPv6"));
    }
    v6 = bracketed;
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) return absl::InvalidArgumentError(absl::StrCat("endpoint list '", address, "' is empty"));
  return absl::StrCat(v6 ? "ipv6:" : "ipv4:", absl::StrJoin(entries, ","));
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  absl::StatusOr<std::string> target = ChannelTarget(address);
  if (!target.ok()) {
    // The channel then never connects, and every call fails saying so.
    std::fprintf(stderr, "%s\n", std::string(target.status().message()).c_str());
    target = address;
  }
  grpc::ChannelArguments args;
  // Balance calls over all of the target's addresses, not only the first that answers.
  args.SetServiceConfigJSON(R"({"loadBalancingConfig": [{"round_robin": {}}]})");
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect quickly after a peer restarts (default backoff grows to 2 minutes).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  return grpc::CreateCustomChannel(*target, grpc::InsecureChannelCredentials(), args);
}

bool WaitForConnected(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout) {
  return channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout));
}

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::Status ToAbsl(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

bool IsRetryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

grpc::Status CallWithRetry(const std::function<grpc::Status(grpc::ClientContext*)>& call,
                           const RetryPolicy& policy, const std::function<bool()>& stop) {
  thread_local std::mt19937 rng(std::random_device{}());
  absl::Duration backoff = policy.initial_backoff;
  grpc::Status st;
  for (int attempt = 1; attempt <= policy.max_attempts; ++attempt) {
    auto ctx = ContextWithDeadline(policy.per_call_timeout);
    st = call(ctx.get());
    if (st.ok() || !IsRetryable(st) || attempt == policy.max_attempts) return st;
    if (stop && stop()) return st;
    // Full jitter keeps many clients from retrying in lockstep.
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff * jitter(rng)));
    backoff = std::min(backoff * 2, policy.max_backoff);
  }
  return st;
}

absl::StatusOr<bool> CheckHealth(const std::string& address, absl::Duration timeout,
                                 const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(address));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  auto ctx = ContextWithDeadline(timeout);
  ctx->set_wait_for_ready(true);
  grpc::Status s = stub->Check(ctx.get(), req, &resp);
  if (!s.ok()) return ToAbsl(s);
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace grpo::rpc

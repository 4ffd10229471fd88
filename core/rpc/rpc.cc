#include "core/rpc/rpc.h"

#include <arpa/inet.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"

namespace grpo::rpc {
namespace {

absl::Mutex security_mu;
Security* security_state ABSL_GUARDED_BY(security_mu) = nullptr;
std::function<void(const std::string&, const std::string&, const std::string&)>* observer_state
    ABSL_GUARDED_BY(security_mu) = nullptr;

bool ConstantTimeEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Runs before every call on a TLS server: a verified client certificate and the bearer
// token, except for health checks.
class AuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit AuthProcessor(std::string token) : token_(std::move(token)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& md, grpc::AuthContext* context, OutputMetadata* consumed,
                       OutputMetadata*) override {
    std::string path;
    if (auto it = md.find(":path"); it != md.end()) path.assign(it->second.data(), it->second.size());
    if (absl::StartsWith(path, "/grpc.health.v1.Health/")) return grpc::Status::OK;
    std::string why;
    if (!context->IsPeerAuthenticated()) {
      why = "no verified client certificate";
    } else if (!token_.empty()) {
      auto it = md.find("authorization");
      const std::string want = "Bearer " + token_;
      if (it == md.end()) {
        why = "no bearer token";
      } else if (!ConstantTimeEqual(absl::string_view(it->second.data(), it->second.size()), want)) {
        why = "wrong bearer token";
      } else {
        consumed->insert(std::make_pair(std::string(it->first.data(), it->first.size()),
                                        std::string(it->second.data(), it->second.size())));
      }
    }
    if (why.empty()) return grpc::Status::OK;
    std::string peer;
    for (const auto& p : context->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
      peer.assign(p.data(), p.size());
    }
    auto ids = context->GetPeerIdentity();
    if (!ids.empty()) peer = std::string(ids[0].data(), ids[0].size());
    {
      absl::MutexLock l(&security_mu);
      if (observer_state != nullptr) (*observer_state)(peer, path, why);
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, absl::StrCat(path, ": ", why));
  }

 private:
  std::string token_;
};

class TokenPlugin : public grpc::MetadataCredentialsPlugin {
 public:
  explicit TokenPlugin(std::string token) : value_("Bearer " + std::move(token)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status GetMetadata(grpc::string_ref, grpc::string_ref, const grpc::AuthContext&,
                           std::multimap<grpc::string, grpc::string>* metadata) override {
    metadata->insert(std::make_pair("authorization", value_));
    return grpc::Status::OK;
  }

 private:
  std::string value_;
};

absl::StatusOr<std::string> ReadPem(const std::string& field, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(field, " = ", path, ": cannot read the file"));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes;
}

}  // namespace

absl::Status ConfigureSecurity(const SecurityConfig& cfg) {
  Security s;
  s.server_name = cfg.server_name;
  if (!cfg.ca_file.empty()) {
    const std::pair<const char*, const std::string*> files[] = {
        {"security.ca_file", &cfg.ca_file}, {"security.cert_file", &cfg.cert_file}, {"security.key_file", &cfg.key_file}};
    std::string* outs[] = {&s.ca_pem, &s.cert_pem, &s.key_pem};
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<std::string> pem = ReadPem(files[i].first, *files[i].second);
      if (!pem.ok()) return pem.status();
      if (pem->find("-----BEGIN") == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(files[i].first, " = ", *files[i].second, ": not PEM"));
      }
      *outs[i] = std::move(*pem);
    }
  }
  if (!cfg.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadPem("security.token_file", cfg.token_file);
    if (!token.ok()) return token.status();
    s.token = std::string(absl::StripAsciiWhitespace(*token));
    if (s.token.empty()) return absl::InvalidArgumentError(absl::StrCat("security.token_file = ", cfg.token_file, ": empty"));
    for (char c : s.token) {
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
        return absl::InvalidArgumentError(
            absl::StrCat("security.token_file = ", cfg.token_file, ": the token must be printable ASCII without spaces"));
      }
    }
  }
  SetSecurity(std::move(s));
  return absl::OkStatus();
}

void SetSecurity(Security security) {
  absl::MutexLock l(&security_mu);
  delete security_state;
  security_state = new Security(std::move(security));
}

Security CurrentSecurity() {
  absl::MutexLock l(&security_mu);
  return security_state != nullptr ? *security_state : Security();
}

void SetUnauthenticatedObserver(
    std::function<void(const std::string&, const std::string&, const std::string&)> observer) {
  absl::MutexLock l(&security_mu);
  delete observer_state;
  observer_state = observer ? new std::function<void(const std::string&, const std::string&, const std::string&)>(
                                  std::move(observer))
                            : nullptr;
}

namespace {

// Per-RPC metrics for every server of the process, following the labels of
// go-grpc-prometheus: grpc_service, grpc_method, grpc_code.
struct RpcMetrics {
  prometheus::Family<prometheus::Counter>* handled;
  prometheus::Family<prometheus::Histogram>* seconds;
};
absl::Mutex rpc_metrics_mu;
std::shared_ptr<RpcMetrics> rpc_metrics ABSL_GUARDED_BY(rpc_metrics_mu);

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(std::shared_ptr<RpcMetrics> m, const char* method) : m_(std::move(m)) {
    std::string full = method != nullptr ? method : "";  // "/package.Service/Method"
    const size_t slash = full.rfind('/');
    service_ = slash == std::string::npos || slash == 0 ? "" : full.substr(1, slash - 1);
    method_ = slash == std::string::npos ? full : full.substr(slash + 1);
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      start_ = std::chrono::steady_clock::now();
      started_ = true;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status st = methods->GetSendStatus();
      const std::string code = CodeName(st.error_code());
      const std::map<std::string, std::string> labels = {
          {"grpc_service", service_}, {"grpc_method", method_}, {"grpc_code", code}};
      m_->handled->Add(labels).Increment();
      if (started_) {
        m_->seconds->Add(labels, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                                         1, 5, 10, 60})
            .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
      }
    }
    methods->Proceed();
  }

 private:
  static std::string CodeName(grpc::StatusCode c) {
    static const char* const kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                         "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                         "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                         "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    const int i = static_cast<int>(c);
    return i >= 0 && i < 17 ? kNames[i] : absl::StrCat("CODE_", i);
  }
  std::shared_ptr<RpcMetrics> m_;
  std::string service_, method_;
  std::chrono::steady_clock::time_point start_;
  bool started_ = false;
};

class RpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(std::shared_ptr<RpcMetrics> m) : m_(std::move(m)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(m_, info->method());
  }

 private:
  std::shared_ptr<RpcMetrics> m_;
};

}  // namespace

void SetRpcMetricsRegistry(prometheus::Registry* registry) {
  absl::MutexLock l(&rpc_metrics_mu);
  if (registry == nullptr) {
    rpc_metrics.reset();
    return;
  }
  auto m = std::make_shared<RpcMetrics>();
  m->handled = &prometheus::BuildCounter()
                    .Name("grpo_rpc_server_handled_total")
                    .Help("RPCs this process served, by service, method and status code")
                    .Register(*registry);
  m->seconds = &prometheus::BuildHistogram()
                    .Name("grpo_rpc_server_handling_seconds")
                    .Help("Time from an RPC's start to its status, by service, method and status code (streams: their whole life)")
                    .Register(*registry);
  rpc_metrics = std::move(m);
}

absl::StatusOr<ServerHandle> StartServer(const std::string& host, int port,
                                         const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  ServerHandle h;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  const Security sec = CurrentSecurity();
  if (sec.tls()) {
    grpc::SslServerCredentialsOptions opts(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    opts.pem_root_certs = sec.ca_pem;
    opts.pem_key_cert_pairs.push_back({sec.key_pem, sec.cert_pem});
    creds = grpc::SslServerCredentials(opts);
    // Certificates are required by the processor, not the handshake, so that a caller
    // without one gets UNAUTHENTICATED (and is counted) rather than a broken connection.
    creds->SetAuthMetadataProcessor(std::make_shared<AuthProcessor>(sec.token));
  }
  builder.AddListeningPort(absl::StrCat(host, ":", port), creds, &h.port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  for (grpc::Service* s : services) builder.RegisterService(s);
  {
    absl::MutexLock l(&rpc_metrics_mu);
    if (rpc_metrics) {
      std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
      creators.push_back(std::make_unique<RpcMetricsFactory>(rpc_metrics));
      builder.experimental().SetInterceptorCreators(std::move(creators));
    }
  }
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
  const Security sec = CurrentSecurity();
  if (!sec.tls()) return grpc::CreateCustomChannel(*target, grpc::InsecureChannelCredentials(), args);
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = sec.ca_pem;
  opts.pem_private_key = sec.key_pem;
  opts.pem_cert_chain = sec.cert_pem;
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(opts);
  if (!sec.token.empty()) {
    creds = grpc::CompositeChannelCredentials(
        creds, grpc::MetadataCredentialsFromPlugin(std::make_unique<TokenPlugin>(sec.token)));
  }
  if (!sec.server_name.empty()) args.SetSslTargetNameOverride(sec.server_name);
  return grpc::CreateCustomChannel(*target, creds, args);
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

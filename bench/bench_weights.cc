// Weight distribution (a report, not a test): the time to deliver one weight version
// from the coordinator to N actors on loopback, divided by a plain TCP copy of the same
// bytes to one receiver measured in the same run.
//
//   build/bin/grpo-bench-weights [--sizes small,0.5b] [--actors 1,2,4,8]
//
// Sizes: "small" is the small preset's fp32 blob (26.2M parameters, 105 MB); "0.5b" a
// Qwen2.5-0.5B-sized bf16 blob (494M parameters, 988 MB). The bytes are random (the
// transfer does not look at them). Each actor is what an actor does on a new version:
// FetchWeights on its own connection, appending the chunks into one buffer, then the
// CRC-32 of the whole blob. Delivery time = from the first request to the last actor's
// CRC. The baseline is one socket write of the blob to one reader on loopback (no gRPC,
// no CRC). Ratio = delivery time / baseline time; 1 would be a plain copy.
// Last line: "weights: 8 actors ratio R (1 actor ratio R1)" for the largest size.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/rpc/rpc.h"
#include "core/rpc/weight_chunks.h"
#include "grpo/v1/coordinator.grpc.pb.h"
#include "prometheus/registry.h"
#include "services/coordinator/coordinator.h"

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<int64_t> ParseList(const std::string& s) {
  std::vector<int64_t> out;
  for (size_t at = 0; at < s.size();) {
    size_t comma = s.find(',', at);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(std::atoll(s.substr(at, comma - at).c_str()));
    at = comma + 1;
  }
  return out;
}

// One write of `blob` over a loopback TCP connection to a reader that keeps every byte.
double PlainTcpCopy(const std::string& blob) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(listener, 1);
  socklen_t len = sizeof a;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  std::string got(blob.size(), '\0');
  std::atomic<bool> done{false};
  std::thread reader([&] {
    int c = ::accept(listener, nullptr, nullptr);
    size_t off = 0;
    while (off < got.size()) {
      ssize_t n = ::read(c, got.data() + off, got.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(c);
    done = true;
  });
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  auto t0 = Clock::now();
  ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  for (size_t off = 0; off < blob.size();) {
    ssize_t n = ::write(s, blob.data() + off, blob.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  reader.join();
  const double t = Since(t0);
  ::close(s);
  ::close(listener);
  if (got != blob) std::fprintf(stderr, "baseline copy corrupted the bytes\n");
  return t;
}

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(grpo::rpc::kMaxMessageBytes);
  args.SetMaxSendMessageSize(grpo::rpc::kMaxMessageBytes);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per actor, as separate processes have
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

bool Publish(const std::string& address, const std::string& blob, uint64_t version) {
  auto stub = grpo::v1::Coordinator::NewStub(OwnChannel(address));
  grpc::ClientContext ctx;
  grpo::v1::PublishWeightsResponse resp;
  auto writer = stub->PublishWeights(&ctx, &resp);
  const uint32_t crc = grpo::Crc32(blob);
  grpo::rpc::WriteWeightChunks(writer.get(), blob, version, version, crc, size_t{1} << 20);
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) std::fprintf(stderr, "publish: %s\n", s.error_message().c_str());
  return s.ok();
}

// N actors fetch `version` at once; returns the time until the last has checked it.
double Deliver(const std::string& address, uint64_t version, size_t size, uint32_t crc, int actors) {
  std::vector<std::string> buffers(static_cast<size_t>(actors));
  for (auto& b : buffers) b.reserve(size);  // as an actor that reserves total_size
  std::vector<std::unique_ptr<grpo::v1::Coordinator::Stub>> stubs;
  for (int i = 0; i < actors; ++i) {
    auto ch = OwnChannel(address);
    ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
    stubs.push_back(grpo::v1::Coordinator::NewStub(ch));
  }
  std::atomic<int> bad{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < actors; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      grpo::v1::FetchWeightsRequest req;
      req.set_version(static_cast<int64_t>(version));
      auto reader = stubs[i]->FetchWeights(&ctx, req);
      grpo::v1::WeightChunk c;
      std::string& blob = buffers[i];
      while (reader->Read(&c)) blob.append(c.data());
      if (!reader->Finish().ok() || blob.size() != size || grpo::Crc32(blob) != crc) ++bad;
    });
  }
  for (auto& t : threads) t.join();
  const double t = Since(t0);
  if (bad > 0) std::fprintf(stderr, "%d actor(s) got a wrong blob\n", bad.load());
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string sizes_arg = "small,0.5b", actors_arg = "1,2,4,8";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--sizes") sizes_arg = argv[i + 1];
    else if (flag == "--actors") actors_arg = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  absl::StatusOr<grpo::RunConfig> cfg = grpo::LoadConfigWithOverrides(
      "", {"run.dir=", "coordinator.state_dir=", "pipeline.tasks=", "learner.eval_every=0", "pipeline.base_docs=0",
           "pipeline.eval_before_after=false", "pipeline.report=false", "data.num_tasks=16",
           "coordinator.keep_versions=2"});
  if (!cfg.ok()) {
    std::fprintf(stderr, "%s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  auto registry = std::make_shared<prometheus::Registry>();
  auto service = grpo::CoordinatorService::Create(*cfg, registry);
  if (!service.ok()) {
    std::fprintf(stderr, "%s\n", std::string(service.status().message()).c_str());
    return 1;
  }
  auto server = grpo::rpc::StartServer("127.0.0.1", 0, {service->get()});
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  const std::string address = "127.0.0.1:" + std::to_string(server->port);
  const std::vector<int64_t> actor_counts = ParseList(actors_arg);
  std::printf("weight delivery over gRPC on loopback, against one plain TCP copy of the same bytes\n");
  std::printf("%-6s %10s %8s %12s %12s %8s\n", "size", "MB", "actors", "seconds", "baseline s", "ratio");
  double last_ratio_max = 0, last_ratio_one = 0;
  int64_t last_max_actors = 0;
  uint64_t version = 0;
  for (size_t at = 0; at < sizes_arg.size();) {
    size_t comma = sizes_arg.find(',', at);
    if (comma == std::string::npos) comma = sizes_arg.size();
    const std::string name = sizes_arg.substr(at, comma - at);
    at = comma + 1;
    size_t bytes = 0;
    if (name == "small") bytes = size_t{26'229'248} * 4;        // small preset, vocab 4096, fp32
    else if (name == "0.5b") bytes = size_t{494'032'768} * 2;  // Qwen2.5-0.5B shape, bf16
    else {
      std::fprintf(stderr, "unknown size %s (small, 0.5b)\n", name.c_str());
      return 2;
    }
    std::string blob(bytes, '\0');
    std::mt19937_64 rng(7);
    for (size_t i = 0; i + 8 <= blob.size(); i += 8) {
      const uint64_t v = rng();
      std::memcpy(blob.data() + i, &v, 8);
    }
    const uint32_t crc = grpo::Crc32(blob);
    if (!Publish(address, blob, ++version)) return 1;
    const double baseline = std::min(PlainTcpCopy(blob), PlainTcpCopy(blob));
    for (int64_t n : actor_counts) {
      const double t = Deliver(address, version, blob.size(), crc, static_cast<int>(n));
      std::printf("%-6s %10.1f %8lld %12.3f %12.3f %8.2f\n", name.c_str(), blob.size() / 1e6,
                  static_cast<long long>(n), t, baseline, t / baseline);
      std::fflush(stdout);
      if (n == 1) last_ratio_one = t / baseline;
      if (n >= last_max_actors) {
        last_max_actors = n;
        last_ratio_max = t / baseline;
      }
    }
  }
  (*service)->Shutdown();
  server->server->Shutdown();
  std::printf("weights: %lld actors ratio %.2f (1 actor ratio %.2f)\n", static_cast<long long>(last_max_actors),
              last_ratio_max, last_ratio_one);
  return 0;
}

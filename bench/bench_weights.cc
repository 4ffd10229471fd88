// Weight distribution (a report, not a test): the time to deliver one weight version
// from the coordinator to N actors on loopback, divided by a plain TCP copy of the same
// bytes to one receiver measured in the same run.
//
//   build/bin/grpo-bench-weights [--sizes small,0.5b] [--actors 1,2,4,8] [--fanout 1] [--chunk BYTES]
//                                [--publish-steps 4] [--publish-dtype fp32|bf16] [--full-every 10]
//                                [--delta-steps 20] [--demo-lr 5e-5]
//                                [--links 1gbit|off] [--link-size small|0.5b] [--link-actors 1,8]
//
// Sizes: "small" is the small preset's fp32 blob (26.2M parameters, 105 MB); "0.5b" a
// Qwen2.5-0.5B-sized bf16 blob (494M parameters, 988 MB). The bytes are random (the
// transfer does not look at them). Each actor is what grpo-actor runs on a new version:
// a WeightFetcher (PlanWeightFetch, then Weights/Fetch from the peer or coordinator it is
// told, the CRC folded in as the bytes arrive) and a Weights server relaying what it has
// received to the peers planned after it (coordinator.relay_fanout = --fanout; 0: all
// from the coordinator). Each actor has its own server, channels and connections.
// Delivery time = from the first plan to the last actor's checked blob. Each case runs
// four times: the first is shown as "first s" (it also pays for faulting in fresh pages;
// after it an actor receives every version into the pages of the one before), the
// least of the other three is the figure. The baseline is the least of three socket
// writes of the blob to one reader on loopback (no gRPC, no CRC). Ratio = delivery time / baseline. "n copies s" is n such plain copies at once,
// what this machine's cores allow for moving n times the bytes ("vs copies" divides by
// it), and "from coord" the bytes the coordinator sent divided by the blob size (1 when
// the relays carry the rest).
// Then the link mode (bench/weight_links.h; --links off skips it; as root): each actor
// and the coordinator a process in its own network namespace behind a link shaped to
// --links, so that links, not this machine's cores, are the limit. Printed before the
// last line: "weights over links: 8 actors ratio R (1 actor ratio R1)", delivery time
// over one plain TCP copy over such a link.
// Last line: "weights: 8 actors ratio R (1 actor ratio R1)" for the largest size.
//
// First, the publish overhead (issue #24; --publish-steps N, 0 skips it): a learner's
// trainer thread (GrpoTrainer on the small preset, one thread, fp32, the batch of
// grpo-bench-train's defaults) runs N steps without publishing, N steps publishing as
// grpo-learner does (the version serialized on the trainer thread, then handed to the
// learner's WeightPublisher, which streams it to the coordinator while the next step
// trains) to 2 actors that fetch each version they are told of and load it into a model,
// and N steps without publishing again. Printed: `publish overhead: step ratio R`, the
// mean step time publishing divided by the mean of the two runs without. The versions go
// out as the learner sends them: in --publish-dtype (the actors'), as patches when
// smaller, a full one every --full-every (0: deltas off).
//
// Then the size of delta versions (--delta-steps N, 0 skips it): N GRPO steps of the
// small preset at lr 1e-6 and at the demo's lr (--demo-lr), each version in bf16 patched
// against the one before as the publisher does. Printed: `delta bytes: lr 1e-06 P% of
// full, lr L Q% of full`, the patch's mean share of the full bytes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
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
#include "core/rpc/weight_delta.h"
#include "core/rpc/weight_stream.h"
#include "prometheus/registry.h"
#include "bench/bench_util.h"
#include "bench/weight_links.h"
#include "core/grpo/trainer.h"
#include "core/model/presets.h"
#include "core/policy/policy.h"
#include "services/coordinator/coordinator.h"
#include "services/learner/publisher.h"

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

// `receivers` plain loopback TCP copies of `blob` at once, each into its own
// already-touched buffer; returns the time until the last byte of the last arrived.
double PlainTcpCopies(const std::string& blob, int receivers) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(listener, receivers);
  socklen_t len = sizeof a;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<std::string> got(static_cast<size_t>(receivers), std::string(blob.size(), '\0'));
  std::vector<int> senders(static_cast<size_t>(receivers));
  for (int& s : senders) s = ::socket(AF_INET, SOCK_STREAM, 0);
  std::atomic<int> bad{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < receivers; ++i) {
    threads.emplace_back([&, i] {
      ::connect(senders[i], reinterpret_cast<sockaddr*>(&a), sizeof a);
      for (size_t off = 0; off < blob.size();) {
        ssize_t n = ::write(senders[i], blob.data() + off, blob.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
    });
    threads.emplace_back([&, i] {
      int c = ::accept(listener, nullptr, nullptr);
      std::string& out = got[static_cast<size_t>(i)];
      size_t off = 0;
      while (off < out.size()) {
        ssize_t n = ::read(c, out.data() + off, out.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(c);
      if (off != out.size()) ++bad;
    });
  }
  for (auto& t : threads) t.join();
  const double t = Since(t0);
  for (int s : senders) ::close(s);
  ::close(listener);
  for (const std::string& g : got) {
    if (g != blob) ++bad;
  }
  if (bad > 0) std::fprintf(stderr, "baseline copy corrupted the bytes\n");
  return t;
}

using grpo::bench::OwnChannel;

// What a grpo-actor runs for weights: a fetcher and a relay server.
struct BenchActor {
  std::string member_id, address;
  std::unique_ptr<grpo::rpc::WeightFetcher> fetcher;
  std::unique_ptr<grpo::rpc::WeightService> relay;
  grpo::rpc::ServerHandle server;
};

std::unique_ptr<BenchActor> MakeActor(const std::string& coordinator, int i) {
  auto a = std::make_unique<BenchActor>();
  a->member_id = "bench-actor-" + std::to_string(i);
  a->fetcher = std::make_unique<grpo::rpc::WeightFetcher>(OwnChannel(coordinator), &OwnChannel);
  grpo::rpc::WeightFetcher* f = a->fetcher.get();
  a->relay = std::make_unique<grpo::rpc::WeightService>([f](int64_t v, bool d) { return f->Held(v, d); }, nullptr);
  auto server = grpo::rpc::StartServer("127.0.0.1", 0, {a->relay.get()});
  if (!server.ok()) {
    std::fprintf(stderr, "actor server: %s\n", std::string(server.status().message()).c_str());
    std::exit(1);
  }
  a->server = std::move(*server);
  a->address = "127.0.0.1:" + std::to_string(a->server.port);
  return a;
}

struct Delivery {
  double seconds = 0;
  uint64_t from_coordinator = 0;
};

// The first `n` actors fetch the newest version at once.
Delivery Deliver(std::vector<std::unique_ptr<BenchActor>>& actors, int n, uint32_t crc, uint32_t chunk) {
  std::atomic<int> bad{0};
  std::vector<uint64_t> before(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) before[i] = actors[i]->fetcher->stats().bytes_from_coordinator;
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      grpo::rpc::WeightFetcher::Options opt;
      opt.member_id = actors[i]->member_id;
      opt.relay_address = actors[i]->address;
      opt.chunk_bytes = chunk;
      auto blob = actors[i]->fetcher->Fetch(-1, opt, nullptr, nullptr);
      if (!blob.ok()) {
        std::fprintf(stderr, "%s: %s\n", opt.member_id.c_str(), std::string(blob.status().message()).c_str());
        ++bad;
      } else if (!(*blob)->complete() || (*blob)->header().crc32 != crc) {
        ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  Delivery d;
  d.seconds = Since(t0);

  for (int i = 0; i < n; ++i) d.from_coordinator += actors[i]->fetcher->stats().bytes_from_coordinator - before[i];
  if (bad > 0) std::fprintf(stderr, "%d actor(s) got a wrong blob\n", bad.load());
  return d;
}


// The learner's step time with publishing to 2 actors against without; see the top.
double PublishOverhead(const std::string& coordinator, std::vector<std::unique_ptr<BenchActor>>& actors, int steps,
                       uint64_t* version, torch::ScalarType dtype, int64_t full_every) {
  const int64_t vocab = 4096;
  auto config = grpo::model::PresetConfig("qwen2", "small", vocab);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    std::exit(2);
  }
  torch::set_num_threads(1);
  torch::manual_seed(0);
  grpo::model::Transformer model(*config);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-5).weight_decay(0.01));
  grpo::TrainerOptions options;
  options.micro_batch_size = 8;
  grpo::GrpoTrainer trainer(model, grpo::model::Transformer(nullptr), &optimizer, options, /*pad_id=*/0);
  const auto groups = grpo::bench::MakeGroups(2, 8, 64, 192, vocab);
  std::vector<const grpo::TrainGroup*> ptrs;
  for (const auto& g : groups) ptrs.push_back(&g);

  // Two actors: each waits for a version newer than its own, fetches the newest and loads it.
  absl::Mutex mu;
  uint64_t announced = 0;
  bool done = false;
  std::atomic<int> loaded{0}, failed{0};
  std::vector<std::thread> actor_threads;
  for (int i = 0; i < 2; ++i) {
    actor_threads.emplace_back([&, i] {
      grpo::model::Transformer mine(*config);
      uint64_t have = 0;
      for (;;) {
        {
          absl::MutexLock l(&mu);
          auto newer = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return done || announced > have; };
          mu.Await(absl::Condition(&newer));
          if (done) return;
        }
        grpo::rpc::WeightFetcher::Options opt;
        opt.member_id = actors[i]->member_id;
        opt.relay_address = actors[i]->address;
        auto blob = actors[i]->fetcher->Fetch(-1, opt, nullptr, nullptr);
        if (!blob.ok() || !grpo::LoadWeightsBlob(mine, (*blob)->bytes()).ok()) {
          ++failed;
          return;
        }
        have = (*blob)->version();
        ++loaded;
      }
    });
  }
  grpo::WeightPublisher::Callbacks cb;
  cb.send = [&](const grpo::WeightPublisher::Blob& blob) -> absl::Status {
    grpc::ClientContext ctx;
    auto published = grpo::rpc::PublishWeightStream(OwnChannel(coordinator), &ctx, blob);
    return published.ok() ? absl::OkStatus() : published.status();
  };
  cb.on_published = [&](const grpo::rpc::WeightHeader& h) {
    absl::MutexLock l(&mu);
    announced = h.version;
  };
  grpo::WeightPublisher::Options po;
  po.full_every = full_every;
  grpo::WeightPublisher publisher(std::move(cb), po);

  (void)trainer.Step(ptrs, 0);  // warm-up
  double serialize_s = 0;
  auto run = [&](bool publish) {
    auto t0 = Clock::now();
    for (int s = 1; s <= steps; ++s) {
      (void)trainer.Step(ptrs, static_cast<uint64_t>(s));
      if (publish) {
        auto ts = Clock::now();
        ++*version;
        publisher.Enqueue(
            grpo::rpc::WeightBlob::FromBytes(grpo::WeightsToBlob(model, *version, dtype), *version, *version));
        serialize_s += Since(ts);
      }
    }
    return Since(t0) / steps;
  };
  const double off1 = run(false);
  const double on = run(true);
  const double off2 = run(false);
  const absl::Status idle = publisher.WaitIdle();
  {
    absl::MutexLock l(&mu);
    done = true;
  }
  for (auto& t : actor_threads) t.join();
  publisher.Stop();
  const double off = (off1 + off2) / 2;
  const grpo::WeightPublisher::Stats ps = publisher.stats();
  std::printf("publish overhead (small preset, %s versions, deltas %s, 1 trainer thread, %d steps each, 2 actors "
              "fetching and loading):\n",
              dtype == torch::kBFloat16 ? "bf16" : "fp32",
              full_every > 0 ? ("on, full every " + std::to_string(full_every)).c_str() : "off", steps);
  std::printf("  step s without publishing %.3f then %.3f, publishing %.3f (of it serializing %.3f); "
              "versions sent %llu (full %llu, delta %llu; patch encoding %.3f s), superseded %llu, loaded by actors %d%s\n",
              off1, off2, on, serialize_s / steps, static_cast<unsigned long long>(publisher.sent()),
              static_cast<unsigned long long>(ps.versions_full), static_cast<unsigned long long>(ps.versions_delta),
              ps.encode_seconds, static_cast<unsigned long long>(publisher.superseded()), loaded.load(),
              idle.ok() && failed == 0 ? "" : " (FAILURES)");
  std::fflush(stdout);
  return on / off;
}

// Delta versions against full ones (issue #24): `steps` GRPO steps of the small preset
// at `lr` (AdamW, no weight decay, as the learner's default), each version serialized
// in bf16 (what GPU actors run) and encoded as the publisher does against the version
// before. Returns the patch's share of the full bytes, in percent, averaged over the
// steps; prints each lr's row.
double DeltaBytes(double lr, int steps) {
  const int64_t vocab = 4096;
  auto config = grpo::model::PresetConfig("qwen2", "small", vocab);
  if (!config.ok()) std::exit(2);
  torch::manual_seed(0);
  grpo::model::Transformer model(*config);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(lr).weight_decay(0));
  grpo::TrainerOptions options;
  options.micro_batch_size = 8;
  grpo::GrpoTrainer trainer(model, grpo::model::Transformer(nullptr), &optimizer, options, /*pad_id=*/0);
  std::string prev = grpo::WeightsToBlob(model, 0, torch::kBFloat16);
  double sum = 0, most = 0, least = 100, encode = 0, changed_sum = 0;
  for (int s = 1; s <= steps; ++s) {
    // Fresh groups each step, as a run samples new completions.
    const auto groups = grpo::bench::MakeGroups(2, 8, 32, 96, vocab, /*seed=*/static_cast<uint64_t>(s));
    std::vector<const grpo::TrainGroup*> ptrs;
    for (const auto& g : groups) ptrs.push_back(&g);
    (void)trainer.Step(ptrs, static_cast<uint64_t>(s));
    std::string next = grpo::WeightsToBlob(model, static_cast<uint64_t>(s), torch::kBFloat16);
    auto t0 = Clock::now();
    absl::StatusOr<std::string> patch = grpo::rpc::MakeWeightPatch(prev, next);
    encode += Since(t0);
    if (!patch.ok()) {
      std::fprintf(stderr, "patch: %s\n", std::string(patch.status().message()).c_str());
      std::exit(1);
    }
    size_t changed = 0;
    for (size_t i = 0; i + 1 < next.size(); i += 2) changed += std::memcmp(&prev[i], &next[i], 2) != 0;
    changed_sum += 100.0 * static_cast<double>(changed) / static_cast<double>(next.size() / 2);
    const double pct = 100.0 * static_cast<double>(patch->size()) / static_cast<double>(next.size());
    sum += pct;
    most = std::max(most, pct);
    least = std::min(least, pct);
    prev = std::move(next);
  }
  std::printf("  lr %-8g full %.1f MB  patch %% of full: mean %.2f (min %.2f, max %.2f)  bf16 values changed per "
              "step %.2f%%  encode %.3f s/version\n",
              lr, static_cast<double>(prev.size()) / 1e6, sum / steps, least, most, changed_sum / steps, encode / steps);
  std::fflush(stdout);
  return sum / steps;
}

}  // namespace

int main(int argc, char** argv) {
  grpo::rpc::KeepStreamBuffers();  // as ServiceMain does for every service
  if (int rc = grpo::bench::RunLinkRole(argc, argv); rc >= 0) return rc;  // a link-mode child
  std::string sizes_arg = "small,0.5b", actors_arg = "1,2,4,8", fanout = "1";
  int publish_steps = 4, delta_steps = 20;
  std::string publish_dtype = "fp32";
  int64_t full_every = 10;  // learner.delta_full_every's default
  double demo_lr = 5e-5;    // configs/demo.yaml's learner.lr
  std::string links = "1gbit", link_size = "small", link_actors = "1,8";
  uint32_t chunk = grpo::rpc::kDefaultWeightChunk;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--sizes") sizes_arg = argv[i + 1];
    else if (flag == "--actors") actors_arg = argv[i + 1];
    else if (flag == "--fanout") fanout = argv[i + 1];
    else if (flag == "--chunk") chunk = static_cast<uint32_t>(std::atoll(argv[i + 1]));
    else if (flag == "--publish-steps") publish_steps = std::atoi(argv[i + 1]);
    else if (flag == "--publish-dtype") publish_dtype = argv[i + 1];
    else if (flag == "--full-every") full_every = std::atoll(argv[i + 1]);
    else if (flag == "--delta-steps") delta_steps = std::atoi(argv[i + 1]);
    else if (flag == "--demo-lr") demo_lr = std::atof(argv[i + 1]);
    else if (flag == "--links") links = argv[i + 1];
    else if (flag == "--link-size") link_size = argv[i + 1];
    else if (flag == "--link-actors") link_actors = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  absl::StatusOr<grpo::RunConfig> cfg = grpo::LoadConfigWithOverrides(
      "", {"run.dir=", "coordinator.state_dir=", "pipeline.tasks=", "learner.eval_every=0", "pipeline.base_docs=0",
           "pipeline.eval_before_after=false", "pipeline.report=false", "data.num_tasks=16",
           "coordinator.keep_versions=2", "coordinator.relay_fanout=" + fanout});
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
  auto server = grpo::rpc::StartServer("127.0.0.1", 0, (*service)->GrpcServices());
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  const std::string address = "127.0.0.1:" + std::to_string(server->port);
  const std::vector<int64_t> actor_counts = ParseList(actors_arg);
  int64_t max_actors = 0;
  for (int64_t n : actor_counts) max_actors = std::max(max_actors, n);
  std::vector<std::unique_ptr<BenchActor>> actors;
  for (int i = 0; i < std::max<int64_t>(max_actors, 2); ++i) actors.push_back(MakeActor(address, i));
  uint64_t version = 0;
  if (publish_steps > 0) {
    const double ratio = PublishOverhead(address, actors, publish_steps, &version,
                                         publish_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat, full_every);
    std::printf("publish overhead: step ratio %.3f\n", ratio);
    std::fflush(stdout);
  }
  if (delta_steps > 0) {
    torch::set_num_threads(2);
    std::printf("delta versions: %d GRPO steps of the small preset (fresh groups of 2x8, 128 tokens), bf16 versions, "
                "each patched against the one before\n", delta_steps);
    const double low = DeltaBytes(1e-6, delta_steps);
    const double demo = DeltaBytes(demo_lr, delta_steps);
    std::printf("delta bytes: lr 1e-06 %.2f%% of full, lr %g %.2f%% of full\n", low, demo_lr, demo);
    std::fflush(stdout);
    torch::set_num_threads(1);
  }
  std::printf("weight delivery over gRPC on loopback (relay fanout %s), against one plain TCP copy of the same bytes\n",
              fanout.c_str());
  std::printf("%-6s %8s %7s %9s %9s %11s %7s %12s %10s %11s\n", "size", "MB", "actors", "seconds", "first s",
              "baseline s", "ratio", "n copies s", "vs copies", "from coord");
  double last_ratio_max = 0, last_ratio_one = 0;
  int64_t last_max_actors = 0;
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
    // Each delivery is of a new version (the same bytes under the next number), as
    // when the learner publishes: an actor fetches a version it does not hold yet.
    auto publish = [&]() -> uint32_t {
      ++version;
      auto weights = grpo::rpc::WeightBlob::FromBytes(blob, version, version);
      grpc::ClientContext ctx;
      auto published = grpo::rpc::PublishWeightStream(OwnChannel(address), &ctx, weights);
      if (!published.ok()) {
        std::fprintf(stderr, "publish: %s\n", std::string(published.status().message()).c_str());
        std::exit(1);
      }
      return weights->header().crc32;
    };
    const uint32_t crc = grpo::Crc32(blob);
    const double baseline = std::min({PlainTcpCopies(blob, 1), PlainTcpCopies(blob, 1), PlainTcpCopies(blob, 1)});
    for (int64_t n : actor_counts) {
      publish();
      const Delivery first = Deliver(actors, static_cast<int>(n), crc, chunk);
      // The least of three: the run least disturbed by whatever else this machine does.
      publish();
      Delivery d = Deliver(actors, static_cast<int>(n), crc, chunk);
      for (int rep = 0; rep < 2; ++rep) {
        publish();
        Delivery again = Deliver(actors, static_cast<int>(n), crc, chunk);
        if (again.seconds < d.seconds) d = again;
      }
      const double copies =
          n == 1 ? baseline : std::min(PlainTcpCopies(blob, static_cast<int>(n)), PlainTcpCopies(blob, static_cast<int>(n)));
      std::printf("%-6s %8.1f %7lld %9.3f %9.3f %11.3f %7.2f %12.3f %10.2f %11.2f\n", name.c_str(),
                  blob.size() / 1e6, static_cast<long long>(n), d.seconds, first.seconds, baseline,
                  d.seconds / baseline, copies, d.seconds / copies,
                  static_cast<double>(d.from_coordinator) / static_cast<double>(blob.size()));
      std::fflush(stdout);
      if (n == 1) last_ratio_one = d.seconds / baseline;
      if (n >= last_max_actors) {
        last_max_actors = n;
        last_ratio_max = d.seconds / baseline;
      }
    }
  }
  for (auto& a : actors) a->server.server->Shutdown();
  (*service)->Shutdown();
  server->server->Shutdown();
  if (links != "off") {
    grpo::bench::LinkOptions lo;
    lo.rate = links;
    lo.bytes = link_size == "0.5b" ? size_t{494'032'768} * 2 : size_t{26'229'248} * 4;
    lo.actors.clear();
    for (int64_t n : ParseList(link_actors)) lo.actors.push_back(static_cast<int>(n));
    lo.fanout = std::atoi(fanout.c_str());
    std::printf("weight delivery over rate-limited links (%s up and down per member, a process and a network "
                "namespace each, relay fanout %d), against one plain TCP copy over such a link\n",
                links.c_str(), lo.fanout);
    std::fflush(stdout);
    const grpo::bench::LinkResult lr = grpo::bench::MeasureLinks(lo);
    if (!lr.skipped.empty()) {
      std::printf("weights over links: skipped (%s)\n", lr.skipped.c_str());
    } else {
      std::printf("%-6s %8s %7s %9s %9s %11s %7s %11s\n", "size", "MB", "actors", "seconds", "first s", "baseline s",
                  "ratio", "from coord");
      double one = 0, most = 0;
      int most_n = 0;
      for (const auto& row : lr.rows) {
        std::printf("%-6s %8.1f %7d %9.3f %9.3f %11.3f %7.2f %11.2f\n", link_size.c_str(), lo.bytes / 1e6, row.actors,
                    row.seconds, row.first, lr.baseline, row.seconds / lr.baseline, row.from_coordinator);
        if (row.actors == 1) one = row.seconds / lr.baseline;
        if (row.actors >= most_n) {
          most_n = row.actors;
          most = row.seconds / lr.baseline;
        }
      }
      std::printf("weights over links: %d actors ratio %.2f (1 actor ratio %.2f)\n", most_n, most, one);
    }
    std::fflush(stdout);
  }
  std::printf("weights: %lld actors ratio %.2f (1 actor ratio %.2f)\n", static_cast<long long>(last_max_actors),
              last_ratio_max, last_ratio_one);
  return 0;
}

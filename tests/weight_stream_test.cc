// The weight stream (core/rpc/weight_stream.h) over real gRPC on loopback: blobs,
// chunk parsing, the coordinator's relay plans, relays streaming what they have, and
// fetchers routing around a relay that dies or serves other bytes; delta versions
// (core/rpc/weight_delta.h): patches made, applied, relayed, and refused when wrong.
#include "core/rpc/weight_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/rpc/rpc.h"
#include "core/rpc/weight_delta.h"
#include "grpo/v1/weights.grpc.pb.h"
#include "prometheus/registry.h"
#include "services/coordinator/coordinator.h"

namespace grpo::rpc {
namespace {

std::string RandomBytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Polls `done` every 5 ms for at most `limit`.
bool WaitUntil(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(20)) {
  const absl::Time end = absl::Now() + limit;
  while (absl::Now() < end) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

TEST(WeightBlob, FromBytesIsCompleteWithItsCrc) {
  const std::string bytes = RandomBytes(10000, 1);
  auto b = WeightBlob::FromBytes(bytes, 3, 7);
  EXPECT_TRUE(b->complete());
  EXPECT_EQ(b->header().crc32, Crc32(bytes));
  EXPECT_EQ(b->header().version, 3u);
  EXPECT_EQ(b->header().step, 7u);
  EXPECT_EQ(b->bytes(), bytes);
}

TEST(WeightBlob, IsCompleteOnlyWhenTheLastByteMatchesTheCrc) {
  const std::string bytes = RandomBytes(5000, 2);
  auto b = WeightBlob::ForReceiving({1, 1, bytes.size(), Crc32(bytes)});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->Append(std::string_view(bytes).substr(0, 3000)).ok());
  EXPECT_FALSE((*b)->complete());
  EXPECT_EQ((*b)->filled(), 3000u);
  EXPECT_EQ((*b)->Append(std::string(3000, 'x')).code(), absl::StatusCode::kInvalidArgument) << "past total_size";
  ASSERT_TRUE((*b)->Append(std::string_view(bytes).substr(3000)).ok());
  EXPECT_TRUE((*b)->complete());
  EXPECT_EQ((*b)->bytes(), bytes);

  auto bad = WeightBlob::ForReceiving({1, 1, bytes.size(), Crc32(bytes)});
  std::string flipped = bytes;
  flipped[4321] ^= 1;
  absl::Status s = (*bad)->Append(flipped);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_FALSE((*bad)->complete());
}

TEST(WeightBlob, ReceivesIntoTheMemoryOfTheLastVersionWhenNothingElseHoldsIt) {
  auto first = WeightBlob::ForReceiving({1, 1, 1 << 20, 0});
  ASSERT_TRUE(first.ok());
  const char* pages = (*first)->data();
  auto second = WeightBlob::ForReceiving({2, 2, 1 << 20, 0}, *std::move(first));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->data(), pages);
  std::shared_ptr<WeightBlob> still_served = *second;  // a relay still streams it
  auto third = WeightBlob::ForReceiving({3, 3, 1 << 20, 0}, *std::move(second));
  ASSERT_TRUE(third.ok());
  EXPECT_NE((*third)->data(), pages);
}

TEST(WeightBlob, ReadersWaitForBytesAndLearnWhenTheReceiverGivesUp) {
  const std::string bytes = RandomBytes(1000, 3);
  auto b = *WeightBlob::ForReceiving({1, 1, bytes.size(), Crc32(bytes)});
  absl::StatusOr<uint64_t> got = b->WaitBeyond(0, absl::Milliseconds(30));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kAborted) << "no bytes: the wait stalls";
  std::thread writer([&] { ASSERT_TRUE(b->Append(std::string_view(bytes).substr(0, 400)).ok()); });
  got = b->WaitBeyond(0, absl::Seconds(20));
  writer.join();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 400u);
  b->Abandon("source gone");
  got = b->WaitBeyond(400, absl::Seconds(20));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(got.status().message().find("source gone"), std::string_view::npos);
}

// A Weights server over a lookup, on loopback.
struct WeightServer {
  explicit WeightServer(WeightService::Lookup lookup, WeightService::Accept accept = nullptr)
      : service(std::move(lookup), std::move(accept)) {
    auto s = StartServer("127.0.0.1", 0, {&service});
    EXPECT_TRUE(s.ok()) << s.status();
    handle = std::move(*s);
    address = "127.0.0.1:" + std::to_string(handle.port);
  }
  ~WeightServer() { Kill(); }
  void Kill() {
    if (handle.server) {
      handle.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(100)));
      handle.server.reset();
    }
  }
  WeightService service;
  ServerHandle handle;
  std::string address;
};

TEST(WeightStream, FetchesWholeOrFromAnOffsetAndTypedClientsInteroperate) {
  const std::string bytes = RandomBytes(3'500'000, 4);
  auto blob = WeightBlob::FromBytes(bytes, 5, 9);
  WeightServer server([&](int64_t v, bool) -> absl::StatusOr<std::shared_ptr<const WeightBlob>> {
    if (v >= 0 && v != 5) return absl::NotFoundError("not kept");
    return std::shared_ptr<const WeightBlob>(blob);
  });
  auto channel = MakeChannel(server.address);
  {
    std::shared_ptr<WeightBlob> got;
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    ASSERT_TRUE(FetchWeightStream(channel, ctx.get(), -1, &got, 1 << 20).ok());
    EXPECT_TRUE(got->complete());
    EXPECT_EQ(got->bytes(), bytes);
    EXPECT_EQ(got->header().step, 9u);
  }
  {
    // A fetch that broke at byte 1234567 resumes there.
    auto got = *WeightBlob::ForReceiving(blob->header());
    ASSERT_TRUE(got->Append(std::string_view(bytes).substr(0, 1234567)).ok());
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    ASSERT_TRUE(FetchWeightStream(channel, ctx.get(), 5, &got).ok());
    EXPECT_EQ(got->bytes(), bytes);
  }
  {
    std::shared_ptr<WeightBlob> got;
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    EXPECT_EQ(FetchWeightStream(channel, ctx.get(), 4, &got).code(), absl::StatusCode::kNotFound);
  }
  {
    // The generated protobuf client reads the same stream.
    auto stub = v1::Weights::NewStub(channel);
    v1::FetchWeightsRequest req;
    req.set_version(5);
    req.set_chunk_bytes(1 << 19);
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    auto reader = stub->Fetch(ctx.get(), req);
    std::string got;
    v1::WeightChunk c;
    int chunks = 0;
    while (reader->Read(&c)) {
      EXPECT_EQ(c.offset(), got.size());
      EXPECT_EQ(c.crc32(), Crc32(bytes));
      EXPECT_EQ(c.total_size(), bytes.size());
      got += c.data();
      ++chunks;
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(got, bytes);
    EXPECT_EQ(chunks, 7);
  }
}

// Publish through the generated client (fields in number order: data comes before
// total_size and crc32) and through ours; bad streams are refused, naming the fault.
TEST(WeightStream, PublishChecksEveryChunkAndTheCrc) {
  std::vector<std::shared_ptr<WeightBlob>> accepted;
  WeightServer server([](int64_t, bool) { return absl::NotFoundError("none"); },
                      [&](std::shared_ptr<WeightBlob> b, v1::PublishWeightsResponse* r) {
                        r->set_version(b->version());
                        r->set_bytes(b->header().total_size);
                        accepted.push_back(std::move(b));
                        return grpc::Status::OK;
                      });
  auto channel = MakeChannel(server.address);
  const std::string bytes = RandomBytes(2'000'000, 5);
  {
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    auto r = PublishWeightStream(channel, ctx.get(), WeightBlob::FromBytes(bytes, 1, 1), 300'000);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->bytes(), bytes.size());
    ASSERT_EQ(accepted.size(), 1u);
    EXPECT_EQ(accepted[0]->bytes(), bytes);
  }
  auto stub = v1::Weights::NewStub(channel);
  // Sends `chunks` (offset, data) of `bytes` with the given header; returns the status.
  auto send = [&](std::vector<std::pair<uint64_t, std::string>> chunks, uint32_t crc, uint64_t total,
                  uint64_t second_version = 2) {
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    v1::PublishWeightsResponse resp;
    auto w = stub->Publish(ctx.get(), &resp);
    for (size_t i = 0; i < chunks.size(); ++i) {
      v1::WeightChunk c;
      c.set_version(i == 0 ? 2 : second_version);
      c.set_step(2);
      c.set_offset(chunks[i].first);
      c.set_data(chunks[i].second);
      c.set_total_size(total);
      c.set_crc32(crc);
      if (!w->Write(c)) break;
    }
    w->WritesDone();
    return w->Finish();
  };
  const uint32_t crc = Crc32(bytes);
  const std::string a = bytes.substr(0, 1'000'000), b = bytes.substr(1'000'000);
  grpc::Status s = send({{0, a}, {1'000'000, b}}, crc, bytes.size());
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(accepted.back()->bytes(), bytes);

  s = send({{0, a}, {1'000'000, b}}, crc ^ 1, bytes.size());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  s = send({{0, a}, {999'999, b}}, crc, bytes.size());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("out of order"), std::string::npos) << s.error_message();
  s = send({{0, a}, {1'000'000, b + "extra"}}, crc, bytes.size());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  s = send({{0, a}, {1'000'000, b}}, crc, bytes.size(), /*second_version=*/3);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  s = send({{0, a}}, crc, bytes.size());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_NE(s.error_message().find("truncated"), std::string::npos) << s.error_message();
  s = send({}, crc, bytes.size());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(accepted.size(), 2u) << "only the two good streams were accepted";

  // Weights are never empty: an empty blob (or a chunk with no fields, which reads as
  // one) is refused rather than taken for a complete version 0.
  auto ctx = ContextWithDeadline(absl::Seconds(30));
  auto r = PublishWeightStream(channel, ctx.get(), WeightBlob::FromBytes("", 4, 4));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  s = send({{0, ""}}, 0, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(accepted.size(), 2u);
}

// A relay streams a version while it is still arriving: the reader gets every byte as
// the receiver appends it, in pieces.
TEST(WeightStream, ARelayStreamsBytesAsTheyArrive) {
  const std::string bytes = RandomBytes(2'000'000, 6);
  auto arriving = *WeightBlob::ForReceiving({1, 1, bytes.size(), Crc32(bytes)});
  WeightServer relay([&](int64_t, bool) { return std::shared_ptr<const WeightBlob>(arriving); });
  std::shared_ptr<WeightBlob> got;
  absl::Status fetched;
  std::thread reader([&] {
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    fetched = FetchWeightStream(MakeChannel(relay.address), ctx.get(), 1, &got);
  });
  for (size_t off = 0; off < bytes.size(); off += 250'000) {
    // Each piece goes in once the reader has everything before it.
    ASSERT_TRUE(WaitUntil([&] { return off == 0 || (got != nullptr && got->filled() == off); })) << off;
    ASSERT_TRUE(arriving->Append(std::string_view(bytes).substr(off, 250'000)).ok());
  }
  reader.join();
  ASSERT_TRUE(fetched.ok()) << fetched;
  EXPECT_EQ(got->bytes(), bytes);
}

// An in-process coordinator serving its services on loopback.
struct Coordinator {
  explicit Coordinator(int64_t fanout) {
    auto cfg = LoadConfigWithOverrides(
        "", {"run.dir=", "coordinator.state_dir=", "pipeline.tasks=", "learner.eval_every=0", "pipeline.base_docs=0",
             "pipeline.eval_before_after=false", "pipeline.report=false", "data.num_tasks=4",
             "coordinator.relay_fanout=" + std::to_string(fanout)});
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    auto s = CoordinatorService::Create(*cfg, std::make_shared<prometheus::Registry>());
    EXPECT_TRUE(s.ok()) << s.status();
    service = std::move(*s);
    auto h = StartServer("127.0.0.1", 0, service->GrpcServices());
    EXPECT_TRUE(h.ok()) << h.status();
    handle = std::move(*h);
    address = "127.0.0.1:" + std::to_string(handle.port);
    channel = MakeChannel(address);
  }
  ~Coordinator() {
    service->Shutdown();
    handle.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(100)));
  }
  void Publish(const std::string& bytes, uint64_t version) {
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    auto r = PublishWeightStream(channel, ctx.get(), WeightBlob::FromBytes(bytes, version, version));
    ASSERT_TRUE(r.ok()) << r.status();
  }
  v1::PlanWeightFetchResponse Plan(const std::string& member, const std::string& address,
                                   const std::string& failed = "") {
    auto stub = v1::Coordinator::NewStub(channel);
    v1::PlanWeightFetchRequest req;
    req.set_member_id(member);
    req.set_version(-1);
    req.set_relay_address(address);
    req.set_failed_source(failed);
    v1::PlanWeightFetchResponse resp;
    auto ctx = ContextWithDeadline(absl::Seconds(10));
    grpc::Status s = stub->PlanWeightFetch(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  std::unique_ptr<CoordinatorService> service;
  ServerHandle handle;
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
};

// Members form a tree in the order they ask: each gets the earliest live member with
// fewer than relay_fanout children; a failed one is skipped from then on, and nobody
// ever gets a member that asked after it (no cycles).
TEST(WeightRelayPlan, ATreeInTheOrderMembersAskRoutedAroundFailures) {
  Coordinator c(2);
  c.Publish(RandomBytes(1000, 7), 1);
  std::vector<std::string> source;
  for (int i = 0; i < 6; ++i) {
    auto p = c.Plan("m" + std::to_string(i), "10.0.0." + std::to_string(i) + ":1");
    EXPECT_EQ(p.version(), 1u);
    EXPECT_EQ(p.total_size(), 1000u);
    source.push_back(p.source_member());
  }
  EXPECT_EQ(source, (std::vector<std::string>{"", "m0", "m0", "m1", "m1", "m2"}));
  // m3's parent m1 failed: m3 goes to the earliest member with room (m0 lost m1).
  auto p = c.Plan("m3", "10.0.0.3:1", "10.0.0.1:1");
  EXPECT_EQ(p.source_member(), "m0");
  // m4 (also under m1) asks again: m0 is full now (m2, m3), m2 has room.
  p = c.Plan("m4", "10.0.0.4:1", "10.0.0.1:1");
  EXPECT_EQ(p.source_member(), "m2");
  // m0 failed too: m2 has nobody earlier alive, so it fetches from the coordinator.
  p = c.Plan("m2", "10.0.0.2:1", "10.0.0.0:1");
  EXPECT_EQ(p.source_member(), "");
  EXPECT_EQ(p.source_address(), "");
  // A member that does not relay fetches from the coordinator.
  EXPECT_EQ(c.Plan("leaf", "").source_member(), "");
}

TEST(WeightRelayPlan, FanoutZeroSendsEveryoneToTheCoordinator) {
  Coordinator c(0);
  c.Publish(RandomBytes(1000, 8), 1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.Plan("m" + std::to_string(i), "10.0.0.1:" + std::to_string(i)).source_member(), "");
}

// What grpo-actor runs for weights: a fetcher and its relay server.
struct Actor {
  Actor(const std::string& coordinator, std::string id)
      : member(std::move(id)),
        fetcher(std::make_unique<WeightFetcher>(MakeChannel(coordinator))),
        relay(std::make_unique<WeightServer>([f = fetcher.get()](int64_t v, bool d) { return f->Held(v, d); })) {}
  absl::StatusOr<std::shared_ptr<WeightBlob>> Fetch() {
    WeightFetcher::Options opt;
    opt.member_id = member;
    opt.relay_address = relay->address;
    return fetcher->Fetch(-1, opt, nullptr, nullptr);
  }
  std::string member;
  std::unique_ptr<WeightFetcher> fetcher;
  std::unique_ptr<WeightServer> relay;
};

TEST(WeightRelay, AChainOfActorsGetsTheVersionWithTheCoordinatorSendingItOnce) {
  Coordinator c(1);
  const std::string bytes = RandomBytes(6'000'000, 9);
  c.Publish(bytes, 1);
  std::vector<std::unique_ptr<Actor>> actors;
  for (int i = 0; i < 4; ++i) actors.push_back(std::make_unique<Actor>(c.address, "a" + std::to_string(i)));
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::shared_ptr<WeightBlob>>> got(actors.size(), absl::UnknownError(""));
  for (size_t i = 0; i < actors.size(); ++i) threads.emplace_back([&, i] { got[i] = actors[i]->Fetch(); });
  for (auto& t : threads) t.join();
  uint64_t from_coordinator = 0, from_peers = 0;
  for (size_t i = 0; i < actors.size(); ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    EXPECT_EQ((*got[i])->bytes(), bytes);
    from_coordinator += actors[i]->fetcher->stats().bytes_from_coordinator;
    from_peers += actors[i]->fetcher->stats().bytes_from_peers;
  }
  EXPECT_EQ(from_coordinator, bytes.size());
  EXPECT_EQ(from_peers, 3 * bytes.size());
}

// The relay an actor was told to fetch from dies after sending half the version: the
// actor asks again naming it, gets the coordinator (the only one before it), and
// resumes at the byte where the relay stopped.
// Version 1 of 4 MB published, and a relay "dying" that asked for it first and holds
// its first half, the second half never coming.
struct HalfRelay {
  HalfRelay(Coordinator& c, uint64_t seed) : bytes(RandomBytes(4'000'000, seed)) {
    c.Publish(bytes, 1);
    half = *WeightBlob::ForReceiving({1, 1, bytes.size(), Crc32(bytes)});
    EXPECT_TRUE(half->Append(std::string_view(bytes).substr(0, 2'000'000)).ok());
    dying = std::make_unique<WeightServer>([this](int64_t, bool) { return std::shared_ptr<const WeightBlob>(half); });
    EXPECT_EQ(c.Plan("dying", dying->address).source_member(), "");
  }
  std::string bytes;
  std::shared_ptr<WeightBlob> half;
  std::unique_ptr<WeightServer> dying;
};

TEST(WeightRelay, ARelayThatDiesMidTransferIsRoutedAround) {
  Coordinator c(1);
  HalfRelay relay(c, 10);
  const std::string& bytes = relay.bytes;
  auto& dying = relay.dying;
  Actor a(c.address, "a");
  absl::StatusOr<std::shared_ptr<WeightBlob>> got = absl::UnknownError("");
  std::thread t([&] { got = a.Fetch(); });
  ASSERT_TRUE(WaitUntil([&] {
    auto held = a.fetcher->Held(1);
    return held.ok() && (*held)->filled() == 2'000'000;
  })) << "the actor did not get the relay's half";
  dying->Kill();
  t.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->bytes(), bytes);
  EXPECT_EQ(a.fetcher->stats().bytes_from_peers, 2'000'000u);
  EXPECT_EQ(a.fetcher->stats().bytes_from_coordinator, 2'000'000u);
  EXPECT_EQ(a.fetcher->stats().source_failures, 1u);
}

// A fetch that gives up part way (here: its only allowed source dies after half the
// version) keeps what it received; the next fetch of the version resumes there.
TEST(WeightRelay, AFetchThatGaveUpResumesWhereItStopped) {
  Coordinator c(1);
  HalfRelay relay(c, 13);
  const std::string& bytes = relay.bytes;
  auto& dying = relay.dying;
  Actor a(c.address, "a");
  WeightFetcher::Options opt;
  opt.member_id = "a";
  opt.relay_address = a.relay->address;
  opt.max_sources = 1;
  absl::StatusOr<std::shared_ptr<WeightBlob>> got = absl::UnknownError("");
  std::thread t([&] { got = a.fetcher->Fetch(-1, opt, nullptr, nullptr); });
  ASSERT_TRUE(WaitUntil([&] {
    auto held = a.fetcher->Held(1);
    return held.ok() && (*held)->filled() == 2'000'000;
  }));
  dying->Kill();
  t.join();
  EXPECT_FALSE(got.ok()) << "one source allowed, and it died";
  opt.max_sources = 8;
  got = a.fetcher->Fetch(-1, opt, nullptr, nullptr);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->bytes(), bytes);
  EXPECT_EQ(a.fetcher->stats().bytes_from_coordinator, 2'000'000u) << "resumed at byte 2000000, not 0";
}

// A member that fetches a newer version no longer serves older ones: the plan for an
// older version does not send anyone to it.
TEST(WeightRelayPlan, AMemberOnANewerVersionIsNoLongerAParentForOlderOnes) {
  Coordinator c(1);
  c.Publish(RandomBytes(1000, 14), 1);
  EXPECT_EQ(c.Plan("m0", "10.0.0.0:1").source_member(), "");
  c.Publish(RandomBytes(1000, 15), 2);
  EXPECT_EQ(c.Plan("m0", "10.0.0.0:1").version(), 2u);  // m0 moves on to version 2
  auto stub = v1::Coordinator::NewStub(c.channel);
  v1::PlanWeightFetchRequest req;
  req.set_member_id("m1");
  req.set_version(1);
  req.set_relay_address("10.0.0.1:1");
  v1::PlanWeightFetchResponse resp;
  auto ctx = ContextWithDeadline(absl::Seconds(10));
  ASSERT_TRUE(stub->PlanWeightFetch(ctx.get(), req, &resp).ok());
  EXPECT_EQ(resp.version(), 1u);
  EXPECT_EQ(resp.source_member(), "") << "m0 holds version 2 now";
}

// A relay that serves other bytes under the version's number (a stale or corrupt copy)
// is caught by the header check and routed around.
TEST(WeightRelay, ARelayServingOtherBytesIsRoutedAround) {
  Coordinator c(1);
  const std::string bytes = RandomBytes(1'000'000, 11);
  c.Publish(bytes, 1);
  auto other = WeightBlob::FromBytes(RandomBytes(1'000'000, 12), 1, 1);
  WeightServer liar([&](int64_t, bool) { return std::shared_ptr<const WeightBlob>(other); });
  c.Plan("liar", liar.address);
  Actor a(c.address, "a");
  auto got = a.Fetch();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->bytes(), bytes);
  EXPECT_EQ(a.fetcher->stats().source_failures, 1u);
  EXPECT_EQ(a.fetcher->stats().bytes_from_coordinator, bytes.size());
}


// ---- Delta versions

// `base` with about `fraction` of its 2-byte words changed in the low byte, as bf16
// weights change between RL steps.
std::string Nudged(const std::string& base, double fraction, uint64_t seed) {
  std::string next = base;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t i = 0; i + 1 < next.size(); i += 2) {
    if (u(rng) < fraction) next[i] = static_cast<char>(next[i] ^ (1 + rng() % 7));
  }
  return next;
}

TEST(WeightDelta, APatchIsSmallWhenFewBytesChangeAndGivesTheVersionBack) {
  const std::string base = RandomBytes(4'000'000, 20);
  const std::string next = Nudged(base, 0.01, 21);
  auto patch = MakeWeightPatch(base, next);
  ASSERT_TRUE(patch.ok()) << patch.status();
  EXPECT_LT(patch->size(), base.size() / 20) << "1% of words changed: under 5% of the bytes";
  std::string out(base.size(), '\0');
  ASSERT_TRUE(ApplyWeightPatch(base, *patch, out.data()).ok());
  EXPECT_EQ(out, next);
  // Unchanged: a patch of almost nothing. Everything changed: about the version's size.
  EXPECT_LT(MakeWeightPatch(base, base)->size(), 2000u);
  EXPECT_GT(MakeWeightPatch(base, RandomBytes(base.size(), 22))->size(), base.size() * 99 / 100);
  EXPECT_EQ(MakeWeightPatch(base, base.substr(1)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightDelta, AMalformedPatchIsRefusedAndTheBaseIsUntouched) {
  const std::string base_bytes = RandomBytes(3'000'000, 23);
  const std::string next_bytes = Nudged(base_bytes, 0.02, 24);
  auto base = WeightBlob::FromBytes(base_bytes, 1, 1);
  auto next = WeightBlob::FromBytes(next_bytes, 2, 2);
  const std::string patch = *MakeWeightPatch(base_bytes, next_bytes);
  auto good = ApplyDeltaBlob(*base, *MakeDeltaBlob(patch, *base, *next));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ((*good)->bytes(), next_bytes);
  EXPECT_EQ((*good)->header().version, 2u);
  EXPECT_EQ((*good)->header().crc32, next->header().crc32);
  EXPECT_FALSE((*good)->header().delta);

  auto refused = [&](const std::string& bytes, const WeightBlob& against) {
    return ApplyDeltaBlob(against, *MakeDeltaBlob(bytes, *base, *next)).status();
  };
  // Every way of spoiling it: a flipped byte anywhere, cut short, bytes after the frame,
  // not zstd at all, a frame of another size. Each is refused, never applied.
  std::mt19937_64 rng(25);
  for (int i = 0; i < 40; ++i) {
    std::string bad = patch;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    EXPECT_FALSE(refused(bad, *base).ok()) << "flip " << i;
  }
  EXPECT_EQ(refused(patch.substr(0, patch.size() / 2), *base).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused(patch + "x", *base).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused(RandomBytes(1000, 26), *base).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused(*MakeWeightPatch(base_bytes.substr(8), next_bytes.substr(8)), *base).code(),
            absl::StatusCode::kInvalidArgument);
  // Against a base other than the one it names (another version, or other bytes under
  // the same number): FAILED_PRECONDITION before a byte is decoded.
  auto other = WeightBlob::FromBytes(RandomBytes(base_bytes.size(), 27), 1, 1);
  EXPECT_EQ(refused(patch, *other).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused(patch, *next).code(), absl::StatusCode::kFailedPrecondition);
  // A patch whose promised result CRC is wrong: DATA_LOSS once applied.
  auto liar = MakeDeltaBlob(patch, *base, *WeightBlob::FromBytes(RandomBytes(next_bytes.size(), 28), 2, 2));
  EXPECT_EQ(ApplyDeltaBlob(*base, *liar).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(base->bytes(), base_bytes) << "the base is never written";
}

// A coordinator holding v1 takes v2 as a patch, serves v2 in full to a member without v1
// and the patch to members holding v1, which relay it to each other (the coordinator
// sends the patch once); the actors' v2 is v2's bytes.
TEST(WeightDelta, ActorsHoldingTheBaseFetchThePatchThroughRelays) {
  Coordinator c(1);
  const std::string v1 = RandomBytes(3'000'000, 30);
  const std::string v2 = Nudged(v1, 0.01, 31);
  c.Publish(v1, 1);
  std::vector<std::unique_ptr<Actor>> actors;
  for (int i = 0; i < 3; ++i) actors.push_back(std::make_unique<Actor>(c.address, "a" + std::to_string(i)));
  for (auto& a : actors) ASSERT_TRUE(a->Fetch().ok());
  auto base = WeightBlob::FromBytes(v1, 1, 1);
  auto full = WeightBlob::FromBytes(v2, 2, 2);
  auto delta = MakeDeltaBlob(*MakeWeightPatch(v1, v2), *base, *full);
  {
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    auto r = PublishWeightStream(c.channel, ctx.get(), delta);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  std::vector<uint64_t> before(actors.size());
  for (size_t i = 0; i < actors.size(); ++i) before[i] = actors[i]->fetcher->stats().bytes_from_coordinator;
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::shared_ptr<WeightBlob>>> got(actors.size(), absl::UnknownError(""));
  for (size_t i = 0; i < actors.size(); ++i) threads.emplace_back([&, i] { got[i] = actors[i]->Fetch(); });
  for (auto& t : threads) t.join();
  uint64_t from_coordinator = 0;
  for (size_t i = 0; i < actors.size(); ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    EXPECT_EQ((*got[i])->bytes(), v2);
    EXPECT_EQ((*got[i])->header().crc32, full->header().crc32);
    EXPECT_EQ(actors[i]->fetcher->stats().versions_delta, 1u);
    from_coordinator += actors[i]->fetcher->stats().bytes_from_coordinator - before[i];
  }
  EXPECT_EQ(from_coordinator, delta->header().total_size) << "the patch left the coordinator once";
  // A new actor holds nothing: the full version, made by the coordinator from the patch.
  Actor fresh(c.address, "fresh");
  auto f = fresh.Fetch();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->bytes(), v2);
  EXPECT_EQ(fresh.fetcher->stats().versions_delta, 0u);
  EXPECT_EQ(fresh.fetcher->stats().versions_full, 1u);
}

// Patches the coordinator cannot take are refused and the version is not published: one
// against a version it does not hold (a restarted coordinator) and one whose result has
// another CRC than it promises.
TEST(WeightDelta, TheCoordinatorRefusesPatchesItCannotApply) {
  Coordinator c(1);
  const std::string v1 = RandomBytes(1'000'000, 32);
  const std::string v2 = Nudged(v1, 0.01, 33);
  c.Publish(v1, 1);
  auto base = WeightBlob::FromBytes(v1, 1, 1);
  auto publish = [&](const std::shared_ptr<const WeightBlob>& b) {
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    return PublishWeightStream(c.channel, ctx.get(), b).status();
  };
  auto wrong_base = WeightBlob::FromBytes(RandomBytes(v1.size(), 34), 0, 0);
  EXPECT_EQ(publish(MakeDeltaBlob(*MakeWeightPatch(wrong_base->bytes(), v2), *wrong_base,
                                  *WeightBlob::FromBytes(v2, 2, 2))).code(),
            absl::StatusCode::kFailedPrecondition);
  auto liar = MakeDeltaBlob(*MakeWeightPatch(v1, v2), *base, *WeightBlob::FromBytes(RandomBytes(v1.size(), 35), 2, 2));
  EXPECT_EQ(publish(liar).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(c.Plan("m", "").version(), 1u) << "nothing refused became a version";
  // The good patch is taken.
  EXPECT_TRUE(publish(MakeDeltaBlob(*MakeWeightPatch(v1, v2), *base, *WeightBlob::FromBytes(v2, 2, 2))).ok());
  EXPECT_EQ(c.Plan("m", "").version(), 2u);
}

// An actor whose copy of the base went bad after it was checked (a bit flipped in
// memory) gets a patch that does not give the version's CRC: the patch is refused and
// the version fetched in full.
TEST(WeightDelta, AnActorRefusesAPatchThatDoesNotApplyAndFetchesInFull) {
  Coordinator c(1);
  const std::string v1 = RandomBytes(2'000'000, 36);
  const std::string v2 = Nudged(v1, 0.01, 37);
  c.Publish(v1, 1);
  Actor a(c.address, "a");
  ASSERT_TRUE(a.Fetch().ok());
  auto held = a.fetcher->Held(1);
  ASSERT_TRUE(held.ok());
  const_cast<char*>((*held)->data())[12345] ^= 0x10;  // the flip
  auto base = WeightBlob::FromBytes(v1, 1, 1);
  auto ctx = ContextWithDeadline(absl::Seconds(30));
  ASSERT_TRUE(PublishWeightStream(c.channel, ctx.get(),
                                  MakeDeltaBlob(*MakeWeightPatch(v1, v2), *base, *WeightBlob::FromBytes(v2, 2, 2)))
                  .ok());
  auto got = a.Fetch();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->bytes(), v2);
  EXPECT_EQ(a.fetcher->stats().patches_refused, 1u);
  EXPECT_EQ(a.fetcher->stats().versions_delta, 0u);
  EXPECT_EQ(a.fetcher->stats().versions_full, 2u);
}

// An actor receives each version into the pages of one before it (no fresh mapping, no
// page faults after the first versions): a full version into the previous one's, a
// patch's result into the pages of the version before the base (the base is read while
// the result is written).
TEST(WeightDelta, ActorsReceiveIntoThePagesOfEarlierVersions) {
  Coordinator c(1);
  Actor a(c.address, "a");
  const std::string v1 = RandomBytes(1'000'000, 40);
  c.Publish(v1, 1);
  const char* first = (*a.Fetch())->data();
  c.Publish(RandomBytes(1'000'000, 41), 2);  // full: into version 1's pages
  EXPECT_EQ((*a.Fetch())->data(), first);
  // Patches from here on: version 3 (against 2) into fresh pages, 4 into 2's, 5 into 3's.
  std::string prev = std::string((*a.fetcher->Held(2))->bytes());
  std::vector<const char*> pages;
  for (uint64_t v = 3; v <= 5; ++v) {
    const std::string next = Nudged(prev, 0.01, v);
    auto ctx = ContextWithDeadline(absl::Seconds(30));
    ASSERT_TRUE(PublishWeightStream(c.channel, ctx.get(),
                                    MakeDeltaBlob(*MakeWeightPatch(prev, next), *WeightBlob::FromBytes(prev, v - 1, v - 1),
                                                  *WeightBlob::FromBytes(next, v, v)))
                    .ok());
    auto got = a.Fetch();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ((*got)->bytes(), next);
    pages.push_back((*got)->data());
    prev = next;
  }
  EXPECT_EQ(a.fetcher->stats().versions_delta, 3u);
  EXPECT_EQ(pages[1], first) << "version 4 in version 2's pages";
  EXPECT_EQ(pages[2], pages[0]) << "version 5 in version 3's pages";
}

}  // namespace
}  // namespace grpo::rpc

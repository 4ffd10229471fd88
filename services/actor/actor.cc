#include "services/actor/actor.h"

#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/model/device.h"
#include "core/model/numerics_check.h"
#include "core/model/sampler.h"
#include "core/rpc/rpc.h"

namespace grpo {

absl::StatusOr<std::unique_ptr<Actor>> Actor::Create(const RunConfig& cfg,
                                                     std::shared_ptr<prometheus::Registry> registry) {
  torch::set_num_threads(static_cast<int>(cfg.actor.threads));
  absl::StatusOr<c10::Device> device = model::ResolveDevice(cfg.actor.device, "actor.device");
  if (!device.ok()) return device.status();
  absl::StatusOr<std::unique_ptr<Policy>> policy = BuildPolicy(cfg, static_cast<uint64_t>(cfg.run.seed));
  if (!policy.ok()) return policy.status();
  // The generator runs where the weights are: each new version is copied (and cast)
  // straight into these parameters.
  (*policy)->model->to(*device, cfg.actor.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat);
  if (device->is_cpu()) {
    // Sampling through a miscomputing BLAS kernel trains a worse policy with no error.
    model::KernelCheckOptions check;
    check.rows = cfg.actor.max_batch;
    if (absl::Status s = model::CheckFloat32Kernels((*policy)->model->config(), check); !s.ok()) return s;
  }
  return std::unique_ptr<Actor>(new Actor(cfg, std::move(*policy), std::move(registry)));
}

Actor::Actor(const RunConfig& cfg, std::unique_ptr<Policy> policy, std::shared_ptr<prometheus::Registry> registry)
    : cfg_(cfg), policy_(std::move(policy)), registry_(std::move(registry)) {
  auto coordinator_channel = rpc::MakeChannel(cfg.endpoints.coordinator);
  coordinator_ = v1::Coordinator::NewStub(coordinator_channel);
  fetcher_ = std::make_unique<rpc::WeightFetcher>(coordinator_channel);
  reward_ = v1::Reward::NewStub(rpc::MakeChannel(cfg.endpoints.reward));
  learner_ = v1::Learner::NewStub(rpc::MakeChannel(cfg.endpoints.learner));
  policy_->model->eval();
  model::GeneratorOptions gen_options;
  gen_options.max_batch = cfg_.actor.max_batch;
  generator_ = std::make_unique<model::Generator>(policy_->model, gen_options);
  auto& r = *registry_;
  version_gauge_ = &prometheus::BuildGauge().Name("grpo_actor_policy_version").Help("Weight version the actor samples with").Register(r).Add({});
  tokens_ = &prometheus::BuildCounter().Name("grpo_actor_tokens_generated_total").Help("Completion tokens sampled").Register(r).Add({});
  groups_ = &prometheus::BuildCounter().Name("grpo_actor_groups_total").Help("Rollout groups handed to the learner").Register(r).Add({});
  weight_updates_ = &prometheus::BuildCounter().Name("grpo_actor_weight_updates_total").Help("Weight versions loaded").Register(r).Add({});
  generation_seconds_ = &prometheus::BuildHistogram()
                             .Name("grpo_actor_generation_seconds")
                             .Help("Time to sample one batch (all leased prompts, G completions each)")
                             .Register(r)
                             .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100});
  score_resends_ = &prometheus::BuildCounter().Name("grpo_actor_score_resends_total").Help("Batches sent to the reward service again after a failed or cut stream").Register(r).Add({});
  failed_batches_ = &prometheus::BuildCounter().Name("grpo_actor_failed_batches_total").Help("Batches lost to a generation, reward or learner failure (their leases expire and return)").Register(r).Add({});
  prompts_too_long_ = &prometheus::BuildCounter().Name("grpo_actor_prompts_too_long_total").Help("Prompts skipped because they fill the model's context").Register(r).Add({});
  weight_fetch_seconds_ = &prometheus::BuildHistogram()
                              .Name("grpo_actor_weight_fetch_seconds")
                              .Help("Time to fetch, check and load one weight version")
                              .Register(r)
                              .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100});
  auto& received = prometheus::BuildCounter()
                       .Name("grpo_actor_weight_bytes_received_total")
                       .Help("Weight bytes received, by source: a relay peer or the coordinator")
                       .Register(r);
  weight_bytes_from_peers_ = &received.Add({{"source", "peer"}});
  weight_bytes_from_coordinator_ = &received.Add({{"source", "coordinator"}});
  weight_bytes_relayed_ = &prometheus::BuildCounter().Name("grpo_actor_weight_bytes_relayed_total").Help("Weight bytes this actor relayed to peers").Register(r).Add({});
  weight_source_failures_ = &prometheus::BuildCounter().Name("grpo_actor_weight_source_failures_total").Help("Weight sources (relay peers) that failed mid-fetch and were routed around").Register(r).Add({});
  auto& versions = prometheus::BuildCounter()
                       .Name("grpo_actor_weight_versions_total")
                       .Help("Weight versions loaded, by how they came: full bytes, or a patch against the one held")
                       .Register(r);
  weight_versions_full_ = &versions.Add({{"kind", "full"}});
  weight_versions_delta_ = &versions.Add({{"kind", "delta"}});
  weight_patches_refused_ = &prometheus::BuildCounter().Name("grpo_actor_weight_patches_refused_total").Help("Patches that did not apply to the version held (base or result CRC wrong): refused, the version fetched in full").Register(r).Add({});
  weight_service_ = std::make_unique<rpc::WeightService>(
      [this](int64_t version, bool delta) { return fetcher_->Held(version, delta); }, nullptr,
      [this](uint64_t bytes) { weight_bytes_relayed_->Increment(static_cast<double>(bytes)); });
  version_gauge_->Set(-1);
}

void Actor::Serving(const std::string& host, int port) {
  if (!cfg_.actor.relay || port <= 0) return;
  std::string h = cfg_.actor.advertise_host;
  if (h.empty() && host != "0.0.0.0" && host != "::" && host != "[::]" && !host.empty()) h = host;
  if (h.empty()) {
    const char* pod_ip = std::getenv("POD_IP");
    if (pod_ip != nullptr && *pod_ip != '\0') h = pod_ip;
  }
  if (h.empty()) {
    char name[256] = {0};
    if (::gethostname(name, sizeof name - 1) == 0) h = name;
  }
  if (h.empty()) return;
  if (h.find(':') != std::string::npos && h.front() != '[') h = absl::StrCat("[", h, "]");  // an IPv6 literal
  relay_address_ = absl::StrCat(h, ":", port);
  spdlog::info("relaying weight versions to peers from {}", relay_address_);
}

Actor::~Actor() { Stop(); }

grpc::Status Actor::GetStatus(grpc::ServerContext*, const v1::ActorStatusRequest*, v1::ActorStatusResponse* resp) {
  {
    absl::MutexLock l(&mu_);
    resp->set_member_id(member_id_);
  }
  resp->set_policy_version(version_.load());
  resp->set_groups_submitted(groups_submitted_.load());
  resp->set_tokens_generated(tokens_generated_.load());
  resp->set_weight_updates(weight_updates_n_.load());
  return grpc::Status::OK;
}

absl::Status Actor::Start(ShutdownSignal& shutdown) {
  shutdown_ = &shutdown;
  loop_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Actor::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    for (auto& ctx : open_calls_) ctx->TryCancel();
  }
  if (loop_.joinable()) loop_.join();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (watcher_.joinable()) watcher_.join();
}

std::shared_ptr<grpc::ClientContext> Actor::NewContext(absl::Duration timeout) {
  auto ctx = std::make_shared<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  absl::MutexLock l(&mu_);
  if (stopping_) ctx->TryCancel();
  open_calls_.push_back(ctx);
  return ctx;
}

void Actor::ForgetContext(const std::shared_ptr<grpc::ClientContext>& ctx) {
  absl::MutexLock l(&mu_);
  open_calls_.erase(std::remove(open_calls_.begin(), open_calls_.end(), ctx), open_calls_.end());
}

void Actor::WaitForNews(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto news = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || announced_version_ > version_.load(); };
  mu_.AwaitWithTimeout(absl::Condition(&news), timeout);
}

bool Actor::RegisterWithRetry() {
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return false;
    }
    v1::RegisterRequest req;
    req.set_role(v1::ROLE_ACTOR);
    req.set_name(absl::StrCat("actor-pid-", ::getpid()));
    v1::RegisterResponse resp;
    auto ctx = NewContext(absl::Seconds(5));
    ctx->set_wait_for_ready(true);
    grpc::Status s = coordinator_->Register(ctx.get(), req, &resp);
    ForgetContext(ctx);
    if (s.ok()) {
      absl::MutexLock l(&mu_);
      member_id_ = resp.member_id();
      announced_version_ = std::max(announced_version_, resp.latest_version());
      rng_seed_ = std::hash<std::string>{}(member_id_) ^ (static_cast<uint64_t>(cfg_.run.seed) * 0x9E3779B97F4A7C15ull);
      spdlog::info("registered as {}", member_id_);
      return true;
    }
    spdlog::warn("register with coordinator {}: {}", cfg_.endpoints.coordinator, s.error_message());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void Actor::HeartbeatLoop() {
  for (;;) {
    std::string id;
    {
      absl::MutexLock l(&mu_);
      // Heartbeat three times per timeout period; Stop() ends the wait at once.
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(cfg_.coordinator.heartbeat_timeout_ms / 3));
      if (stopping_) return;
      id = member_id_;
    }
    v1::HeartbeatRequest req;
    req.set_member_id(id);
    req.set_policy_version(version_.load());
    req.set_tokens_generated(tokens_generated_.load());
    v1::HeartbeatResponse resp;
    auto ctx = NewContext(absl::Seconds(5));
    grpc::Status s = coordinator_->Heartbeat(ctx.get(), req, &resp);
    ForgetContext(ctx);
    if (!s.ok()) {
      spdlog::warn("heartbeat: {}", s.error_message());
      continue;
    }
    if (!resp.known()) {
      spdlog::warn("coordinator forgot {}; registering again", id);
      RegisterWithRetry();
    }
    absl::MutexLock l(&mu_);
    announced_version_ = std::max(announced_version_, resp.latest_version());
  }
}

void Actor::WatchLoop() {
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    v1::WatchVersionsRequest req;
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
      req.set_after_version(announced_version_);
    }
    auto ctx = NewContext(absl::Hours(24 * 365));
    ctx->set_wait_for_ready(true);
    auto reader = coordinator_->WatchVersions(ctx.get(), req);
    v1::VersionAnnouncement a;
    while (reader->Read(&a)) {
      backoff = absl::Milliseconds(50);
      absl::MutexLock l(&mu_);
      announced_version_ = std::max<int64_t>(announced_version_, static_cast<int64_t>(a.version()));
    }
    grpc::Status s = reader->Finish();
    ForgetContext(ctx);
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
    }
    spdlog::warn("version watch ended ({}); reconnecting", s.error_message());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::Status Actor::UpdateWeights(int64_t version) {
  const absl::Time t0 = absl::Now();
  rpc::WeightFetcher::Options opt;
  {
    absl::MutexLock l(&mu_);
    opt.member_id = member_id_;
  }
  opt.relay_address = relay_address_;
  opt.stopping = [this] {
    absl::MutexLock l(&mu_);
    return stopping_;
  };
  const rpc::WeightFetcher::Stats before = fetcher_->stats();
  absl::StatusOr<std::shared_ptr<rpc::WeightBlob>> blob = fetcher_->Fetch(
      version, opt, [this](absl::Duration t) { return NewContext(t); },
      [this](const std::shared_ptr<grpc::ClientContext>& c) { ForgetContext(c); });
  const rpc::WeightFetcher::Stats after = fetcher_->stats();
  weight_bytes_from_peers_->Increment(static_cast<double>(after.bytes_from_peers - before.bytes_from_peers));
  weight_bytes_from_coordinator_->Increment(
      static_cast<double>(after.bytes_from_coordinator - before.bytes_from_coordinator));
  weight_source_failures_->Increment(static_cast<double>(after.source_failures - before.source_failures));
  weight_versions_full_->Increment(static_cast<double>(after.versions_full - before.versions_full));
  weight_versions_delta_->Increment(static_cast<double>(after.versions_delta - before.versions_delta));
  weight_patches_refused_->Increment(static_cast<double>(after.patches_refused - before.patches_refused));
  if (!blob.ok()) return blob.status();
  // The blob's CRC was checked as its bytes arrived (complete() only after a match).
  const rpc::WeightHeader h = (*blob)->header();
  absl::Status loaded = LoadWeightsBlob(policy_->model, (*blob)->bytes());
  if (!loaded.ok()) return loaded;
  weights_crc_ = h.crc32;
  version_ = static_cast<int64_t>(h.version);
  version_gauge_->Set(static_cast<double>(h.version));
  weight_updates_->Increment();
  ++weight_updates_n_;
  weight_fetch_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - t0));
  spdlog::info("loaded weights version {} ({} bytes{}, {} received from peers, {} from the coordinator) in {}",
               h.version, h.total_size, after.versions_delta > before.versions_delta ? ", as a patch" : "",
               after.bytes_from_peers - before.bytes_from_peers,
               after.bytes_from_coordinator - before.bytes_from_coordinator, absl::FormatDuration(absl::Now() - t0));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::RolloutGroup>> Actor::Generate(const std::vector<v1::WorkItem>& items) {
  const uint64_t version = static_cast<uint64_t>(version_.load());
  const uint32_t weights_crc = weights_crc_.load();
  std::string actor_id;
  uint64_t seed = 0;
  {
    absl::MutexLock l(&mu_);
    actor_id = member_id_;
    seed = rng_seed_;
  }
  // All the items' groups decode together: one prefill per prompt, G rows each,
  // continuous batching across groups.
  std::vector<model::GenerationRequest> requests;
  std::vector<size_t> request_of;  // group index -> request index, or SIZE_MAX
  std::vector<v1::RolloutGroup> groups(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    v1::RolloutGroup& g = groups[i];
    *g.mutable_item() = items[i];
    g.set_policy_version(version);
    g.set_policy_crc32(weights_crc);
    g.set_temperature(static_cast<float>(cfg_.actor.temperature));
    g.set_actor_id(actor_id);
    std::vector<int64_t> prompt = EncodePrompt(*policy_, items[i].prompt());
    for (int64_t id : prompt) g.add_prompt_token_ids(static_cast<int32_t>(id));
    if (static_cast<int64_t>(prompt.size()) >= policy_->max_positions()) {
      // No room for a single new token. Cutting the prompt would train on text the
      // task never said; instead the group goes out with no completions, which the
      // learner rejects as malformed and completes, so the prompt does not circulate.
      // Logged the first times, then one in a thousand (every prompt of a misconfigured
      // run lands here; the learner stops such a run).
      const double seen = prompts_too_long_->Value();
      if (seen < 10 || static_cast<int64_t>(seen) % 1000 == 0) {
        spdlog::error("prompt {} has {} tokens; the model's context is {}: skipped ({} so far)", items[i].prompt_id(),
                      prompt.size(), policy_->max_positions(), static_cast<int64_t>(seen) + 1);
      }
      prompts_too_long_->Increment();
      request_of.push_back(SIZE_MAX);
      continue;
    }
    request_of.push_back(requests.size());
    requests.push_back({std::move(prompt), cfg_.actor.group_size});
  }
  model::SamplingParams p;
  p.temperature = cfg_.actor.temperature;
  p.top_p = cfg_.actor.top_p;
  p.top_k = cfg_.actor.top_k;
  // The generator also stops each completion where the model's context ends.
  p.max_new_tokens = cfg_.actor.max_new_tokens;
  p.stop_token_ids = policy_->stop_token_ids;
  // Seeded by actor and the first lease: a re-issued prompt gets fresh samples.
  seed ^= items.empty() ? 0 : items[0].lease_id() * 0xBF58476D1CE4E5B9ull;
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<std::vector<model::SampledSequence>>> out;
  try {
    out = generator_->Generate(requests, p, seed);
  } catch (const std::exception& e) {  // c10::Error: out of memory, a failed check
    out = absl::InternalError(e.what());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  generation_seconds_->Observe(secs);
  if (!out.ok()) return absl::InternalError(absl::StrCat("generation failed: ", out.status().message()));
  for (size_t i = 0; i < groups.size(); ++i) {
    v1::RolloutGroup& g = groups[i];
    g.set_generation_ms(secs * 1000 / groups.size());
    if (request_of[i] == SIZE_MAX) continue;
    for (const auto& s : (*out)[request_of[i]]) {
      v1::Completion* c = g.add_completions();
      for (int64_t t : s.token_ids) c->add_token_ids(static_cast<int32_t>(t));
      for (float lp : s.logprobs) c->add_logprobs(lp);
      c->set_text(policy_->Decode(s.token_ids));
      c->set_truncated(s.truncated);
      tokens_->Increment(static_cast<double>(s.token_ids.size()));
      tokens_generated_ += s.token_ids.size();
    }
  }
  return groups;
}

absl::StatusOr<std::vector<v1::ScoredGroup>> Actor::Score(const std::vector<v1::RolloutGroup>& groups) {
  auto ctx = NewContext(absl::Seconds(120));
  auto stream = reward_->Score(ctx.get());
  // One group in, its scores out (the reward service sends the scores only; the group
  // is joined here). Writing a whole large batch before reading could fill both
  // flow-control windows and stall both sides.
  std::vector<v1::GroupScores> answers;
  v1::GroupScores gs;
  for (const auto& g : groups) {
    if (!stream->Write(g) || !stream->Read(&gs)) break;
    answers.push_back(std::move(gs));
  }
  stream->WritesDone();
  while (stream->Read(&gs)) answers.push_back(std::move(gs));
  grpc::Status s = stream->Finish();
  ForgetContext(ctx);
  if (!s.ok()) return rpc::ToAbsl(s);
  if (answers.size() != groups.size()) {
    return absl::DataLossError(absl::StrCat("reward service returned ", answers.size(), " of ", groups.size(), " groups"));
  }
  std::vector<v1::ScoredGroup> out(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    const v1::WorkItem& item = groups[i].item();
    if (answers[i].lease_id() != item.lease_id() || answers[i].prompt_id() != item.prompt_id()) {
      return absl::DataLossError(absl::StrCat("reward service answered for lease ", answers[i].lease_id(), " (",
                                              answers[i].prompt_id(), ") in place of lease ", item.lease_id(), " (",
                                              item.prompt_id(), ")"));
    }
    *out[i].mutable_group() = groups[i];
    out[i].mutable_scores()->Swap(answers[i].mutable_scores());
    out[i].set_error(answers[i].error());
  }
  return out;
}

absl::Status Actor::Submit(const std::vector<v1::ScoredGroup>& groups) {
  // The learner stops reading when its buffer is full, so this call may wait for a
  // training step: that wait is the backpressure that keeps rollouts fresh.
  auto ctx = NewContext(absl::Minutes(30));
  auto stream = learner_->SubmitGroups(ctx.get());
  for (const auto& g : groups) {
    if (!stream->Write(g)) break;
  }
  stream->WritesDone();
  v1::SubmitAck ack;
  size_t acks = 0;
  while (stream->Read(&ack)) {
    ++acks;
    if (ack.outcome() != v1::SubmitAck::ACCEPTED) {
      spdlog::warn("learner did not accept lease {}: {} {}", ack.lease_id(), v1::SubmitAck::Outcome_Name(ack.outcome()),
                   ack.detail());
    }
    absl::MutexLock l(&mu_);
    announced_version_ = std::max(announced_version_, ack.latest_version());
  }
  grpc::Status s = stream->Finish();
  ForgetContext(ctx);
  if (!s.ok()) return rpc::ToAbsl(s);
  if (acks != groups.size()) return absl::DataLossError(absl::StrCat("learner acked ", acks, " of ", groups.size(), " groups"));
  groups_->Increment(static_cast<double>(groups.size()));
  groups_submitted_ += groups.size();
  return absl::OkStatus();
}

void Actor::Loop() {
  if (!RegisterWithRetry()) return;
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  watcher_ = std::thread([this] { WatchLoop(); });
  absl::Duration idle = absl::Milliseconds(20);
  absl::Duration lost_backoff = absl::Milliseconds(50);  // after a batch the learner did not take
  for (;;) {
    int64_t announced;
    std::string member;
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
      announced = announced_version_;
      member = member_id_;
    }
    if (announced > version_.load()) {
      absl::Status s = UpdateWeights(-1);
      if (!s.ok()) {
        spdlog::warn("fetching weights: {}", s.message());
        // The announcement stays newer than our weights, so WaitForNews would return at
        // once: back off on shutdown alone.
        absl::MutexLock l(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), idle);
        idle = std::min(idle * 2, absl::Seconds(1));
        if (version_.load() < 0) continue;
      }
    }
    if (version_.load() < 0) {
      WaitForNews(absl::Seconds(1));  // no weights yet: the learner publishes version 0 first
      continue;
    }
    v1::AcquireWorkRequest req;
    req.set_member_id(member);
    req.set_max_items(static_cast<uint32_t>(cfg_.actor.prompts_per_request));
    v1::AcquireWorkResponse resp;
    auto ctx = NewContext(absl::Seconds(10));
    grpc::Status s = coordinator_->AcquireWork(ctx.get(), req, &resp);
    ForgetContext(ctx);
    if (!s.ok()) {
      spdlog::warn("acquire work: {}", s.error_message());
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION && !RegisterWithRetry()) return;
      WaitForNews(idle);
      idle = std::min(idle * 2, absl::Seconds(1));
      continue;
    }
    if (resp.run_finished()) {
      spdlog::info("the run is finished; stopping");
      shutdown_->Trigger();
      return;
    }
    if (resp.items_size() == 0) {
      WaitForNews(idle);
      idle = std::min(idle * 2, absl::Seconds(1));
      continue;
    }
    idle = absl::Milliseconds(20);
    const int64_t sampled_with = version_.load();
    absl::StatusOr<std::vector<v1::RolloutGroup>> generated =
        Generate(std::vector<v1::WorkItem>(resp.items().begin(), resp.items().end()));
    if (!generated.ok()) {
      // The leases expire and are re-issued; back off so a persistent failure does not
      // lease and drop work in a hot loop.
      failed_batches_->Increment();
      spdlog::error("{}; backing off", generated.status().message());
      absl::MutexLock l(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(2));
      if (stopping_) return;
      continue;
    }
    std::vector<v1::RolloutGroup>& groups = *generated;
    absl::StatusOr<std::vector<v1::ScoredGroup>> scored = Score(groups);
    // A reward server that died or a cut stream: this actor still holds the groups, so
    // it sends them again (to the restarted server) rather than losing the batch.
    absl::Duration resend = absl::Milliseconds(250);
    for (int attempt = 1; !scored.ok() && attempt <= 10 &&
                          (absl::IsUnavailable(scored.status()) || absl::IsAborted(scored.status()));
         ++attempt) {
      spdlog::warn("scoring {} group(s): {}; sending them again in {} (attempt {})", groups.size(),
                   scored.status().message(), absl::FormatDuration(resend), attempt);
      score_resends_->Increment();
      {
        absl::MutexLock l(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), resend)) return;
      }
      resend = std::min(resend * 2, absl::Seconds(4));
      scored = Score(groups);
    }
    absl::Status submitted = scored.ok() ? Submit(*scored) : scored.status();
    if (submitted.ok()) lost_backoff = absl::Milliseconds(50);
    if (!submitted.ok()) {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
      failed_batches_->Increment();
      spdlog::warn("batch of {} group(s) lost ({}); their leases will expire and be re-issued; next batch in {}",
                   groups.size(), submitted.message(), absl::FormatDuration(lost_backoff));
      // A learner that is down fails every batch at once: back off (doubling to 2 s)
      // rather than lease and lose work in a tight loop.
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), lost_backoff);
      if (stopping_) return;
      lost_backoff = std::min(lost_backoff * 2, absl::Seconds(2));
    } else if (cfg_.actor.sync) {
      // Synchronous mode: the next batch is sampled by the version trained on this one.
      auto newer = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || announced_version_ > sampled_with; };
      absl::MutexLock l(&mu_);
      if (!mu_.AwaitWithTimeout(absl::Condition(&newer), absl::Milliseconds(cfg_.actor.sync_timeout_ms))) {
        spdlog::warn("synchronous mode: no version after {} within {} ms; sampling again with it", sampled_with,
                     cfg_.actor.sync_timeout_ms);
      }
    }
  }
}

}  // namespace grpo

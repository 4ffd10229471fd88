#include "services/learner/learner.h"

#include <torch/torch.h>

#include <chrono>
#include <map>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/grpo/grpo_loss.h"
#include "services/learner/checkpoint.h"
#include "core/model/sampler.h"
#include "core/rpc/rpc.h"

namespace grpo {

std::string ValidateScoredGroup(const v1::ScoredGroup& g, int64_t vocab_size, int64_t max_positions) {
  if (!g.error().empty()) return absl::StrCat("scoring failed: ", g.error());
  const v1::RolloutGroup& r = g.group();
  if (r.completions_size() < 2) return absl::StrCat("group has ", r.completions_size(), " completion(s); need at least 2");
  if (g.scores_size() != r.completions_size()) {
    return absl::StrCat(g.scores_size(), " scores for ", r.completions_size(), " completions");
  }
  if (r.prompt_token_ids_size() == 0) return "empty prompt";
  auto in_range = [&](int32_t t) { return t >= 0 && t < vocab_size; };
  for (int32_t t : r.prompt_token_ids()) {
    if (!in_range(t)) return absl::StrCat("prompt token id ", t, " outside the vocabulary [0, ", vocab_size, ")");
  }
  for (int i = 0; i < r.completions_size(); ++i) {
    const v1::Completion& c = r.completions(i);
    if (c.token_ids_size() != c.logprobs_size()) {
      return absl::StrCat("completion ", i, ": ", c.token_ids_size(), " tokens but ", c.logprobs_size(), " logprobs");
    }
    if (r.prompt_token_ids_size() + c.token_ids_size() > max_positions) {
      return absl::StrCat("completion ", i, ": prompt + completion is ", r.prompt_token_ids_size() + c.token_ids_size(),
                          " tokens, over the model's ", max_positions);
    }
    for (int32_t t : c.token_ids()) {
      if (!in_range(t)) return absl::StrCat("completion ", i, ": token id ", t, " outside the vocabulary");
    }
    for (float lp : c.logprobs()) {
      if (!std::isfinite(lp) || lp > 0) return absl::StrCat("completion ", i, ": logprob ", lp, " is not a log-probability");
    }
    if (!std::isfinite(g.scores(i).reward())) return absl::StrCat("completion ", i, ": reward is not finite");
  }
  if (!(r.temperature() >= 0) || !std::isfinite(r.temperature())) return "temperature is not a number >= 0";
  return "";
}

struct Learner::StepStats {
  double loss = 0, pg_loss = 0, kl = 0, clip_fraction = 0, ratio_mean = 0, grad_norm = 0;
  double importance_weight_mean = 1;
  double entropy = 0;                 // mean per-token entropy of the policy (temperature-scaled)
  int64_t completion_len_max = 0;
  std::map<int64_t, int64_t> staleness;  // versions behind when trained -> groups
  double reward_mean = 0, reward_std = 0, accuracy = 0, format = 0;
  double completion_len_mean = 0, truncated_share = 0;
  int64_t tokens = 0;
  uint64_t version_min = 0, version_max = 0;
};

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(const RunConfig& cfg,
                                                         std::shared_ptr<prometheus::Registry> registry) {
  torch::set_num_threads(static_cast<int>(cfg.learner.threads));
  uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  absl::StatusOr<std::unique_ptr<Policy>> policy = BuildPolicy(cfg, seed);
  if (!policy.ok()) return policy.status();
  std::unique_ptr<Policy> reference;
  if (cfg.learner.beta > 0) {
    // Same seed, same initial weights: the frozen reference policy of the KL term.
    absl::StatusOr<std::unique_ptr<Policy>> ref = BuildPolicy(cfg, seed);
    if (!ref.ok()) return ref.status();
    reference = std::move(*ref);
    reference->model->eval();
    for (auto& p : reference->model->parameters()) p.set_requires_grad(false);
  }
  auto learner = std::unique_ptr<Learner>(new Learner(cfg, std::move(*policy), std::move(reference), std::move(registry)));
  if (absl::Status s = learner->Resume(); !s.ok()) return s;
  return learner;
}

std::string Learner::CheckpointRoot() const {
  if (!cfg_.learner.checkpoint_dir.empty()) return cfg_.learner.checkpoint_dir;
  if (cfg_.run.dir.empty()) return "";
  return (std::filesystem::path(cfg_.run.dir) / "checkpoints").string();
}

absl::Status Learner::Resume() {
  const std::string root = CheckpointRoot();
  if (root.empty()) return absl::OkStatus();
  std::optional<std::string> dir = NewestValidCheckpoint(root);
  if (!dir) return absl::OkStatus();
  CheckpointInputs into{policy_->model, reference_ ? reference_->model : model::Transformer(nullptr),
                        optimizer_.get(), cfg_.model.path};
  absl::StatusOr<CheckpointState> st = LoadCheckpoint(*dir, into);
  if (!st.ok()) return st.status();
  resumed_step_ = last_step_ = last_checkpoint_step_ = st->step;
  resumed_version_ = last_version_ = st->version;
  {
    absl::MutexLock l(&mu_);
    seen_ = std::move(st->seen);
  }
  spdlog::info("resumed from {} (step {}, version {})", *dir, st->step, st->version);
  return absl::OkStatus();
}

absl::Status Learner::Checkpoint(uint64_t step, int64_t version) {
  const std::string root = CheckpointRoot();
  if (root.empty()) return absl::OkStatus();
  CheckpointState state;
  state.step = step;
  state.version = version;
  {
    absl::MutexLock l(&mu_);
    state.seen = seen_;
  }
  CheckpointInputs in{policy_->model, reference_ ? reference_->model : model::Transformer(nullptr), optimizer_.get(),
                      cfg_.model.path};
  absl::Status s = WriteCheckpoint(root, state, in, static_cast<int>(cfg_.learner.keep_checkpoints));
  if (s.ok()) last_checkpoint_step_ = step;
  return s;
}

Learner::Learner(const RunConfig& cfg, std::unique_ptr<Policy> policy, std::unique_ptr<Policy> reference,
                 std::shared_ptr<prometheus::Registry> registry)
    : cfg_(cfg), policy_(std::move(policy)), reference_(std::move(reference)), registry_(std::move(registry)) {
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      policy_->model->parameters(), torch::optim::AdamWOptions(cfg.learner.lr).weight_decay(cfg.learner.weight_decay));
  coordinator_ = v1::Coordinator::NewStub(rpc::MakeChannel(cfg.endpoints.coordinator));
  std::string path = cfg.learner.metrics_path;
  if (path.empty() && !cfg.run.dir.empty()) path = (std::filesystem::path(cfg.run.dir) / "metrics.jsonl").string();
  if (!path.empty()) {
    metrics_file_ = std::fopen(path.c_str(), "a");
    if (!metrics_file_) spdlog::error("cannot open {} for appending: {}", path, std::strerror(errno));
  }
  auto& r = *registry_;
  auto gauge = [&](const char* name, const char* help) { return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({}); };
  step_gauge_ = gauge("grpo_learner_step", "GRPO steps done");
  reward_gauge_ = gauge("grpo_learner_reward_mean", "Mean reward of the last step's batch");
  accuracy_gauge_ = gauge("grpo_learner_accuracy", "Mean accuracy component of the last step's batch");
  loss_gauge_ = gauge("grpo_learner_loss", "GRPO loss of the last step");
  kl_gauge_ = gauge("grpo_learner_kl", "Mean k3 KL to the reference policy of the last step");
  buffer_gauge_ = gauge("grpo_learner_buffered_groups", "Groups waiting for a step");
  tokens_trained_ = &prometheus::BuildCounter().Name("grpo_learner_tokens_trained_total").Help("Completion tokens trained on").Register(r).Add({});
  groups_family_ = &prometheus::BuildCounter().Name("grpo_learner_groups_total").Help("Groups received, by outcome").Register(r);
}

Learner::~Learner() {
  Stop();
  if (metrics_file_) std::fclose(metrics_file_);
}

absl::Status Learner::Start(ShutdownSignal& shutdown) {
  shutdown_ = &shutdown;
  trainer_ = std::thread([this] { TrainLoop(); });
  return absl::OkStatus();
}

bool Learner::Stopping() {
  absl::MutexLock l(&mu_);
  return stopping_;
}

void Learner::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    if (publish_ctx_) publish_ctx_->TryCancel();
  }
  if (trainer_.joinable()) trainer_.join();
  // On SIGTERM: keep the steps done since the last checkpoint.
  if (last_step_ > last_checkpoint_step_) {
    absl::Status s = Checkpoint(last_step_, last_version_);
    if (s.ok()) {
      spdlog::info("checkpoint of step {} written on stop", last_step_);
    } else {
      spdlog::error("checkpoint on stop: {}", s.message());
    }
  }
}

grpc::Status Learner::SubmitGroups(grpc::ServerContext* ctx,
                                   grpc::ServerReaderWriter<v1::SubmitAck, v1::ScoredGroup>* stream) {
  const int64_t vocab = policy_->model->config().vocab_size;
  const int64_t max_pos = policy_->max_positions();
  v1::ScoredGroup g;
  while (stream->Read(&g)) {
    v1::SubmitAck ack;
    ack.set_lease_id(g.group().item().lease_id());
    std::string bad = ValidateScoredGroup(g, vocab, max_pos);
    bool requeue = false, complete = false;
    {
      absl::MutexLock l(&mu_);
      std::pair<std::string, uint32_t> key{g.group().item().prompt_id(), g.group().item().epoch()};
      // Duplicate or too stale: sets the ack and returns true. Called again after the
      // backpressure wait, which releases the lock (another stream may have brought the
      // same unit, and new versions may have made this group stale).
      auto turned_away = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        int64_t lag = version_ - static_cast<int64_t>(g.group().policy_version());
        if (seen_.count(key)) {
          ack.set_outcome(v1::SubmitAck::DUPLICATE);
          ack.set_detail(absl::StrCat("prompt ", key.first, " epoch ", key.second, " was already accepted"));
          complete = true;
        } else if (lag > cfg_.learner.max_staleness) {
          ack.set_outcome(v1::SubmitAck::STALE);
          ack.set_detail(absl::StrCat("sampled with version ", g.group().policy_version(), ", ", lag,
                                      " behind; the bound is ", cfg_.learner.max_staleness));
          requeue = true;
        }
        return complete || requeue;
      };
      if (!bad.empty()) {
        ack.set_outcome(v1::SubmitAck::REJECTED);
        ack.set_detail(bad);
        // Not re-queued: a malformed group would most likely be malformed again, and
        // circulate for the whole run. The prompt is skipped for this epoch.
        complete = true;
      } else if (cfg_.learner.dynamic_sampling && AllRewardsEqual(g)) {
        ack.set_outcome(v1::SubmitAck::FILTERED);
        ack.set_detail("every completion has the same reward: no signal");
        complete = true;
      } else if (!turned_away()) {
        // Backpressure: wait for room (the trainer frees it every step) or shutdown.
        auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || static_cast<int64_t>(buffer_.size()) < cfg_.learner.buffer_groups;
        };
        while (!room() && !ctx->IsCancelled()) mu_.AwaitWithTimeout(absl::Condition(&room), absl::Milliseconds(200));
        if (stopping_ || ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "learner stopping");
        if (!turned_away()) {
          seen_.insert(key);
          buffer_.push_back(g);
          buffer_gauge_->Set(static_cast<double>(buffer_.size()));
          ack.set_outcome(v1::SubmitAck::ACCEPTED);
        }
      }
      ack.set_latest_version(version_);
    }
    groups_family_->Add({{"outcome", v1::SubmitAck::Outcome_Name(ack.outcome())}}).Increment();
    if (!bad.empty()) spdlog::warn("rejected group of lease {}: {}", ack.lease_id(), bad);
    if (requeue || complete) CompleteLeases({ack.lease_id()}, requeue);
    if (!stream->Write(ack)) break;
  }
  return grpc::Status::OK;
}

double Learner::LearningRate(uint64_t step) const {
  const double base = cfg_.learner.lr;
  const auto warmup = static_cast<uint64_t>(cfg_.learner.warmup_steps);
  if (warmup > 0 && step <= warmup) return base * static_cast<double>(step) / static_cast<double>(warmup);
  if (cfg_.learner.lr_schedule != "cosine" || cfg_.learner.max_steps <= static_cast<int64_t>(warmup)) return base;
  const double progress = std::clamp(static_cast<double>(step - warmup) /
                                         static_cast<double>(cfg_.learner.max_steps - static_cast<int64_t>(warmup)),
                                     0.0, 1.0);
  const double floor = cfg_.learner.min_lr_ratio;
  return base * (floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * progress)));
}

bool Learner::AllRewardsEqual(const v1::ScoredGroup& g) {
  for (int i = 1; i < g.scores_size(); ++i) {
    if (g.scores(i).reward() != g.scores(0).reward()) return false;
  }
  return true;
}

rl::GrpoLossConfig Learner::LossConfig() const {
  rl::GrpoLossConfig c;
  c.clip_eps_low = cfg_.learner.clip_eps;
  c.clip_eps_high = cfg_.learner.clip_eps_high > 0 ? cfg_.learner.clip_eps_high : cfg_.learner.clip_eps;
  c.beta = cfg_.learner.beta;
  c.kl_estimator = cfg_.learner.kl_estimator == "k1"   ? rl::KlEstimator::kK1
                   : cfg_.learner.kl_estimator == "k2" ? rl::KlEstimator::kK2
                                                       : rl::KlEstimator::kK3;
  c.aggregation = cfg_.learner.loss_agg == "token-mean" ? rl::LossAggregation::kTokenMean
                  : cfg_.learner.loss_agg == "seq-mean-token-sum-norm"
                      ? rl::LossAggregation::kSeqMeanTokenSumNorm
                      : rl::LossAggregation::kSeqMeanTokenMean;
  // Dr. GRPO divides by a constant: the longest completion the actor may produce.
  c.norm_length = static_cast<double>(cfg_.actor.max_new_tokens);
  c.importance_cap = cfg_.learner.importance_cap;
  return c;
}

void Learner::CompleteLeases(const std::vector<uint64_t>& ids, bool requeue) {
  v1::CompleteWorkRequest req;
  for (uint64_t id : ids) req.add_lease_ids(id);
  req.set_requeue(requeue);
  v1::CompleteWorkResponse resp;
  grpc::Status s = rpc::CallWithRetry([&](grpc::ClientContext* ctx) { return coordinator_->CompleteWork(ctx, req, &resp); },
                                      {}, [this] { return Stopping(); });
  if (!s.ok()) spdlog::error("completing {} lease(s): {} (they will expire and be re-issued)", ids.size(), s.error_message());
}

absl::Status Learner::Publish(uint64_t version, uint64_t step) {
  std::string blob = WeightsToBlob(policy_->model, version);
  uint32_t crc = Crc32(blob);
  constexpr size_t kChunk = 1 << 20;
  absl::Duration backoff = absl::Milliseconds(100);
  for (int attempt = 1;; ++attempt) {
    auto ctx = std::shared_ptr<grpc::ClientContext>(rpc::ContextWithDeadline(absl::Seconds(120)));
    ctx->set_wait_for_ready(true);
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return absl::CancelledError("learner stopping");
      publish_ctx_ = ctx;  // Stop() cancels it
    }
    v1::PublishWeightsResponse resp;
    auto writer = coordinator_->PublishWeights(ctx.get(), &resp);
    for (size_t off = 0; off < blob.size() || off == 0; off += kChunk) {
      v1::WeightChunk c;
      c.set_version(version);
      c.set_step(step);
      c.set_offset(off);
      c.set_total_size(blob.size());
      c.set_crc32(crc);
      c.set_data(blob.substr(off, kChunk));
      if (!writer->Write(c)) break;
      if (blob.empty()) break;
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    {
      absl::MutexLock l(&mu_);
      publish_ctx_.reset();
    }
    if (s.ok()) return absl::OkStatus();
    {
      absl::MutexLock l(&mu_);
      if (stopping_ || attempt >= 10 || !rpc::IsRetryable(s)) return rpc::ToAbsl(s);
    }
    spdlog::warn("publishing version {} (attempt {}): {}; retrying", version, attempt, s.error_message());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

Learner::StepStats Learner::TrainStep(const std::vector<v1::ScoredGroup>& batch) {
  StepStats st;
  const int64_t n = static_cast<int64_t>(batch.size());
  // Sequences: prompt + completion, right-padded; the model is causal, so padding after a
  // sequence never changes its logits.
  int64_t b_total = 0, max_len = 0;
  for (const auto& g : batch) {
    for (const auto& c : g.group().completions()) {
      max_len = std::max<int64_t>(max_len, g.group().prompt_token_ids_size() + c.token_ids_size());
      ++b_total;
    }
  }
  const int64_t L = std::max<int64_t>(max_len, 2);
  torch::Tensor tokens = torch::full({b_total, L}, policy_->pad_id, torch::kInt64);  // (B, L)
  torch::Tensor old_logp = torch::zeros({b_total, L - 1}, torch::kFloat32);                      // (B, L-1)
  torch::Tensor mask = torch::zeros({b_total, L - 1}, torch::kFloat32);                          // (B, L-1)
  torch::Tensor present = torch::zeros({b_total, L - 1}, torch::kFloat32);  // (B, L-1) every completion token
  torch::Tensor temps = torch::ones({b_total, 1}, torch::kFloat32);                              // (B, 1)
  std::vector<double> rewards;
  auto tok = tokens.accessor<int64_t, 2>();
  auto olp = old_logp.accessor<float, 2>();
  auto msk = mask.accessor<float, 2>();
  auto prs = present.accessor<float, 2>();
  int64_t row = 0;
  double acc_sum = 0, fmt_sum = 0, len_sum = 0, truncated = 0;
  st.version_min = UINT64_MAX;
  for (const auto& g : batch) {
    const auto& r = g.group();
    st.version_min = std::min<uint64_t>(st.version_min, r.policy_version());
    st.version_max = std::max<uint64_t>(st.version_max, r.policy_version());
    {
      absl::MutexLock l(&mu_);
      st.staleness[std::max<int64_t>(0, version_ - static_cast<int64_t>(r.policy_version()))]++;
    }
    const int64_t p = r.prompt_token_ids_size();
    for (int i = 0; i < r.completions_size(); ++i, ++row) {
      const auto& c = r.completions(i);
      for (int64_t j = 0; j < p; ++j) tok[row][j] = r.prompt_token_ids(static_cast<int>(j));
      for (int64_t j = 0; j < c.token_ids_size(); ++j) {
        tok[row][p + j] = c.token_ids(static_cast<int>(j));
        // Token p + j is predicted at input position p + j - 1.
        olp[row][p + j - 1] = c.logprobs(static_cast<int>(j));
        // DAPO's overlong filtering: a truncated completion still counts in its
        // group's advantages but contributes no gradient.
        msk[row][p + j - 1] = (c.truncated() && cfg_.learner.mask_truncated) ? 0.0f : 1.0f;
        prs[row][p + j - 1] = 1.0f;
      }
      temps[row][0] = r.temperature() > 0 ? r.temperature() : 1.0f;
      const auto& s = g.scores(i);
      rewards.push_back(s.reward());
      auto comp = s.components();
      acc_sum += comp.count("accuracy") ? comp.at("accuracy") : 0.0;
      fmt_sum += comp.count("format") ? comp.at("format") : 0.0;
      len_sum += c.token_ids_size();
      st.completion_len_max = std::max<int64_t>(st.completion_len_max, c.token_ids_size());
      truncated += c.truncated() ? 1 : 0;
      st.tokens += c.token_ids_size();
    }
  }
  const int64_t G = b_total / n;  // groups of one run share G (validated upstream is >= 2)
  torch::Tensor reward_t = torch::tensor(rewards, torch::kFloat64);  // (B)
  torch::Tensor adv;
  bool uniform_g = true;
  for (const auto& g : batch) uniform_g &= g.group().completions_size() == G;
  if (uniform_g) {
    adv = rl::GroupAdvantages(reward_t.view({n, G}), cfg_.learner.adv_eps, cfg_.learner.scale_rewards).view({b_total});  // (B)
  } else {
    std::vector<torch::Tensor> parts;  // groups of different sizes: one at a time
    int64_t off = 0;
    for (const auto& g : batch) {
      int64_t gs = g.group().completions_size();
      parts.push_back(rl::GroupAdvantages(reward_t.slice(0, off, off + gs).view({1, gs}), cfg_.learner.adv_eps, cfg_.learner.scale_rewards).view({gs}));
      off += gs;
    }
    adv = torch::cat(parts);
  }
  adv = adv.to(torch::kFloat32);

  torch::Tensor input = tokens.slice(1, 0, L - 1);  // (B, L-1)
  torch::Tensor target = tokens.slice(1, 1, L);     // (B, L-1)
  policy_->model->train();
  torch::Tensor logits = policy_->model->forward(input) / temps.unsqueeze(2);  // (B, L-1, V)
  torch::Tensor logp = model::TokenLogprobs(logits, target, 1.0);              // (B, L-1)
  torch::Tensor ref_logp;
  if (reference_ && cfg_.learner.beta > 0) {
    torch::NoGradGuard ng;
    ref_logp = model::TokenLogprobs(reference_->model->forward(input) / temps.unsqueeze(2), target, 1.0);  // (B, L-1)
  }
  {
    // Mean entropy over completion tokens (no gradient).
    torch::NoGradGuard ng;
    torch::Tensor lsm = torch::log_softmax(logits.detach(), -1);           // (B, L-1, V)
    torch::Tensor ent = -(lsm.exp() * lsm).sum(-1);                        // (B, L-1)
    st.entropy = (ent * present).sum().item<double>() / std::max(1.0, present.sum().item<double>());
  }
  rl::GrpoLossTerms terms =
      // One gradient step per batch: the proximal policy is the current weights.
      rl::GrpoLoss(logp, old_logp, ref_logp, adv, mask, LossConfig(), logp.detach());
  optimizer_->zero_grad();
  terms.loss.backward();
  double grad_norm = 0;
  if (cfg_.learner.grad_clip > 0) {
    grad_norm = torch::nn::utils::clip_grad_norm_(policy_->model->parameters(), cfg_.learner.grad_clip);
  } else {
    for (auto& p : policy_->model->parameters()) {
      if (p.grad().defined()) grad_norm += p.grad().pow(2).sum().item<double>();
    }
    grad_norm = std::sqrt(grad_norm);
  }
  optimizer_->step();

  st.loss = terms.loss.item<double>();
  st.pg_loss = terms.pg_loss;
  st.kl = terms.kl_mean;
  st.clip_fraction = terms.clip_fraction;
  st.ratio_mean = terms.ratio_mean;
  st.importance_weight_mean = terms.importance_weight_mean;
  st.grad_norm = grad_norm;
  st.reward_mean = reward_t.mean().item<double>();
  st.reward_std = b_total > 1 ? reward_t.std().item<double>() : 0.0;
  st.accuracy = acc_sum / static_cast<double>(b_total);
  st.format = fmt_sum / static_cast<double>(b_total);
  st.completion_len_mean = len_sum / static_cast<double>(b_total);
  st.truncated_share = truncated / static_cast<double>(b_total);
  return st;
}

void Learner::WriteMetricsLine(const std::string& line) {
  if (!metrics_file_) return;
  std::fputs(line.c_str(), metrics_file_);
  std::fputc('\n', metrics_file_);
  std::fflush(metrics_file_);
}

void Learner::TrainLoop() {
  // The starting weights (version 0, or the resumed checkpoint's version), so actors
  // can start sampling. A resumed learner may find the coordinator already past its
  // checkpoint (it had published later steps before dying): it then continues with
  // versions above the coordinator's, so no version number is ever reused.
  int64_t v0 = resumed_version_;
  if (resumed_step_ > 0) {
    v1::RunStatusRequest req;
    v1::RunStatusResponse resp;
    grpc::Status rs = rpc::CallWithRetry(
        [&](grpc::ClientContext* ctx) { return coordinator_->GetRunStatus(ctx, req, &resp); }, {},
        [this] { return Stopping(); });
    if (rs.ok() && resp.latest_version() > v0) v0 = resp.latest_version() + 1;
  }
  const int64_t version_offset = v0 - static_cast<int64_t>(resumed_step_);
  absl::Status s = Publish(static_cast<uint64_t>(v0), resumed_step_);
  if (!s.ok()) {
    spdlog::error("publishing the initial weights: {}", s.message());
    shutdown_->Fail();
    return;
  }
  {
    absl::MutexLock l(&mu_);
    version_ = v0;
  }
  last_version_ = v0;
  spdlog::info("published starting weights (version {}, step {}); waiting for groups", v0, resumed_step_);
  const size_t per_step = static_cast<size_t>(cfg_.learner.prompts_per_step);
  auto last = std::chrono::steady_clock::now();
  for (uint64_t step = resumed_step_ + 1;; ++step) {
    const int64_t version = static_cast<int64_t>(step) + version_offset;
    std::vector<v1::ScoredGroup> batch;
    {
      absl::MutexLock l(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || buffer_.size() >= per_step; };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      for (size_t i = 0; i < per_step; ++i) {
        batch.push_back(std::move(buffer_.front()));
        buffer_.pop_front();
      }
      buffer_gauge_->Set(static_cast<double>(buffer_.size()));
    }
    auto t0 = std::chrono::steady_clock::now();
    const double lr = LearningRate(step);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    StepStats st = TrainStep(batch);
    if (reference_ && cfg_.learner.ref_refresh_steps > 0 &&
        step % static_cast<uint64_t>(cfg_.learner.ref_refresh_steps) == 0) {
      // R1-Zero's reference reset: the KL term now pulls toward the current policy.
      torch::NoGradGuard ng;
      auto src = policy_->model->named_parameters();
      for (auto& p : reference_->model->named_parameters()) p.value().copy_(src[p.key()]);
      spdlog::info("step {}: reference policy refreshed to the current weights", step);
    }
    last_step_ = step;
    last_version_ = version;
    // Checkpoint before publishing: a version the coordinator has is never newer than
    // what a restarted learner resumes from (unless checkpoints are sparse; see v0).
    if (cfg_.learner.checkpoint_every > 0 && step % static_cast<uint64_t>(cfg_.learner.checkpoint_every) == 0) {
      if (absl::Status cs = Checkpoint(step, version); !cs.ok()) spdlog::error("checkpoint of step {}: {}", step, cs.message());
    }
    absl::Status pub = Publish(static_cast<uint64_t>(version), step);
    if (!pub.ok()) {
      if (Stopping()) return;
      spdlog::error("publishing version {}: {}; stopping", version, pub.message());
      shutdown_->Fail();
      return;
    }
    {
      absl::MutexLock l(&mu_);
      version_ = version;
    }
    std::vector<uint64_t> leases;
    for (const auto& g : batch) leases.push_back(g.group().item().lease_id());
    CompleteLeases(leases, /*requeue=*/false);

    auto now = std::chrono::steady_clock::now();
    double step_s = std::chrono::duration<double>(now - t0).count();
    double wall_s = std::chrono::duration<double>(now - last).count();
    last = now;
    nlohmann::json staleness = nlohmann::json::object();
    for (const auto& [lag, count] : st.staleness) staleness[std::to_string(lag)] = count;
    nlohmann::json j = {
        {"step", step}, {"version", version}, {"reward_mean", st.reward_mean}, {"reward_std", st.reward_std},
        {"accuracy", st.accuracy}, {"format", st.format}, {"loss", st.loss}, {"pg_loss", st.pg_loss},
        {"kl", st.kl}, {"clip_fraction", st.clip_fraction}, {"ratio_mean", st.ratio_mean},
        {"importance_weight_mean", st.importance_weight_mean},
        {"grad_norm", st.grad_norm}, {"lr", lr}, {"groups", batch.size()},
        {"completion_tokens", st.tokens}, {"completion_len_mean", st.completion_len_mean},
        {"completion_len_max", st.completion_len_max}, {"entropy", st.entropy}, {"staleness", staleness},
        {"truncated_share", st.truncated_share}, {"tokens_per_s", wall_s > 0 ? st.tokens / wall_s : 0.0},
        {"train_s", step_s}, {"policy_version_min", st.version_min}, {"policy_version_max", st.version_max},
        {"time", absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone())}};
    WriteMetricsLine(j.dump());
    step_gauge_->Set(static_cast<double>(step));
    reward_gauge_->Set(st.reward_mean);
    accuracy_gauge_->Set(st.accuracy);
    loss_gauge_->Set(st.loss);
    kl_gauge_->Set(st.kl);
    tokens_trained_->Increment(static_cast<double>(st.tokens));
    if (step % 10 == 1) {
      const auto& g0 = batch.front().group();
      spdlog::info("sample: prompt {:?} answer {:?} -> {:?} (reward {:.2f})", g0.item().prompt(), g0.item().answer(),
                   g0.completions(0).text(), batch.front().scores(0).reward());
    }
    spdlog::info("step {}: reward {:.3f} accuracy {:.3f} loss {:.4f} kl {:.4f} tokens/s {:.0f}", step, st.reward_mean,
                 st.accuracy, st.loss, st.kl, wall_s > 0 ? st.tokens / wall_s : 0.0);

    if (cfg_.learner.max_steps > 0 && step >= static_cast<uint64_t>(cfg_.learner.max_steps)) {
      v1::FinishRunRequest req;
      req.set_reason(absl::StrCat("learner reached max_steps = ", cfg_.learner.max_steps));
      v1::FinishRunResponse resp;
      rpc::CallWithRetry([&](grpc::ClientContext* ctx) { return coordinator_->FinishRun(ctx, req, &resp); }, {},
                         [this] { return Stopping(); });
      spdlog::info("reached max_steps = {}; finishing", cfg_.learner.max_steps);
      shutdown_->Trigger();
      return;
    }
  }
}

}  // namespace grpo

#include "services/learner/learner.h"

#include "core/rpc/weight_stream.h"

#include <csignal>
#include <cstdlib>
#include <fstream>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/grpo/grpo_loss.h"
#include "services/learner/checkpoint.h"
#include "core/grpo/collectives.h"
#include "core/model/device.h"
#include "core/model/numerics_check.h"
#include "services/learner/group.h"
#include "services/learner/schedule.h"
#include "core/model/sampler.h"
#include "core/rpc/rpc.h"

namespace grpo {

struct Learner::BatchStats {
  std::map<int64_t, int64_t> staleness;  // versions behind when trained -> groups
  std::map<std::string, double> components;  // mean of each reward component over completions
  double reward_mean = 0, reward_std = 0, accuracy = 0, format = 0;
  double completion_len_mean = 0, truncated_share = 0;
  int64_t completion_len_max = 0;
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
  absl::StatusOr<c10::Device> resolved = model::ResolveDevice(cfg.learner.device, "learner.device");
  if (!resolved.ok()) return resolved.status();
  const torch::Device device = *resolved;
  if (device.is_cpu()) {
    // Training through a miscomputing BLAS kernel learns less with no error (issue #21).
    model::KernelCheckOptions check;
    // A training micro-batch's tokens: its sequences times prompt and completion.
    const int64_t seqs = cfg.learner.micro_batch_size > 0
                             ? cfg.learner.micro_batch_size
                             : cfg.learner.prompts_per_step * cfg.actor.group_size / std::max<int64_t>(1, cfg.learner.minibatches);
    check.train_rows = std::max<int64_t>(1, seqs) * (cfg.actor.max_new_tokens + 64);
    if (absl::Status s = model::CheckFloat32Kernels((*policy)->model->config(), check); !s.ok()) return s;
  }
  if (device.is_cuda()) {
    if (cfg.learner.world_size > 1 && !HaveNccl()) {
      return absl::FailedPreconditionError("learner.world_size > 1 on CUDA needs NCCL, which this build lacks");
    }
    (*policy)->model->to(device);
    if (reference) reference->model->to(device);
  }
  auto learner = std::unique_ptr<Learner>(new Learner(cfg, std::move(*policy), std::move(reference), std::move(registry)));
  // Rank 0 resumes; the other ranks receive its state when the group forms.
  if (cfg.learner.rank == 0) {
    if (absl::Status s = learner->Resume(); !s.ok()) return s;
    if (cfg.learner.eval_every > 0) {
      absl::StatusOr<std::unique_ptr<Validator>> v = Validator::Create(cfg);
      if (!v.ok()) return v.status();
      learner->validator_ = std::move(*v);
    }
  }
  return learner;
}

std::string Learner::CheckpointRoot() const {
  if (!cfg_.learner.checkpoint_dir.empty()) return cfg_.learner.checkpoint_dir;
  if (cfg_.run.dir.empty()) return "";
  return (std::filesystem::path(cfg_.run.dir) / "checkpoints").string();
}

// Fault injection for tests: GRPO_TEST_KILL_AT="point:step" makes the learner SIGKILL
// itself at that point of that step, once per run directory (a marker file there keeps
// the restarted learner from dying again). Points: trained (before anything is written),
// metrics (line written, no checkpoint), checkpoint (written, not published), published
// (leases not completed), completed (between steps).
void Learner::MaybeKillSelf(const char* point, uint64_t step) const {
  static const char* spec = std::getenv("GRPO_TEST_KILL_AT");
  if (spec == nullptr || cfg_.run.dir.empty() || absl::StrCat(point, ":", step) != spec) return;
  const std::filesystem::path marker = std::filesystem::path(cfg_.run.dir) / absl::StrCat("killed-at-", point, "-", step);
  if (std::filesystem::exists(marker)) return;
  std::ofstream(marker.string()) << "learner killed itself here\n";
  spdlog::warn("GRPO_TEST_KILL_AT={}: killing the learner", spec);
  ::raise(SIGKILL);
}

absl::Status Learner::Resume() {
  const std::string root = CheckpointRoot();
  if (root.empty()) return absl::OkStatus();
  std::optional<std::string> dir = NewestValidCheckpoint(root);
  if (!dir) {
    KeepMetricsUpTo(-1);  // an earlier start that died before its first checkpoint
    return absl::OkStatus();
  }
  CheckpointInputs into{policy_->model, reference_ ? reference_->model : model::Transformer(nullptr),
                        optimizer_.get(), cfg_.model.path};
  absl::StatusOr<CheckpointState> st = LoadCheckpoint(*dir, into);
  if (!st.ok()) return st.status();
  MoveOptimizerState(*optimizer_, torch::Device(cfg_.learner.device));
  resumed_step_ = last_step_ = last_checkpoint_step_ = st->step;
  resumed_version_ = last_version_ = st->version;
  trained_ = st->seen;
  resumed_leases_ = st->recent;
  admission_.RestoreSeen(std::move(st->seen));
  spdlog::info("resumed from {} (step {}, version {})", *dir, st->step, st->version);
  KeepMetricsUpTo(static_cast<int64_t>(st->step));
  return absl::OkStatus();
}

void Learner::KeepMetricsUpTo(int64_t step) {
  if (metrics_path_.empty() || !std::filesystem::exists(metrics_path_)) return;
  absl::StatusOr<std::string> text = ReadFile(metrics_path_);
  if (!text.ok()) {
    spdlog::error("reading {}: {}", metrics_path_, text.status().message());
    return;
  }
  std::string kept;
  int64_t dropped = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    // A line cut short by a kill is not JSON: dropped too.
    if (j.is_object() && j.value("step", int64_t{-1}) <= step && j.contains("step")) {
      absl::StrAppend(&kept, line, "\n");
    } else {
      ++dropped;
    }
  }
  if (dropped == 0) return;
  if (absl::Status w = WriteFileAtomic(metrics_path_, kept); !w.ok()) {
    spdlog::error("rewriting {}: {}", metrics_path_, w.message());
    return;
  }
  if (metrics_file_) std::fclose(metrics_file_);
  metrics_file_ = std::fopen(metrics_path_.c_str(), "a");
  spdlog::info("{}: dropped {} line(s) after step {}, which this start trains again", metrics_path_, dropped,
               std::max<int64_t>(step, 0));
}

absl::Status Learner::Checkpoint(uint64_t step, int64_t version) {
  const std::string root = CheckpointRoot();
  if (root.empty()) return absl::OkStatus();
  CheckpointState state;
  state.step = step;
  state.version = version;
  // Trained units only: a group waiting in the buffer is lost with a crash, and its
  // prompt must be accepted again when its lease is re-issued.
  state.seen = trained_;
  state.recent = recent_leases_;
  CheckpointInputs in{policy_->model, reference_ ? reference_->model : model::Transformer(nullptr), optimizer_.get(),
                      cfg_.model.path};
  absl::Status s = WriteCheckpoint(root, state, in, static_cast<int>(cfg_.learner.keep_checkpoints));
  if (s.ok()) {
    last_checkpoint_step_ = step;
    recent_leases_.clear();
  }
  return s;
}

Learner::Learner(const RunConfig& cfg, std::unique_ptr<Policy> policy, std::unique_ptr<Policy> reference,
                 std::shared_ptr<prometheus::Registry> registry)
    : cfg_(cfg),
      policy_(std::move(policy)),
      reference_(std::move(reference)),
      admission_(AdmissionLimits{cfg.learner.prompts_per_step, cfg.learner.max_staleness, cfg.learner.buffer_groups,
                                 cfg.learner.dynamic_sampling, policy_->model->config().vocab_size,
                                 policy_->max_positions()}),
      registry_(std::move(registry)) {
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      policy_->model->parameters(), torch::optim::AdamWOptions(cfg.learner.lr).weight_decay(cfg.learner.weight_decay));
  coordinator_channel_ = rpc::MakeChannel(cfg.endpoints.coordinator);
  coordinator_ = v1::Coordinator::NewStub(coordinator_channel_);
  std::string path = cfg.learner.metrics_path;
  if (path.empty() && !cfg.run.dir.empty()) path = (std::filesystem::path(cfg.run.dir) / "metrics.jsonl").string();
  metrics_path_ = path;
  if (!path.empty()) {
    // A fresh run directory (a container's empty volume) exists only once something is
    // written there; the first checkpoint comes too late for the metrics.
    std::error_code ec;
    if (std::filesystem::path parent = std::filesystem::path(path).parent_path(); !parent.empty())
      std::filesystem::create_directories(parent, ec);
    metrics_file_ = std::fopen(path.c_str(), "a");
    if (!metrics_file_) spdlog::error("cannot open {} for appending: {}", path, std::strerror(errno));
  }
  auto& r = *registry_;
  auto gauge = [&](const char* name, const char* help) { return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({}); };
  step_gauge_ = gauge("grpo_learner_step", "GRPO steps done");
  buffer_gauge_ = gauge("grpo_learner_buffered_groups", "Groups waiting for a step");
  tokens_trained_ = &prometheus::BuildCounter().Name("grpo_learner_tokens_trained_total").Help("Completion tokens trained on").Register(r).Add({});
  stale_in_buffer_ = &prometheus::BuildCounter()
                          .Name("grpo_learner_stale_in_buffer_total")
                          .Help("Buffered groups dropped at batch time for exceeding max_staleness (re-queued)")
                          .Register(r)
                          .Add({});
  hash_mismatches_ = &prometheus::BuildCounter()
                          .Name("grpo_learner_weight_hash_mismatches_total")
                          .Help("Groups refused because their weights' CRC-32 is not the one published under the version they claim")
                          .Register(r)
                          .Add({});
  unverified_groups_ = &prometheus::BuildCounter()
                            .Name("grpo_learner_unverified_groups_total")
                            .Help("Groups whose weights could not be checked (no CRC sent, or a version this learner did not publish)")
                            .Register(r)
                            .Add({});
  groups_family_ = &prometheus::BuildCounter().Name("grpo_learner_groups_total").Help("Groups received, by outcome").Register(r);
  for (const auto& [field, help] : kStepGauges) {
    // Prometheus spells units out: the jsonl's tokens_per_s is a _per_second gauge.
    const std::string name = field == "tokens_per_s" ? "tokens_per_second" : field;
    step_gauges_[field] = gauge(absl::StrCat("grpo_learner_", name).c_str(), help);
  }
  const prometheus::Histogram::BucketBoundaries seconds{0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300};
  step_seconds_ = &prometheus::BuildHistogram()
                       .Name("grpo_learner_step_seconds")
                       .Help("Time of one GRPO step's training (forward, backward, optimizer, collectives)")
                       .Register(r)
                       .Add({}, seconds);
  publish_seconds_ = &prometheus::BuildHistogram()
                          .Name("grpo_learner_weight_publish_seconds")
                          .Help("Time to stream one weight version to the coordinator until it accepted it "
                                "(off the trainer thread, except the starting weights)")
                          .Register(r)
                          .Add({}, seconds);
  serialize_seconds_ = &prometheus::BuildHistogram()
                            .Name("grpo_learner_weight_serialize_seconds")
                            .Help("Trainer thread's time to serialize one weight version (its share of publishing)")
                            .Register(r)
                            .Add({}, seconds);
  publish_wait_seconds_ = &prometheus::BuildHistogram()
                               .Name("grpo_learner_weight_publish_wait_seconds")
                               .Help("Time the trainer thread waited for the publisher (at the end of the run)")
                               .Register(r)
                               .Add({}, seconds);
  publish_superseded_ = &prometheus::BuildCounter()
                             .Name("grpo_learner_weight_versions_superseded_total")
                             .Help("Versions not sent because a newer one was ready before their turn")
                             .Register(r)
                             .Add({});
  auto& by_kind = prometheus::BuildCounter()
                      .Name("grpo_learner_weight_versions_published_total")
                      .Help("Weight versions published, by kind: full bytes, or a patch against the last one sent")
                      .Register(r);
  published_full_ = &by_kind.Add({{"kind", "full"}});
  published_delta_ = &by_kind.Add({{"kind", "delta"}});
  auto& bytes_by_kind = prometheus::BuildCounter()
                            .Name("grpo_learner_weight_bytes_published_total")
                            .Help("Bytes of the weight versions published, by kind (a delta: its patch)")
                            .Register(r);
  published_bytes_full_ = &bytes_by_kind.Add({{"kind", "full"}});
  published_bytes_delta_ = &bytes_by_kind.Add({{"kind", "delta"}});
  patches_refused_ = &prometheus::BuildCounter()
                          .Name("grpo_learner_weight_patches_refused_total")
                          .Help("Patches the coordinator refused (the full version was sent instead)")
                          .Register(r)
                          .Add({});
  publish_overlapped_ = &prometheus::BuildCounter()
                             .Name("grpo_learner_weight_publish_overlapped_total")
                             .Help("Versions whose publishing overlapped training (the trainer went on meanwhile)")
                             .Register(r)
                             .Add({});
}

// metrics.jsonl fields also exported as gauges, with their help.
const std::vector<std::pair<std::string, const char*>> Learner::kStepGauges = {
    {"reward_mean", "Mean reward of the last step's batch"},
    {"accuracy", "Mean accuracy component of the last step's batch"},
    {"loss", "GRPO loss of the last step"},
    {"kl", "Mean k3 KL to the reference policy of the last step"},
    {"reward_std", "Standard deviation of the rewards in the last step's batch"},
    {"format", "Mean format component of the last step's batch"},
    {"pg_loss", "Policy-gradient part of the last step's loss"},
    {"clip_fraction", "Share of tokens whose ratio was clipped in the last step"},
    {"entropy", "Mean token entropy of the policy on the last step's completions"},
    {"grad_norm", "Gradient norm before clipping in the last step"},
    {"lr", "Learning rate of the last step"},
    {"completion_len_mean", "Mean completion length in tokens in the last step's batch"},
    {"completion_len_max", "Longest completion in tokens in the last step's batch"},
    {"truncated_share", "Share of completions cut at actor.max_new_tokens in the last step's batch"},
    {"tokens_per_s", "Completion tokens trained per second of wall time over the last step"},
    {"staleness_mean", "Mean versions between a group's sampling policy and the learner's, last step"},
    {"staleness_max", "Most versions between a group's sampling policy and the learner's, last step"},
    {"eval_pass1", "Held-out pass@1 at the last evaluation"},
    {"eval_majk", "Held-out maj@k at the last evaluation"},
    {"eval_len", "Held-out mean response length at the last evaluation"},
};

Learner::~Learner() {
  Stop();
  if (metrics_file_) std::fclose(metrics_file_);
}

absl::Status Learner::Start(ShutdownSignal& shutdown) {
  shutdown_ = &shutdown;
  if (leader()) {
    WeightPublisher::Callbacks cb;
    cb.send = [this](const WeightPublisher::Blob& blob) { return SendVersion(blob); };
    cb.on_published = [this](const rpc::WeightHeader& sent) {
      admission_.SetVersion(static_cast<int64_t>(sent.version));  // groups are admitted against what actors can have
      publish_overlapped_->Increment();
      (sent.delta ? published_delta_ : published_full_)->Increment();
      (sent.delta ? published_bytes_delta_ : published_bytes_full_)->Increment(static_cast<double>(sent.total_size));
      if (sent.delta) {
        spdlog::debug("version {} published as a patch of {} bytes ({:.2f}% of {})", sent.version, sent.total_size,
                      100.0 * static_cast<double>(sent.total_size) / static_cast<double>(sent.result_size),
                      sent.result_size);
      }
    };
    cb.on_patch_refused = [this](const absl::Status& why) {
      patches_refused_->Increment();
      spdlog::info("the coordinator refused a patch ({}); sending the full version", why.message());
    };
    cb.on_superseded = [this](uint64_t version) {
      publish_superseded_->Increment();
      spdlog::debug("version {} superseded by a newer one before it was sent", version);
    };
    cb.on_failed = [this](const absl::Status& s) {
      if (Stopping()) return;
      spdlog::error("publishing a weight version: {}; stopping", s.message());
      shutdown_->Fail();
    };
    WeightPublisher::Options po;
    po.full_every = cfg_.learner.delta_full_every;
    publisher_ = std::make_unique<WeightPublisher>(std::move(cb), po);
  }
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
  admission_.Stop();
  if (trainer_.joinable()) trainer_.join();  // a trainer waiting on the publisher: its send was cancelled above
  if (publisher_) publisher_->Stop();
  // On SIGTERM: keep the steps done since the last checkpoint (rank 0 writes them).
  // Not after a step that failed half-way: its optimizer steps changed the weights
  // without the step counting, and a checkpoint would apply them twice on resume.
  if (mid_step_) {
    spdlog::warn("no checkpoint on stop: step {} failed part-way; resume from step {}", last_step_ + 1,
                 last_checkpoint_step_);
  } else if (leader() && last_step_ > last_checkpoint_step_) {
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
  if (!leader()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("learner rank ", cfg_.learner.rank, " takes no groups; send them to rank 0"));
  }
  v1::ScoredGroup g;
  while (stream->Read(&g)) {
    // The weights the group claims: refused (and its prompt queued again) when their
    // CRC is not the one this learner published under that version.
    std::optional<uint32_t> want;
    {
      absl::MutexLock l(&crc_mu_);
      auto it = published_crc_.find(g.group().policy_version());
      if (it != published_crc_.end()) want = it->second;
    }
    const uint32_t got = g.group().policy_crc32();
    if (want && got != 0 && got != *want) {
      hash_mismatches_->Increment();
      v1::SubmitAck ack;
      ack.set_lease_id(g.group().item().lease_id());
      ack.set_outcome(v1::SubmitAck::REJECTED);
      ack.set_detail(absl::StrFormat("sampled with weights of CRC-32 %08x, but version %d was published with %08x",
                                     got, g.group().policy_version(), *want));
      spdlog::warn("group of lease {} from {}: {}", ack.lease_id(), g.group().actor_id(), ack.detail());
      groups_family_->Add({{"outcome", "WEIGHTS_MISMATCH"}}).Increment();
      CompleteLeases({ack.lease_id()}, /*requeue=*/true);
      if (!stream->Write(ack)) break;
      continue;
    }
    if (!want || got == 0) unverified_groups_->Increment();
    std::optional<AdmitResult> r = admission_.Admit(g, [ctx] { return ctx->IsCancelled(); });
    if (!r) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "learner stopping");
    buffer_gauge_->Set(static_cast<double>(admission_.size()));
    const v1::SubmitAck& ack = r->ack;
    groups_family_->Add({{"outcome", v1::SubmitAck::Outcome_Name(ack.outcome())}}).Increment();
    if (ack.outcome() == v1::SubmitAck::REJECTED) {
      // Rate-limited: a run whose every group is malformed rejects hundreds a second.
      const int64_t n = rejected_logged_.fetch_add(1);
      if (n < 20 || n % 1000 == 0) spdlog::warn("rejected group of lease {}: {}", ack.lease_id(), ack.detail());
      // Nothing but malformed groups for this long means the run cannot train (every
      // prompt longer than the model's context, a broken reward service): stop with a
      // configuration error rather than cycle the dataset's epochs for ever.
      if (++rejected_in_a_row_ == kMaxRejectedInARow) {
        spdlog::error("the last {} groups were all rejected as malformed, the last with \"{}\"; nothing in this run "
                      "can train, stopping. Check the actors' logs (prompts longer than the model's context?) and "
                      "the reward service.",
                      kMaxRejectedInARow, ack.detail());
        shutdown_->Fail(2);
      }
    } else {
      rejected_in_a_row_ = 0;
    }
    if (r->requeue || r->complete) CompleteLeases({ack.lease_id()}, r->requeue);
    if (!stream->Write(ack)) break;
  }
  return grpc::Status::OK;
}

double Learner::LearningRate(uint64_t step) const {
  return ScheduledLearningRate(cfg_.learner, step, cfg_.learner.max_steps);
}

void Learner::CompleteLeases(const std::vector<uint64_t>& ids, bool requeue, uint64_t trained_step,
                             const std::vector<std::pair<std::string, uint32_t>>& units) {
  v1::CompleteWorkRequest req;
  for (uint64_t id : ids) req.add_lease_ids(id);
  req.set_requeue(requeue);
  req.set_trained_step(trained_step);
  // Only the trainer thread passes a trained step (and reads its step counters here).
  // Without checkpoints a restart starts over: nothing trained is ever given back.
  if (trained_step > 0) req.set_durable_step(CheckpointRoot().empty() ? trained_step : last_checkpoint_step_);
  if (units.size() == ids.size()) {
    for (const auto& [prompt, epoch] : units) {
      v1::WorkUnit* u = req.add_units();
      u->set_prompt_id(prompt);
      u->set_epoch(epoch);
    }
  }
  absl::MutexLock l(&complete_mu_);
  unsent_completions_.push_back(std::move(req));
  FlushCompletionsLocked();
}

// Sends the completions not yet acknowledged, oldest first. One that still fails after
// its retries (the coordinator is down longer than they last) stays queued and goes out
// with the next call, so a trained prompt is never left outstanding at the coordinator.
bool Learner::FlushCompletionsLocked() {
  while (!unsent_completions_.empty()) {
    const v1::CompleteWorkRequest& req = unsent_completions_.front();
    v1::CompleteWorkResponse resp;
    grpc::Status s = rpc::CallWithRetry(
        [&](grpc::ClientContext* ctx) { return coordinator_->CompleteWork(ctx, req, &resp); }, {},
        [this] { return Stopping(); });
    if (!s.ok()) {
      spdlog::warn("completing {} lease(s): {}; {} request(s) kept to send again", req.lease_ids_size(),
                   s.error_message(), unsent_completions_.size());
      return false;
    }
    unsent_completions_.pop_front();
  }
  return true;
}

namespace {
// Versions go out in the actors' dtype (actor.dtype), whatever the learner trains in:
// its master weights stay fp32; the CRC covers the bytes sent.
torch::ScalarType PublishedDtype(const RunConfig& cfg) {
  return cfg.actor.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
}
}  // namespace

std::shared_ptr<const rpc::WeightBlob> Learner::MakeVersion(uint64_t version, uint64_t step) {
  const absl::Time t0 = absl::Now();
  // The CRC is computed here once; every later hop checks it as the bytes arrive.
  std::shared_ptr<const rpc::WeightBlob> blob =
      rpc::WeightBlob::FromBytes(WeightsToBlob(policy_->model, version, PublishedDtype(cfg_)), version, step);
  {
    absl::MutexLock l(&crc_mu_);
    published_crc_[version] = blob->header().crc32;
    while (published_crc_.size() > 256) published_crc_.erase(published_crc_.begin());
  }
  serialize_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - t0));
  return blob;
}

absl::Status Learner::Publish(uint64_t version, uint64_t step) {
  std::shared_ptr<const rpc::WeightBlob> blob = MakeVersion(version, step);
  return SendVersion(blob);
}

absl::Status Learner::SendVersion(const std::shared_ptr<const rpc::WeightBlob>& blob) {
  const uint64_t version = blob->header().version;
  const absl::Time t0 = absl::Now();
  absl::Duration backoff = absl::Milliseconds(100);
  for (int attempt = 1;; ++attempt) {
    auto ctx = std::shared_ptr<grpc::ClientContext>(rpc::ContextWithDeadline(absl::Seconds(120)));
    ctx->set_wait_for_ready(true);
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return absl::CancelledError("learner stopping");
      publish_ctx_ = ctx;  // Stop() cancels it
    }
    absl::StatusOr<v1::PublishWeightsResponse> published = rpc::PublishWeightStream(coordinator_channel_, ctx.get(), blob);
    const grpc::Status s = published.ok() ? grpc::Status::OK : rpc::ToGrpc(published.status());
    {
      absl::MutexLock l(&mu_);
      publish_ctx_.reset();
    }
    if (s.ok()) {
      publish_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - t0));
      return absl::OkStatus();
    }
    {
      absl::MutexLock l(&mu_);
      if (stopping_ || attempt >= 10 || !rpc::IsRetryable(s)) return rpc::ToAbsl(s);
    }
    spdlog::warn("publishing version {} (attempt {}): {}; retrying", version, attempt, s.error_message());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

Learner::BatchStats Learner::ComputeBatchStats(const std::vector<v1::ScoredGroup>& batch, int64_t version) {
  BatchStats st;
  std::vector<double> rewards;
  double acc_sum = 0, fmt_sum = 0, len_sum = 0, truncated = 0;
  st.version_min = UINT64_MAX;
  const int64_t now = version;  // what the draw checked against (a publish may land since)
  for (const auto& g : batch) {
    const auto& r = g.group();
    st.version_min = std::min<uint64_t>(st.version_min, r.policy_version());
    st.version_max = std::max<uint64_t>(st.version_max, r.policy_version());
    st.staleness[std::max<int64_t>(0, now - static_cast<int64_t>(r.policy_version()))]++;
    for (int i = 0; i < r.completions_size(); ++i) {
      const auto& c = r.completions(i);
      const auto& s = g.scores(i);
      rewards.push_back(s.reward());
      const auto& comp = s.components();
      for (const auto& [name, value] : comp) st.components[name] += value;
      acc_sum += comp.count("accuracy") ? comp.at("accuracy") : 0.0;
      fmt_sum += comp.count("format") ? comp.at("format") : 0.0;
      len_sum += c.token_ids_size();
      st.completion_len_max = std::max<int64_t>(st.completion_len_max, c.token_ids_size());
      truncated += c.truncated() ? 1 : 0;
      st.tokens += c.token_ids_size();
    }
  }
  const double n = std::max<double>(1.0, static_cast<double>(rewards.size()));
  double mean = 0, var = 0;
  for (double r : rewards) mean += r / n;
  for (double r : rewards) var += (r - mean) * (r - mean);
  st.reward_mean = mean;
  st.reward_std = rewards.size() > 1 ? std::sqrt(var / static_cast<double>(rewards.size() - 1)) : 0.0;
  for (auto& [name, sum] : st.components) sum /= n;
  st.accuracy = acc_sum / n;
  st.format = fmt_sum / n;
  st.completion_len_mean = len_sum / n;
  st.truncated_share = truncated / n;
  return st;
}

std::vector<TrainGroup> Learner::Shard(const std::vector<v1::ScoredGroup>& batch) const {
  const size_t R = static_cast<size_t>(cfg_.learner.world_size), r = static_cast<size_t>(cfg_.learner.rank);
  std::vector<TrainGroup> out;
  for (size_t i = batch.size() * r / R; i < batch.size() * (r + 1) / R; ++i) out.push_back(ToTrainGroup(batch[i]));
  return out;
}

std::vector<v1::ScoredGroup> Learner::DrawBatch(absl::Duration wait, int64_t* stale, int64_t* version) {
  AdmissionBuffer::Draw d = admission_.DrawBatch(wait);
  *version = d.version;
  buffer_gauge_->Set(static_cast<double>(admission_.size()));
  std::vector<uint64_t>& requeue = d.stale_leases;
  std::vector<v1::ScoredGroup>& batch = d.batch;
  if (!requeue.empty()) {
    *stale += static_cast<int64_t>(requeue.size());
    stale_in_buffer_->Increment(static_cast<double>(requeue.size()));
    spdlog::info("dropped {} group(s) that went over max_staleness = {} while buffered; re-queued",
                 requeue.size(), cfg_.learner.max_staleness);
    CompleteLeases(requeue, /*requeue=*/true);
  }
  return batch;
}

double Learner::SetLearningRate(uint64_t step) {
  const double lr = LearningRate(step);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
  return lr;
}

void Learner::MaybeRefreshReference(uint64_t step) {
  if (!reference_ || cfg_.learner.ref_refresh_steps <= 0 || step % static_cast<uint64_t>(cfg_.learner.ref_refresh_steps) != 0) {
    return;
  }
  // R1-Zero's reference reset: the KL term now pulls toward the current policy.
  torch::NoGradGuard ng;
  auto src = policy_->model->named_parameters();
  for (auto& p : reference_->model->named_parameters()) p.value().copy_(src[p.key()]);
  spdlog::info("step {}: reference policy refreshed to the current weights", step);
}

nlohmann::json Learner::Validate(uint64_t step) {
  if (!validator_) return nlohmann::json::object();
  absl::StatusOr<EvalOutput> out = validator_->Run(*policy_);
  if (!out.ok()) {
    spdlog::error("validation after step {}: {}", step, out.status().message());
    return nlohmann::json::object();
  }
  const eval::EvalMetrics& m = out->report.overall;
  spdlog::info("validation after step {}: pass@1 {:.3f} maj@{} {:.3f} format {:.3f} length {:.1f} ({} tasks, {:.1f} s)",
               step, m.pass1, m.k, m.majk, m.format, m.response_len_mean, m.n, out->seconds);
  return Validator::MetricsFields(*out);
}

void Learner::WriteMetricsLine(const std::string& line) {
  if (!metrics_file_) return;
  std::fputs(line.c_str(), metrics_file_);
  std::fputc('\n', metrics_file_);
  std::fflush(metrics_file_);
}

namespace {

// Rank 0 tells the other ranks what comes next with a broadcast header.
enum Message : int64_t { kIdle = 0, kBatch = 1, kStop = 2 };

// Groups, each as an 8-byte length and its serialized bytes.
std::string SerializeBatch(const std::vector<v1::ScoredGroup>& batch) {
  std::string out;
  for (const auto& g : batch) {
    std::string b = g.SerializeAsString();
    uint64_t n = b.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof(n));
    out += b;
  }
  return out;
}

absl::StatusOr<std::vector<v1::ScoredGroup>> ParseBatch(const std::string& data) {
  std::vector<v1::ScoredGroup> out;
  size_t off = 0;
  while (off < data.size()) {
    uint64_t n = 0;
    if (data.size() - off < sizeof(n)) return absl::DataLossError("batch from rank 0: truncated length");
    std::memcpy(&n, data.data() + off, sizeof(n));
    off += sizeof(n);
    if (data.size() - off < n) return absl::DataLossError("batch from rank 0: truncated group");
    if (!out.emplace_back().ParseFromArray(data.data() + off, static_cast<int>(n))) {
      return absl::DataLossError(absl::StrCat("batch from rank 0: group ", out.size() - 1, " does not parse"));
    }
    off += n;
  }
  return out;
}

}  // namespace

absl::Status Learner::JoinGroup() {
  const int R = static_cast<int>(cfg_.learner.world_size), r = static_cast<int>(cfg_.learner.rank);
  const auto timeout = std::chrono::seconds(cfg_.learner.dist_timeout_s);
  std::string addr = cfg_.learner.dist_address;
  auto split = [](const std::string& a, std::string* host, int* port) { return SplitHostPort(a, host, port, true); };
  std::string host;
  int port = 0;
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    c10d::TCPStoreOptions so;
    so.numWorkers = R;
    so.waitWorkers = false;
    so.timeout = timeout;
    if (!addr.empty()) {
      // A fixed address (a StatefulSet's rank-0 DNS name, a cluster's head node).
      if (!split(addr, &host, &port) || port == 0) {
        return absl::InvalidArgumentError(absl::StrCat("learner.dist_address ", addr, " is not host:port"));
      }
      spdlog::info("rank {} of {}: joining the learner group at {}", r, R, addr);
      so.port = static_cast<uint16_t>(port);
      so.isServer = r == 0;
      store = c10::make_intrusive<c10d::TCPStore>(host, so);
    } else if (r == 0) {
      // Rank 0 opens its store on a free port and announces it through the coordinator.
      host = cfg_.learner.serve.host;
      if (host.empty() || host == "0.0.0.0" || host == "::") {
        const char* pod_ip = std::getenv("POD_IP");
        char name[256] = {};
        host = pod_ip && *pod_ip ? pod_ip : (::gethostname(name, sizeof(name) - 1) == 0 ? name : "127.0.0.1");
      }
      so.port = 0;
      so.isServer = true;
      store = c10::make_intrusive<c10d::TCPStore>(host, so);
      addr = absl::StrCat(host, ":", store->getPort());
      v1::LearnerGroupRequest req;
      req.set_rank(0);
      req.set_world_size(R);
      req.set_store_address(addr);
      v1::LearnerGroupResponse resp;
      grpc::Status s = rpc::CallWithRetry(
          [&](grpc::ClientContext* ctx) { return coordinator_->LearnerGroup(ctx, req, &resp); }, {},
          [this] { return Stopping(); });
      if (!s.ok()) return absl::UnavailableError(absl::StrCat("announcing the learner group: ", s.error_message()));
      spdlog::info("rank 0 of {}: learner group store at {} (announced to the coordinator)", R, addr);
    } else {
      // Ask the coordinator until rank 0 has announced its store, and connect. A store
      // that cannot be reached is reported back (a restarted rank 0 will announce a new
      // one) and the coordinator asked again.
      const absl::Time deadline = absl::Now() + absl::Seconds(cfg_.learner.dist_timeout_s);
      v1::LearnerGroupRequest req;
      req.set_rank(static_cast<uint32_t>(r));
      req.set_world_size(static_cast<uint32_t>(R));
      while (!store) {
        v1::LearnerGroupResponse resp;
        grpc::Status s = rpc::CallWithRetry(
            [&](grpc::ClientContext* ctx) { return coordinator_->LearnerGroup(ctx, req, &resp); }, {},
            [this] { return Stopping(); });
        if (!s.ok()) return absl::UnavailableError(absl::StrCat("asking for the learner group: ", s.error_message()));
        if (Stopping()) return absl::CancelledError("stopping");
        if (absl::Now() > deadline) {
          return absl::DeadlineExceededError(absl::StrCat("found no reachable learner group store within ",
                                                          cfg_.learner.dist_timeout_s, " s"));
        }
        req.clear_unreachable_address();
        if (resp.store_address().empty()) {
          absl::SleepFor(absl::Milliseconds(250));
          continue;
        }
        addr = resp.store_address();
        if (!split(addr, &host, &port) || port == 0) {
          return absl::InvalidArgumentError(absl::StrCat("the coordinator handed out ", addr, ", not host:port"));
        }
        spdlog::info("rank {} of {}: joining the learner group at {} (from the coordinator)", r, R, addr);
        so.port = static_cast<uint16_t>(port);
        so.isServer = false;
        so.timeout = std::chrono::seconds(10);
        try {
          store = c10::make_intrusive<c10d::TCPStore>(host, so);
          store->setTimeout(timeout);
        } catch (const std::exception& e) {
          spdlog::warn("rank {}: the store at {} is unreachable ({}); asking again", r, addr, e.what());
          req.set_unreachable_address(addr);
        }
      }
    }
    group_ = MakeGlooGroup(store, host, r, R, timeout);
    const torch::Device device(cfg_.learner.device);
    if (device.is_cuda()) {
      // Weights and gradients live on the GPU: they go over NCCL; control messages and
      // statistics stay on the Gloo group.
      absl::StatusOr<std::unique_ptr<DeviceCollectives>> nccl =
          MakeNcclCollectives(*store, r, R, device.has_index() ? device.index() : 0,
                              std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
      if (!nccl.ok()) return nccl.status();
      device_comm_ = std::move(*nccl);
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", r, " could not join the learner group at ", addr, ": ", e.what()));
  }
  spdlog::info("rank {} of {}: learner group formed", r, R);
  return absl::OkStatus();
}

void Learner::TrainLoop() {
  try {
    if (cfg_.learner.world_size > 1) {
      if (absl::Status s = JoinGroup(); !s.ok()) {
        spdlog::error("{}", s.message());
        shutdown_->Fail();
        return;
      }
    }
    grpo_ = std::make_unique<GrpoTrainer>(policy_->model, reference_ ? reference_->model : model::Transformer(nullptr),
                                             optimizer_.get(), TrainerOptionsFromConfig(cfg_), policy_->pad_id, group_);
    if (device_comm_) grpo_->SetDeviceCollectives(std::move(device_comm_));
    if (group_) {
      // Every rank starts from rank 0's state (its checkpoint, if it resumed): step,
      // weights, reference and optimizer state. Other ranks need no checkpoint files.
      Rank0State st = ShareRank0State(*group_, *grpo_, *optimizer_,
                                      {static_cast<int64_t>(resumed_step_), resumed_version_},
                                      torch::Device(cfg_.learner.device));
      if (!leader()) {
        resumed_step_ = last_step_ = static_cast<uint64_t>(st.step);
        if (st.step > 0) spdlog::info("rank {}: took rank 0's state at step {}", cfg_.learner.rank, st.step);
      }
    }
    if (leader()) {
      LeaderLoop();
      if (group_) BroadcastHeader(*group_, {kStop, 0, 0});
    } else {
      FollowerLoop();
    }
  } catch (const std::exception& e) {
    // Collectives throw when a rank dies or the group times out.
    spdlog::error("rank {}: training failed: {}", cfg_.learner.rank, e.what());
    shutdown_->Fail();
  }
}

void Learner::FollowerLoop() {
  for (;;) {
    auto h = BroadcastHeader(*group_, {0, 0, 0});
    if (h[0] == kStop) {
      spdlog::info("rank 0 ended training; stopping");
      shutdown_->Trigger();
      return;
    }
    if (Stopping()) return;  // rank 0 fails at its next collective; the group is gone
    if (h[0] == kIdle) continue;
    const uint64_t step = static_cast<uint64_t>(h[1]);
    absl::StatusOr<std::vector<v1::ScoredGroup>> batch = ParseBatch(BroadcastBytes(*group_, "", h[2]));
    if (!batch.ok()) {
      spdlog::error("{}", batch.status().message());
      shutdown_->Fail();
      return;
    }
    SetLearningRate(step);
    mid_step_ = true;
    TrainStats ts = grpo_->Step(GroupPtrs(Shard(*batch)), step);
    MaybeRefreshReference(step);
    last_step_ = step;
    mid_step_ = false;
    spdlog::info("rank {} step {}: {} group(s), loss {:.4f}, grad norm {:.3f}", cfg_.learner.rank, step,
                 Shard(*batch).size(), ts.loss, ts.grad_norm);
  }
}

// The run's end: the last version and every completion are in before the coordinator
// is told the run is finished.
void Learner::FinishAtMaxSteps() {
  const absl::Time wait_start = absl::Now();
  absl::Status pub = publisher_->WaitIdle();
  publish_wait_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - wait_start));
  if (!pub.ok()) {
    if (Stopping()) return;
    spdlog::error("publishing the last version: {}; stopping", pub.message());
    shutdown_->Fail();
    return;
  }
  for (bool sent = false; !sent && !Stopping();) {
    absl::MutexLock l(&complete_mu_);
    sent = FlushCompletionsLocked();
  }
  v1::FinishRunRequest req;
  req.set_reason(absl::StrCat("learner reached max_steps = ", cfg_.learner.max_steps));
  v1::FinishRunResponse resp;
  rpc::CallWithRetry([&](grpc::ClientContext* ctx) { return coordinator_->FinishRun(ctx, req, &resp); }, {},
                     [this] { return Stopping(); });
  spdlog::info("reached max_steps = {}; finishing", cfg_.learner.max_steps);
  shutdown_->Trigger();
}

void Learner::LeaderLoop() {
  // Prompts trained by steps after the checkpoint this learner starts from (or by a
  // life that died before its first checkpoint) were lost with their updates: the
  // coordinator queues them again. Before any step of this life completes leases.
  {
    v1::ReopenAfterRequest req;
    req.set_step(last_checkpoint_step_);
    v1::ReopenAfterResponse resp;
    grpc::Status rs = rpc::CallWithRetry(
        [&](grpc::ClientContext* ctx) { return coordinator_->ReopenAfter(ctx, req, &resp); }, {},
        [this] { return Stopping(); });
    if (!rs.ok()) {
      if (Stopping()) return;
      spdlog::error("asking the coordinator for the prompts lost since step {}: {}", last_checkpoint_step_,
                    rs.error_message());
      shutdown_->Fail();
      return;
    }
    if (resp.reopened() > 0) {
      spdlog::info("{} prompt(s) trained after step {} will be sampled again", resp.reopened(), last_checkpoint_step_);
    }
    // The checkpoint's last steps may have died before completing their leases.
    if (!resumed_leases_.empty()) {
      std::vector<uint64_t> ids;
      std::vector<std::pair<std::string, uint32_t>> units;
      for (const auto& l : resumed_leases_) {
        ids.push_back(l.id);
        units.emplace_back(l.prompt_id, l.epoch);
      }
      CompleteLeases(ids, /*requeue=*/false, last_checkpoint_step_, units);
      resumed_leases_.clear();
    }
  }
  // The starting weights (version 0, or the resumed checkpoint's version), so actors
  // can start sampling. A resumed learner may find the coordinator already past its
  // checkpoint (it had published later steps before dying): it then continues with
  // versions above the coordinator's, so no version number is ever reused.
  // The same holds for a learner that died before its first checkpoint (it starts
  // from step 0 again). The checkpoint's own version, when it is the coordinator's
  // newest, is published again as it is (the same bytes: checkpoints precede publishing).
  int64_t v0 = resumed_version_;
  {
    v1::RunStatusRequest req;
    v1::RunStatusResponse resp;
    grpc::Status rs = rpc::CallWithRetry(
        [&](grpc::ClientContext* ctx) { return coordinator_->GetRunStatus(ctx, req, &resp); }, {},
        [this] { return Stopping(); });
    if (rs.ok() && resp.latest_version() > v0) {
      v0 = resp.latest_version() + 1;
    }
  }
  const int64_t version_offset = v0 - static_cast<int64_t>(resumed_step_);
  absl::Status s = Publish(static_cast<uint64_t>(v0), resumed_step_);
  if (!s.ok()) {
    if (Stopping()) return;
    spdlog::error("publishing the initial weights: {}", s.message());
    shutdown_->Fail();
    return;
  }
  admission_.SetVersion(v0);
  last_version_ = v0;
  spdlog::info("published starting weights (version {}, step {}); waiting for groups", v0, resumed_step_);
  if (validator_ && resumed_step_ == 0) {
    // Before the first step: a metrics line of its own, step 0.
    nlohmann::json j = Validate(0);
    j["step"] = 0;
    j["version"] = v0;
    j["time"] = absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone());
    WriteMetricsLine(j.dump());
  }
  auto last = std::chrono::steady_clock::now();
  for (uint64_t step = resumed_step_ + 1;; ++step) {
    // A learner resumed from the checkpoint of the last step (stopped before the run was
    // declared finished) trains no step beyond max_steps.
    if (cfg_.learner.max_steps > 0 && step > static_cast<uint64_t>(cfg_.learner.max_steps)) {
      FinishAtMaxSteps();
      return;
    }
    const int64_t version = static_cast<int64_t>(step) + version_offset;
    int64_t stale = 0, drawn_at = 0;
    std::vector<v1::ScoredGroup> batch;
    const auto wait_start = std::chrono::steady_clock::now();
    while (batch.empty()) {
      // Other ranks wait in a collective meanwhile: a heartbeat every few seconds keeps
      // their timeout for real failures.
      batch = DrawBatch(group_ ? absl::Seconds(5) : absl::InfiniteDuration(), &stale, &drawn_at);
      if (Stopping()) return;
      if (batch.empty() && group_) BroadcastHeader(*group_, {kIdle, 0, 0});
    }
    if (group_) {
      std::string bytes = SerializeBatch(batch);
      const auto n = static_cast<int64_t>(bytes.size());
      BroadcastHeader(*group_, {kBatch, static_cast<int64_t>(step), n});
      BroadcastBytes(*group_, bytes, n);
    }
    auto t0 = std::chrono::steady_clock::now();
    // How long this step waited for scored groups (generation and scoring not keeping up).
    const double wait_s = std::chrono::duration<double>(t0 - wait_start).count();
    const double lr = SetLearningRate(step);
    BatchStats bs = ComputeBatchStats(batch, drawn_at);
    mid_step_ = true;
    TrainStats ts = grpo_->Step(GroupPtrs(Shard(batch)), step);
    MaybeRefreshReference(step);
    last_step_ = step;
    mid_step_ = false;
    last_version_ = version;
    {
      std::vector<UnitKey> units;
      for (const auto& g : batch) units.emplace_back(g.group().item().prompt_id(), g.group().item().epoch());
      trained_.insert(units.begin(), units.end());
      admission_.MarkTrained(units);
      for (const auto& g : batch) {
        recent_leases_.push_back({g.group().item().lease_id(), g.group().item().prompt_id(), g.group().item().epoch()});
      }
    }
    auto now = std::chrono::steady_clock::now();
    double step_s = std::chrono::duration<double>(now - t0).count();
    double wall_s = std::chrono::duration<double>(now - last).count();
    last = now;
    nlohmann::json staleness = nlohmann::json::object();
    for (const auto& [lag, count] : bs.staleness) staleness[std::to_string(lag)] = count;
    // Versions (and bytes) the publisher has sent so far, by kind: full or patch.
    const WeightPublisher::Stats pub = publisher_ ? publisher_->stats() : WeightPublisher::Stats{};
    nlohmann::json j = {
        {"step", step}, {"version", version}, {"reward_mean", bs.reward_mean}, {"reward_std", bs.reward_std},
        {"accuracy", bs.accuracy}, {"format", bs.format}, {"loss", ts.loss}, {"pg_loss", ts.pg_loss},
        {"kl", ts.kl}, {"clip_fraction", ts.clip_fraction}, {"ratio_mean", ts.ratio_mean},
        {"importance_weight_mean", ts.importance_weight_mean},
        {"grad_norm", ts.grad_norm}, {"lr", lr}, {"groups", batch.size()},
        {"completion_tokens", bs.tokens}, {"completion_len_mean", bs.completion_len_mean},
        {"completion_len_max", bs.completion_len_max}, {"entropy", ts.entropy}, {"staleness", staleness},
        {"rewards", bs.components}, {"stale_dropped", stale}, {"optimizer_steps", ts.optimizer_steps}, {"world_size", cfg_.learner.world_size},
        {"truncated_share", bs.truncated_share}, {"tokens_per_s", wall_s > 0 ? bs.tokens / wall_s : 0.0},
        {"train_s", step_s}, {"wait_s", wait_s}, {"step_s", wall_s}, {"policy_version_min", bs.version_min}, {"policy_version_max", bs.version_max},
        {"weights_sent", {{"full", pub.versions_full}, {"delta", pub.versions_delta}}},
        {"weight_bytes_sent", {{"full", pub.bytes_full}, {"delta", pub.bytes_delta}}},
        {"time", absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone())}};
    const bool last_step = cfg_.learner.max_steps > 0 && step >= static_cast<uint64_t>(cfg_.learner.max_steps);
    if (validator_ && (step % static_cast<uint64_t>(cfg_.learner.eval_every) == 0 || last_step)) {
      j.update(Validate(step));
    }
    // The step's line goes out before its checkpoint: a learner killed between the two
    // resumes from the step before, trains this one again, and KeepMetricsUpTo drops
    // this line first, so every step is in metrics.jsonl exactly once.
    MaybeKillSelf("trained", step);
    WriteMetricsLine(j.dump());
    MaybeKillSelf("metrics", step);
    // Checkpoint before publishing: a version the coordinator has is never newer than
    // what a restarted learner resumes from (unless checkpoints are sparse; see v0).
    if (cfg_.learner.checkpoint_every > 0 && step % static_cast<uint64_t>(cfg_.learner.checkpoint_every) == 0) {
      if (absl::Status cs = Checkpoint(step, version); !cs.ok()) spdlog::error("checkpoint of step {}: {}", step, cs.message());
    }
    MaybeKillSelf("checkpoint", step);
    // Serialized here (the weights change with the next step), sent by the publisher
    // while the next step trains; admission moves to this version once it is out.
    publisher_->Enqueue(MakeVersion(static_cast<uint64_t>(version), step));
    std::vector<uint64_t> leases;
    std::vector<std::pair<std::string, uint32_t>> units;
    for (const auto& g : batch) {
      leases.push_back(g.group().item().lease_id());
      units.emplace_back(g.group().item().prompt_id(), g.group().item().epoch());
    }
    MaybeKillSelf("published", step);
    CompleteLeases(leases, /*requeue=*/false, step, units);
    MaybeKillSelf("completed", step);

    step_gauge_->Set(static_cast<double>(step));
    step_seconds_->Observe(step_s);
    {
      double lag_sum = 0, lag_n = 0, lag_max = 0;
      for (const auto& [lag, count] : bs.staleness) {
        lag_sum += static_cast<double>(lag) * static_cast<double>(count);
        lag_n += static_cast<double>(count);
        lag_max = std::max(lag_max, static_cast<double>(lag));
      }
      j["staleness_mean"] = lag_n > 0 ? lag_sum / lag_n : 0.0;
      j["staleness_max"] = lag_max;
      for (const auto& [field, g] : step_gauges_) {
        if (j.contains(field) && j[field].is_number()) g->Set(j[field].get<double>());
      }
    }
    tokens_trained_->Increment(static_cast<double>(bs.tokens));
    if (step % 10 == 1) {
      const auto& g0 = batch.front().group();
      spdlog::info("sample: prompt {:?} answer {:?} -> {:?} (reward {:.2f})", g0.item().prompt(), g0.item().answer(),
                   g0.completions(0).text(), batch.front().scores(0).reward());
    }
    spdlog::info("step {}: reward {:.3f} accuracy {:.3f} loss {:.4f} kl {:.4f} tokens/s {:.0f}", step, bs.reward_mean,
                 bs.accuracy, ts.loss, ts.kl, wall_s > 0 ? bs.tokens / wall_s : 0.0);

    if (cfg_.learner.max_steps > 0 && step >= static_cast<uint64_t>(cfg_.learner.max_steps)) {
      FinishAtMaxSteps();
      return;
    }
  }
}

}  // namespace grpo

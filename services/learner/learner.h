// The learner: accepts scored groups from actors, runs GRPO steps, publishes each new
// weight version through the coordinator, and only then completes the groups' leases
// (so a crash anywhere before re-issues the prompts; nothing is lost).
//
// Threads: gRPC handler threads validate groups and put them in a bounded buffer (a
// full buffer blocks the handler, which stops reading its stream: backpressure); one
// trainer thread owns the model and the optimizer.
#pragma once

#include <atomic>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/common/config.h"
#include "core/grpo/grpo_loss.h"
#include "core/policy/policy.h"
#include "core/rpc/service_main.h"
#include "core/rpc/weight_stream.h"
#include "grpo/v1/coordinator.grpc.pb.h"
#include "grpo/v1/learner.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/learner/admission.h"
#include "core/grpo/trainer.h"
#include "services/learner/checkpoint.h"
#include "services/learner/publisher.h"
#include "services/learner/train_input.h"
#include "services/learner/validation.h"
#include <torch/optim/optimizer.h>

namespace grpo {


class Learner final : public rpc::ServiceRunner, public v1::Learner::Service {
 public:
  static absl::StatusOr<std::unique_ptr<Learner>> Create(const RunConfig& cfg,
                                                         std::shared_ptr<prometheus::Registry> registry);
  ~Learner() override;

  std::vector<grpc::Service*> Services() override { return {this}; }
  absl::Status Start(ShutdownSignal& shutdown) override;
  void Stop() override;

  grpc::Status SubmitGroups(grpc::ServerContext* ctx,
                            grpc::ServerReaderWriter<v1::SubmitAck, v1::ScoredGroup>* stream) override;

 private:
  struct BatchStats;
  Learner(const RunConfig& cfg, std::unique_ptr<Policy> policy, std::unique_ptr<Policy> reference,
          std::shared_ptr<prometheus::Registry> registry);
  void TrainLoop();
  // Rank 0: draws batches, trains its shard, checkpoints, publishes, writes metrics.
  void LeaderLoop();
  // Publishes the last version, flushes completions and tells the coordinator the run is
  // finished (learner.max_steps reached), then triggers the shutdown.
  void FinishAtMaxSteps();
  // Ranks > 0: train their shard of each batch rank 0 broadcasts, until told to stop.
  void FollowerLoop();
  // Forms the data-parallel group and makes every rank start from rank 0's state.
  absl::Status JoinGroup();
  // Waits up to `wait` for a full batch. Groups that went stale while buffered are
  // dropped (their leases re-queued) and the batch refilled; `stale` counts them.
  // Empty when the wait ran out or the learner is stopping.
  // `version`: the published version the batch's staleness was checked against.
  std::vector<v1::ScoredGroup> DrawBatch(absl::Duration wait, int64_t* stale, int64_t* version);
  // The batch's rewards and lengths (rank 0 holds the whole batch).
  BatchStats ComputeBatchStats(const std::vector<v1::ScoredGroup>& batch, int64_t version);
  // This rank's share of a batch: a contiguous block of groups.
  std::vector<TrainGroup> Shard(const std::vector<v1::ScoredGroup>& batch) const;
  // Sets and returns the learning rate of `step`.
  double SetLearningRate(uint64_t step);
  void MaybeRefreshReference(uint64_t step);
  // Publishing a version: the trainer thread serializes it (MakeVersion, the one copy of
  // the weights a version takes on the CPU, in the actors' dtype, and where the CRC is
  // computed) and either sends it itself (Publish: the starting weights) or hands it to
  // the publisher (publisher_, after each step) and goes on with the next step.
  // SendVersion streams one version to the coordinator, with retries.
  std::shared_ptr<const rpc::WeightBlob> MakeVersion(uint64_t version, uint64_t step);
  absl::Status SendVersion(const std::shared_ptr<const rpc::WeightBlob>& blob);  // timed in grpo_learner_weight_publish_seconds
  absl::Status Publish(uint64_t version, uint64_t step);
  static const std::vector<std::pair<std::string, const char*>> kStepGauges;
  // Consecutive malformed (REJECTED) groups after which the run stops as misconfigured.
  static constexpr int64_t kMaxRejectedInARow = 2000;
  std::atomic<int64_t> rejected_in_a_row_{0}, rejected_logged_{0};
  // Completes (or, with requeue, releases) leases at the coordinator. `trained_step`
  // (0: not trained) lets the coordinator give the prompts back should this learner
  // resume from a checkpoint older than that step; `units`, parallel to `ids` when
  // given, names each lease's prompt for a coordinator that restarted since.
  void MaybeKillSelf(const char* point, uint64_t step) const;
  bool FlushCompletionsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(complete_mu_);
  absl::Mutex complete_mu_;  // serialises CompleteWork calls; guards the queue below
  std::deque<v1::CompleteWorkRequest> unsent_completions_ ABSL_GUARDED_BY(complete_mu_);
  void CompleteLeases(const std::vector<uint64_t>& ids, bool requeue, uint64_t trained_step = 0,
                      const std::vector<std::pair<std::string, uint32_t>>& units = {});
  // Warm-up, then constant or cosine, for 1-based `step`.
  double LearningRate(uint64_t step) const;
  // Loads the newest valid checkpoint, if any (called once by Create).
  absl::Status Resume();
  std::string CheckpointRoot() const;
  absl::Status Checkpoint(uint64_t step, int64_t version);
  void WriteMetricsLine(const std::string& line);
  // Rewrites metrics.jsonl without the lines of steps after `step` (-1: all of them) and
  // without a partial last line, before a resumed learner trains those steps again.
  void KeepMetricsUpTo(int64_t step);
  // Rank 0 with learner.eval_every: the held-out evaluation's metrics fields (empty
  // object when there is no validator or it failed; a failure is logged, not fatal).
  nlohmann::json Validate(uint64_t step);
  bool Stopping();
  bool leader() const { return cfg_.learner.rank == 0; }

  const RunConfig cfg_;
  std::unique_ptr<Policy> policy_;     // trainer thread only
  std::unique_ptr<Policy> reference_;  // frozen initial policy; null when beta == 0
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;  // world_size > 1; trainer thread
  std::unique_ptr<DeviceCollectives> device_comm_;  // NCCL on CUDA, until handed to grpo_
  std::unique_ptr<GrpoTrainer> grpo_;             // trainer thread
  std::unique_ptr<Validator> validator_;          // learner.eval_every > 0, rank 0; trainer thread
  std::shared_ptr<grpc::Channel> coordinator_channel_;
  std::unique_ptr<v1::Coordinator::Stub> coordinator_;
  ShutdownSignal* shutdown_ = nullptr;
  std::thread trainer_;
  FILE* metrics_file_ = nullptr;
  std::string metrics_path_;

  AdmissionBuffer admission_;  // thread-safe: handler threads admit, the trainer draws
  absl::Mutex mu_;
  uint64_t resumed_step_ = 0;      // step of the checkpoint resumed from (0: fresh)
  int64_t resumed_version_ = 0;
  uint64_t last_step_ = 0;         // trainer thread; read by Stop after the join
  int64_t last_version_ = 0;
  uint64_t last_checkpoint_step_ = 0;
  // Trainer thread (and Stop after the join): the (prompt id, epoch) units trained into
  // the weights, restored from the checkpoint; what a checkpoint records as seen.
  std::set<std::pair<std::string, uint32_t>> trained_;
  // Trainer thread: leases trained since the last checkpoint (written into the next one),
  // and, after a resume, the restored checkpoint's, completed again at start.
  std::vector<CheckpointState::Lease> recent_leases_, resumed_leases_;
  bool mid_step_ = false;          // trainer thread: inside a step (read by Stop after the join)
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<grpc::ClientContext> publish_ctx_ ABSL_GUARDED_BY(mu_);  // in-flight PublishWeights
  // Rank 0: sends the versions the trainer hands over, then moves admission to each.
  std::unique_ptr<WeightPublisher> publisher_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* step_gauge_;
  prometheus::Gauge* buffer_gauge_;
  // Every numeric field of a metrics.jsonl line that dashboards and alerts read, as a
  // gauge (grpo_learner_<field>): reward, accuracy, loss, KL, entropy, clip fraction, grad norm, lr, lengths,
  // staleness, held-out eval, ... (see kStepGauges in learner.cc).
  std::map<std::string, prometheus::Gauge*> step_gauges_;
  prometheus::Histogram* step_seconds_;
  prometheus::Histogram* publish_seconds_;
  prometheus::Histogram* serialize_seconds_;    // the trainer thread's share of a version
  prometheus::Counter* publish_superseded_;     // versions replaced by a newer one before sending
  prometheus::Counter* publish_overlapped_;     // versions sent while the trainer went on
  prometheus::Counter* published_full_;         // versions sent, by kind
  prometheus::Counter* published_delta_;
  prometheus::Counter* published_bytes_full_;
  prometheus::Counter* published_bytes_delta_;
  prometheus::Counter* patches_refused_;
  prometheus::Histogram* publish_wait_seconds_; // the trainer waiting on the publisher (end of run)
  prometheus::Counter* tokens_trained_;
  prometheus::Family<prometheus::Counter>* groups_family_;
  prometheus::Counter* stale_in_buffer_;
  prometheus::Counter* hash_mismatches_;
  prometheus::Counter* unverified_groups_;
  // CRC-32 of each version this learner published (the newest 256), to check the one a
  // group claims. Handler threads read it; Publish writes it.
  absl::Mutex crc_mu_;
  std::map<uint64_t, uint32_t> published_crc_ ABSL_GUARDED_BY(crc_mu_);
};

}  // namespace grpo

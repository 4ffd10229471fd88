// The coordinator: membership, the prompt queue (leases), the weight store and run state,
// persisted under a state directory so a restarted coordinator resumes the run.
//
// Thread-safety: all state sits behind one mutex; gRPC handler threads only take it for
// short critical sections (weight bytes are shared immutable buffers, copied out of the
// lock). One sweeper thread expires leases and silent members.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "grpo/v1/coordinator.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/coordinator/work_queue.h"

namespace grpo {

class CoordinatorService final : public v1::Coordinator::Service {
 public:
  // Loads (or generates) the dataset and restores persisted state if any.
  static absl::StatusOr<std::unique_ptr<CoordinatorService>> Create(
      const RunConfig& cfg, std::shared_ptr<prometheus::Registry> registry);
  ~CoordinatorService() override;

  // Ends every open WatchVersions stream (call before grpc::Server::Shutdown).
  void Shutdown();

  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest*, v1::RegisterResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status AcquireWork(grpc::ServerContext*, const v1::AcquireWorkRequest*, v1::AcquireWorkResponse*) override;
  grpc::Status CompleteWork(grpc::ServerContext*, const v1::CompleteWorkRequest*, v1::CompleteWorkResponse*) override;
  grpc::Status ReopenAfter(grpc::ServerContext*, const v1::ReopenAfterRequest*, v1::ReopenAfterResponse*) override;
  grpc::Status PublishWeights(grpc::ServerContext*, grpc::ServerReader<v1::WeightChunk>*,
                              v1::PublishWeightsResponse*) override;
  grpc::Status WatchVersions(grpc::ServerContext*, const v1::WatchVersionsRequest*,
                             grpc::ServerWriter<v1::VersionAnnouncement>*) override;
  grpc::Status FetchWeights(grpc::ServerContext*, const v1::FetchWeightsRequest*,
                            grpc::ServerWriter<v1::WeightChunk>*) override;
  grpc::Status GetRunStatus(grpc::ServerContext*, const v1::RunStatusRequest*, v1::RunStatusResponse*) override;
  grpc::Status FinishRun(grpc::ServerContext*, const v1::FinishRunRequest*, v1::FinishRunResponse*) override;
  grpc::Status LearnerGroup(grpc::ServerContext*, const v1::LearnerGroupRequest*, v1::LearnerGroupResponse*) override;

 private:
  struct Version {
    uint64_t version = 0;
    uint64_t step = 0;
    uint32_t crc32 = 0;
    std::shared_ptr<const std::string> bytes;
  };
  struct Member {
    v1::Role role;
    std::string name;
    absl::Time last_seen;
    int64_t policy_version = -1;
  };

  CoordinatorService(const RunConfig& cfg, std::vector<Task> tasks, std::shared_ptr<prometheus::Registry> registry);
  void SweepLoop();
  absl::Status Restore();
  // Persisting is two halves so that no file is written under mu_: the state and a
  // reference to the newest weights are taken under the lock (cheap), then written
  // after it is released (WriteSnapshot, serialized on persist_mu_). A snapshot older
  // than one already written is skipped: the newer one holds its changes. A handler
  // writes its snapshot before it replies, so what it acknowledged is on disk.
  struct PersistSnapshot {
    uint64_t seq = 0;
    std::string state_json;
    int64_t weights_version = -1;
    std::shared_ptr<const std::string> weights;
  };
  PersistSnapshot SnapshotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes state.json, and weights.safetensors when its version is not the one on disk;
  // logs on failure. A no-op without a state directory.
  void WriteSnapshot(const PersistSnapshot& snapshot) ABSL_LOCKS_EXCLUDED(mu_, persist_mu_);
  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t LatestVersionLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RunConfig cfg_;
  const std::vector<Task> tasks_;
  std::map<std::string, int64_t> task_index_;  // prompt id -> index in tasks_
  std::string state_dir_;

  mutable absl::Mutex mu_;
  WorkQueue queue_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Version> versions_ ABSL_GUARDED_BY(mu_);  // newest keep_versions
  std::map<std::string, Member> members_ ABSL_GUARDED_BY(mu_);
  uint64_t next_member_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t step_ ABSL_GUARDED_BY(mu_) = 0;
  bool run_finished_ ABSL_GUARDED_BY(mu_) = false;
  std::string learner_store_ ABSL_GUARDED_BY(mu_);  // rank 0's rendezvous address
  uint32_t learner_world_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t persist_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Units completed by learner steps after its newest checkpoint (CompleteWork's
  // trained_step > durable_step), by step: what ReopenAfter queues again when the
  // learner resumes from that checkpoint. Persisted with the queue.
  std::map<uint64_t, std::vector<WorkQueue::Unit>> trained_log_ ABSL_GUARDED_BY(mu_);
  absl::Mutex persist_mu_;  // taken without mu_ held
  uint64_t written_seq_ ABSL_GUARDED_BY(persist_mu_) = 0;
  int64_t written_weights_version_ ABSL_GUARDED_BY(persist_mu_) = -1;
  std::thread sweeper_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* leases_issued_;
  prometheus::Counter* leases_completed_;
  prometheus::Counter* leases_expired_;
  prometheus::Counter* leases_released_;
  prometheus::Counter* units_reopened_;
  prometheus::Counter* weight_bytes_in_;
  prometheus::Counter* weight_bytes_out_;
  prometheus::Gauge* leases_outstanding_;
  prometheus::Gauge* latest_version_;
  prometheus::Gauge* members_gauge_;
  prometheus::Gauge* step_gauge_;
  prometheus::Gauge* epoch_gauge_;
};

}  // namespace grpo

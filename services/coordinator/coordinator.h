// The coordinator: membership, the prompt queue (leases), the weight store and run state,
// persisted under a state directory so a restarted coordinator resumes the run.
//
// Thread-safety: all state sits behind one mutex; gRPC handler threads only take it for
// short critical sections (weight bytes are shared immutable buffers, copied out of the
// lock). One sweeper thread expires leases and silent members.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "core/rpc/weight_stream.h"
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
  // What a server hosting the coordinator registers: this service and grpo.v1.Weights
  // (the learner publishes to it, actors fetch from it).
  std::vector<grpc::Service*> GrpcServices() { return {this, weight_service_.get()}; }

  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest*, v1::RegisterResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status AcquireWork(grpc::ServerContext*, const v1::AcquireWorkRequest*, v1::AcquireWorkResponse*) override;
  grpc::Status CompleteWork(grpc::ServerContext*, const v1::CompleteWorkRequest*, v1::CompleteWorkResponse*) override;
  grpc::Status ReopenAfter(grpc::ServerContext*, const v1::ReopenAfterRequest*, v1::ReopenAfterResponse*) override;
  grpc::Status WatchVersions(grpc::ServerContext*, const v1::WatchVersionsRequest*,
                             grpc::ServerWriter<v1::VersionAnnouncement>*) override;
  grpc::Status PlanWeightFetch(grpc::ServerContext*, const v1::PlanWeightFetchRequest*,
                               v1::PlanWeightFetchResponse*) override;
  grpc::Status GetRunStatus(grpc::ServerContext*, const v1::RunStatusRequest*, v1::RunStatusResponse*) override;
  grpc::Status FinishRun(grpc::ServerContext*, const v1::FinishRunRequest*, v1::FinishRunResponse*) override;
  grpc::Status LearnerGroup(grpc::ServerContext*, const v1::LearnerGroupRequest*, v1::LearnerGroupResponse*) override;

 private:
  struct Version {
    uint64_t version = 0;
    uint64_t step = 0;
    uint32_t crc32 = 0;
    std::shared_ptr<const rpc::WeightBlob> blob;  // complete and checked
    // When it was published as a patch: the patch (against the version it names), served
    // to members that hold that version.
    std::shared_ptr<const rpc::WeightBlob> patch;
  };
  // A member in one version's relay tree (PlanWeightFetch), in the order they asked.
  struct RelayNode {
    std::string member_id, address;
    int parent = -1;  // index of the node it fetches from; -1: the coordinator
    bool dead = false;
  };
  struct Member {
    v1::Role role;
    std::string name;
    absl::Time last_seen;
    int64_t policy_version = -1;
    uint64_t tokens_generated = 0;
    double tokens_per_second = 0;
  };

  CoordinatorService(const RunConfig& cfg, std::vector<Task> tasks, std::shared_ptr<prometheus::Registry> registry);
  void SweepLoop();
  // Weights/Publish: a complete, checked blob becomes the newest version.
  grpc::Status AcceptWeights(std::shared_ptr<rpc::WeightBlob> blob, v1::PublishWeightsResponse* resp);
  // Weights/Fetch: the version asked for (-1: newest), or its patch.
  absl::StatusOr<std::shared_ptr<const rpc::WeightBlob>> FindWeights(int64_t version, bool delta);
  absl::Status Restore();
  // Persisting is two halves so that no file is written under mu_: the state and a
  // reference to the newest weights are taken under the lock (cheap), then written
  // after it is released (serialized on persist_mu_). A handler that changes the queue
  // writes state.json before it replies (what it acknowledged is on disk). A new weight
  // version is not written on the publisher's time: Publish replies once the version is
  // servable, and the weights writer thread persists the newest one it has been handed
  // (a version superseded before its turn is skipped). state.json names only weights
  // that are on disk, so a restarted coordinator serves the newest version persisted.
  struct PersistSnapshot {
    uint64_t seq = 0;
    nlohmann::json state;  // without the weights fields
    int64_t weights_version = -1;
    uint64_t weights_step = 0;
    uint32_t weights_crc = 0;
    std::shared_ptr<const rpc::WeightBlob> weights;
  };
  PersistSnapshot SnapshotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes state.json (when the snapshot is newer than the one on disk) with the weights
  // fields of the version on disk; with `write_weights`, first weights.safetensors when
  // the snapshot's version is newer than it. Logs on failure; a no-op without a state directory.
  void WriteSnapshot(const PersistSnapshot& snapshot, bool write_weights = false)
      ABSL_LOCKS_EXCLUDED(mu_, persist_mu_);
  // Hands a snapshot with a new version to the weights writer (newest wins).
  void PersistWeightsLater(PersistSnapshot snapshot) ABSL_LOCKS_EXCLUDED(writer_mu_);
  void WeightsWriterLoop();
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
  // By version and kind (true: its patch), kept versions only: members fetching a patch
  // relay it to each other, members fetching the full bytes likewise.
  std::map<std::pair<uint64_t, bool>, std::vector<RelayNode>> relays_ ABSL_GUARDED_BY(mu_);
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
  nlohmann::json written_state_ ABSL_GUARDED_BY(persist_mu_);  // the newest state written
  int64_t written_weights_version_ ABSL_GUARDED_BY(persist_mu_) = -1;
  uint64_t written_weights_step_ ABSL_GUARDED_BY(persist_mu_) = 0;
  uint32_t written_weights_crc_ ABSL_GUARDED_BY(persist_mu_) = 0;
  absl::Mutex writer_mu_;
  std::optional<PersistSnapshot> writer_next_ ABSL_GUARDED_BY(writer_mu_);
  bool writer_stop_ ABSL_GUARDED_BY(writer_mu_) = false;
  std::thread weights_writer_;
  std::thread sweeper_;
  std::unique_ptr<rpc::WeightService> weight_service_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* leases_issued_;
  prometheus::Counter* leases_completed_;
  prometheus::Counter* leases_expired_;
  prometheus::Counter* leases_released_;
  prometheus::Counter* units_reopened_;
  prometheus::Counter* weight_bytes_in_;
  prometheus::Counter* weight_bytes_out_;
  prometheus::Counter* weight_plans_peer_;
  prometheus::Counter* weight_plans_coordinator_;
  prometheus::Counter* weight_relay_failures_;
  prometheus::Counter* weight_versions_full_;
  prometheus::Counter* weight_versions_delta_;
  prometheus::Gauge* weight_version_bytes_full_;
  prometheus::Gauge* weight_version_bytes_delta_;
  prometheus::Counter* weight_patches_refused_;
  prometheus::Counter* weight_plans_delta_;
  prometheus::Gauge* leases_outstanding_;
  prometheus::Gauge* latest_version_;
  prometheus::Gauge* members_gauge_;
  prometheus::Gauge* step_gauge_;
  prometheus::Gauge* epoch_gauge_;
};

}  // namespace grpo

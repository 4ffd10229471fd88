#include "services/coordinator/coordinator.h"

#include <cstdlib>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/logging.h"
#include "core/rpc/weight_delta.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace grpo {
namespace fs = std::filesystem;

namespace {
prometheus::Counter* MakeCounter(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}
prometheus::Gauge* MakeGauge(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}
}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorService>> CoordinatorService::Create(
    const RunConfig& cfg, std::shared_ptr<prometheus::Registry> registry) {
  std::vector<Task> tasks;
  if (!cfg.data.path.empty()) {
    absl::StatusOr<std::vector<Task>> loaded = LoadDataset(cfg.data.path);
    if (!loaded.ok()) return loaded.status();
    tasks = std::move(*loaded);
  } else {
    ArithmeticOptions o;
    o.num_tasks = cfg.data.num_tasks;
    o.max_operand = cfg.data.max_operand;
    o.operators = cfg.data.operators;
    o.seed = static_cast<uint64_t>(cfg.run.seed);
    tasks = GenerateArithmetic(o);
  }
  std::unique_ptr<CoordinatorService> s(new CoordinatorService(cfg, std::move(tasks), std::move(registry)));
  if (!s->state_dir_.empty()) {
    std::error_code ec;
    fs::create_directories(s->state_dir_, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("state dir ", s->state_dir_, ": ", ec.message()));
    if (cfg.data.path.empty()) {
      // Keep the generated dataset beside the state, so a run is reproducible from its directory.
      absl::Status w = WriteDataset((fs::path(s->state_dir_) / "dataset.jsonl").string(), s->tasks_);
      if (!w.ok()) return w;
    }
    absl::Status r = s->Restore();
    if (!r.ok()) return r;
  }
  s->sweeper_ = std::thread([p = s.get()] { p->SweepLoop(); });
  s->weights_writer_ = std::thread([p = s.get()] { p->WeightsWriterLoop(); });
  return s;
}

CoordinatorService::CoordinatorService(const RunConfig& cfg, std::vector<Task> tasks,
                                       std::shared_ptr<prometheus::Registry> registry)
    : cfg_(cfg),
      tasks_(std::move(tasks)),
      queue_(static_cast<int64_t>(tasks_.size()), cfg.data.max_epochs, absl::Milliseconds(cfg.coordinator.lease_timeout_ms)),
      registry_(std::move(registry)) {
  state_dir_ = cfg.coordinator.state_dir;
  if (state_dir_.empty() && !cfg.run.dir.empty()) state_dir_ = (fs::path(cfg.run.dir) / "coordinator").string();
  for (size_t i = 0; i < tasks_.size(); ++i) task_index_.emplace(tasks_[i].id, static_cast<int64_t>(i));
  auto& r = *registry_;
  leases_issued_ = MakeCounter(r, "grpo_coordinator_leases_issued_total", "Prompt leases handed to actors");
  leases_completed_ = MakeCounter(r, "grpo_coordinator_leases_completed_total", "Leases completed by the learner");
  leases_expired_ = MakeCounter(r, "grpo_coordinator_leases_expired_total",
                                "Leases expired, lost with their actor or released, and re-queued");
  leases_released_ = MakeCounter(r, "grpo_coordinator_leases_released_total",
                                 "Leases released by the learner for re-issue (part of expired)");
  units_reopened_ = MakeCounter(r, "grpo_coordinator_units_reopened_total",
                                "Completed prompts queued again because the learner resumed from an older checkpoint");
  weight_bytes_in_ = MakeCounter(r, "grpo_coordinator_weight_bytes_received_total", "Weight bytes published");
  weight_bytes_out_ = MakeCounter(r, "grpo_coordinator_weight_bytes_sent_total", "Weight bytes fetched by actors");
  auto& plans = prometheus::BuildCounter()
                    .Name("grpo_coordinator_weight_fetch_plans_total")
                    .Help("Weight fetches planned, by source: a relay peer or the coordinator itself")
                    .Register(r);
  weight_plans_peer_ = &plans.Add({{"source", "peer"}});
  weight_plans_coordinator_ = &plans.Add({{"source", "coordinator"}});
  weight_relay_failures_ = MakeCounter(r, "grpo_coordinator_weight_relay_failures_total",
                                       "Relay peers reported failed by a member fetching from them");
  auto& versions = prometheus::BuildCounter()
                       .Name("grpo_coordinator_weight_versions_total")
                       .Help("Weight versions published, by kind: full bytes, or a patch against an earlier version")
                       .Register(r);
  weight_versions_full_ = &versions.Add({{"kind", "full"}});
  weight_versions_delta_ = &versions.Add({{"kind", "delta"}});
  auto& version_bytes = prometheus::BuildGauge()
                            .Name("grpo_coordinator_weight_version_bytes")
                            .Help("Bytes of the newest weight version published of each kind (a delta: its patch)")
                            .Register(r);
  weight_version_bytes_full_ = &version_bytes.Add({{"kind", "full"}});
  weight_version_bytes_delta_ = &version_bytes.Add({{"kind", "delta"}});
  weight_patches_refused_ = MakeCounter(r, "grpo_coordinator_weight_patches_refused_total",
                                        "Published patches refused: base not held, or a result with the wrong CRC");
  weight_plans_delta_ = MakeCounter(r, "grpo_coordinator_weight_fetch_plans_delta_total",
                                    "Weight fetches planned as a patch against the version the member holds");
  weight_service_ = std::make_unique<rpc::WeightService>(
      [this](int64_t v, bool delta) { return FindWeights(v, delta); },
      [this](std::shared_ptr<rpc::WeightBlob> b, v1::PublishWeightsResponse* resp) { return AcceptWeights(std::move(b), resp); },
      [this](uint64_t bytes) { weight_bytes_out_->Increment(static_cast<double>(bytes)); });
  leases_outstanding_ = MakeGauge(r, "grpo_coordinator_leases_outstanding", "Leases not yet completed or expired");
  latest_version_ = MakeGauge(r, "grpo_coordinator_latest_version", "Newest published weight version");
  members_gauge_ = MakeGauge(r, "grpo_coordinator_members", "Registered live members");
  step_gauge_ = MakeGauge(r, "grpo_coordinator_step", "Learner step of the newest version");
  epoch_gauge_ = MakeGauge(r, "grpo_coordinator_epoch", "Current pass over the dataset");
  latest_version_->Set(-1);
}

CoordinatorService::~CoordinatorService() {
  Shutdown();
  if (sweeper_.joinable()) sweeper_.join();
  {
    absl::MutexLock l(&writer_mu_);
    writer_stop_ = true;  // the writer persists what it was handed, then stops
  }
  if (weights_writer_.joinable()) weights_writer_.join();
}

void CoordinatorService::Shutdown() {
  absl::MutexLock l(&mu_);
  shutting_down_ = true;
}

int64_t CoordinatorService::LatestVersionLocked() const {
  return versions_.empty() ? -1 : static_cast<int64_t>(versions_.rbegin()->first);
}

void CoordinatorService::UpdateGaugesLocked() {
  leases_outstanding_->Set(static_cast<double>(queue_.outstanding()));
  latest_version_->Set(static_cast<double>(LatestVersionLocked()));
  members_gauge_->Set(static_cast<double>(members_.size()));
  step_gauge_->Set(static_cast<double>(step_));
  epoch_gauge_->Set(queue_.epoch());
}

void CoordinatorService::SweepLoop() {
  absl::MutexLock l(&mu_);
  while (!shutting_down_) {
    // Wakes every 100 ms, or at once on shutdown.
    mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), absl::Milliseconds(100));
    if (shutting_down_) break;
    absl::Time now = absl::Now();
    size_t expired = queue_.ExpireDue(now);
    for (auto it = members_.begin(); it != members_.end();) {
      if (now - it->second.last_seen > absl::Milliseconds(cfg_.coordinator.heartbeat_timeout_ms)) {
        size_t n = queue_.ExpireMember(it->first);
        spdlog::warn("member {} ({}) missed heartbeats for {} ms: dropped, {} lease(s) re-queued", it->first,
                     it->second.name, cfg_.coordinator.heartbeat_timeout_ms, n);
        expired += n;
        for (auto& [key, nodes] : relays_) {
          for (RelayNode& node : nodes) node.dead = node.dead || node.member_id == it->first;
        }
        it = members_.erase(it);
      } else {
        ++it;
      }
    }
    if (expired > 0) {
      leases_expired_->Increment(static_cast<double>(expired));
      spdlog::info("{} lease(s) expired and re-queued", expired);
      PersistSnapshot snap = SnapshotLocked();
      mu_.Unlock();
      WriteSnapshot(snap);
      mu_.Lock();
    }
    UpdateGaugesLocked();
  }
}

grpc::Status CoordinatorService::Register(grpc::ServerContext*, const v1::RegisterRequest* req,
                                          v1::RegisterResponse* resp) {
  absl::MutexLock l(&mu_);
  std::string id = absl::StrCat(v1::Role_Name(req->role()).substr(5), "-", next_member_++);
  for (char& c : id) c = static_cast<char>(std::tolower(c));
  members_[id] = Member{req->role(), req->name(), absl::Now(), -1};
  spdlog::info("registered {} ({}, {})", id, req->name(), req->address());
  resp->set_member_id(id);
  resp->set_heartbeat_timeout_ms(cfg_.coordinator.heartbeat_timeout_ms);
  resp->set_latest_version(LatestVersionLocked());
  UpdateGaugesLocked();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                           v1::HeartbeatResponse* resp) {
  absl::MutexLock l(&mu_);
  auto it = members_.find(req->member_id());
  resp->set_known(it != members_.end());
  if (it != members_.end()) {
    Member& m = it->second;
    const absl::Time now = absl::Now();
    const double dt = absl::ToDoubleSeconds(now - m.last_seen);
    if (req->tokens_generated() >= m.tokens_generated && dt > 0 && m.tokens_generated > 0) {
      m.tokens_per_second = static_cast<double>(req->tokens_generated() - m.tokens_generated) / dt;
    }
    m.tokens_generated = req->tokens_generated();
    m.last_seen = now;
    m.policy_version = req->policy_version();
  }
  resp->set_latest_version(LatestVersionLocked());
  resp->set_run_finished(run_finished_);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::AcquireWork(grpc::ServerContext*, const v1::AcquireWorkRequest* req,
                                             v1::AcquireWorkResponse* resp) {
  absl::MutexLock l(&mu_);
  auto m = members_.find(req->member_id());
  if (m == members_.end()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("unknown member '", req->member_id(), "': register again"));
  }
  m->second.last_seen = absl::Now();
  resp->set_latest_version(LatestVersionLocked());
  resp->set_run_finished(run_finished_);
  if (run_finished_ || req->max_items() == 0) return grpc::Status::OK;
  uint32_t n = std::min<uint32_t>(req->max_items(), 1024);
  for (const Lease& lease : queue_.Acquire(req->member_id(), n, absl::Now())) {
    const Task& t = tasks_[static_cast<size_t>(lease.task_index)];
    v1::WorkItem* item = resp->add_items();
    item->set_lease_id(lease.id);
    item->set_prompt_id(t.id);
    item->set_epoch(lease.epoch);
    item->set_prompt(t.prompt);
    item->set_answer(t.answer);
    item->set_task(t.task);
    item->set_language(t.language);
    if (t.tests.is_array()) {
      for (const auto& tc : t.tests) {
        v1::TestCase* c = item->add_tests();
        c->set_input(tc.value("input", ""));
        c->set_output(tc.value("output", ""));
      }
    }
    item->set_deadline_unix_ms(absl::ToUnixMillis(lease.deadline));
  }
  leases_issued_->Increment(resp->items_size());
  if (queue_.Exhausted() && queue_.outstanding() == 0 && resp->items_size() == 0) {
    resp->set_run_finished(true);
  }
  UpdateGaugesLocked();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::CompleteWork(grpc::ServerContext*, const v1::CompleteWorkRequest* req,
                                              v1::CompleteWorkResponse* resp) {
  PersistSnapshot snap;
  {
    absl::MutexLock l(&mu_);
    std::vector<uint64_t> ids(req->lease_ids().begin(), req->lease_ids().end());
    std::vector<std::optional<WorkQueue::Unit>> units;
    if (req->units_size() == req->lease_ids_size()) {
      for (const v1::WorkUnit& u : req->units()) {
        auto it = task_index_.find(u.prompt_id());
        units.push_back(it == task_index_.end() ? std::nullopt
                                                : std::optional<WorkQueue::Unit>(WorkQueue::Unit{it->second, u.epoch()}));
      }
    }
    std::vector<WorkQueue::Unit> resolved;
    CompleteCounts c = queue_.Complete(ids, req->requeue(), units, &resolved);
    // Trained after the learner's newest checkpoint: remembered until a checkpoint covers it.
    if (!req->requeue() && req->trained_step() > req->durable_step()) {
      auto& log = trained_log_[req->trained_step()];
      log.insert(log.end(), resolved.begin(), resolved.end());
    }
    trained_log_.erase(trained_log_.begin(), trained_log_.upper_bound(req->durable_step()));
    resp->set_completed(c.completed);
    resp->set_already_completed(c.already_completed);
    resp->set_unknown(c.unknown);
    leases_completed_->Increment(c.completed);
    leases_expired_->Increment(c.released);
    leases_released_->Increment(c.released);
    if (c.unknown > 0) spdlog::warn("CompleteWork: {} unknown lease id(s)", c.unknown);
    snap = SnapshotLocked();
    UpdateGaugesLocked();
  }
  WriteSnapshot(snap);  // before the reply: what the learner was told is on disk
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ReopenAfter(grpc::ServerContext*, const v1::ReopenAfterRequest* req,
                                             v1::ReopenAfterResponse* resp) {
  PersistSnapshot snap;
  {
    absl::MutexLock l(&mu_);
    std::vector<WorkQueue::Unit> lost;
    for (auto it = trained_log_.upper_bound(req->step()); it != trained_log_.end(); ++it) {
      lost.insert(lost.end(), it->second.begin(), it->second.end());
    }
    trained_log_.erase(trained_log_.upper_bound(req->step()), trained_log_.end());
    const size_t n = queue_.Reopen(lost);
    resp->set_reopened(static_cast<uint32_t>(n));
    units_reopened_->Increment(static_cast<double>(n));
    if (n > 0) spdlog::info("learner resumed from step {}: {} prompt(s) trained after it queued again", req->step(), n);
    snap = SnapshotLocked();
    UpdateGaugesLocked();
  }
  WriteSnapshot(snap);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::AcceptWeights(std::shared_ptr<rpc::WeightBlob> blob,
                                               v1::PublishWeightsResponse* resp) {
  const rpc::WeightHeader h = blob->header();
  const uint64_t version = h.version, step = h.step;
  const uint32_t crc = h.full_crc32();
  std::shared_ptr<const rpc::WeightBlob> patch;
  auto refuse_patch = [&](grpc::StatusCode code, const std::string& why) {
    weight_patches_refused_->Increment();
    spdlog::warn("patch for version {} against version {} refused: {}", version, h.base_version, why);
    return grpc::Status(code, why);
  };
  // The new version's bytes are written after the lock is released: FetchWeights,
  // heartbeats and leases go on meanwhile.
  PersistSnapshot snap;
  for (;;) {  // twice for a patch: find its base, apply it outside the lock, then store
    std::shared_ptr<const rpc::WeightBlob> base;
    {
      absl::MutexLock l(&mu_);
      int64_t latest = LatestVersionLocked();
      if (static_cast<int64_t>(version) <= latest) {
        // A retry of a version we already have is fine; an older one is refused.
        if (versions_.count(version) && versions_[version].crc32 == crc) {
          resp->set_version(version);
          resp->set_bytes(h.total_size);
          return grpc::Status::OK;
        }
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            absl::StrCat("version ", version, " is not newer than ", latest));
      }
      if (h.delta && patch == nullptr) {
        auto it = versions_.find(h.base_version);
        if (it == versions_.end() || it->second.crc32 != h.base_crc32) {
          return refuse_patch(grpc::StatusCode::FAILED_PRECONDITION,
                              absl::StrCat("the patch for version ", version, " is against version ", h.base_version,
                                           ", which this coordinator does not hold (newest ", latest,
                                           "): publish it in full"));
        }
        base = it->second.blob;
      }
      if (!h.delta || patch != nullptr) {
        versions_[version] = Version{version, step, crc, std::move(blob), patch};  // blob: the full bytes
        while (static_cast<int64_t>(versions_.size()) > std::max<int64_t>(1, cfg_.coordinator.keep_versions)) {
          const uint64_t gone = versions_.begin()->first;
          relays_.erase({gone, false});
          relays_.erase({gone, true});
          versions_.erase(versions_.begin());
        }
        step_ = step;
        weight_bytes_in_->Increment(static_cast<double>(h.total_size));
        (h.delta ? weight_versions_delta_ : weight_versions_full_)->Increment();
        (h.delta ? weight_version_bytes_delta_ : weight_version_bytes_full_)->Set(static_cast<double>(h.total_size));
        if (h.delta) {
          spdlog::info("published version {} (step {}, {} bytes) as a patch of {} bytes against version {}", version,
                       step, h.result_size, h.total_size, h.base_version);
        } else {
          spdlog::info("published version {} (step {}, {} bytes)", version, step, h.total_size);
        }
        snap = SnapshotLocked();
        UpdateGaugesLocked();
        resp->set_version(version);
        resp->set_bytes(h.total_size);
        break;
      }
    }
    // A patch: the full version is made from the base outside the lock (a pass over its
    // bytes), then stored beside the patch; the base is never modified.
    absl::StatusOr<std::shared_ptr<rpc::WeightBlob>> full = rpc::ApplyDeltaBlob(*base, *blob);
    if (!full.ok()) {
      return refuse_patch(absl::IsResourceExhausted(full.status()) ? grpc::StatusCode::RESOURCE_EXHAUSTED
                          : absl::IsDataLoss(full.status())       ? grpc::StatusCode::DATA_LOSS
                                                                  : grpc::StatusCode::INVALID_ARGUMENT,
                          std::string(full.status().message()));
    }
    patch = std::move(blob);
    blob = *std::move(full);
  }
  // Servable now; written to disk by the weights writer, off the learner's time.
  PersistWeightsLater(std::move(snap));
  return grpc::Status::OK;
}

void CoordinatorService::PersistWeightsLater(PersistSnapshot snapshot) {
  if (state_dir_.empty() || snapshot.seq == 0) return;
  absl::MutexLock l(&writer_mu_);
  writer_next_ = std::move(snapshot);
}

void CoordinatorService::WeightsWriterLoop() {
  for (;;) {
    PersistSnapshot snap;
    {
      absl::MutexLock l(&writer_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) { return writer_stop_ || writer_next_.has_value(); };
      writer_mu_.Await(absl::Condition(&ready));
      if (!writer_next_) return;  // stopping with nothing left to write
      snap = std::move(*writer_next_);
      writer_next_.reset();
    }
    WriteSnapshot(snap, /*write_weights=*/true);
  }
}

grpc::Status CoordinatorService::WatchVersions(grpc::ServerContext* ctx, const v1::WatchVersionsRequest* req,
                                               grpc::ServerWriter<v1::VersionAnnouncement>* writer) {
  int64_t after = req->after_version();
  for (;;) {
    v1::VersionAnnouncement a;
    {
      absl::MutexLock l(&mu_);
      auto newer = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutting_down_ || LatestVersionLocked() > after;
      };
      // Re-checks cancellation every 200 ms: the sync API has no cancel callback.
      while (!newer() && !ctx->IsCancelled()) mu_.AwaitWithTimeout(absl::Condition(&newer), absl::Milliseconds(200));
      if (shutting_down_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator shutting down");
      if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
      const Version& v = versions_.rbegin()->second;
      a.set_version(v.version);
      a.set_step(v.step);
      a.set_total_size(v.blob->header().total_size);
      a.set_crc32(v.crc32);
      after = static_cast<int64_t>(v.version);
    }
    if (!writer->Write(a)) return grpc::Status::CANCELLED;
  }
}

absl::StatusOr<std::shared_ptr<const rpc::WeightBlob>> CoordinatorService::FindWeights(int64_t version, bool delta) {
  absl::MutexLock l(&mu_);
  if (versions_.empty()) return absl::UnavailableError("no weights published yet");
  auto it = version < 0 ? std::prev(versions_.end()) : versions_.find(static_cast<uint64_t>(version));
  if (it == versions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("version ", version, " is not kept (newest is ", LatestVersionLocked(), ")"));
  }
  if (!delta) return it->second.blob;
  if (it->second.patch == nullptr) {
    return absl::NotFoundError(absl::StrCat("version ", it->first, " was published in full: no patch to fetch"));
  }
  return it->second.patch;
}

// The members fetching one version form a tree in the order they ask: each is given the
// earliest live member before it that has fewer than relay_fanout children, else the
// coordinator. Parents always come earlier, so the tree has no cycles whoever fails.
// Members holding the version a patch was made against fetch the patch, in a tree of
// their own; the others fetch the full bytes.
grpc::Status CoordinatorService::PlanWeightFetch(grpc::ServerContext*, const v1::PlanWeightFetchRequest* req,
                                                 v1::PlanWeightFetchResponse* resp) {
  absl::MutexLock l(&mu_);
  if (versions_.empty()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no weights published yet");
  auto vit = req->version() < 0 ? std::prev(versions_.end()) : versions_.find(static_cast<uint64_t>(req->version()));
  if (vit == versions_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("version ", req->version(), " is not kept (newest is ",
                                                                  LatestVersionLocked(), ")"));
  }
  const Version& v = vit->second;
  resp->set_version(v.version);
  resp->set_step(v.step);
  resp->set_total_size(v.blob->header().total_size);
  resp->set_crc32(v.crc32);
  const bool delta = v.patch != nullptr && req->has_held_version() &&
                     req->held_version() == v.patch->header().base_version &&
                     req->held_crc32() == v.patch->header().base_crc32;
  if (delta) {
    const rpc::WeightHeader& p = v.patch->header();
    resp->set_delta(true);
    resp->set_base_version(p.base_version);
    resp->set_base_crc32(p.base_crc32);
    resp->set_patch_size(p.total_size);
    resp->set_patch_crc32(p.crc32);
    weight_plans_delta_->Increment();
  }
  const int64_t fanout = cfg_.coordinator.relay_fanout;
  if (fanout <= 0 || req->member_id().empty()) {
    weight_plans_coordinator_->Increment();
    return grpc::Status::OK;
  }
  // A member fetching this version has stopped serving older ones (it holds one), and
  // serves only the kind it fetches now.
  for (auto& [key, list] : relays_) {
    if (key.first > v.version || (key.first == v.version && key.second == delta)) continue;
    for (RelayNode& n : list) n.dead = n.dead || n.member_id == req->member_id();
  }
  std::vector<RelayNode>& nodes = relays_[{v.version, delta}];
  if (!req->failed_source().empty()) {
    for (RelayNode& n : nodes) {
      if (n.address == req->failed_source() && !n.dead) {
        n.dead = true;
        weight_relay_failures_->Increment();
        spdlog::warn("relay {} ({}) failed {} on version {}: routed around", n.member_id, n.address,
                     req->member_id(), v.version);
      }
    }
  }
  int self = -1;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].member_id == req->member_id()) self = static_cast<int>(i);
  }
  if (self < 0) {
    if (req->relay_address().empty()) {
      // Not a relay: a leaf of the coordinator, so that no peer carries it uncounted.
      weight_plans_coordinator_->Increment();
      return grpc::Status::OK;
    }
    nodes.push_back(RelayNode{req->member_id(), req->relay_address(), -1, false});
    self = static_cast<int>(nodes.size()) - 1;
  }
  nodes[self].dead = false;  // it is asking, so it is alive
  int parent = -1;
  for (int q = 0; q < self && parent < 0; ++q) {
    if (nodes[q].dead) continue;
    int64_t children = 0;
    for (int c = 0; c < static_cast<int>(nodes.size()); ++c) {
      if (c != self && !nodes[c].dead && nodes[c].parent == q) ++children;
    }
    if (children < fanout) parent = q;
  }
  nodes[self].parent = parent;
  if (parent < 0) {
    weight_plans_coordinator_->Increment();
  } else {
    weight_plans_peer_->Increment();
    resp->set_source_address(nodes[parent].address);
    resp->set_source_member(nodes[parent].member_id);
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetRunStatus(grpc::ServerContext*, const v1::RunStatusRequest* req,
                                              v1::RunStatusResponse* resp) {
  absl::MutexLock l(&mu_);
  resp->set_step(step_);
  resp->set_latest_version(LatestVersionLocked());
  resp->set_epoch(queue_.epoch());
  resp->set_dataset_size(tasks_.size());
  resp->set_leases_issued(queue_.issued());
  resp->set_leases_completed(queue_.completed());
  resp->set_leases_expired(queue_.expired());
  resp->set_leases_outstanding(queue_.outstanding());
  resp->set_leases_released(queue_.released());
  resp->set_duplicate_completions(queue_.duplicates());
  resp->set_members(static_cast<uint32_t>(members_.size()));
  resp->set_run_finished(run_finished_);
  const absl::Time now = absl::Now();
  const std::map<std::string, size_t> held = queue_.HeldByMember();
  for (const auto& [id, m] : members_) {
    v1::MemberStatus* ms = resp->add_member_list();
    ms->set_member_id(id);
    ms->set_role(m.role);
    ms->set_name(m.name);
    ms->set_policy_version(m.policy_version);
    ms->set_seconds_since_heartbeat(absl::ToDoubleSeconds(now - m.last_seen));
    ms->set_tokens_generated(m.tokens_generated);
    ms->set_tokens_per_second(m.tokens_per_second);
    if (auto h = held.find(id); h != held.end()) ms->set_leases_held(static_cast<uint32_t>(h->second));
    if (auto i = queue_.issued_by_member().find(id); i != queue_.issued_by_member().end()) ms->set_leases_issued(i->second);
  }
  if (req->include_prompts()) {
    for (const auto& [unit, p] : queue_.progress()) {
      v1::PromptProgress* pp = resp->add_prompts();
      pp->set_prompt_id(tasks_[static_cast<size_t>(unit.first)].id);
      pp->set_epoch(unit.second);
      pp->set_leases_issued(p.leases_issued);
      pp->set_completions(p.completions);
    }
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::FinishRun(grpc::ServerContext*, const v1::FinishRunRequest* req,
                                           v1::FinishRunResponse*) {
  PersistSnapshot snap;
  {
    absl::MutexLock l(&mu_);
    if (!run_finished_) spdlog::info("run finished: {}", req->reason());
    run_finished_ = true;
    snap = SnapshotLocked();
  }
  WriteSnapshot(snap);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::LearnerGroup(grpc::ServerContext*, const v1::LearnerGroupRequest* req,
                                              v1::LearnerGroupResponse* resp) {
  absl::MutexLock l(&mu_);
  if (req->world_size() < 1 || req->rank() >= req->world_size()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("rank ", req->rank(), " is outside world size ", req->world_size()));
  }
  if (req->rank() == 0 && !req->store_address().empty()) {
    // A restarted rank 0 announces a new store; ranks that ask afterwards get it.
    learner_store_ = req->store_address();
    learner_world_ = req->world_size();
    spdlog::info("learner group of {}: rendezvous at {}", learner_world_, learner_store_);
  } else if (!req->unreachable_address().empty() && req->unreachable_address() == learner_store_) {
    spdlog::info("learner rank {} cannot reach the store at {}; waiting for rank 0 to announce a new one",
                 req->rank(), learner_store_);
    learner_store_.clear();
  } else if (!learner_store_.empty() && req->world_size() != learner_world_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("rank ", req->rank(), " expects ", req->world_size(),
                                     " learners but rank 0 announced a group of ", learner_world_));
  }
  resp->set_store_address(learner_store_);
  return grpc::Status::OK;
}

CoordinatorService::PersistSnapshot CoordinatorService::SnapshotLocked() {
  PersistSnapshot out;
  if (state_dir_.empty()) return out;
  out.seq = ++persist_seq_;
  WorkQueue::Snapshot snap = queue_.TakeSnapshot();
  nlohmann::json j;
  j["step"] = step_;
  j["run_finished"] = run_finished_;
  j["epoch"] = snap.epoch;
  j["cursor"] = snap.cursor;
  j["next_lease_id"] = snap.next_lease_id;
  j["pending"] = snap.pending;
  j["dataset_size"] = tasks_.size();
  nlohmann::json log = nlohmann::json::array();
  for (const auto& [step, units] : trained_log_) {
    for (const auto& [task, epoch] : units) log.push_back({step, task, epoch});
  }
  j["trained_log"] = log;
  if (!versions_.empty()) {
    const Version& v = versions_.rbegin()->second;
    out.weights_version = static_cast<int64_t>(v.version);
    out.weights_step = v.step;
    out.weights_crc = v.crc32;
    out.weights = v.blob;
  }
  out.state = std::move(j);
  return out;
}

void CoordinatorService::WriteSnapshot(const PersistSnapshot& snapshot, bool write_weights) {
  if (state_dir_.empty() || snapshot.seq == 0) return;
  absl::MutexLock l(&persist_mu_);
  fs::path dir(state_dir_);
  bool weights_written = false;
  if (write_weights && snapshot.weights && snapshot.weights_version > written_weights_version_) {
    // Fault injection for tests: GRPO_TEST_PERSIST_DELAY_MS stands for a slow disk or a
    // large version, to show that nothing waits for it.
    static const absl::Duration delay = [] {
      const char* v = std::getenv("GRPO_TEST_PERSIST_DELAY_MS");
      int64_t ms = 0;
      return v != nullptr && absl::SimpleAtoi(v, &ms) && ms > 0 ? absl::Milliseconds(ms) : absl::ZeroDuration();
    }();
    if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
    // Weights first: state.json never names a version whose bytes are not on disk.
    absl::Status s = WriteFileAtomic((dir / "weights.safetensors").string(), snapshot.weights->bytes());
    if (s.ok()) {
      written_weights_version_ = snapshot.weights_version;
      written_weights_step_ = snapshot.weights_step;
      written_weights_crc_ = snapshot.weights_crc;
      weights_written = true;
    } else {
      spdlog::error("persisting weights version {}: {}", snapshot.weights_version, s.message());
    }
  }
  if (snapshot.seq > written_seq_) {
    written_state_ = snapshot.state;
    written_seq_ = snapshot.seq;
  } else if (!weights_written) {
    return;  // a newer state, and the weights it names, are on disk already
  }
  nlohmann::json j = written_state_;
  if (written_weights_version_ >= 0) {
    j["version"] = written_weights_version_;
    j["version_step"] = written_weights_step_;
    j["crc32"] = written_weights_crc_;
  }
  absl::Status s = WriteFileAtomic((dir / "state.json").string(), j.dump(2));
  if (!s.ok()) spdlog::error("persisting state: {}", s.message());
}

absl::Status CoordinatorService::Restore() {
  fs::path dir(state_dir_);
  fs::path state = dir / "state.json";
  if (!fs::exists(state)) return absl::OkStatus();
  absl::StatusOr<std::string> text = ReadFile(state.string());
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(state.string(), ": not valid JSON; move it away to start a new run"));
  }
  try {
    if (j.value("dataset_size", uint64_t{0}) != tasks_.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          state.string(), ": saved for a dataset of ", j.value("dataset_size", 0), " tasks, but the dataset has ",
          tasks_.size(), "; use a new run directory"));
    }
    absl::MutexLock l(&mu_);
    WorkQueue::Snapshot snap;
    snap.epoch = j.at("epoch").get<uint32_t>();
    snap.cursor = j.at("cursor").get<int64_t>();
    snap.next_lease_id = j.at("next_lease_id").get<uint64_t>();
    snap.pending = j.at("pending").get<std::vector<std::pair<int64_t, uint32_t>>>();
    queue_.Restore(snap);
    trained_log_.clear();
    if (j.contains("trained_log")) {
      for (const auto& e : j.at("trained_log")) {
        trained_log_[e.at(0).get<uint64_t>()].emplace_back(e.at(1).get<int64_t>(), e.at(2).get<uint32_t>());
      }
    }
    step_ = j.value("step", uint64_t{0});
    // run_finished is not restored: starting the services again continues the run.
    if (j.contains("version")) {
      absl::StatusOr<std::string> w = ReadFile((dir / "weights.safetensors").string());
      uint32_t crc = j.at("crc32").get<uint32_t>();
      if (!w.ok() || Crc32(*w) != crc) {
        spdlog::warn("{}: weights missing or corrupt; waiting for the learner to publish again",
                     (dir / "weights.safetensors").string());
      } else {
        uint64_t v = j.at("version").get<uint64_t>();
        const uint64_t vstep = j.value("version_step", uint64_t{0});
        versions_[v] = Version{v, vstep, crc, rpc::WeightBlob::FromBytes(std::move(*w), v, vstep)};
        absl::MutexLock pl(&persist_mu_);
        written_weights_version_ = static_cast<int64_t>(v);  // already on disk
        written_weights_step_ = vstep;
        written_weights_crc_ = crc;
      }
    }
    spdlog::info("resumed from {}: step {}, epoch {}, cursor {}, {} pending unit(s), version {}", state.string(),
                 step_, snap.epoch, snap.cursor, snap.pending.size(), LatestVersionLocked());
    UpdateGaugesLocked();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(state.string(), ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace grpo

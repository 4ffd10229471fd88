// WorkQueue: the prompt queue of a run, handed out as leases.
//
// A unit of work is (task index, epoch). Units are issued in dataset order, epoch after
// epoch; a unit whose lease expires (or is released) goes back to the front of the queue
// and is issued again under a new lease id. A unit completes once: completing any of its
// leases again, or a stale lease of a completed unit, is counted but changes nothing.
// Not thread-safe: the Coordinator serialises access.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace grpo {

struct Lease {
  uint64_t id = 0;
  int64_t task_index = 0;
  uint32_t epoch = 0;
  std::string member;
  absl::Time deadline;
};

struct CompleteCounts {
  uint32_t completed = 0;
  uint32_t already_completed = 0;
  uint32_t unknown = 0;
  uint32_t released = 0;  // outstanding leases released for re-issue (requeue=true)
};

struct UnitProgress {
  uint32_t leases_issued = 0;
  uint32_t completions = 0;  // times a lease of this unit completed it (0 or 1)
};

class WorkQueue {
 public:
  static constexpr uint64_t kLeaseIdGapAfterRestore = uint64_t{1} << 32;
  using Unit = std::pair<int64_t, uint32_t>;  // (task index, epoch)

  // max_epochs 0: unbounded.
  WorkQueue(int64_t dataset_size, int64_t max_epochs, absl::Duration lease_timeout);

  std::vector<Lease> Acquire(const std::string& member, size_t max_items, absl::Time now);
  // Completes leases (requeue=false) or releases them for re-issue (requeue=true).
  // `units`, when given, is parallel to lease_ids: the unit of each lease, used for a
  // lease id this queue does not know (issued before a restart). `resolved` (optional)
  // receives the unit of every lease completed now or before (not released ones).
  CompleteCounts Complete(const std::vector<uint64_t>& lease_ids, bool requeue,
                          const std::vector<std::optional<Unit>>& units = {}, std::vector<Unit>* resolved = nullptr);
  // Completed units whose training was lost go back to the front of the queue (units
  // outstanding or already queued are left as they are). Returns how many were queued.
  size_t Reopen(const std::vector<Unit>& units);
  // Expires leases past their deadline; returns how many.
  size_t ExpireDue(absl::Time now);
  // Expires every lease held by `member` (it died); returns how many.
  size_t ExpireMember(const std::string& member);

  // True once every unit of the last epoch has been issued (max_epochs > 0 only).
  bool Exhausted() const;

  // Persistence: the cursor and the units that must be issued again.
  struct Snapshot {
    uint32_t epoch = 0;
    int64_t cursor = 0;
    std::vector<std::pair<int64_t, uint32_t>> pending;  // re-queued and outstanding units
    uint64_t next_lease_id = 1;
  };
  Snapshot TakeSnapshot() const;
  void Restore(const Snapshot& s);

  uint32_t epoch() const { return epoch_; }
  uint64_t issued() const { return issued_; }
  uint64_t completed() const { return completed_; }
  // Leases that ended without completing their unit: expired, their member died, or
  // released for re-issue. Every issued lease is completed, outstanding or here.
  uint64_t expired() const { return expired_; }
  uint64_t released() const { return released_; }  // the released part of expired()
  uint64_t duplicates() const { return duplicates_; }
  uint64_t reopened() const { return reopened_; }
  // Per member: leases held now, and leases ever issued to it.
  std::map<std::string, size_t> HeldByMember() const;
  const std::map<std::string, uint64_t>& issued_by_member() const { return issued_by_member_; }
  size_t outstanding() const { return leases_.size(); }
  const std::map<std::pair<int64_t, uint32_t>, UnitProgress>& progress() const { return progress_; }

 private:
  std::optional<Unit> NextUnit();
  void Requeue(const Lease& l);

  int64_t dataset_size_;
  int64_t max_epochs_;
  absl::Duration lease_timeout_;
  uint32_t epoch_ = 0;
  int64_t cursor_ = 0;
  uint64_t next_lease_id_ = 1;
  std::deque<Unit> requeued_;
  std::map<uint64_t, Lease> leases_;           // outstanding leases by id
  std::map<uint64_t, Unit> retired_leases_;    // expired or released lease ids -> unit
  std::set<Unit> done_;                        // completed units (pruned per epoch is future work)
  std::map<Unit, UnitProgress> progress_;
  std::map<std::string, uint64_t> issued_by_member_;
  uint64_t issued_ = 0, completed_ = 0, expired_ = 0, released_ = 0, duplicates_ = 0, reopened_ = 0;
};

}  // namespace grpo

#include "services/coordinator/work_queue.h"

#include <algorithm>

namespace grpo {

WorkQueue::WorkQueue(int64_t dataset_size, int64_t max_epochs, absl::Duration lease_timeout)
    : dataset_size_(dataset_size), max_epochs_(max_epochs), lease_timeout_(lease_timeout) {}

std::optional<WorkQueue::Unit> WorkQueue::NextUnit() {
  while (!requeued_.empty()) {
    Unit u = requeued_.front();
    requeued_.pop_front();
    if (!done_.count(u)) return u;
  }
  if (Exhausted() || dataset_size_ == 0) return std::nullopt;
  Unit u{cursor_, epoch_};
  if (++cursor_ == dataset_size_) {
    cursor_ = 0;
    ++epoch_;
  }
  return u;
}

bool WorkQueue::Exhausted() const { return max_epochs_ > 0 && epoch_ >= max_epochs_; }

std::vector<Lease> WorkQueue::Acquire(const std::string& member, size_t max_items, absl::Time now) {
  std::vector<Lease> out;
  while (out.size() < max_items) {
    std::optional<Unit> u = NextUnit();
    if (!u) break;
    Lease l{next_lease_id_++, u->first, u->second, member, now + lease_timeout_};
    leases_[l.id] = l;
    ++progress_[*u].leases_issued;
    ++issued_;
    ++issued_by_member_[member];
    out.push_back(l);
  }
  return out;
}

void WorkQueue::Requeue(const Lease& l) {
  Unit u{l.task_index, l.epoch};
  retired_leases_[l.id] = u;
  if (!done_.count(u)) requeued_.push_back(u);
}

CompleteCounts WorkQueue::Complete(const std::vector<uint64_t>& lease_ids, bool requeue,
                                   const std::vector<std::optional<Unit>>& units, std::vector<Unit>* resolved) {
  CompleteCounts c;
  for (size_t i = 0; i < lease_ids.size(); ++i) {
    const uint64_t id = lease_ids[i];
    std::optional<Unit> unit;
    // A lease named with another unit than the one this queue gave that id to is not
    // this queue's lease (it was issued before a restart): it is completed by name.
    const std::optional<Unit> named = i < units.size() ? units[i] : std::nullopt;
    auto it = leases_.find(id);
    if (it != leases_.end() && named && *named != Unit{it->second.task_index, it->second.epoch}) it = leases_.end();
    auto r = retired_leases_.find(id);
    if (r != retired_leases_.end() && named && *named != r->second) r = retired_leases_.end();
    if (it != leases_.end()) {
      unit = Unit{it->second.task_index, it->second.epoch};
      if (requeue) {
        // A released lease leaves the ledger the way an expired one does: it counts in
        // expired() (and in released()), so issued = completed + outstanding + expired
        // holds for every lease however it ended.
        Requeue(it->second);
        leases_.erase(it);
        ++expired_;
        ++released_;
        ++c.released;
        continue;
      }
      leases_.erase(it);
      retired_leases_[id] = *unit;
    } else if (r != retired_leases_.end()) {
      // An expired lease whose group still reached the learner: the unit is done if
      // nothing completed it yet (its re-issued copy will then be a duplicate).
      unit = r->second;
      if (requeue) continue;
    } else if (!requeue && i < units.size() && units[i] && units[i]->first >= 0 &&
               units[i]->first < dataset_size_) {
      // Issued before a restart: the unit may be queued again meanwhile; it is done now.
      ++c.unknown;
      unit = units[i];
    } else {
      ++c.unknown;
      continue;
    }
    if (resolved != nullptr) resolved->push_back(*unit);
    if (done_.insert(*unit).second) {
      ++progress_[*unit].completions;
      ++completed_;
      ++c.completed;
    } else {
      ++duplicates_;
      ++c.already_completed;
    }
  }
  return c;
}

std::map<std::string, size_t> WorkQueue::HeldByMember() const {
  std::map<std::string, size_t> out;
  for (const auto& [id, l] : leases_) ++out[l.member];
  return out;
}

size_t WorkQueue::Reopen(const std::vector<Unit>& units) {
  size_t n = 0;
  for (const Unit& u : units) {
    bool busy = std::find(requeued_.begin(), requeued_.end(), u) != requeued_.end() && !done_.count(u);
    for (const auto& [id, l] : leases_) busy = busy || (l.task_index == u.first && l.epoch == u.second);
    if (busy) continue;
    if (done_.erase(u) > 0 && progress_[u].completions > 0) --progress_[u].completions;
    requeued_.push_front(u);
    ++reopened_;
    ++n;
  }
  return n;
}

size_t WorkQueue::ExpireDue(absl::Time now) {
  size_t n = 0;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.deadline <= now) {
      Requeue(it->second);
      it = leases_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  expired_ += n;
  return n;
}

size_t WorkQueue::ExpireMember(const std::string& member) {
  size_t n = 0;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.member == member) {
      Requeue(it->second);
      it = leases_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  expired_ += n;
  return n;
}

WorkQueue::Snapshot WorkQueue::TakeSnapshot() const {
  Snapshot s;
  s.epoch = epoch_;
  s.cursor = cursor_;
  s.next_lease_id = next_lease_id_;
  for (const Unit& u : requeued_) {
    if (!done_.count(u)) s.pending.push_back(u);
  }
  // An outstanding lease of a unit already done (completed through another lease, or by
  // name after a restart) is not work to redo.
  for (const auto& [id, l] : leases_) {
    if (!done_.count({l.task_index, l.epoch})) s.pending.emplace_back(l.task_index, l.epoch);
  }
  return s;
}

void WorkQueue::Restore(const Snapshot& s) {
  epoch_ = s.epoch;
  cursor_ = s.cursor;
  // Leases issued after the snapshot was written are not in it; skip far past their ids
  // so that a late completion of one can never name a new lease of another unit.
  next_lease_id_ = s.next_lease_id + kLeaseIdGapAfterRestore;
  requeued_.assign(s.pending.begin(), s.pending.end());
  leases_.clear();
}

}  // namespace grpo

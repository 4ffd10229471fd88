// The coordinator's lease queue: issue order, completion once, expiry and re-issue.
#include "services/coordinator/work_queue.h"

#include <gtest/gtest.h>

#include <set>

namespace grpo {
namespace {

const absl::Time t0 = absl::FromUnixSeconds(1000);

TEST(WorkQueue, IssuesInOrderAcrossEpochs) {
  WorkQueue q(3, 0, absl::Seconds(10));
  std::vector<Lease> a = q.Acquire("a", 4, t0);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0].task_index, 0);
  EXPECT_EQ(a[2].task_index, 2);
  EXPECT_EQ(a[3].task_index, 0);
  EXPECT_EQ(a[3].epoch, 1u);
  EXPECT_EQ(a[0].deadline, t0 + absl::Seconds(10));
  EXPECT_NE(a[0].id, a[1].id);
}

TEST(WorkQueue, BoundedEpochsRunOut) {
  WorkQueue q(2, 1, absl::Seconds(10));
  EXPECT_EQ(q.Acquire("a", 5, t0).size(), 2u);
  EXPECT_TRUE(q.Exhausted());
  EXPECT_TRUE(q.Acquire("a", 5, t0).empty());
}

TEST(WorkQueue, CompletingTwiceCountsOnce) {
  WorkQueue q(2, 0, absl::Seconds(10));
  auto l = q.Acquire("a", 1, t0);
  CompleteCounts c = q.Complete({l[0].id}, false);
  EXPECT_EQ(c.completed, 1u);
  c = q.Complete({l[0].id}, false);
  EXPECT_EQ(c.completed, 0u);
  EXPECT_EQ(c.already_completed, 1u);
  EXPECT_EQ(q.Complete({999}, false).unknown, 1u);
  EXPECT_EQ(q.completed(), 1u);
  EXPECT_EQ(q.progress().at({0, 0}).completions, 1u);
}

TEST(WorkQueue, ExpiredLeaseIsReissuedFirstUnderANewId) {
  WorkQueue q(10, 0, absl::Seconds(10));
  auto first = q.Acquire("a", 2, t0);
  EXPECT_EQ(q.ExpireDue(t0 + absl::Seconds(5)), 0u);
  EXPECT_EQ(q.ExpireDue(t0 + absl::Seconds(10)), 2u);
  auto again = q.Acquire("b", 3, t0 + absl::Seconds(11));
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].task_index, 0);
  EXPECT_EQ(again[1].task_index, 1);
  EXPECT_EQ(again[2].task_index, 2);
  EXPECT_NE(again[0].id, first[0].id);
  EXPECT_EQ(q.progress().at({0, 0}).leases_issued, 2u);
}

TEST(WorkQueue, LateCompletionOfAnExpiredLeaseStillCountsOnceForTheUnit) {
  WorkQueue q(1, 0, absl::Seconds(1));
  auto old = q.Acquire("a", 1, t0);
  q.ExpireDue(t0 + absl::Seconds(2));
  auto fresh = q.Acquire("b", 1, t0 + absl::Seconds(2));
  ASSERT_EQ(fresh[0].task_index, 0);
  ASSERT_EQ(fresh[0].epoch, 0u);
  EXPECT_EQ(q.Complete({old[0].id}, false).completed, 1u);      // the slow group arrived after all
  EXPECT_EQ(q.Complete({fresh[0].id}, false).already_completed, 1u);
  EXPECT_EQ(q.progress().at({0, 0}).completions, 1u);
  EXPECT_EQ(q.duplicates(), 1u);
}

TEST(WorkQueue, DeadMemberLeasesComeBack) {
  WorkQueue q(4, 0, absl::Seconds(100));
  q.Acquire("a", 2, t0);
  q.Acquire("b", 1, t0);
  EXPECT_EQ(q.ExpireMember("a"), 2u);
  EXPECT_EQ(q.outstanding(), 1u);
  auto l = q.Acquire("c", 1, t0);
  EXPECT_EQ(l[0].task_index, 0);
}

TEST(WorkQueue, RequeueReleasesForReissue) {
  WorkQueue q(4, 0, absl::Seconds(100));
  auto l = q.Acquire("a", 1, t0);
  q.Complete({l[0].id}, /*requeue=*/true);
  EXPECT_EQ(q.completed(), 0u);
  EXPECT_EQ(q.Acquire("a", 1, t0)[0].task_index, 0);
}

// Every issued lease ends in exactly one place of the ledger: completed, outstanding or
// expired (which includes leases released for re-issue, as the learner's staleness drop
// does). A release used to vanish from it: issued 56 against 54 in an integration run.
TEST(WorkQueue, LedgerBalancesWithReleasesExpiriesAndDeadMembers) {
  WorkQueue q(6, 0, absl::Seconds(10));
  auto ledger_balances = [&] {
    return q.issued() == q.completed() + q.outstanding() + q.expired();
  };
  auto a = q.Acquire("a", 4, t0);
  auto b = q.Acquire("b", 2, t0 + absl::Seconds(5));
  CompleteCounts c = q.Complete({a[0].id, a[1].id}, /*requeue=*/true);
  EXPECT_EQ(c.released, 2u);
  EXPECT_EQ(q.released(), 2u);
  EXPECT_TRUE(ledger_balances());
  // Releasing an already released lease again changes nothing.
  EXPECT_EQ(q.Complete({a[0].id}, /*requeue=*/true).released, 0u);
  EXPECT_TRUE(ledger_balances());
  q.Complete({a[2].id}, /*requeue=*/false);
  EXPECT_TRUE(ledger_balances());
  EXPECT_EQ(q.ExpireDue(t0 + absl::Seconds(11)), 1u);  // a[3]; b's leases run until 15
  EXPECT_TRUE(ledger_balances());
  EXPECT_EQ(q.ExpireMember("b"), 2u);
  EXPECT_TRUE(ledger_balances());
  auto again = q.Acquire("c", 10, t0 + absl::Seconds(12));
  EXPECT_TRUE(ledger_balances());
  std::vector<uint64_t> ids;
  for (const Lease& l : again) ids.push_back(l.id);
  q.Complete(ids, /*requeue=*/false);
  EXPECT_TRUE(ledger_balances());
  EXPECT_EQ(q.outstanding(), 0u);
  EXPECT_EQ(q.expired(), 5u);
  EXPECT_EQ(q.released(), 2u);
}

TEST(WorkQueue, ReopenedUnitsAreIssuedAgainFirstUnlessBusy) {
  WorkQueue q(10, 0, absl::Seconds(10));
  auto l = q.Acquire("a", 4, t0);  // units 0..3
  std::vector<WorkQueue::Unit> resolved;
  q.Complete({l[0].id, l[1].id, l[2].id}, false, {}, &resolved);
  ASSERT_EQ(resolved.size(), 3u);
  EXPECT_EQ(resolved[1], (WorkQueue::Unit{1, 0}));
  // Units 1 and 2 were trained into weights the learner lost; 3 is still leased.
  EXPECT_EQ(q.Reopen({{1, 0}, {2, 0}, {3, 0}}), 2u);
  EXPECT_EQ(q.Reopen({{1, 0}}), 0u) << "already queued again";
  auto again = q.Acquire("b", 3, t0);
  ASSERT_EQ(again.size(), 3u);
  std::set<int64_t> first{again[0].task_index, again[1].task_index};
  EXPECT_EQ(first, (std::set<int64_t>{1, 2}));
  EXPECT_EQ(again[2].task_index, 4) << "then the cursor goes on";
  EXPECT_EQ(q.Complete({again[0].id}, false).completed, 1u) << "done again, once";
  EXPECT_EQ(q.reopened(), 2u);
}

TEST(WorkQueue, ALeaseFromBeforeARestartCompletesItsUnitByName) {
  WorkQueue q(5, 0, absl::Seconds(10));
  WorkQueue::Snapshot snap;
  snap.cursor = 3;
  snap.pending = {{1, 0}};  // outstanding when the old queue was saved
  snap.next_lease_id = 50;
  q.Restore(snap);
  // Lease 7 of the old queue: unknown here, but its unit is named.
  CompleteCounts c = q.Complete({7}, false, {WorkQueue::Unit{1, 0}});
  EXPECT_EQ(c.unknown, 1u);
  EXPECT_EQ(c.completed, 1u);
  auto l = q.Acquire("a", 1, t0);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].task_index, 3) << "the completed unit is not issued again";
  EXPECT_EQ(q.Complete({8}, false, {std::nullopt}).completed, 0u);
}

TEST(WorkQueue, AnIdReusedAfterARestartDoesNotCompleteAnotherUnit) {
  WorkQueue old_queue(6, 0, absl::Seconds(10));
  WorkQueue::Snapshot snap = old_queue.TakeSnapshot();  // written before the next lease
  auto lost = old_queue.Acquire("a", 1, t0);             // lease 1 of unit 0: not in the snapshot
  WorkQueue q(6, 0, absl::Seconds(10));
  q.Restore(snap);
  auto fresh = q.Acquire("b", 1, t0);
  EXPECT_GT(fresh[0].id, lost[0].id + 1000) << "ids after a restart skip far ahead";
  // Even with the same id, a completion naming another unit completes that unit.
  WorkQueue same(6, 0, absl::Seconds(10));
  auto l = same.Acquire("b", 2, t0);  // units 0 and 1
  std::vector<WorkQueue::Unit> resolved;
  same.Complete({l[0].id}, false, {WorkQueue::Unit{5, 0}}, &resolved);
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0], (WorkQueue::Unit{5, 0}));
  EXPECT_EQ(same.outstanding(), 2u) << "lease of unit 0 still held";
}

TEST(WorkQueue, LoadIsCountedPerMember) {
  WorkQueue q(10, 0, absl::Seconds(10));
  auto a = q.Acquire("a", 3, t0);
  q.Acquire("b", 1, t0);
  q.Complete({a[0].id}, false);
  EXPECT_EQ(q.HeldByMember(), (std::map<std::string, size_t>{{"a", 2}, {"b", 1}}));
  EXPECT_EQ(q.issued_by_member().at("a"), 3u);
  EXPECT_EQ(q.issued_by_member().at("b"), 1u);
}

TEST(WorkQueue, ADoneUnitIsNotPendingInASnapshotThoughALeaseOfItIsOutstanding) {
  WorkQueue q(4, 0, absl::Seconds(10));
  auto first = q.Acquire("a", 1, t0);
  ASSERT_EQ(q.ExpireDue(t0 + absl::Seconds(11)), 1u);
  auto again = q.Acquire("b", 1, t0 + absl::Seconds(11));  // the same unit, a new lease
  ASSERT_EQ(again[0].task_index, first[0].task_index);
  EXPECT_EQ(q.Complete({first[0].id}, false).completed, 1u);  // the late group of the old lease
  WorkQueue::Snapshot snap = q.TakeSnapshot();
  EXPECT_TRUE(snap.pending.empty()) << "unit 0 is done; its second lease is not work";
}

TEST(WorkQueue, SnapshotKeepsOutstandingAndRequeuedUnits) {
  WorkQueue q(5, 0, absl::Seconds(1));
  auto l = q.Acquire("a", 3, t0);
  q.Complete({l[1].id}, false);
  WorkQueue::Snapshot s = q.TakeSnapshot();
  WorkQueue r(5, 0, absl::Seconds(1));
  r.Restore(s);
  auto again = r.Acquire("b", 3, t0);
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].task_index, 0);  // outstanding at snapshot time: issued again
  EXPECT_EQ(again[1].task_index, 2);
  EXPECT_EQ(again[2].task_index, 3);  // then the cursor goes on
  EXPECT_GT(again[0].id, l[2].id);    // lease ids never repeat
}

}  // namespace
}  // namespace grpo

// The learner's admission buffer without processes: validation, dynamic sampling,
// duplicates, staleness on arrival and at batch time, backpressure by age, and Stop.
#include "services/learner/admission.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"

namespace grpo {
namespace {

using ::testing::HasSubstr;

AdmissionLimits Limits() {
  AdmissionLimits l;
  l.prompts_per_step = 2;
  l.max_staleness = 2;
  l.buffer_groups = 8;
  l.vocab_size = 32;
  l.max_positions = 64;
  return l;
}

// A valid group of 3 completions for (prompt id, epoch), sampled with `version`.
v1::ScoredGroup Group(uint64_t lease, const std::string& id, uint32_t epoch, uint64_t version,
                      std::vector<float> rewards = {0.f, 1.f, 0.5f}) {
  v1::ScoredGroup g;
  v1::RolloutGroup* r = g.mutable_group();
  r->mutable_item()->set_lease_id(lease);
  r->mutable_item()->set_prompt_id(id);
  r->mutable_item()->set_epoch(epoch);
  r->set_policy_version(version);
  r->set_temperature(1.0f);
  r->add_prompt_token_ids(1);
  r->add_prompt_token_ids(2);
  for (float rw : rewards) {
    v1::Completion* c = r->add_completions();
    c->add_token_ids(3);
    c->add_logprobs(-1.0f);
    g.add_scores()->set_reward(rw);
  }
  return g;
}

AdmitResult Admit(AdmissionBuffer& b, const v1::ScoredGroup& g) {
  std::optional<AdmitResult> r = b.Admit(g, [] { return false; });
  EXPECT_TRUE(r.has_value());
  return r.value_or(AdmitResult{});
}

TEST(Admission, MalformedGroupsAreRejectedAndCompletedNotRequeued) {
  AdmissionBuffer b(Limits());
  b.SetVersion(0);
  v1::ScoredGroup g = Group(1, "p", 0, 0);
  g.mutable_group()->mutable_completions(1)->add_token_ids(99);  // out of the vocabulary, logprobs short
  AdmitResult r = Admit(b, g);
  EXPECT_EQ(r.ack.outcome(), v1::SubmitAck::REJECTED);
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(r.requeue);
  EXPECT_EQ(b.size(), 0u);
  v1::ScoredGroup nan = Group(2, "q", 0, 0, {0.f, std::nanf(""), 1.f});
  EXPECT_EQ(Admit(b, nan).ack.outcome(), v1::SubmitAck::REJECTED);
}

TEST(Admission, DuplicatesAreCompletedAndStaleGroupsReleased) {
  AdmissionBuffer b(Limits());
  b.SetVersion(5);
  AdmitResult a = Admit(b, Group(1, "p", 0, 5));
  EXPECT_EQ(a.ack.outcome(), v1::SubmitAck::ACCEPTED);
  EXPECT_EQ(a.ack.latest_version(), 5);
  AdmitResult dup = Admit(b, Group(2, "p", 0, 5));
  EXPECT_EQ(dup.ack.outcome(), v1::SubmitAck::DUPLICATE);
  // Not trained yet: completing this lease would leave the prompt done at the
  // coordinator should the learner die before training the buffered group.
  EXPECT_FALSE(dup.complete);
  EXPECT_FALSE(dup.requeue);
  b.MarkTrained({{"p", 0}});
  AdmitResult after = Admit(b, Group(5, "p", 0, 5));
  EXPECT_EQ(after.ack.outcome(), v1::SubmitAck::DUPLICATE);
  EXPECT_TRUE(after.complete) << "trained: the duplicate's lease completes";
  EXPECT_EQ(Admit(b, Group(3, "p", 1, 5)).ack.outcome(), v1::SubmitAck::ACCEPTED) << "another epoch is new work";
  AdmitResult stale = Admit(b, Group(4, "q", 0, 2));  // 3 versions behind, bound 2
  EXPECT_EQ(stale.ack.outcome(), v1::SubmitAck::STALE);
  EXPECT_TRUE(stale.requeue);
  EXPECT_THAT(stale.ack.detail(), HasSubstr("3 behind"));
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.Seen().size(), 2u);
}

TEST(Admission, DynamicSamplingFiltersGroupsWithoutSignal) {
  AdmissionLimits l = Limits();
  l.dynamic_sampling = true;
  AdmissionBuffer b(l);
  b.SetVersion(0);
  AdmitResult r = Admit(b, Group(1, "p", 0, 0, {1.f, 1.f, 1.f}));
  EXPECT_EQ(r.ack.outcome(), v1::SubmitAck::FILTERED);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(Admit(b, Group(2, "q", 0, 0)).ack.outcome(), v1::SubmitAck::ACCEPTED);
}

TEST(Admission, DrawBatchDropsGroupsThatWentStaleAndForgetsTheirUnits) {
  AdmissionBuffer b(Limits());
  b.SetVersion(0);
  Admit(b, Group(1, "a", 0, 0));
  Admit(b, Group(2, "b", 0, 0));
  b.SetVersion(1);
  Admit(b, Group(3, "c", 0, 1));
  AdmissionBuffer::Draw d = b.DrawBatch(absl::ZeroDuration());
  ASSERT_EQ(d.batch.size(), 2u);
  EXPECT_EQ(d.batch[0].group().item().prompt_id(), "a");  // oldest first
  EXPECT_TRUE(d.stale_leases.empty());
  b.SetVersion(4);  // "c" (version 1) is now 3 behind
  Admit(b, Group(4, "d", 0, 4));
  d = b.DrawBatch(absl::ZeroDuration());
  EXPECT_TRUE(d.batch.empty()) << "one fresh group is not a batch of two";
  ASSERT_EQ(d.stale_leases, std::vector<uint64_t>{3});
  // The dropped unit was forgotten: its re-sampled group is new work, not a duplicate.
  EXPECT_EQ(Admit(b, Group(5, "c", 0, 4)).ack.outcome(), v1::SubmitAck::ACCEPTED);
  EXPECT_EQ(b.DrawBatch(absl::ZeroDuration()).batch.size(), 2u);
}

// Publishing overlaps the step, so a version can land while DrawBatch waits for a full
// batch: what waited is checked again against it before the batch is taken, and the
// batch says which version that was.
TEST(Admission, AVersionPublishedDuringTheWaitAgesTheBuffer) {
  AdmissionBuffer b(Limits());  // max_staleness 2, two groups per step
  b.SetVersion(0);
  Admit(b, Group(1, "a", 0, 0));
  AdmissionBuffer::Draw d;
  std::thread drawer([&] { d = b.DrawBatch(absl::Seconds(30)); });
  b.SetVersion(3);  // "a" is now 3 behind; the drawer is waiting (or about to)
  Admit(b, Group(2, "b", 0, 3));
  drawer.join();
  for (const auto& g : d.batch) EXPECT_NE(g.group().item().prompt_id(), "a") << "trained 3 versions behind";
  EXPECT_EQ(d.stale_leases, std::vector<uint64_t>{1});
  EXPECT_EQ(d.version, 3);
}

TEST(Admission, OlderGroupsWaitForRoomSoTheyAreTrainedWithinTheBound) {
  // Bound 2, 2 groups per step: fresh groups may queue behind 4, one version old behind
  // 2, two versions old behind 2 (at least one step's worth).
  AdmissionBuffer b(Limits());
  b.SetVersion(3);
  for (int i = 0; i < 2; ++i) Admit(b, Group(10 + i, absl::StrCat("f", i), 0, 3));
  std::atomic<bool> admitted{false};
  std::thread old([&] {
    std::optional<AdmitResult> r = b.Admit(Group(20, "old", 0, 2), [] { return false; });
    admitted = r.has_value() && r->ack.outcome() == v1::SubmitAck::ACCEPTED;
  });
  // A fresh group still finds room behind 2 while the older one waits.
  EXPECT_EQ(Admit(b, Group(30, "fresh", 0, 3)).ack.outcome(), v1::SubmitAck::ACCEPTED);
  EXPECT_FALSE(admitted.load());
  EXPECT_EQ(b.DrawBatch(absl::ZeroDuration()).batch.size(), 2u);  // room again
  old.join();
  EXPECT_TRUE(admitted.load());
  EXPECT_EQ(b.size(), 2u);
}

TEST(Admission, StopEndsEveryWait) {
  AdmissionLimits l = Limits();
  l.buffer_groups = 2;
  AdmissionBuffer b(l);
  b.SetVersion(0);
  Admit(b, Group(1, "a", 0, 0));
  Admit(b, Group(2, "b", 0, 0));
  std::optional<AdmitResult> waited;
  std::thread t([&] { waited = b.Admit(Group(3, "c", 0, 0), [] { return false; }); });
  std::atomic<bool> cancel{false};
  std::optional<AdmitResult> cancelled;
  std::thread u([&] { cancelled = b.Admit(Group(4, "d", 0, 0), [&] { return cancel.load(); }); });
  cancel = true;
  u.join();
  EXPECT_FALSE(cancelled.has_value()) << "a cancelled stream stops waiting";
  b.Stop();
  t.join();
  EXPECT_FALSE(waited.has_value());
  EXPECT_TRUE(b.DrawBatch(absl::Seconds(30)).batch.empty()) << "returns at once when stopping";
}

TEST(Admission, SeenUnitsSurviveACheckpoint) {
  AdmissionBuffer b(Limits());
  b.SetVersion(0);
  b.RestoreSeen({{"p", 0}});
  AdmitResult dup = Admit(b, Group(1, "p", 0, 0));
  EXPECT_EQ(dup.ack.outcome(), v1::SubmitAck::DUPLICATE);
  EXPECT_TRUE(dup.complete) << "restored units are trained ones";
  EXPECT_EQ(Admit(b, Group(2, "p", 1, 0)).ack.outcome(), v1::SubmitAck::ACCEPTED);
  EXPECT_EQ(b.Seen().size(), 2u);
}

}  // namespace
}  // namespace grpo

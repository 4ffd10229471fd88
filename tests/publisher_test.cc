// The learner's weight publisher without processes (issue #24): Enqueue never waits for
// a send, a version superseded before its turn is dropped, versions go out in order,
// WaitIdle waits for the last one, a failed send stops it and is reported, Stop leaves
// what is still queued unsent.
#include "services/learner/publisher.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace grpo {
namespace {

WeightPublisher::Blob Version(uint64_t v) { return rpc::WeightBlob::FromBytes(std::string(16, 'a' + v % 26), v, v); }

// A send that blocks on version `hold` until released, recording what it sent.
struct Sink {
  absl::Mutex mu;
  std::vector<uint64_t> sent ABSL_GUARDED_BY(mu), published ABSL_GUARDED_BY(mu), superseded ABSL_GUARDED_BY(mu);
  absl::Notification started, release;
  uint64_t hold = 1;
  absl::Status fail_with;  // returned for every version when set
  WeightPublisher::Callbacks Callbacks() {
    WeightPublisher::Callbacks cb;
    cb.send = [this](const WeightPublisher::Blob& b) {
      const uint64_t v = b->header().version;
      if (v == hold) {
        started.Notify();
        release.WaitForNotificationWithTimeout(absl::Seconds(30));
      }
      absl::MutexLock l(&mu);
      sent.push_back(v);
      return fail_with;
    };
    cb.on_published = [this](uint64_t v) {
      absl::MutexLock l(&mu);
      published.push_back(v);
    };
    cb.on_superseded = [this](uint64_t v) {
      absl::MutexLock l(&mu);
      superseded.push_back(v);
    };
    return cb;
  }
};

TEST(WeightPublisher, EnqueueDoesNotWaitAndTheNewestWins) {
  Sink sink;
  WeightPublisher pub(sink.Callbacks());
  pub.Enqueue(Version(1));
  ASSERT_TRUE(sink.started.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // Version 1 is still being sent: handing over 2, 3 and 4 returns at once, and only
  // the newest of them waits its turn.
  pub.Enqueue(Version(2));
  pub.Enqueue(Version(3));
  pub.Enqueue(Version(4));
  EXPECT_FALSE(sink.release.HasBeenNotified());
  sink.release.Notify();
  EXPECT_TRUE(pub.WaitIdle().ok());
  absl::MutexLock l(&sink.mu);
  EXPECT_EQ(sink.sent, (std::vector<uint64_t>{1, 4}));
  EXPECT_EQ(sink.published, (std::vector<uint64_t>{1, 4}));
  EXPECT_EQ(sink.superseded, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(pub.sent(), 2u);
  EXPECT_EQ(pub.superseded(), 2u);
}

TEST(WeightPublisher, WaitIdleWaitsForTheLastVersion) {
  Sink sink;
  WeightPublisher pub(sink.Callbacks());
  EXPECT_TRUE(pub.WaitIdle().ok());  // nothing handed over
  pub.Enqueue(Version(1));
  ASSERT_TRUE(sink.started.WaitForNotificationWithTimeout(absl::Seconds(30)));
  absl::Notification idle;
  std::thread waiter([&] {
    EXPECT_TRUE(pub.WaitIdle().ok());
    idle.Notify();
  });
  EXPECT_FALSE(idle.WaitForNotificationWithTimeout(absl::Milliseconds(200))) << "WaitIdle returned mid-send";
  sink.release.Notify();
  EXPECT_TRUE(idle.WaitForNotificationWithTimeout(absl::Seconds(30)));
  waiter.join();
}

TEST(WeightPublisher, AFailedSendStopsItAndIsReported) {
  Sink sink;
  sink.hold = 0;
  sink.fail_with = absl::UnavailableError("coordinator gone");
  absl::Notification failed;
  WeightPublisher::Callbacks cb = sink.Callbacks();
  absl::Status reported;
  cb.on_failed = [&](const absl::Status& s) {
    reported = s;
    failed.Notify();
  };
  WeightPublisher pub(std::move(cb));
  pub.Enqueue(Version(1));
  ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(reported.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(pub.WaitIdle().code(), absl::StatusCode::kUnavailable);
  pub.Enqueue(Version(2));  // ignored: nothing sends any more
  EXPECT_EQ(pub.WaitIdle().code(), absl::StatusCode::kUnavailable);
  absl::MutexLock l(&sink.mu);
  EXPECT_EQ(sink.sent, (std::vector<uint64_t>{1}));
  EXPECT_TRUE(sink.published.empty());
}

TEST(WeightPublisher, StopLeavesQueuedVersionsUnsent) {
  Sink sink;
  WeightPublisher pub(sink.Callbacks());
  pub.Enqueue(Version(1));
  ASSERT_TRUE(sink.started.WaitForNotificationWithTimeout(absl::Seconds(30)));
  pub.Enqueue(Version(2));
  absl::Status waited;
  // WaitIdle returns once Stop is asked for (version 2 is still queued); only then does
  // the send in progress return, and the thread ends without taking version 2.
  std::thread waiter([&] {
    waited = pub.WaitIdle();
    sink.release.Notify();
  });
  pub.Stop();
  waiter.join();
  EXPECT_EQ(waited.code(), absl::StatusCode::kCancelled) << waited;
  absl::MutexLock l(&sink.mu);
  EXPECT_EQ(sink.sent, (std::vector<uint64_t>{1}));
}

}  // namespace
}  // namespace grpo

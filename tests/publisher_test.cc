// The learner's weight publisher without processes (issue #24): Enqueue never waits for
// a send, a version superseded before its turn is dropped, versions go out in order,
// WaitIdle waits for the last one, a failed send stops it and is reported, Stop leaves
// what is still queued unsent; with deltas on, versions go out as patches against the
// last one sent (a full one every N, and whenever a patch is too large or refused).
#include "services/learner/publisher.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/rpc/weight_delta.h"

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
    cb.on_published = [this](const rpc::WeightHeader& h) {
      absl::MutexLock l(&mu);
      published.push_back(h.version);
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

// ---- Deltas

WeightPublisher::Options FullEvery(int64_t n) {
  WeightPublisher::Options o;
  o.full_every = n;
  return o;
}

// Version v of a 64 KB blob: version 1 random, each later one with a few bytes changed.
std::string Bytes(uint64_t v) {
  std::string b(65536, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : b) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  for (uint64_t k = 2; k <= v; ++k) b[(k * 7919) % b.size()] ^= 1;
  return b;
}

// Records the kind of each version sent; refuses patches while `refuse` is set.
struct KindSink {
  absl::Mutex mu;
  std::vector<std::string> kinds ABSL_GUARDED_BY(mu);
  std::map<uint64_t, std::string> full ABSL_GUARDED_BY(mu);  // the receiver's versions, rebuilt
  bool refuse = false;
  WeightPublisher::Callbacks Callbacks() {
    WeightPublisher::Callbacks cb;
    cb.send = [this](const WeightPublisher::Blob& b) -> absl::Status {
      absl::MutexLock l(&mu);
      const rpc::WeightHeader& h = b->header();
      if (h.delta && refuse) {
        kinds.push_back("refused");
        return absl::FailedPreconditionError("base not held");
      }
      kinds.push_back(h.delta ? "delta" : "full");
      if (!h.delta) {
        full[h.version] = std::string(b->bytes());
        return absl::OkStatus();
      }
      auto base = rpc::WeightBlob::FromBytes(full.at(h.base_version), h.base_version, h.base_version);
      auto applied = rpc::ApplyDeltaBlob(*base, *b);
      if (!applied.ok()) return applied.status();
      full[h.version] = std::string((*applied)->bytes());
      return absl::OkStatus();
    };
    return cb;
  }
};

TEST(WeightPublisher, SendsPatchesWithAFullVersionEveryN) {
  KindSink sink;
  WeightPublisher pub(sink.Callbacks(), FullEvery(3));
  for (uint64_t v = 1; v <= 7; ++v) {
    pub.Enqueue(rpc::WeightBlob::FromBytes(Bytes(v), v, v));
    ASSERT_TRUE(pub.WaitIdle().ok());
  }
  absl::MutexLock l(&sink.mu);
  EXPECT_EQ(sink.kinds, (std::vector<std::string>{"full", "delta", "delta", "full", "delta", "delta", "full"}));
  for (uint64_t v = 1; v <= 7; ++v) EXPECT_EQ(sink.full[v], Bytes(v)) << "version " << v << " as the receiver rebuilt it";
  const WeightPublisher::Stats st = pub.stats();
  EXPECT_EQ(st.versions_full, 3u);
  EXPECT_EQ(st.versions_delta, 4u);
  EXPECT_EQ(st.bytes_full, 3u * 65536);
  EXPECT_LT(st.bytes_delta, 4u * 65536 / 20) << "a few bytes changed: small patches";
}

TEST(WeightPublisher, ARefusedPatchIsFollowedByTheFullVersion) {
  KindSink sink;
  WeightPublisher pub(sink.Callbacks(), FullEvery(10));
  pub.Enqueue(rpc::WeightBlob::FromBytes(Bytes(1), 1, 1));
  ASSERT_TRUE(pub.WaitIdle().ok());
  {
    absl::MutexLock l(&sink.mu);
    sink.refuse = true;  // a restarted receiver: it lost version 1
  }
  pub.Enqueue(rpc::WeightBlob::FromBytes(Bytes(2), 2, 2));
  ASSERT_TRUE(pub.WaitIdle().ok());
  absl::MutexLock l(&sink.mu);
  EXPECT_EQ(sink.kinds, (std::vector<std::string>{"full", "refused", "full"}));
  EXPECT_EQ(pub.stats().patches_refused, 1u);
}

TEST(WeightPublisher, PatchesAsLargeAsTheVersionAreNotSentAndTriedLessOften) {
  KindSink sink;
  WeightPublisher pub(sink.Callbacks(), FullEvery(100));
  std::mt19937_64 rng(5);
  for (uint64_t v = 1; v <= 8; ++v) {
    std::string b(65536, '\0');
    for (char& c : b) c = static_cast<char>(rng());  // every byte changes
    pub.Enqueue(rpc::WeightBlob::FromBytes(std::move(b), v, v));
    ASSERT_TRUE(pub.WaitIdle().ok());
  }
  absl::MutexLock l(&sink.mu);
  EXPECT_EQ(sink.kinds, std::vector<std::string>(8, "full"));
  // Tried at versions 2, 4 (after skipping 1), 7 (after skipping 2): three tries, not seven.
  EXPECT_EQ(pub.stats().patches_too_large, 3u);
}

}  // namespace
}  // namespace grpo

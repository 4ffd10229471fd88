// Publishing weight versions off the trainer's thread (issue #24).
//
// The trainer serializes a version (the weights change with its next step, so that copy
// is its own) and hands the blob over with Enqueue, which returns at once. One thread
// sends the versions in order through `send` (the learner's: a Weights/Publish stream to
// the coordinator, with retries). A version still waiting when a newer one is handed
// over is dropped: receivers want the newest, and the staleness bound counts versions
// the learner trained, not versions sent. `on_published` runs on the sending thread
// after each version is out; a send that fails for good stops the publisher and calls
// `on_failed` (the learner fails the run). WaitIdle blocks until everything handed over
// is out: the end of a run, whose last version must reach the actors.
//
// Deltas (Options::full_every > 0): a version goes out as a patch against the last one
// sent (core/rpc/weight_delta.h), made on the sending thread, unless full_every - 1
// patches went out since the last full version, the patch is larger than
// max_patch_fraction of the full bytes (then no patch is tried for a while: 1, 2, 4 ...
// versions, at most full_every), or the sizes differ. A patch the receiver refuses (it
// lacks the base: a restarted coordinator; or anything else) is followed at once by the
// full version.
#ifndef GRPO_SERVICES_LEARNER_PUBLISHER_H_
#define GRPO_SERVICES_LEARNER_PUBLISHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/rpc/weight_stream.h"

namespace grpo {

class WeightPublisher {
 public:
  using Blob = std::shared_ptr<const rpc::WeightBlob>;
  struct Options {
    int64_t full_every = 0;  // 0: every version in full
    double max_patch_fraction = 0.5;
  };
  struct Stats {
    uint64_t versions_full = 0, versions_delta = 0;  // sent, by kind
    uint64_t bytes_full = 0, bytes_delta = 0;        // bytes sent, by kind
    uint64_t patches_refused = 0;  // patches the receiver refused (the full version followed)
    uint64_t patches_too_large = 0;
    double encode_seconds = 0;  // making patches
  };
  struct Callbacks {
    std::function<absl::Status(const Blob&)> send;        // required; blocking
    // After each version is out, with the header of what went out (a patch's or the full's).
    std::function<void(const rpc::WeightHeader& sent)> on_published;   // optional
    std::function<void(uint64_t version)> on_superseded;  // optional: dropped unsent
    std::function<void(const absl::Status&)> on_patch_refused;  // optional: the full version follows
    std::function<void(const absl::Status&)> on_failed;   // optional
  };
  explicit WeightPublisher(Callbacks callbacks);
  WeightPublisher(Callbacks callbacks, Options options);
  ~WeightPublisher();  // Stop()
  WeightPublisher(const WeightPublisher&) = delete;
  WeightPublisher& operator=(const WeightPublisher&) = delete;

  // Hands a version over (replacing one that has not started sending); returns at once.
  void Enqueue(Blob blob);
  // Until every version handed over is sent: OK; the send's error if one failed; Cancelled
  // when stopped first.
  absl::Status WaitIdle();
  // Stops the thread after the send in progress returns (the owner cancels that send
  // itself, e.g. through its RPC context); versions still waiting are not sent.
  void Stop();

  uint64_t sent() const;        // versions sent
  uint64_t superseded() const;  // versions dropped unsent
  Stats stats() const;

 private:
  void Loop();
  // What goes out for `blob`: a patch against last_ when the options allow, else blob.
  Blob Encode(const Blob& blob);

  const Callbacks cb_;
  const Options opt_;
  // The sending thread's alone.
  Blob last_;               // the full bytes of the last version sent
  int64_t since_full_ = 0;  // patches sent since the last full version
  int64_t backoff_ = 0, skip_ = 0;
  mutable absl::Mutex mu_;
  Blob next_ ABSL_GUARDED_BY(mu_);
  bool sending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t superseded_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace grpo

#endif  // GRPO_SERVICES_LEARNER_PUBLISHER_H_

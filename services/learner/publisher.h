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
  struct Callbacks {
    std::function<absl::Status(const Blob&)> send;        // required; blocking
    std::function<void(uint64_t version)> on_published;   // optional
    std::function<void(uint64_t version)> on_superseded;  // optional: dropped unsent
    std::function<void(const absl::Status&)> on_failed;   // optional
  };
  explicit WeightPublisher(Callbacks callbacks);
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

 private:
  void Loop();

  const Callbacks cb_;
  mutable absl::Mutex mu_;
  Blob next_ ABSL_GUARDED_BY(mu_);
  bool sending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t superseded_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace grpo

#endif  // GRPO_SERVICES_LEARNER_PUBLISHER_H_

// The learner's admission buffer: which scored groups are trained on, and when.
//
//   Admit      validates a group (ValidateScoredGroup), filters it (dynamic sampling),
//              turns away duplicates of an accepted (prompt id, epoch) and groups more
//              than max_staleness versions old, and waits for room before buffering it:
//              a group L versions old is admitted only behind fewer than
//              prompts_per_step * max(1, max_staleness - L) buffered groups (and
//              buffer_groups), about the depth at which it is still trained within the
//              bound. The wait is the backpressure that slows actors.
//   DrawBatch  waits up to a deadline for prompts_per_step groups, then drops those
//              that aged past the bound while buffered (their units are forgotten,
//              their leases returned for re-issue) and takes the oldest
//              prompts_per_step, if that many are left.
//
// Pure logic: no gRPC, no LibTorch, no I/O; the learner turns AdmitResult into acks
// and CompleteWork calls. Thread-safe: any number of Admit calls (one per stream) and
// one DrawBatch caller.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpo/v1/learner.pb.h"

namespace grpo {

// Why a group cannot be trained on, or "" when it can. Pure: checks lengths, token
// ranges, scores and the sequence length limit.
std::string ValidateScoredGroup(const v1::ScoredGroup& g, int64_t vocab_size, int64_t max_positions);

struct AdmissionLimits {
  int64_t prompts_per_step = 8;
  int64_t max_staleness = 4;
  int64_t buffer_groups = 64;
  bool dynamic_sampling = false;
  int64_t vocab_size = 0;
  int64_t max_positions = 0;
};

struct AdmitResult {
  v1::SubmitAck ack;      // outcome, detail, lease id and the newest version
  bool complete = false;  // complete the lease (rejected, filtered, duplicate)
  bool requeue = false;   // release the lease for re-issue (stale)
};

using UnitKey = std::pair<std::string, uint32_t>;  // (prompt id, epoch)

class AdmissionBuffer {
 public:
  explicit AdmissionBuffer(AdmissionLimits limits) : limits_(limits) {}

  // Decides about `g`, waiting for room when it is accepted. nullopt when the wait
  // ended because of Stop() or `cancelled()` (checked every 200 ms).
  std::optional<AdmitResult> Admit(const v1::ScoredGroup& g, const std::function<bool()>& cancelled);

  struct Draw {
    std::vector<v1::ScoredGroup> batch;     // empty: the wait ran out, or stopping
    std::vector<uint64_t> stale_leases;     // dropped as too old: release them
    int64_t version = 0;                    // the published version the batch was checked against
  };
  Draw DrawBatch(absl::Duration wait);

  // The newest published version: staleness is measured against it.
  void SetVersion(int64_t v);
  int64_t version() const;
  // Wakes every wait; Admit and DrawBatch then return at once.
  void Stop();

  size_t size() const;
  std::set<UnitKey> Seen() const;                // accepted: buffered, training or trained
  void RestoreSeen(std::set<UnitKey> seen);      // on resume: the checkpoint's trained units
  // The units of a step that trained. Until then a duplicate of one is not completed
  // (its own lease completes once it trains; a crash before that must not leave the
  // prompt done at the coordinator and never trained).
  void MarkTrained(const std::vector<UnitKey>& units);

 private:
  const AdmissionLimits limits_;
  mutable absl::Mutex mu_;
  std::deque<v1::ScoredGroup> buffer_ ABSL_GUARDED_BY(mu_);
  std::set<UnitKey> seen_ ABSL_GUARDED_BY(mu_);  // accepted (and not dropped stale)
  std::set<UnitKey> untrained_ ABSL_GUARDED_BY(mu_);  // the part of seen_ not trained yet
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace grpo

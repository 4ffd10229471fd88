// Scorer: every reward of a completion, combined by the configured weights. The reward
// service and `grpo score` both score through it, so offline and online scores agree.
//
// Components (each reported in Score.components, in [0, 1] unless noted):
//   accuracy  math: the extracted answer is equivalent to the reference (core/math);
//             code: the share of tests passed, or all-or-nothing (core/sandbox)
//   format    the R1 structure, strict or lenient
//   language  R1 language consistency of the chain of thought
//   overlong  DAPO soft overlong penalty, in [-1, 0]
// reward = sum of weight x component; with reward.truncated = zero a truncated
// completion's reward is 0 (its components are still reported). A completion that
// cannot be judged (checker timeout, sandbox failure, unknown task kind) scores 0 on
// that component and carries Score.error; it never fails the group or the stream.
//
// Thread-safe: ScoreGroup/ScoreCompletion may be called from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "grpo/v1/common.pb.h"

namespace grpo::reward {

struct CompletionToScore {
  std::string text;
  int64_t num_tokens = -1;  // < 0: unknown (no overlong penalty)
  bool truncated = false;
};

// The WorkItem fields a task gives (prompt, answer, task kind, language, tests).
v1::WorkItem TaskToWorkItem(const Task& task);

class Scorer {
 public:
  // Starts the math checker's workers and the sandbox pool. Errors name what could
  // not be set up (e.g. the sandbox cannot use cgroups).
  static absl::StatusOr<std::unique_ptr<Scorer>> Create(const RunConfig& cfg);
  ~Scorer();

  // `answer_extraction`, when not empty, overrides reward.answer_extraction (a name
  // that config validation accepts). Score.answer is the answer read.
  v1::Score ScoreCompletion(const v1::WorkItem& item, const CompletionToScore& completion,
                            const std::string& answer_extraction = "") const;

  // Scores every completion of a group (code completions run in parallel in the
  // sandbox pool), reading answers as group.answer_extraction says when it is set.
  // A malformed group gets ScoredGroup.error and no scores.
  v1::ScoredGroup ScoreGroup(const v1::RolloutGroup& group) const;
  // The same without copying the group: its scores (and item ids), what the Score RPC
  // returns.
  v1::GroupScores Scores(const v1::RolloutGroup& group) const;

  // Told of every answer check (its seconds) and sandbox run (status name, seconds of
  // its executions); for the reward service's histograms. Set before scoring starts.
  struct Observers {
    std::function<void(double seconds)> math_check;
    std::function<void(std::string_view status, double seconds)> sandbox_run;
  };
  void SetObservers(Observers observers);
  // Whether code can be run: false when the sandbox could not be set up at start (code
  // completions then carry "sandbox unavailable" errors).
  bool SandboxAvailable() const;

 private:
  struct Impl;
  explicit Scorer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace grpo::reward

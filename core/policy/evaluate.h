// Evaluation of a policy on held-out tasks: K samples per task, each judged by a
// scoring function, summarised as pass@1 / pass@k / maj@k / format / length
// (core/eval/metrics.h). `grpo eval` scores in process with the reward Scorer; the
// learner's validation scores through the reward service. Not thread-safe: one
// evaluation at a time per policy (it generates with the policy's model).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "core/eval/judging.h"
#include "core/eval/metrics.h"
#include "core/policy/policy.h"

namespace grpo {

using eval::Judgement;
using eval::SampledCompletion;

// Judges the completions of one task, in order.
using JudgeFn = std::function<absl::StatusOr<std::vector<Judgement>>(
    const Task& task, const std::vector<int64_t>& prompt_ids, const std::vector<SampledCompletion>& completions)>;

struct EvalSettings {
  int64_t k = 8;
  double temperature = 0.6;  // 0: greedy, and then one sample per task
  double top_p = 1.0;
  int64_t max_new_tokens = 64;
  uint64_t seed = 1234;
  int64_t max_batch = 64;
  int64_t max_tasks = 0;  // > 0: the first N tasks only

  // eval.* with eval.max_new_tokens = 0 meaning actor.max_new_tokens.
  static EvalSettings FromConfig(const RunConfig& cfg);
};

struct EvalOutput {
  eval::EvalReport report;
  std::vector<eval::EvalSample> samples;  // task order, then sample order
  std::vector<std::vector<std::string>> texts;  // completion texts, per task
  double seconds = 0;
};

// Samples K completions per task with `policy` (prompts encoded as the actors do) and
// judges them. Tasks whose prompt leaves no room in the context are an error naming
// the task.
absl::StatusOr<EvalOutput> EvaluatePolicy(const Policy& policy, const std::vector<Task>& tasks,
                                          const EvalSettings& settings, const JudgeFn& judge);

}  // namespace grpo

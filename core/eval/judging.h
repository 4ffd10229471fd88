// What an evaluation sends to a scorer and reads back: tasks as WorkItems, sampled
// completions as a RolloutGroup, and each Score as a Judgement (correct, format, the
// answer read). No LibTorch: the reward service, the learner and the tools share it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/dataset.h"
#include "grpo/v1/common.pb.h"

namespace grpo::eval {

struct SampledCompletion {
  std::vector<int64_t> token_ids;  // ends with the stop token when generation stopped on one
  std::vector<float> logprobs;
  std::string text;                // special tokens dropped
  bool truncated = false;          // cut at max_new_tokens or the context
};

// How one completion was judged.
struct Judgement {
  bool correct = false;               // accuracy component is 1 (code: every test passed)
  bool format = false;                // format component is at least 0.5
  std::optional<std::string> answer;  // Score.answer (not yet normalised); nullopt: none
  double language = 1.0;              // the language component (consistency), 1 when absent
  std::string outcome;                // Score.outcome (code: the sandbox status), "" for math
};

// The WorkItem fields a task gives (prompt, answer, task kind, language, tests).
v1::WorkItem TaskToWorkItem(const Task& task);

// The group to score: `answer_extraction` empty keeps the scorer's own setting.
v1::RolloutGroup GroupForJudging(const Task& task, const std::vector<int64_t>& prompt_ids,
                                 const std::vector<SampledCompletion>& completions,
                                 const std::string& answer_extraction, double temperature);

// One Judgement per score; the group's error, if it has one, as an error.
absl::StatusOr<std::vector<Judgement>> JudgementsOf(const v1::ScoredGroup& scored);

}  // namespace grpo::eval

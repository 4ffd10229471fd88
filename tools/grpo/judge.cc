#include "tools/grpo/judge.h"

namespace grpo {

JudgeFn ScorerJudge(const reward::Scorer& scorer, const std::string& answer_extraction) {
  return [&scorer, answer_extraction](const Task& task, const std::vector<int64_t>& prompt_ids,
                                      const std::vector<SampledCompletion>& comps) {
    return eval::JudgementsOf(
        scorer.ScoreGroup(eval::GroupForJudging(task, prompt_ids, comps, answer_extraction, 1.0)));
  };
}

}  // namespace grpo

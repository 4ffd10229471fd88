// Judging sampled completions with the reward Scorer in process, for `grpo eval` and
// `grpo generate --verify`: the same scoring the reward service gives training.
#pragma once

#include <string>

#include "core/policy/evaluate.h"
#include "services/reward/scorer.h"

namespace grpo {

// Judgements as core/eval/judging.h reads them; `answer_extraction` empty: the
// scorer's reward.answer_extraction.
JudgeFn ScorerJudge(const reward::Scorer& scorer, const std::string& answer_extraction);

}  // namespace grpo

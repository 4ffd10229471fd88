// Rule-based rewards of the R1 recipe: answer accuracy and output format.
//
// These functions are pure and thread-safe. The reward service runs them per completion;
// `grpo score` (offline) will run the same code.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/common/config.h"
#include "grpo/v1/common.pb.h"

namespace grpo::reward {

// The text inside the last <answer>...</answer> of a completion, trimmed; nullopt when
// there is no complete answer block.
std::optional<std::string> ExtractAnswer(std::string_view completion);

// A number in canonical form for comparison: "1,000" -> "1000", "+3.50" -> "3.5",
// "-0" -> "0", "6/4" -> "3/2" (fractions reduced), "$12" -> "12", "50%" -> "50%" kept
// distinct. nullopt when the text is not a plain number.
std::optional<std::string> CanonicalNumber(std::string_view text);

// 1 if the extracted answer equals the reference (as numbers when both are numbers,
// otherwise as whitespace-normalised strings), else 0.
double AccuracyReward(std::string_view completion, std::string_view reference);

// strict: the whole completion is <think>...</think> then <answer>...</answer>, each tag
// exactly once, only whitespace around. lenient: exactly one <answer>...</answer> block,
// with nothing but whitespace after it (the think block may be missing).
double FormatReward(std::string_view completion, const std::string& mode);

// Scores every completion of a group with the configured weights. Never throws: a
// malformed group gets ScoredGroup.error, a failing completion a Score.error.
v1::ScoredGroup ScoreGroup(const v1::RolloutGroup& group, const RewardConfig& cfg);

}  // namespace grpo::reward

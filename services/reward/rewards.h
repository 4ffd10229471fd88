// Rule-based rewards of the R1 recipe: answer accuracy and output format.
//
// These functions are pure and thread-safe. The reward service runs them per completion;
// `grpo score` (offline) will run the same code.
#pragma once

#include <cstdint>
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

// R1's language-consistency reward: the share of the chain of thought's words written
// in the prompt's script. The chain of thought is the <think> block (else the text
// before <answer>, else the whole completion). A word is a run of letters; its script
// is the Unicode script of its letters, with Han, Hiragana, Katakana, Hangul and
// Bopomofo counted as one CJK family (Japanese and Korean mix them). The prompt's
// script is the one most of its words are in. 1 when the prompt has no letters (a
// bare "3+4=": nothing to be consistent with) or the chain of thought has no words.
double LanguageConsistencyReward(std::string_view prompt, std::string_view completion);

// DAPO's soft overlong penalty on a completion of `length` tokens: 0 up to
// max_tokens - buffer_tokens, then falling linearly to -1 at max_tokens, -1 beyond.
// buffer_tokens 0 gives a hard -1 only past max_tokens.
double OverlongPenalty(int64_t length, int64_t max_tokens, int64_t buffer_tokens);

// Scores every completion of a group with the configured weights. Never throws: a
// malformed group gets ScoredGroup.error, a failing completion a Score.error.
v1::ScoredGroup ScoreGroup(const v1::RolloutGroup& group, const RewardConfig& cfg);

}  // namespace grpo::reward

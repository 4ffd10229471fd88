// Rule-based reward components of the R1 recipe that need no checker or sandbox: output
// format, language consistency, the overlong penalty, and the <answer> block. Answer
// accuracy is core/math (MathChecker) and core/sandbox; scorer.h combines them all.
//
// These functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>


namespace grpo::reward {

// The text inside the last <answer>...</answer> of a completion, trimmed; nullopt when
// there is no complete answer block.
std::optional<std::string> ExtractAnswer(std::string_view completion);

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
// Notations (issue #25): when `language` is "digits" or "words" (a chain task's), or the
// prompt names one ("14+7 (in words)"), the share of the chain of thought's notation
// units in that notation instead (core/common/r1_tasks.h NotationConsistency).
double LanguageConsistencyReward(std::string_view prompt, std::string_view completion,
                                 const std::string& language = "");

// The chain of thought of a completion: its <think> block, else the text before
// <answer>, else all of it.
std::string_view ChainOfThought(std::string_view completion);

// DAPO's soft overlong penalty on a completion of `length` tokens: 0 up to
// max_tokens - buffer_tokens, then falling linearly to -1 at max_tokens, -1 beyond.
// buffer_tokens 0 gives a hard -1 only past max_tokens.
double OverlongPenalty(int64_t length, int64_t max_tokens, int64_t buffer_tokens);

}  // namespace grpo::reward

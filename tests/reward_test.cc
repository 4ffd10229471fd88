// Reward components on well-formed and malformed completions (scorer_test.cc has
// the combination, math answers and code).
#include "services/reward/rewards.h"

#include <gtest/gtest.h>

namespace grpo::reward {
namespace {

TEST(ExtractAnswer, TakesTheLastCompleteBlockTrimmed) {
  EXPECT_EQ(ExtractAnswer("<think>x</think><answer> 42 </answer>"), "42");
  EXPECT_EQ(ExtractAnswer("<answer>1</answer> then <answer>2</answer>"), "2");
  EXPECT_EQ(ExtractAnswer("<answer>7</answer><answer>"), "7");
  EXPECT_EQ(ExtractAnswer("<answer>7"), std::nullopt);
  EXPECT_EQ(ExtractAnswer("7</answer>"), std::nullopt);
  EXPECT_EQ(ExtractAnswer(""), std::nullopt);
  EXPECT_EQ(ExtractAnswer("<answer></answer>"), "");
}

TEST(FormatReward, StrictNeedsThinkThenAnswerOnce) {
  EXPECT_EQ(FormatReward("<think>a</think><answer>1</answer>", "strict"), 1.0);
  EXPECT_EQ(FormatReward(" <think>a\nb</think>\n<answer>1</answer>\n", "strict"), 1.0);
  EXPECT_EQ(FormatReward("<answer>1</answer>", "strict"), 0.0);
  EXPECT_EQ(FormatReward("<answer>1</answer><think>a</think>", "strict"), 0.0);
  EXPECT_EQ(FormatReward("<think>a</think>x<answer>1</answer>", "strict"), 0.0);
  EXPECT_EQ(FormatReward("<think>a</think><answer>1</answer>tail", "strict"), 0.0);
  EXPECT_EQ(FormatReward("<think>a</think><answer>1</answer><answer>2</answer>", "strict"), 0.0);
  EXPECT_EQ(FormatReward("<think><think></think><answer>1</answer>", "strict"), 0.0);
  EXPECT_EQ(FormatReward("", "strict"), 0.0);
}

TEST(FormatReward, LenientNeedsOneAnswerBlockAtTheEnd) {
  EXPECT_EQ(FormatReward("<answer>1</answer>", "lenient"), 1.0);
  EXPECT_EQ(FormatReward("some thought <answer>1</answer> ", "lenient"), 1.0);
  EXPECT_EQ(FormatReward("<answer>1</answer><answer>2</answer>", "lenient"), 0.0);
  EXPECT_EQ(FormatReward("<answer>1</answer>junk", "lenient"), 0.0);
  EXPECT_EQ(FormatReward("</answer><answer>", "lenient"), 0.0);
}


// Chain tasks name a notation (issue #25): consistency is the share of the chain of
// thought's notation units in it, whether the task or only the prompt names it.
TEST(LanguageConsistency, ChainTasksScoreTheNotationTheyAskFor) {
  const std::string digits = "<think> 14+7=21, 21-9=12 </think> <answer> 12 </answer>";
  const std::string words = "<think> fourteen plus seven is twenty-one, twenty-one minus nine is twelve </think> <answer> 12 </answer>";
  const std::string mixed = "<think> 14+7=21, twenty-one minus nine is twelve </think> <answer> 12 </answer>";
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("14+7-9", words, "words"), 1.0);
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("14+7-9", digits, "words"), 0.0);
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("14+7-9", mixed, "digits"), 0.5);
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("14+7-9 (in words)", digits), 0.0) << "named by the prompt";
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("14+7-9 (in digits)", digits), 1.0);
  // The answer's digits are not the chain of thought.
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("14+7-9", "<think> fourteen plus seven is twenty-one </think> <answer> 21 </answer>", "words"), 1.0);
  // A chain task without a notation keeps the script rule (no letters in the prompt: 1).
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("14+7-9", words), 1.0);
}

TEST(LanguageConsistency, ShareOfThinkWordsInThePromptsScript) {
  const std::string en = "What is the sum of three and four?";
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward(en, "<think>add them up</think><answer>7</answer>"), 1.0);
  // Two of four words are Chinese in an English prompt's chain of thought.
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward(en, "<think>add 加起来 them 答案</think><answer>7</answer>"), 0.5);
  // Chinese prompt: Han words count; a Japanese mix of kana and Han is one family.
  const std::string zh = "三加四等于多少？";
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward(zh, "<think>三加四 等于 七</think><answer>7</answer>"), 1.0);
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward(zh, "<think>three plus four 等于七</think><answer>7</answer>"), 0.25);
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("ひらがなと漢字", "<think>かんじ 漢字</think>"), 1.0);
  // Cyrillic vs Latin look-alikes are different scripts.
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("Сколько будет три плюс четыре?", "<think>три plus четыре</think>"),
                   2.0 / 3.0);
  // Without a think block, the text before <answer>; numbers and symbols are not words.
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward(en, "so 3 + 4 = 7, Ответ <answer>7</answer>"), 0.5);
  // Nothing to be consistent with, or nothing said: neutral.
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward("3+4=", "<think>加</think>"), 1.0);
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward(en, "<think> 3+4=7 </think><answer>7</answer>"), 1.0);
  // Invalid UTF-8 does not crash and is not a word.
  EXPECT_DOUBLE_EQ(LanguageConsistencyReward(en, std::string("<think>ok \xff\xfe ok</think>")), 1.0);
}

TEST(OverlongPenalty, DapoSoftPenalty) {
  // max 100, buffer 20: free up to 80, then linear to -1 at 100, -1 beyond.
  EXPECT_DOUBLE_EQ(OverlongPenalty(50, 100, 20), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(80, 100, 20), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(90, 100, 20), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(100, 100, 20), -1.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(101, 100, 20), -1.0);
  // No buffer: only past the maximum.
  EXPECT_DOUBLE_EQ(OverlongPenalty(100, 100, 0), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(101, 100, 0), -1.0);
  // A buffer longer than the maximum ramps from zero length; no maximum: no penalty.
  EXPECT_DOUBLE_EQ(OverlongPenalty(50, 100, 500), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(5000, 0, 10), 0.0);
}

}  // namespace
}  // namespace grpo::reward

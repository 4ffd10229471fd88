// Rule-based rewards on well-formed and malformed completions.
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

TEST(CanonicalNumber, NormalisesSignsSeparatorsDecimalsAndFractions) {
  EXPECT_EQ(CanonicalNumber("1,000"), "1000");
  EXPECT_EQ(CanonicalNumber(" +7 "), "7");
  EXPECT_EQ(CanonicalNumber("-0"), "0");
  EXPECT_EQ(CanonicalNumber("3.50"), "3.5");
  EXPECT_EQ(CanonicalNumber("3.0"), "3");
  EXPECT_EQ(CanonicalNumber("007"), "7");
  EXPECT_EQ(CanonicalNumber(".5"), "0.5");
  EXPECT_EQ(CanonicalNumber("$12"), "12");
  EXPECT_EQ(CanonicalNumber("12."), "12");
  EXPECT_EQ(CanonicalNumber("6/4"), "3/2");
  EXPECT_EQ(CanonicalNumber("-4/2"), "-2");
  EXPECT_EQ(CanonicalNumber("50%"), "50%");
  EXPECT_EQ(CanonicalNumber("1/0"), std::nullopt);
  EXPECT_EQ(CanonicalNumber("x"), std::nullopt);
  EXPECT_EQ(CanonicalNumber("1.2.3"), std::nullopt);
  EXPECT_EQ(CanonicalNumber("-"), std::nullopt);
  EXPECT_EQ(CanonicalNumber(""), std::nullopt);
}

TEST(AccuracyReward, EqualNumbersPassOthersFail) {
  EXPECT_EQ(AccuracyReward("<answer>1,000</answer>", "1000"), 1.0);
  EXPECT_EQ(AccuracyReward("<think>7+5</think><answer>12.0</answer>", "12"), 1.0);
  EXPECT_EQ(AccuracyReward("<answer>3/6</answer>", "1/2"), 1.0);
  EXPECT_EQ(AccuracyReward("<answer>13</answer>", "12"), 0.0);
  EXPECT_EQ(AccuracyReward("<answer>12 apples and 3</answer>", "12"), 0.0);  // extra content
  EXPECT_EQ(AccuracyReward("<answer>1</answer>", "12"), 0.0);                // partial match
  EXPECT_EQ(AccuracyReward("12", "12"), 0.0);                                // no answer block
  EXPECT_EQ(AccuracyReward("<answer></answer>", ""), 0.0);
  EXPECT_EQ(AccuracyReward("<answer>50%</answer>", "50"), 0.0);
  EXPECT_EQ(AccuracyReward("<answer> Paris </answer>", "Paris"), 1.0);        // non-numeric: exact text
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

v1::RolloutGroup Group(std::vector<std::string> texts, std::string answer = "7") {
  v1::RolloutGroup g;
  g.mutable_item()->set_task("math");
  g.mutable_item()->set_answer(answer);
  for (auto& t : texts) {
    auto* c = g.add_completions();
    c->set_text(t);
    c->add_token_ids(1);
    c->add_logprobs(-0.5f);
  }
  return g;
}

TEST(ScoreGroup, CombinesComponentsWithWeights) {
  RewardConfig cfg;
  cfg.accuracy_weight = 1.0;
  cfg.format_weight = 0.25;
  cfg.format_mode = "strict";
  v1::ScoredGroup s = ScoreGroup(Group({"<think>3+4</think><answer>7</answer>", "<answer>7</answer>", "8"}), cfg);
  ASSERT_TRUE(s.error().empty());
  ASSERT_EQ(s.scores_size(), 3);
  EXPECT_FLOAT_EQ(s.scores(0).reward(), 1.25f);
  EXPECT_FLOAT_EQ(s.scores(1).reward(), 1.0f);
  EXPECT_FLOAT_EQ(s.scores(2).reward(), 0.0f);
  EXPECT_FLOAT_EQ(s.scores(0).components().at("format"), 1.0f);
  EXPECT_FLOAT_EQ(s.scores(1).components().at("format"), 0.0f);
  EXPECT_FLOAT_EQ(s.scores(1).components().at("accuracy"), 1.0f);
  EXPECT_EQ(s.group().completions_size(), 3);
}

TEST(ScoreGroup, MalformedGroupGetsAnErrorNotACrash) {
  RewardConfig cfg;
  v1::RolloutGroup g = Group({"<answer>7</answer>"});
  g.mutable_completions(0)->add_logprobs(-1.0f);  // 1 token, 2 logprobs
  v1::ScoredGroup s = ScoreGroup(g, cfg);
  EXPECT_NE(s.error().find("1 token ids but 2 logprobs"), std::string::npos) << s.error();
  EXPECT_EQ(s.scores_size(), 0);
  EXPECT_FALSE(ScoreGroup(v1::RolloutGroup(), cfg).error().empty());
}

TEST(ScoreGroup, UnsupportedTaskKindIsAPerCompletionError) {
  RewardConfig cfg;
  v1::RolloutGroup g = Group({"<answer>7</answer>"});
  g.mutable_item()->set_task("code");
  v1::ScoredGroup s = ScoreGroup(g, cfg);
  ASSERT_EQ(s.scores_size(), 1);
  EXPECT_FALSE(s.scores(0).error().empty());
  EXPECT_EQ(s.scores(0).components().at("accuracy"), 0.0f);
}

}  // namespace
}  // namespace grpo::reward

namespace grpo::reward {
namespace {

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

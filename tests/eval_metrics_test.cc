// Evaluation metrics: the unbiased pass@k estimator, majority voting over normalised
// answers (ties to the earliest answer, samples without an answer do not vote), and a
// report recomputed from samples-file lines.
#include "core/eval/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace grpo::eval {
namespace {

// Brute force: the share of k-subsets of n samples (c correct) with a correct one.
double PassAtKBrute(int n, int c, int k) {
  int hits = 0, total = 0;
  for (int mask = 0; mask < (1 << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    ++total;
    hits += (mask & ((1 << c) - 1)) != 0;
  }
  return static_cast<double>(hits) / total;
}

TEST(EvalMetrics, PassAtKIsTheUnbiasedEstimator) {
  EXPECT_DOUBLE_EQ(PassAtK(5, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(PassAtK(5, 2, 1), 0.4);
  EXPECT_DOUBLE_EQ(PassAtK(5, 1, 5), 1.0);
  EXPECT_NEAR(PassAtK(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12);
  for (int n = 1; n <= 10; ++n) {
    for (int c = 0; c <= n; ++c) {
      for (int k = 1; k <= n; ++k) EXPECT_NEAR(PassAtK(n, c, k), PassAtKBrute(n, c, k), 1e-12) << n << c << k;
    }
  }
  // Large n stays finite and in range (no factorials).
  const double big = PassAtK(200, 10, 100);
  EXPECT_GT(big, 0.99);
  EXPECT_LE(big, 1.0);
}

EvalSample S(const std::string& id, int64_t i, std::optional<std::string> answer, bool correct, bool format = true,
             int64_t length = 10, const std::string& task = "math") {
  EvalSample s;
  s.id = id;
  s.sample = i;
  s.answer = std::move(answer);
  s.correct = correct;
  s.format = format;
  s.length = length;
  s.task = task;
  return s;
}

bool Maj(const std::vector<EvalSample>& ss) {
  std::vector<const EvalSample*> p;
  for (const auto& s : ss) p.push_back(&s);
  return MajorityCorrect(p);
}

TEST(EvalMetrics, MajorityVoteTiesGoToTheEarliestAnswerAndNullsDoNotVote) {
  EXPECT_TRUE(Maj({S("a", 0, "7", true), S("a", 1, "8", false), S("a", 2, "7", true)}));
  EXPECT_FALSE(Maj({S("a", 0, "8", false), S("a", 1, "7", true), S("a", 2, "8", false)}));
  // Tie 1-1: the earliest answer wins, whichever it is.
  EXPECT_TRUE(Maj({S("a", 0, "7", true), S("a", 1, "8", false)}));
  EXPECT_FALSE(Maj({S("a", 0, "8", false), S("a", 1, "7", true)}));
  // Three samples without an answer do not outvote one correct answer.
  EXPECT_TRUE(Maj({S("a", 0, std::nullopt, false), S("a", 1, std::nullopt, false), S("a", 2, std::nullopt, false),
                   S("a", 3, "7", true)}));
  EXPECT_FALSE(Maj({S("a", 0, std::nullopt, false), S("a", 1, std::nullopt, false)}));
}

TEST(EvalMetrics, NormalisedAnswersVoteTogether) {
  EXPECT_EQ(NormalizeForVote(" 1,000 "), "1000");
  EXPECT_EQ(NormalizeForVote("$007$"), "7");
  EXPECT_EQ(NormalizeForVote("2.50"), "2.5");
  EXPECT_EQ(NormalizeForVote("+3."), "3");
  EXPECT_EQ(NormalizeForVote("-0"), "0");
  EXPECT_EQ(NormalizeForVote("\\boxed{42}"), "42");
  EXPECT_EQ(NormalizeForVote("1,22"), "1,22");  // not a thousands separator: kept
  EXPECT_EQ(NormalizeForVote("x + 1"), "x+1");
  EXPECT_EQ(NormalizeForVote(""), "");
}

TEST(EvalMetrics, SummarizeByTaskTypeAndOverall) {
  std::vector<EvalSample> ss = {
      // math a: 2 of 4 correct, majority "5" correct
      S("a", 0, "5", true, true, 10), S("a", 1, "6", false, false, 20), S("a", 2, "5", true, true, 30),
      S("a", 3, std::nullopt, false, false, 40),
      // math b: none correct
      S("b", 0, "1", false, true, 4), S("b", 1, "1", false, true, 4), S("b", 2, "2", false, true, 4),
      S("b", 3, "3", false, true, 4),
      // code c: 1 of 4, its program differs from the majority's
      S("c", 3, "p2", false, false, 8, "code"), S("c", 2, "p1", true, false, 8, "code"),
      S("c", 1, "p2", false, false, 8, "code"), S("c", 0, "p3", false, false, 8, "code"),
  };
  EvalReport r = Summarize(ss);
  EXPECT_EQ(r.overall.n, 3);
  EXPECT_EQ(r.overall.k, 4);
  EXPECT_NEAR(r.overall.pass1, (0.5 + 0 + 0.25) / 3, 1e-12);
  EXPECT_NEAR(r.overall.passk, (1 + 0 + 1) / 3.0, 1e-12);
  EXPECT_NEAR(r.overall.majk, 1 / 3.0, 1e-12);
  EXPECT_NEAR(r.overall.format, 6 / 12.0, 1e-12);
  EXPECT_NEAR(r.overall.response_len_mean, (100 + 16 + 32) / 12.0, 1e-12);
  ASSERT_EQ(r.by_task.size(), 2u);
  EXPECT_EQ(r.by_task["math"].n, 2);
  EXPECT_NEAR(r.by_task["math"].majk, 0.5, 1e-12);
  EXPECT_NEAR(r.by_task["code"].pass1, 0.25, 1e-12);
  EXPECT_NEAR(r.by_task["code"].majk, 0.0, 1e-12);

  // The samples file's lines carry everything the report needs.
  std::vector<EvalSample> back;
  for (const auto& s : ss) back.push_back(SampleFromJson(nlohmann::json::parse(SampleJson(s).dump())));
  EXPECT_EQ(ReportJson(Summarize(back)).dump(), ReportJson(r).dump());
  nlohmann::ordered_json j = ReportJson(r);
  for (const char* key : {"pass@1", "pass@k", "maj@k", "k", "format", "response_len_mean", "n", "by_task"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_THAT(ReportTable(r), ::testing::HasSubstr("maj@4"));
}

// Language consistency (issue #25): the mean over samples, in the report, the table and
// each sample line; a samples line from before it reads as 1.
TEST(EvalMetrics, LanguageConsistencyIsTheMeanOverSamples) {
  std::vector<EvalSample> ss;
  const double lang[] = {1.0, 0.5, 0.0, 0.5};
  for (int i = 0; i < 4; ++i) {
    EvalSample s;
    s.id = i < 2 ? "a" : "b";
    s.task = "math";
    s.sample = i % 2;
    s.answer = "3";
    s.correct = true;
    s.language_consistency = lang[i];
    ss.push_back(s);
  }
  const EvalReport r = Summarize(ss);
  EXPECT_NEAR(r.overall.language_consistency, 0.5, 1e-12);
  EXPECT_NEAR(ReportJson(r)["language_consistency"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(ReportJson(r)["by_task"]["math"]["language_consistency"].get<double>(), 0.5, 1e-12);
  EXPECT_THAT(ReportTable(r), ::testing::HasSubstr("language"));
  EXPECT_DOUBLE_EQ(SampleFromJson(nlohmann::json::parse(SampleJson(ss[2]).dump())).language_consistency, 0.0);
  nlohmann::json old = nlohmann::json::parse(SampleJson(ss[2]).dump());
  old.erase("language_consistency");
  EXPECT_DOUBLE_EQ(SampleFromJson(old).language_consistency, 1.0);
}

// Code samples carry the sandbox's outcome; the report gives each outcome's share of the
// samples, per task type and overall, and math has none.
TEST(EvalMetrics, CodeOutcomesAreSharesOfSamples) {
  std::vector<EvalSample> ss = {S("c1", 0, "p", true, true, 10, "code"), S("c1", 1, "q", false, true, 10, "code"),
                                S("c2", 0, "r", false, true, 10, "code"), S("c2", 1, "s", false, true, 10, "code"),
                                S("m1", 0, "3", true), S("m1", 1, "3", true)};
  const char* outcomes[] = {"ok", "compile_error", "wrong_answer", "compile_error"};
  for (int i = 0; i < 4; ++i) ss[i].outcome = outcomes[i];
  const EvalReport r = Summarize(ss);
  const nlohmann::ordered_json j = ReportJson(r);
  EXPECT_NEAR(j["by_task"]["code"]["outcomes"]["compile_error"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(j["by_task"]["code"]["outcomes"]["ok"].get<double>(), 0.25, 1e-12);
  EXPECT_NEAR(j["by_task"]["code"]["outcomes"]["wrong_answer"].get<double>(), 0.25, 1e-12);
  EXPECT_FALSE(j["by_task"]["math"].contains("outcomes"));
  EXPECT_NEAR(j["outcomes"]["compile_error"].get<double>(), 2.0 / 6, 1e-12);  // of all samples
  EXPECT_EQ(SampleFromJson(nlohmann::json::parse(SampleJson(ss[1]).dump())).outcome, "compile_error");
  EXPECT_FALSE(nlohmann::json::parse(SampleJson(ss[4]).dump()).contains("outcome"));
}

}  // namespace
}  // namespace grpo::eval

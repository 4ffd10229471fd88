// The Scorer: math accuracy through core/math, code through the real sandbox, the other
// components, weights, truncation, and per-completion errors; plus `grpo score` on a
// scoring file with bad lines.
#include "services/reward/scorer.h"

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/checksum.h"
#include "core/common/config.h"
#include "nlohmann/json.hpp"

namespace grpo::reward {
namespace {

using ::testing::HasSubstr;

v1::RolloutGroup Group(std::vector<std::string> texts, std::string answer = "7") {
  v1::RolloutGroup g;
  g.mutable_item()->set_task("math");
  g.mutable_item()->set_answer(answer);
  g.mutable_item()->set_prompt("What is 3 + 4?");
  for (auto& t : texts) {
    auto* c = g.add_completions();
    c->set_text(t);
    c->add_token_ids(1);
    c->add_logprobs(-0.5f);
  }
  return g;
}

std::unique_ptr<Scorer> MakeScorer(RunConfig cfg = {}) {
  auto s = Scorer::Create(cfg);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

TEST(Scorer, CombinesComponentsWithWeights) {
  RunConfig cfg;
  cfg.reward.accuracy_weight = 1.0;
  cfg.reward.format_weight = 0.25;
  cfg.reward.format_mode = "strict";
  auto scorer = MakeScorer(cfg);
  v1::ScoredGroup s = scorer->ScoreGroup(Group({"<think>3+4</think><answer>7</answer>", "<answer>7</answer>", "8"}));
  ASSERT_TRUE(s.error().empty());
  ASSERT_EQ(s.scores_size(), 3);
  EXPECT_FLOAT_EQ(s.scores(0).reward(), 1.25f);
  EXPECT_FLOAT_EQ(s.scores(1).reward(), 1.0f);
  EXPECT_FLOAT_EQ(s.scores(2).reward(), 0.0f);
  EXPECT_FLOAT_EQ(s.scores(0).components().at("format"), 1.0f);
  EXPECT_FLOAT_EQ(s.scores(1).components().at("format"), 0.0f);
  EXPECT_FLOAT_EQ(s.scores(1).components().at("accuracy"), 1.0f);
  for (const char* k : {"accuracy", "format", "language", "overlong"}) EXPECT_TRUE(s.scores(0).components().count(k));
  EXPECT_EQ(s.group().completions_size(), 3);
}

TEST(Scorer, MathAnswersGoThroughTheChecker) {
  auto scorer = MakeScorer();
  auto acc = [&](const std::string& completion, const std::string& gold) {
    return scorer->ScoreGroup(Group({completion}, gold)).scores(0).components().at("accuracy");
  };
  EXPECT_EQ(acc("<answer>1,000</answer>", "1000"), 1.0f);
  EXPECT_EQ(acc("<answer>\\frac{1}{2}</answer>", "0.5"), 1.0f);
  EXPECT_EQ(acc("<answer>\\boxed{\\dfrac{\\sqrt{2}}{2}}</answer>", "\\frac{1}{\\sqrt{2}}"), 1.0f);
  EXPECT_EQ(acc("<answer>12 apples and 3</answer>", "12"), 0.0f);  // extra content
  EXPECT_EQ(acc("<answer>1</answer>", "12"), 0.0f);                // partial match
  EXPECT_EQ(acc("12", "12"), 0.0f);                                // no answer block
  EXPECT_EQ(acc("<answer>[1,2)</answer>", "[1,2]"), 0.0f);         // different interval
}

TEST(Scorer, BoxedExtractionByConfig) {
  RunConfig cfg;
  cfg.reward.answer_extraction = "boxed";
  auto scorer = MakeScorer(cfg);
  v1::ScoredGroup s = scorer->ScoreGroup(Group({"so \\boxed{7}.", "<answer>7</answer>"}));
  EXPECT_EQ(s.scores(0).components().at("accuracy"), 1.0f);
  EXPECT_EQ(s.scores(1).components().at("accuracy"), 0.0f);
}

TEST(Scorer, FreeTextExtractionByConfig) {
  RunConfig cfg;
  cfg.reward.answer_extraction = "free";
  EXPECT_TRUE(ValidateConfig(cfg).ok()) << ValidateConfig(cfg);
  auto free_text = MakeScorer(cfg);
  auto answer_tag = MakeScorer();  // the training default
  EXPECT_EQ(RunConfig().reward.answer_extraction, "answer_tag");
  auto acc = [](Scorer& s, const std::string& completion) {
    return s.ScoreGroup(Group({completion}, "42")).scores(0).components().at("accuracy");
  };
  const std::string completion = "We add 3 and 39 to get the total, so the answer is 42.";
  EXPECT_EQ(acc(*free_text, completion), 1.0f);
  EXPECT_EQ(acc(*answer_tag, completion), 0.0f);
  EXPECT_EQ(acc(*free_text, "so the answer is 41."), 0.0f);
  EXPECT_EQ(acc(*free_text, "<answer>42</answer>"), 1.0f);  // tags still count
  cfg.reward.answer_extraction = "freetext";
  EXPECT_FALSE(ValidateConfig(cfg).ok());
}

TEST(Scorer, TruncationOverlongAndLanguage) {
  RunConfig cfg;
  cfg.reward.format_weight = 0;
  cfg.reward.overlong_weight = 1.0;
  cfg.reward.overlong_max_tokens = 10;
  cfg.reward.overlong_buffer_tokens = 4;
  cfg.reward.language_weight = 0.5;
  auto scorer = MakeScorer(cfg);
  v1::WorkItem item;
  item.set_task("math");
  item.set_answer("7");
  item.set_prompt("What is 3 + 4?");
  // 8 tokens: 2 into the 4-token buffer, penalty -0.5; half the think words English.
  v1::Score s = scorer->ScoreCompletion(item, {"<think>add 加起来</think><answer>7</answer>", 8, false});
  EXPECT_FLOAT_EQ(s.components().at("overlong"), -0.5f);
  EXPECT_FLOAT_EQ(s.components().at("language"), 0.5f);
  EXPECT_FLOAT_EQ(s.reward(), 1.0f - 0.5f + 0.25f);
  // Truncated completions keep their score, or get 0 with truncated = zero.
  EXPECT_GT(scorer->ScoreCompletion(item, {"<answer>7</answer>", 3, true}).reward(), 0.0f);
  cfg.reward.truncated = "zero";
  auto zeroing = MakeScorer(cfg);
  v1::Score z = zeroing->ScoreCompletion(item, {"<answer>7</answer>", 3, true});
  EXPECT_EQ(z.reward(), 0.0f);
  EXPECT_EQ(z.components().at("accuracy"), 1.0f);
}

TEST(Scorer, MalformedGroupGetsAnErrorNotACrash) {
  auto scorer = MakeScorer();
  v1::RolloutGroup g = Group({"<answer>7</answer>"});
  g.mutable_completions(0)->add_logprobs(-1.0f);  // 1 token, 2 logprobs
  v1::ScoredGroup s = scorer->ScoreGroup(g);
  EXPECT_NE(s.error().find("1 token ids but 2 logprobs"), std::string::npos) << s.error();
  EXPECT_EQ(s.scores_size(), 0);
  EXPECT_FALSE(scorer->ScoreGroup(v1::RolloutGroup()).error().empty());
}

TEST(Scorer, UnknownTaskKindIsAPerCompletionError) {
  auto scorer = MakeScorer();
  v1::RolloutGroup g = Group({"<answer>7</answer>"});
  g.mutable_item()->set_task("poetry");
  v1::ScoredGroup s = scorer->ScoreGroup(g);
  ASSERT_EQ(s.scores_size(), 1);
  EXPECT_THAT(s.scores(0).error(), HasSubstr("poetry"));
  EXPECT_EQ(s.scores(0).components().at("accuracy"), 0.0f);
}

// A pathological answer is a scored zero with a reason, within the budget.
TEST(Scorer, PathologicalMathIsAZeroWithAReason) {
  RunConfig cfg;
  cfg.reward.math_timeout_ms = 300;
  auto scorer = MakeScorer(cfg);
  v1::ScoredGroup s = scorer->ScoreGroup(Group({"<answer>" + std::string(200000, '(') + "</answer>",
                                                "<answer>7</answer>"}));
  ASSERT_EQ(s.scores_size(), 2);
  EXPECT_EQ(s.scores(0).components().at("accuracy"), 0.0f);
  EXPECT_FALSE(s.scores(0).error().empty());
  EXPECT_EQ(s.scores(1).components().at("accuracy"), 1.0f);
}

v1::RolloutGroup CodeGroup(const std::vector<std::string>& programs) {
  v1::RolloutGroup g;
  g.mutable_item()->set_task("code");
  g.mutable_item()->set_language("python");
  g.mutable_item()->set_prompt("Read two integers and print their sum.");
  for (auto [in, out] : std::vector<std::pair<std::string, std::string>>{{"1 2\n", "3\n"}, {"5 5\n", "10\n"}}) {
    v1::TestCase* t = g.mutable_item()->add_tests();
    t->set_input(in);
    t->set_output(out);
  }
  for (const auto& p : programs) g.add_completions()->set_text(p);
  return g;
}

// Code completions run in the real sandbox: the share of tests passed, hostile code
// scores 0, and the answer block or a fenced block is the program.
TEST(Scorer, CodeCompletionsRunInTheSandbox) {
  RunConfig cfg;
  cfg.reward.format_weight = 0;
  cfg.reward.sandbox_time_limit_ms = 500;  // the infinite loop ends sooner
  auto scorer = MakeScorer(cfg);
  v1::ScoredGroup s = scorer->ScoreGroup(CodeGroup({
      "<answer>a, b = map(int, input().split())\nprint(a + b)</answer>",
      "```python\na, b = map(int, input().split())\nprint(a + b if a != 5 else 0)\n```",
      "<answer>import os\nos.system('rm -rf /')\nwhile True: pass</answer>",
      "<answer>this is not python</answer>",
  }));
  ASSERT_TRUE(s.error().empty()) << s.error();
  ASSERT_EQ(s.scores_size(), 4);
  EXPECT_FLOAT_EQ(s.scores(0).components().at("accuracy"), 1.0f) << s.scores(0).error();
  EXPECT_FLOAT_EQ(s.scores(1).components().at("accuracy"), 0.5f) << s.scores(1).error();
  EXPECT_FLOAT_EQ(s.scores(2).components().at("accuracy"), 0.0f);
  EXPECT_FLOAT_EQ(s.scores(3).components().at("accuracy"), 0.0f);
  // How each program fared: the sandbox's status (the first failing test's).
  EXPECT_EQ(s.scores(0).outcome(), "ok");
  EXPECT_EQ(s.scores(1).outcome(), "wrong_answer");
  EXPECT_EQ(s.scores(2).outcome(), "time_limit");
  EXPECT_EQ(s.scores(3).outcome(), "runtime_error");  // valid syntax ("this is not python"): a NameError
  EXPECT_EQ(scorer->ScoreCompletion(s.group().item(), {"<answer>print 3</answer>", 5, false}, "").outcome(),
            "compile_error");
  cfg.reward.code_reward = "all_or_nothing";
  EXPECT_FLOAT_EQ(MakeScorer(cfg)->ScoreGroup(CodeGroup({s.group().completions(1).text()})).scores(0).reward(), 0.0f);
}

// Free-form completions (a base model's, or evaluation's): a fence left open runs to the
// end, a closing </answer> without its opening ends the program, the last of several
// fenced blocks is the one.
TEST(Scorer, CodeInLooseFencesAndTags) {
  RunConfig cfg;
  cfg.reward.format_weight = 0;
  auto scorer = MakeScorer(cfg);
  const std::string sum = "a, b = map(int, input().split())\nprint(a + b)\n";
  v1::ScoredGroup s = scorer->ScoreGroup(CodeGroup({
      " ```python\n" + sum,
      " Easy. ```python\n" + sum + "</answer>",
      "```python\nprint(0)\n``` or better ```python\n" + sum + "```",
      "```python\nprint(0)\n``` or better:\n```\n" + sum,
      sum + "``` </answer> trailing words",
      "```python",
  }));
  ASSERT_TRUE(s.error().empty()) << s.error();
  ASSERT_EQ(s.scores_size(), 6);
  for (int i = 0; i < 5; ++i)
    EXPECT_FLOAT_EQ(s.scores(i).components().at("accuracy"), 1.0f) << i << ": " << s.scores(i).answer();
  EXPECT_FLOAT_EQ(s.scores(5).components().at("accuracy"), 0.0f);
}

// `grpo score`: every good line scored, every bad line reported and skipped.
TEST(GrpoScore, ScoresAFileAndSkipsBadLines) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("grpo-score-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string input = (dir / "in.jsonl").string();
  ASSERT_TRUE(WriteFileAtomic(input,
                              R"({"id": "a", "prompt": "3+4?", "answer": "7", "completion": "<think>x</think><answer>7</answer>"}
not json
{"id": "b", "prompt": "3+4?", "answer": "7"}
{"id": "c", "prompt": "1/2?", "answer": "\\frac{1}{2}", "completion": "<answer>0.5</answer>", "completion_tokens": 5}
{"id": "d", "prompt": "sum", "language": "python", "tests": [{"input": "1 2\n", "output": "3\n"}], "completion": "<answer>print(sum(map(int, input().split())))</answer>"}
)")
                  .ok());
  const char* bin = std::getenv("GRPO_BIN_DIR");
  std::string cmd = std::string(bin ? bin : "build/bin") + "/grpo score --input " + input + " --output " +
                    (dir / "out.jsonl").string() + " --set reward.format_weight=0 2>" + (dir / "err.txt").string();
  int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 1);  // some lines were bad
  std::ifstream out(dir / "out.jsonl");
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(out, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["id"], "a");
  EXPECT_EQ(lines[0]["reward"], 1.0);
  EXPECT_EQ(lines[0]["components"]["accuracy"], 1.0);
  EXPECT_THAT(std::string(lines[1]["error"]), HasSubstr("in.jsonl:2"));
  EXPECT_THAT(std::string(lines[2]["error"]), HasSubstr("completion"));
  EXPECT_EQ(lines[3]["components"]["accuracy"], 1.0);
  EXPECT_EQ(lines[4]["components"]["accuracy"], 1.0) << lines[4].dump();
  std::string err = *ReadFile((dir / "err.txt").string());
  EXPECT_THAT(err, HasSubstr("scored 3 line(s), 2 bad line(s) skipped"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace grpo::reward

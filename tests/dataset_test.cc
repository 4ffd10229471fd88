// Dataset JSONL: parsing, errors that name file and line, the arithmetic generator.
#include "core/common/dataset.h"
#include "core/common/checksum.h"
#include "core/common/r1_tasks.h"
#include "core/common/sft_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace grpo {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()))).string();
}

TEST(Dataset, InfersTaskKindAndReadsFields) {
  absl::StatusOr<Task> m = ParseTask(R"({"id": "a", "prompt": "1+1", "answer": "2"})", "x:1");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->task, "math");
  absl::StatusOr<Task> c = ParseTask(R"({"id": "b", "prompt": "p", "tests": [{"input": "1", "output": "2"}]})", "x:2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->task, "code");
  EXPECT_EQ(c->language, "python");
}

TEST(Dataset, BadLinesAreAllReportedWithFileAndLine) {
  std::string path = TempPath("ds.jsonl");
  {
    std::ofstream o(path);
    o << R"({"id": "a", "prompt": "1+1", "answer": "2"})" << "\n"
      << "\n"
      << "{not json\n"
      << R"({"id": "c", "answer": "2"})" << "\n"
      << R"({"id": "a", "prompt": "x", "answer": "1"})" << "\n"
      << R"({"id": "d", "prompt": "x", "task": "poetry"})" << "\n";
  }
  absl::StatusOr<std::vector<Task>> ds = LoadDataset(path);
  ASSERT_FALSE(ds.ok());
  std::string msg(ds.status().message());
  EXPECT_THAT(msg, HasSubstr("4 bad line(s)"));
  EXPECT_THAT(msg, HasSubstr(path + ":3: not valid JSON"));
  EXPECT_THAT(msg, HasSubstr(path + ":4: missing field 'prompt'"));
  EXPECT_THAT(msg, HasSubstr(path + ":5: duplicate id 'a'"));
  EXPECT_THAT(msg, HasSubstr(path + ":6: field 'task'"));
  std::filesystem::remove(path);
}

TEST(Dataset, GeneratedArithmeticRoundTripsAndIsCorrect) {
  ArithmeticOptions o;
  o.num_tasks = 50;
  o.max_operand = 12;
  o.operators = "+-*";
  std::vector<Task> tasks = GenerateArithmetic(o);
  ASSERT_EQ(tasks.size(), 50u);
  for (const Task& t : tasks) {
    long a, b;
    char op;
    ASSERT_EQ(std::sscanf(t.prompt.c_str(), "%ld%c%ld", &a, &op, &b), 3) << t.prompt;
    long r = op == '+' ? a + b : op == '-' ? a - b : a * b;
    EXPECT_EQ(t.answer, std::to_string(r)) << t.prompt;
  }
  EXPECT_EQ(GenerateArithmetic(o)[7].prompt, tasks[7].prompt);  // deterministic
  std::string path = TempPath("gen.jsonl");
  ASSERT_TRUE(WriteDataset(path, tasks).ok());
  absl::StatusOr<std::vector<Task>> back = LoadDataset(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 50u);
  EXPECT_EQ((*back)[49].id, tasks[49].id);
  EXPECT_EQ((*back)[49].answer, tasks[49].answer);
  std::filesystem::remove(path);
}

// Notations off (the default), tasks and corpus are the bytes they were before
// notations existed (the CRCs were taken from the code before them): the R1-Zero demo
// learns from exactly what it learned from.
TEST(ChainCorpus, WithoutNotationsTasksAndCorpusAreUnchanged) {
  ChainOptions t;
  CorpusOptions c;
  c.documents = 4000;
  const ChainTasks tasks = GenerateChainTasks(t);
  std::string all;
  for (const Task& x : tasks.test) absl::StrAppend(&all, TaskToJson(x).dump(), "\n");
  for (const Task& x : tasks.train) absl::StrAppend(&all, TaskToJson(x).dump(), "\n");
  EXPECT_EQ(Crc32(all), 1915140121u) << "tasks";
  std::string corpus;
  for (const std::string& d : GeneratePretrainCorpus(t, c, tasks.test)) absl::StrAppend(&corpus, d, "\n");
  EXPECT_EQ(Crc32(corpus), 1945950101u) << "corpus";
}

// ---- Notations (issue #25: language mixing in miniature)

TEST(Notations, NumberWordsAndWorkedSolutionsInWords) {
  EXPECT_EQ(NumberWords(0), "zero");
  EXPECT_EQ(NumberWords(13), "thirteen");
  EXPECT_EQ(NumberWords(21), "twenty-one");
  EXPECT_EQ(NumberWords(40), "forty");
  EXPECT_EQ(NumberWords(100), "one hundred");
  EXPECT_EQ(NumberWords(112), "one hundred twelve");
  EXPECT_EQ(NumberWords(2005), "two thousand five");
  EXPECT_EQ(WorkedSolution("14+7-9"), "14+7=21, 21-9=12");
  EXPECT_EQ(WorkedSolution("14+7-9 (in words)", true), "fourteen plus seven is twenty-one, twenty-one minus nine is twelve");
  EXPECT_EQ(NotationOf("14+7-9 (in words)"), "words");
  EXPECT_EQ(NotationOf("14+7-9 (in digits)"), "digits");
  EXPECT_EQ(NotationOf("14+7-9"), "");
}

TEST(Notations, ConsistencyIsTheShareOfNotationUnitsInTheAskedOne) {
  EXPECT_DOUBLE_EQ(NotationConsistency("14+7=21, 21-9=12", "digits"), 1.0);
  EXPECT_DOUBLE_EQ(NotationConsistency("14+7=21, 21-9=12", "words"), 0.0);
  EXPECT_DOUBLE_EQ(NotationConsistency("First, fourteen plus seven is twenty-one", "words"), 1.0);
  // 5 digit units (14 + 7 = 21) and 5 word units (twenty-one minus nine is twelve).
  EXPECT_DOUBLE_EQ(NotationConsistency("14+7=21, twenty-one minus nine is twelve", "digits"), 0.5);
  EXPECT_DOUBLE_EQ(NotationConsistency("So let's see.", "words"), 1.0) << "nothing in either notation";
  EXPECT_DOUBLE_EQ(NotationConsistency("", "digits"), 1.0);
  EXPECT_DOUBLE_EQ(NotationConsistency("Twenty-One PLUS one is twenty-two", "words"), 1.0) << "case and hyphens";
}

TEST(Notations, TasksNameANotationOverTheSameSums) {
  ChainOptions plain;
  ChainOptions named;
  named.words_share = 0.5;
  const ChainTasks a = GenerateChainTasks(plain), b = GenerateChainTasks(named);
  ASSERT_EQ(a.train.size(), b.train.size());
  int words = 0;
  for (size_t i = 0; i < a.train.size(); ++i) {
    const Task& t = b.train[i];
    ASSERT_TRUE(t.language == "words" || t.language == "digits") << t.language;
    EXPECT_EQ(t.prompt, a.train[i].prompt + NotationInstruction(t.language));
    EXPECT_EQ(t.answer, a.train[i].answer) << "the answer stays a number";
    EXPECT_EQ(NotationOf(t.prompt), t.language);
    words += t.language == "words";
  }
  EXPECT_NEAR(words / static_cast<double>(a.train.size()), 0.5, 0.05);
  // The notation survives a round trip through the dataset file format.
  auto back = ParseTask(TaskToJson(b.test[0]).dump(), "x:1");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->language, b.test[0].language);
}

TEST(Notations, ColdStartChainsAreWorkedInTheAskedNotationInTheFormat) {
  ChainOptions o;
  o.words_share = 0.5;
  const ChainTasks tasks = GenerateChainTasks(o);
  const std::vector<std::string> lines = ColdStartExamples(tasks.train, 300);
  ASSERT_EQ(lines.size(), 300u);
  EXPECT_EQ(ColdStartExamples(tasks.train, 5).size(), 5u);
  const std::regex format(R"(^ <think> (.+) </think> <answer> (-?\d+) </answer>$)");
  int words = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    const Task& t = tasks.train[i];
    EXPECT_EQ(j.at("prompt"), t.prompt);
    const std::string completion = j.at("completion");
    std::smatch m;
    ASSERT_TRUE(std::regex_match(completion, m, format)) << completion;
    EXPECT_EQ(m[2].str(), t.answer) << completion;
    EXPECT_DOUBLE_EQ(NotationConsistency(m[1].str(), t.language), 1.0) << t.prompt << " -> " << completion;
    EXPECT_EQ(m[1].str(), WorkedSolution(t.prompt, t.language == "words"));
    words += t.language == "words";
  }
  EXPECT_GT(words, 100);
  EXPECT_LT(words, 200);
  // Without notations: digits.
  const std::vector<std::string> plain = ColdStartExamples(GenerateChainTasks(ChainOptions{}).train, 1);
  EXPECT_TRUE(std::regex_search(plain[0], std::regex(R"(<think> \d+[+-]\d+=)"))) << plain[0];
}

TEST(Notations, TheCorpusMixesNotationsAndInstructions) {
  ChainOptions t;
  CorpusOptions c;
  c.documents = 4000;
  c.words_share = 0.4;
  c.mixed_share = 0.2;
  c.instruction_share = 0.3;
  const ChainTasks tasks = GenerateChainTasks(t);
  const std::vector<std::string> docs = GeneratePretrainCorpus(t, c, tasks.test);
  EXPECT_EQ(GeneratePretrainCorpus(t, c, tasks.test), docs);
  int in_words = 0, in_digits = 0, mixed = 0, instructed = 0, fact_words = 0;
  for (const std::string& line : docs) {
    const std::string text = nlohmann::json::parse(line).at("text").get<std::string>();
    const bool w = text.find(" plus ") != std::string::npos || text.find(" minus ") != std::string::npos;
    const bool d = std::regex_search(text, std::regex(R"(\d+[+-]\d+=\d+)"));
    in_words += w && !d;
    in_digits += d && !w;
    mixed += w && d;
    instructed += NotationOf(text) != "";
    fact_words += text.rfind("Adding ", 0) == 0 && w;
  }
  EXPECT_GT(in_words, 400);
  EXPECT_GT(in_digits, 400);
  EXPECT_GT(mixed, 50) << "worked solutions that switch notation part way";
  EXPECT_GT(instructed, 100);
  EXPECT_GT(fact_words, 100);
}

// The demo's corpus shape (no fact tables, every exercise worked, a few tagged
// transcripts) over 3000 documents of chains with operands up to 15.
ChainOptions DemoLikeChains() {
  ChainOptions t;
  t.max_operand = 15;
  return t;
}
CorpusOptions DemoLikeCorpus() {
  CorpusOptions c;
  c.documents = 3000;
  c.facts_share = 0;
  c.worked_share = 1.0;
  c.dialog_worked_share = 0.2;
  c.tagged_share = 0.05;
  return c;
}

// Every worked solution in the demo's pretraining corpus comes after the problem it
// solves and uses that problem's operands in order; tagged transcripts always reason
// inside <think> and answer with the last step's value.
TEST(ChainCorpus, WorkedSolutionsFollowTheirProblemAndTaggedTranscriptsThink) {
  const ChainOptions t = DemoLikeChains();
  CorpusOptions c = DemoLikeCorpus();
  std::vector<std::string> docs = GeneratePretrainCorpus(t, c, {});
  ASSERT_EQ(docs.size(), 3000u);
  EXPECT_EQ(GeneratePretrainCorpus(t, c, {}), docs);  // deterministic for a seed
  const std::regex step(R"((\d+)([+-])(\d+)=(\d+))");
  const std::regex chain(R"((\d+)((?:[+-]\d+){2,})(?![=\d]))");
  const std::regex term(R"(([+-])(\d+))");
  // Transcripts under the R1-Zero instruction: the instruction itself names the tags.
  const std::string preamble = absl::StrReplaceAll(R1ZeroTemplate(), {{"User: {prompt}. Assistant:", ""}});
  auto text_of = [&](const std::string& line) {
    std::string text = nlohmann::json::parse(line).at("text").get<std::string>();
    return text.rfind(preamble, 0) == 0 ? text.substr(preamble.size()) : text;
  };
  int worked = 0, tagged = 0, with_lead = 0, large_start = 0;
  for (const std::string& line : docs) {
    const std::string text = text_of(line);
    std::smatch first;
    if (!std::regex_search(text, first, step)) continue;
    ++worked;
    // The problem: the last chain written before the first step.
    const std::string before = text.substr(0, first.position(0));
    std::vector<long> operands;
    std::string ops;
    for (std::sregex_iterator it(before.begin(), before.end(), chain), end; it != end; ++it) {
      operands = {std::stol((*it)[1])};
      ops.clear();
      const std::string rest = (*it)[2];
      for (std::sregex_iterator n(rest.begin(), rest.end(), term), e; n != e; ++n) {
        ops += (*n)[1].str();
        operands.push_back(std::stol((*n)[2]));
      }
    }
    ASSERT_FALSE(operands.empty()) << "a worked solution without its problem: " << text;
    large_start += operands[0] > t.max_operand;
    long value = operands[0];
    size_t i = 0;
    for (std::sregex_iterator it(text.begin(), text.end(), step), end; it != end; ++it, ++i) {
      ASSERT_LT(i, ops.size()) << text;
      EXPECT_EQ(std::stol((*it)[1]), value) << text;
      EXPECT_EQ((*it)[2].str(), std::string(1, ops[i])) << text;
      EXPECT_EQ(std::stol((*it)[3]), operands[i + 1]) << text;
      value = ops[i] == '+' ? value + operands[i + 1] : value - operands[i + 1];
      EXPECT_EQ(std::stol((*it)[4]), value) << text;
    }
    EXPECT_EQ(i, ops.size()) << text;
    with_lead += before.size() >= 2 && before.substr(before.size() - 2) != ": " && before.substr(before.size() - 2) != "> ";
    if (text.find("<answer>") != std::string::npos) {
      ++tagged;
      EXPECT_NE(text.find("<think> "), std::string::npos) << text;
      EXPECT_LT(text.find("<think> "), static_cast<size_t>(first.position(0))) << text;
      EXPECT_NE(text.find(absl::StrCat("</think> <answer> ", value, " </answer>")), std::string::npos) << text;
    }
  }
  // Worked exercises are the bulk; some transcripts are tagged; some solutions open
  // with a phrase, so the gap between problem and solution varies.
  EXPECT_GT(worked, 1500);
  EXPECT_GT(tagged, 50);
  EXPECT_GT(with_lead, worked / 10);
  // Some chains start above max_operand, so large running values are common enough.
  EXPECT_GT(large_start, worked / 5);
  EXPECT_LT(large_start, worked / 2);
  // No empty <think> anywhere: the tags always come with reasoning.
  for (const std::string& line : docs) EXPECT_EQ(text_of(line).find("<think> </think>"), std::string::npos);
}

// Restated results (pipeline.base_restated_share): some worked solutions end by stating
// their last step's value as the answer, outside the tags, and the corpus is otherwise
// the same documents as without them.
TEST(ChainCorpus, RestatedResultsCopyTheLastStepAndChangeNothingElse) {
  const ChainOptions t = DemoLikeChains();
  CorpusOptions c = DemoLikeCorpus();
  const std::vector<std::string> plain = GeneratePretrainCorpus(t, c, {});
  c.restated_share = 0.5;
  const std::vector<std::string> docs = GeneratePretrainCorpus(t, c, {});
  ASSERT_EQ(docs.size(), plain.size());
  const std::regex step(R"((\d+)[+-]\d+=(\d+))");
  const std::regex restated(R"((\. The answer is |, so the answer is |\. Answer: |\. Result: )(\d+)\.?$)");
  const std::regex tagged(R"(<answer> \d)");  // (the R1-Zero instruction names the tags too)
  int worked = 0, restates = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    const std::string text = nlohmann::json::parse(docs[i]).at("text").get<std::string>();
    const std::string before = nlohmann::json::parse(plain[i]).at("text").get<std::string>();
    std::smatch m;
    if (!std::regex_search(text, m, restated)) {
      EXPECT_EQ(text, before);
      worked += std::regex_search(text, step) && !std::regex_search(text, tagged);
      continue;
    }
    ++worked;
    ++restates;
    EXPECT_FALSE(std::regex_search(text, tagged)) << "restated in a tagged transcript: " << text;
    // The same document with the restatement cut out.
    std::string cut = text;
    cut.erase(static_cast<size_t>(m.position(0)), static_cast<size_t>(m.length(0)));
    if (text.back() == '.') cut += ".";
    EXPECT_EQ(cut, before);
    // The restated value is the last step's.
    std::string last;
    for (std::sregex_iterator it(text.begin(), text.end(), step), end; it != end; ++it) last = (*it)[2];
    EXPECT_EQ(m[2].str(), last) << text;
  }
  EXPECT_GT(restates, worked * 4 / 10);
  EXPECT_LT(restates, worked * 6 / 10);
}

TEST(SftData, TextAndPromptCompletionLines) {
  auto t = ParseSftLine(R"({"text": "12+7=19", "id": "x"})", "f:1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->is_text);
  EXPECT_EQ(t->text, "12+7=19");
  auto p = ParseSftLine(R"({"prompt": "12+7", "completion": "<answer>19</answer>"})", "f:2");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->is_text);
  EXPECT_EQ(p->completion, "<answer>19</answer>");
  EXPECT_EQ(p->where, "f:2");
}

TEST(SftData, EveryBadLineIsReportedByFileAndLineAndNothingIsReturned) {
  const std::string path = TempPath("sft-bad.jsonl");
  {
    std::ofstream out(path);
    out << R"({"text": "fine"})" << "\n"
        << "not json\n"
        << R"({"prompt": "only a prompt"})" << "\n"
        << "\n"
        << R"({"text": "a", "prompt": "b", "completion": "c"})" << "\n"
        << R"({"text": 5})" << "\n"
        << "{\"text\": \"\xff\xfe\"}\n"
        << R"({"completion": "x"})" << "\n"
        << R"({"text": ""})" << "\n"
        << "[1, 2]\n";
  }
  auto r = LoadSftData(path);
  ASSERT_FALSE(r.ok());
  const std::string msg(r.status().message());
  EXPECT_THAT(msg, HasSubstr("8 bad line(s)"));
  EXPECT_THAT(msg, HasSubstr(path + ":2: not valid JSON"));
  EXPECT_THAT(msg, HasSubstr(path + ":3: missing field 'completion'"));
  EXPECT_THAT(msg, HasSubstr(path + ":5: give either"));
  EXPECT_THAT(msg, HasSubstr(path + ":6: field 'text' must be a string"));
  EXPECT_THAT(msg, HasSubstr(path + ":7: not valid JSON (or a string that is not valid UTF-8)"));
  EXPECT_THAT(msg, HasSubstr(path + ":8: missing field 'prompt'"));
  EXPECT_THAT(msg, HasSubstr(path + ":9: field 'text' is empty"));
  EXPECT_THAT(msg, HasSubstr(path + ":10: expected a JSON object"));
  EXPECT_FALSE(LoadSftData(TempPath("sft-missing.jsonl")).ok());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace grpo

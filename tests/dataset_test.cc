// Dataset JSONL: parsing, errors that name file and line, the arithmetic generator.
#include "core/common/dataset.h"
#include "core/common/sft_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

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

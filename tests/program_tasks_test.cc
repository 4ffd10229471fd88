// The code task family (core/common/program_tasks.h): disjoint splits, hidden tests that
// the reference program passes in the real sandbox, and a corpus whose wrong programs
// fail the way beginners' programs do (also run in the sandbox).
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/common/program_tasks.h"
#include "core/sandbox/sandbox.h"

namespace grpo {
namespace {

std::vector<sandbox::TestCase> TestsOf(const Task& t) {
  std::vector<sandbox::TestCase> out;
  for (const auto& c : t.tests) out.push_back({c.at("input").get<std::string>(), c.at("output").get<std::string>()});
  return out;
}

TEST(ProgramTasks, SplitsAreDisjointAndDeterministicAndEveryTaskHasTests) {
  ProgramOptions o;
  o.train_tasks = 1500;
  o.test_tasks = 200;
  o.seed = 3;
  ProgramTasks a = GenerateProgramTasks(o), b = GenerateProgramTasks(o);
  ASSERT_EQ(a.train.size(), 1500u);
  ASSERT_EQ(a.test.size(), 200u);
  std::set<std::string> test_prompts, ids;
  std::map<std::string, int> kinds;
  for (const Task& t : a.test) test_prompts.insert(t.prompt);
  EXPECT_EQ(test_prompts.size(), a.test.size());
  for (size_t i = 0; i < a.train.size(); ++i) {
    const Task& t = a.train[i];
    EXPECT_EQ(t.prompt, b.train[i].prompt);
    EXPECT_EQ(t.tests, b.train[i].tests);
    EXPECT_FALSE(test_prompts.count(t.prompt)) << t.prompt;
    EXPECT_EQ(t.task, "code");
    EXPECT_EQ(t.language, "python");
    ASSERT_EQ(t.tests.size(), 4u);
    EXPECT_TRUE(ids.insert(t.id).second);
    kinds[t.prompt.substr(0, 20)]++;
    EXPECT_FALSE(ReferenceProgram(t.prompt).empty()) << t.prompt;
  }
  EXPECT_EQ(kinds.size(), 4u);  // pair, one, list and loop tasks
  for (const auto& [k, n] : kinds) EXPECT_GT(n, 250) << k;
  o.seed = 4;
  EXPECT_NE(GenerateProgramTasks(o).train[0].prompt, a.train[0].prompt);
}

TEST(ProgramTasks, ReferenceProgramsPassTheirHiddenTestsInTheSandbox) {
  auto sb = sandbox::Sandbox::Create({});
  ASSERT_TRUE(sb.ok()) << sb.status();
  ProgramOptions o;
  o.train_tasks = 40;
  o.test_tasks = 0;
  for (const Task& t : GenerateProgramTasks(o).train) {
    sandbox::RunRequest req;
    req.program = {sandbox::Language::kPython, ReferenceProgram(t.prompt)};
    req.tests = TestsOf(t);
    sandbox::RunResult r = (*sb)->Run(req);
    EXPECT_EQ(r.status, sandbox::RunStatus::kOk) << t.prompt << "\n" << req.program.source << r.ToJson().dump();
  }
  EXPECT_EQ(ReferenceProgram("Read two integers a and b. Print a*3-b"),
            "a, b = map(int, input().split())\nprint(a*3-b)\n");
  EXPECT_EQ(ReferenceProgram("Read an integer n. For each i from 1 to n, print i*i-1"),
            "n = int(input())\nfor i in range(1, n + 1):\n    print(i*i-1)\n");
  EXPECT_EQ(ReferenceProgram("Read a line of integers. Let m be their maximum. Print m*2+1"),
            "xs = list(map(int, input().split()))\nm = max(xs)\nprint(m*2+1)\n");
  EXPECT_EQ(ReferenceProgram("Print 3"), "");
}

// The corpus's programs, run against the hidden tests of their own prompts: most fail,
// and they fail in every class the task family is to show (compile and runtime errors,
// wrong answers, a few limits).
TEST(ProgramTasks, CorpusProgramsAreOftenWrongInEveryClassAndNeverAboutHeldOutTasks) {
  ProgramOptions o;
  o.train_tasks = 200;
  o.test_tasks = 100;
  ProgramTasks t = GenerateProgramTasks(o);
  ProgramCorpusOptions c;
  c.documents = 3000;
  std::vector<std::string> docs = GenerateProgramCorpus(o, c, t.test);
  ASSERT_EQ(docs.size(), 3000u);
  int tagged = 0, fenced = 0, notes = 0;
  for (const std::string& line : docs) {
    const std::string text = nlohmann::json::parse(line).at("text").get<std::string>();
    for (const Task& h : t.test) ASSERT_EQ(text.find(h.prompt + "\n"), std::string::npos) << text;
    for (const Task& h : t.test) ASSERT_EQ(text.find(h.prompt + "."), std::string::npos) << text;
    tagged += text.find("<answer>") != std::string::npos;
    fenced += text.find("```python\n") != std::string::npos;
    notes += text.find("print(") == std::string::npos && text.find("print ") == std::string::npos;
  }
  EXPECT_GT(tagged, 30);
  EXPECT_LT(tagged, 200);
  EXPECT_GT(fenced, 1000);
  EXPECT_GT(notes, 150);

  // Run the programs of 200 documents that are about a task.
  auto sb = sandbox::Sandbox::Create({});
  ASSERT_TRUE(sb.ok()) << sb.status();
  std::map<std::string, int> classes;
  int ran = 0;
  for (const std::string& line : docs) {
    if (ran == 200) break;
    const std::string text = nlohmann::json::parse(line).at("text").get<std::string>();
    // The prompt: after "# ", "Task: ", "User: " ... up to the line end or ". Assistant".
    std::string prompt, program;
    for (const char* head : {"Read two", "Read an", "Read a line"}) {
      const size_t at = text.find(head);
      if (at == std::string::npos) continue;
      size_t end = text.find('\n', at);
      prompt = text.substr(at, end - at);
      if (prompt.size() > 12 && prompt.substr(prompt.size() - 12) == ". Assistant:") prompt.resize(prompt.size() - 12);
      const size_t assistant = prompt.find(". Assistant:");
      if (assistant != std::string::npos) prompt.resize(assistant);
      if (!prompt.empty() && prompt.back() == '.') prompt.pop_back();
      break;
    }
    if (prompt.empty()) continue;
    const size_t fence = text.find("```python\n"), answer = text.find("<answer>\n");
    if (fence != std::string::npos) {
      program = text.substr(fence + 10, text.rfind("```") - fence - 10);
    } else if (answer != std::string::npos) {
      program = text.substr(answer + 9, text.find("</answer>") - answer - 9);
    } else {
      program = text.substr(text.find('\n') + 1);
    }
    const std::string ref = ReferenceProgram(prompt);
    ASSERT_FALSE(ref.empty()) << prompt << " in " << text;
    // Hidden tests of the same prompt: any generated test inputs will do, so run the
    // reference program on a fixed input for the prompt's kind and compare.
    std::string input = prompt.rfind("Read two", 0) == 0 ? "7 3\n" : prompt.rfind("Read a line", 0) == 0 ? "4 9 2\n" : "3\n";
    sandbox::Limits lim;
    lim.time_limit_ms = 1000;
    sandbox::RunResult want = (*sb)->Execute({sandbox::Language::kPython, ref}, input, lim);
    ASSERT_EQ(want.status, sandbox::RunStatus::kOk) << ref;
    sandbox::RunRequest req;
    req.program = {sandbox::Language::kPython, program};
    req.tests = {{input, want.main.stdout_text}};
    req.limits = lim;
    sandbox::RunResult got = (*sb)->Run(req);
    classes[std::string(sandbox::RunStatusName(got.status))]++;
    ++ran;
  }
  ASSERT_EQ(ran, 200);
  std::string seen;
  for (const auto& [k, n] : classes) seen += k + "=" + std::to_string(n) + " ";
  EXPECT_GT(classes["ok"], 30) << seen;          // some right programs ...
  EXPECT_LT(classes["ok"], 120) << seen;         // ... most wrong (wrong_share 0.7)
  EXPECT_GT(classes["wrong_answer"], 10) << seen;
  EXPECT_GT(classes["runtime_error"], 10) << seen;
  EXPECT_GT(classes["compile_error"], 5) << seen;  // Python's SyntaxError
}

}  // namespace
}  // namespace grpo

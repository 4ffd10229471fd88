#include "core/common/dataset.h"

#include <fstream>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/checksum.h"

namespace grpo {

absl::StatusOr<Task> ParseTask(const std::string& line, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected a JSON object"));
  auto str = [&](const char* key, std::string* out, bool required) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) return absl::InvalidArgumentError(absl::StrCat(where, ": missing field '", key, "'"));
      return absl::OkStatus();
    }
    if (!it->is_string()) return absl::InvalidArgumentError(absl::StrCat(where, ": field '", key, "' must be a string"));
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  Task t;
  for (auto [key, out, req] : {std::tuple{"id", &t.id, true}, {"prompt", &t.prompt, true},
                               {"task", &t.task, false}, {"answer", &t.answer, false},
                               {"language", &t.language, false}}) {
    absl::Status s = str(key, out, req);
    if (!s.ok()) return s;
  }
  if (t.id.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": field 'id' is empty"));
  if (j.contains("tests")) t.tests = j["tests"];
  if (t.task.empty()) t.task = j.contains("tests") ? "code" : "math";
  if (t.task == "math") {
    if (!j.contains("answer")) return absl::InvalidArgumentError(absl::StrCat(where, ": math task needs field 'answer'"));
  } else if (t.task == "code") {
    if (!t.tests.is_array() || t.tests.empty())
      return absl::InvalidArgumentError(absl::StrCat(where, ": code task needs a non-empty 'tests' array"));
    for (size_t i = 0; i < t.tests.size(); ++i) {
      const auto& c = t.tests[i];
      if (!c.is_object() || !c.contains("input") || !c.contains("output") || !c["input"].is_string() ||
          !c["output"].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": tests[", i, "] must be {\"input\": string, \"output\": string}"));
      }
    }
    if (t.language.empty()) t.language = "python";
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ": field 'task' must be \"math\" or \"code\", got \"", t.task, "\""));
  }
  return t;
}

nlohmann::json TaskToJson(const Task& t) {
  nlohmann::json j = {{"id", t.id}, {"task", t.task}, {"prompt", t.prompt}};
  if (t.task == "math") {
    j["answer"] = t.answer;
    if (!t.language.empty()) j["language"] = t.language;  // the notation its prompt asks for
  }
  if (t.task == "code") {
    j["language"] = t.language;
    j["tests"] = t.tests;
  }
  return j;
}

absl::StatusOr<std::vector<Task>> LoadDataset(const std::string& path) {
  std::set<std::string> ids;
  absl::StatusOr<std::vector<Task>> tasks = ParseJsonlFile<Task>(
      path, "dataset", [&](const std::string& line, const std::string& where) -> absl::StatusOr<Task> {
        absl::StatusOr<Task> t = ParseTask(line, where);
        if (t.ok() && !ids.insert(t->id).second) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate id '", t->id, "'"));
        }
        return t;
      });
  if (!tasks.ok() && absl::EndsWith(tasks.status().message(), ": no lines")) {
    return absl::InvalidArgumentError(absl::StrCat("dataset ", path, ": no tasks"));
  }
  return tasks;
}

absl::Status WriteDataset(const std::string& path, const std::vector<Task>& tasks) {
  std::string out;
  for (const Task& t : tasks) absl::StrAppend(&out, TaskToJson(t).dump(), "\n");
  return WriteFileAtomic(path, out);
}

std::vector<Task> GenerateArithmetic(const ArithmeticOptions& opts) {
  std::mt19937_64 rng(opts.seed);
  std::uniform_int_distribution<int64_t> operand(0, opts.max_operand);
  std::uniform_int_distribution<size_t> op(0, opts.operators.size() - 1);
  std::vector<Task> tasks;
  tasks.reserve(static_cast<size_t>(opts.num_tasks));
  for (int64_t i = 0; i < opts.num_tasks; ++i) {
    int64_t a = operand(rng), b = operand(rng);
    char o = opts.operators[op(rng)];
    int64_t r = o == '+' ? a + b : o == '-' ? a - b : a * b;
    Task t;
    t.id = absl::StrFormat("arith-%06d", i);
    t.task = "math";
    t.prompt = absl::StrCat(a, std::string(1, o), b);
    t.answer = absl::StrCat(r);
    tasks.push_back(std::move(t));
  }
  return tasks;
}

}  // namespace grpo

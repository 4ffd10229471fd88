// Datasets: one task per JSONL line (format in docs/ARCHITECTURE.md), and the arithmetic
// task generator of the demo.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>

namespace grpo {

struct Task {
  std::string id;
  std::string task;  // "math" or "code"
  std::string prompt;
  std::string answer;    // math: the reference answer
  std::string language;  // code: "python" | "cpp"; math: the notation asked for ("digits" | "words"), or ""
  nlohmann::json tests;  // code: [{"input": "...", "output": "..."}]
};

// Reads a JSONL file line by line (blank lines skipped), handing each line and its
// "file:line" to `parse`. Every bad line is reported (up to 10 shown) in one error that
// starts with `what` and the path, and nothing is returned when any line is bad, so a
// run never trains on a silently shortened file. An empty file is an error too.
template <typename T>
absl::StatusOr<std::vector<T>> ParseJsonlFile(
    const std::string& path, const std::string& what,
    const std::function<absl::StatusOr<T>(const std::string& line, const std::string& where)>& parse);

// Parses one JSONL line; `where` ("file:line") prefixes errors.
absl::StatusOr<Task> ParseTask(const std::string& line, const std::string& where);
nlohmann::json TaskToJson(const Task& t);

// Reads a whole dataset. Every bad line is reported (file:line: what is wrong), up to a
// limit, and nothing is returned when any line is bad, so a run never trains on a
// silently shortened dataset. Blank lines are skipped; duplicate ids are an error.
absl::StatusOr<std::vector<Task>> LoadDataset(const std::string& path);

// Writes tasks as JSONL atomically (temp file + rename).
absl::Status WriteDataset(const std::string& path, const std::vector<Task>& tasks);

struct ArithmeticOptions {
  int64_t num_tasks = 512;
  int64_t max_operand = 9;
  std::string operators = "+";
  uint64_t seed = 1;
};
// Prompts like "3+4" with answers like "7"; deterministic for a seed.
std::vector<Task> GenerateArithmetic(const ArithmeticOptions& opts);

template <typename T>
absl::StatusOr<std::vector<T>> ParseJsonlFile(
    const std::string& path, const std::string& what,
    const std::function<absl::StatusOr<T>(const std::string& line, const std::string& where)>& parse) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(what, " ", path, ": cannot open"));
  std::vector<T> out;
  std::vector<std::string> errors;
  int bad = 0;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    absl::StatusOr<T> r = parse(line, absl::StrCat(path, ":", lineno));
    if (!r.ok()) {
      if (++bad <= 10) errors.push_back(std::string(r.status().message()));
      continue;
    }
    out.push_back(std::move(*r));
  }
  if (bad > 0) {
    std::string msg = absl::StrCat(what, " ", path, ": ", bad, " bad line(s); fix them and retry:");
    for (const auto& e : errors) absl::StrAppend(&msg, "\n  ", e);
    if (bad > 10) absl::StrAppend(&msg, "\n  ... and ", bad - 10, " more");
    return absl::InvalidArgumentError(msg);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": no lines"));
  return out;
}

}  // namespace grpo

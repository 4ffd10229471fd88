// Datasets: one task per JSONL line (format in docs/ARCHITECTURE.md), and the arithmetic
// task generator of the demo.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace grpo {

struct Task {
  std::string id;
  std::string task;  // "math" or "code"
  std::string prompt;
  std::string answer;    // math: the reference answer
  std::string language;  // code: "python" | "cpp"
  nlohmann::json tests;  // code: [{"input": "...", "output": "..."}]
};

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

}  // namespace grpo

// Supervised training data (`grpo sft`): one JSON object per line, either
//   {"text": "..."}                            pretraining: loss on every token, or
//   {"prompt": "...", "completion": "..."}     SFT: the prompt goes through the model's
//                                              template, loss on the completion only.
// Other fields (an id, say) are ignored. Blank lines are skipped.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace grpo {

struct SftRecord {
  bool is_text = false;
  std::string text;        // is_text
  std::string prompt;      // !is_text
  std::string completion;  // !is_text
  std::string where;       // "file:line", for errors found later (too long, say)
};

// Parses one line; `where` prefixes errors.
absl::StatusOr<SftRecord> ParseSftLine(const std::string& line, const std::string& where);

// Reads a whole file. Every bad line is reported (file:line: what is wrong), up to a
// limit, and nothing is returned when any line is bad: training never starts on a
// silently shortened corpus.
absl::StatusOr<std::vector<SftRecord>> LoadSftData(const std::string& path);

}  // namespace grpo

// grpo score: score a scoring file offline with the reward service's own code.
//
//   grpo score --input FILE.jsonl [--config FILE] [--set k=v]... [--output FILE]
//
// Each input line is a task (DESIGN.md dataset format: id, prompt, answer for math;
// language and tests for code; optional task) plus "completion": "...", and optionally
// "completion_tokens": N and "truncated": bool (for the overlong penalty and the
// truncation rule; without them the completion counts as not truncated and its
// length as unknown, so no overlong penalty). Each output line is the input object
// with "reward" and "components" added, or, for a line that cannot be scored,
// "error" (naming the line) and the line's text. A bad line never stops the run:
// the exit status is 0 when every line was scored, 1 when some were not, 2 for
// usage errors (bad flags, unreadable input, bad config).
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "nlohmann/json.hpp"
#include "services/reward/scorer.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct ScoreOptions {
  std::string input;
  std::string output;
  std::string config;
  std::vector<std::string> sets;
};

int RunScore(const ScoreOptions& o) {
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides(o.config, o.sets);
  if (!cfg.ok()) {
    std::cerr << "grpo score: " << cfg.status().message() << "\n";
    return 2;
  }
  std::ifstream in(o.input);
  if (!in) {
    std::cerr << "grpo score: cannot read " << o.input << "\n";
    return 2;
  }
  std::ofstream out_file;
  if (!o.output.empty()) {
    out_file.open(o.output, std::ios::trunc);
    if (!out_file) {
      std::cerr << "grpo score: cannot write " << o.output << "\n";
      return 2;
    }
  }
  std::ostream& out = o.output.empty() ? std::cout : out_file;
  absl::StatusOr<std::unique_ptr<reward::Scorer>> scorer = reward::Scorer::Create(*cfg);
  if (!scorer.ok()) {
    std::cerr << "grpo score: " << scorer.status().message() << "\n";
    return 1;
  }
  std::string line;
  int64_t n = 0, scored = 0, bad = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = absl::StrCat(o.input, ":", n);
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::string error;
    absl::StatusOr<Task> task = ParseTask(line, where);
    if (j.is_discarded() || !j.is_object()) {
      error = absl::StrCat(where, ": not a JSON object");
    } else if (!task.ok()) {
      error = std::string(task.status().message());
    } else if (!j.contains("completion") || !j["completion"].is_string()) {
      error = absl::StrCat(where, ": needs a string field 'completion'");
    } else if (j.contains("completion_tokens") && !j["completion_tokens"].is_number_integer()) {
      error = absl::StrCat(where, ": 'completion_tokens' must be an integer");
    } else if (j.contains("truncated") && !j["truncated"].is_boolean()) {
      error = absl::StrCat(where, ": 'truncated' must be a boolean");
    }
    if (!error.empty()) {
      ++bad;
      std::cerr << "grpo score: " << error << " (skipped)\n";
      nlohmann::ordered_json e;
      e["line"] = n;
      e["error"] = error;
      e["text"] = line;
      out << e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      continue;
    }
    reward::CompletionToScore c;
    c.text = j["completion"].get<std::string>();
    c.num_tokens = j.value("completion_tokens", int64_t{-1});
    c.truncated = j.value("truncated", false);
    v1::Score s = (*scorer)->ScoreCompletion(reward::TaskToWorkItem(*task), c);
    j["reward"] = s.reward();
    nlohmann::ordered_json comps = nlohmann::ordered_json::object();
    std::map<std::string, float> sorted(s.components().begin(), s.components().end());
    for (const auto& [k, v] : sorted) comps[k] = v;
    j["components"] = comps;
    if (!s.error().empty()) j["error"] = s.error();
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    ++scored;
  }
  out.flush();
  std::cerr << "grpo score: scored " << scored << " line(s), " << bad << " bad line(s) skipped\n";
  return bad == 0 ? 0 : 1;
}

}  // namespace

Subcommand AddScoreCommand(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "score a JSONL file of tasks + completions offline");
  cmd->add_option("--input", o->input, "scoring file: task fields plus \"completion\"")->required();
  cmd->add_option("--output", o->output, "output JSONL (default: stdout)");
  cmd->add_option("--config", o->config, "run config YAML (its reward section is used)");
  cmd->add_option("--set", o->sets, "override a config field: section.key=value (repeatable)");
  return {cmd, [o] { return RunScore(*o); }};
}

}  // namespace grpo

// grpo eval: pass@1, pass@k, maj@k, format share and response length of a model on a
// dataset, per task type and overall.
//
//   grpo eval --model DIR --data FILE.jsonl [-k K] [--temperature T] [--max-new-tokens N]
//             [--samples-out FILE.jsonl] [--json FILE] [--config FILE] [--set k=v]...
//             [--answer-extraction free|answer_tag|boxed|answer_then_boxed]
//             [--max-tasks N] [--seed S] [--threads N]
//
// Prompts are encoded as the run's actors encode them (model.chat_template,
// model.prompt_template from --config, default the demo's), completions scored by the
// reward Scorer with the run's reward.* settings except the answer extraction
// (eval.answer_extraction, default free text). --temperature 0 is greedy: one sample
// per task. --samples-out writes one line per sample (id, sample, answer, correct,
// format, length, task) from which the JSON's numbers can be recomputed.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "core/policy/evaluate.h"
#include "core/policy/policy.h"
#include "services/reward/scorer.h"
#include "tools/grpo/judge.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct EvalCliOptions {
  std::string model_dir, data, samples_out, json_out, config, answer_extraction;
  std::vector<std::string> sets;
  int64_t k = -1, max_new_tokens = -1, max_tasks = -1, seed = -1;
  double temperature = -1;
  int threads = 0;
};

int RunEvalCommand(const EvalCliOptions& o) {
  auto fail = [](const std::string& msg, int code) {
    std::cerr << "grpo eval: " << msg << "\n";
    return code;
  };
  std::vector<std::string> sets = o.sets;
  sets.insert(sets.begin(), absl::StrCat("model.path=", o.model_dir));
  if (o.k >= 0) sets.push_back(absl::StrCat("eval.k=", o.k));
  if (o.temperature >= 0) sets.push_back(absl::StrCat("eval.temperature=", o.temperature));
  if (o.max_new_tokens >= 0) sets.push_back(absl::StrCat("eval.max_new_tokens=", o.max_new_tokens));
  if (o.max_tasks >= 0) sets.push_back(absl::StrCat("eval.max_tasks=", o.max_tasks));
  if (o.seed >= 0) sets.push_back(absl::StrCat("eval.seed=", o.seed));
  if (!o.answer_extraction.empty()) sets.push_back(absl::StrCat("eval.answer_extraction=", o.answer_extraction));
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides(o.config, sets);
  if (!cfg.ok()) return fail(std::string(cfg.status().message()), 2);
  if (o.threads > 0) torch::set_num_threads(o.threads);

  absl::StatusOr<std::vector<Task>> tasks = LoadDataset(o.data);
  if (!tasks.ok()) return fail(std::string(tasks.status().message()), 1);
  absl::StatusOr<std::unique_ptr<Policy>> policy = BuildPolicy(*cfg, 0);
  if (!policy.ok()) return fail(std::string(policy.status().message()), 1);
  absl::StatusOr<std::unique_ptr<reward::Scorer>> scorer = reward::Scorer::Create(*cfg);
  if (!scorer.ok()) return fail(std::string(scorer.status().message()), 1);

  const std::string extraction = cfg->eval.answer_extraction;
  JudgeFn judge = ScorerJudge(**scorer, extraction);
  EvalSettings settings = EvalSettings::FromConfig(*cfg);
  absl::StatusOr<EvalOutput> out = EvaluatePolicy(**policy, *tasks, settings, judge);
  if (!out.ok()) return fail(std::string(out.status().message()), 1);

  std::cout << eval::ReportTable(out->report);
  std::cout << "(" << out->report.overall.n << " tasks, k=" << out->report.overall.k << ", temperature "
            << settings.temperature << ", answers read as " << extraction << ", " << out->seconds << " s)\n";
  if (!o.json_out.empty()) {
    nlohmann::ordered_json j = eval::ReportJson(out->report);
    j["temperature"] = settings.temperature;
    j["max_new_tokens"] = settings.max_new_tokens;
    j["answer_extraction"] = extraction;
    j["model"] = o.model_dir;
    j["data"] = o.data;
    j["seconds"] = out->seconds;
    if (absl::Status s = WriteFileAtomic(o.json_out, j.dump(2) + "\n"); !s.ok()) return fail(std::string(s.message()), 1);
  }
  if (!o.samples_out.empty()) {
    std::string lines;
    size_t task = 0, idx = 0;
    for (const eval::EvalSample& s : out->samples) {
      nlohmann::ordered_json j = eval::SampleJson(s);
      if (task < out->texts.size() && idx < out->texts[task].size()) j["text"] = out->texts[task][idx];
      if (++idx == out->texts[task].size()) {
        ++task;
        idx = 0;
      }
      absl::StrAppend(&lines, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "\n");
    }
    if (absl::Status s = WriteFileAtomic(o.samples_out, lines); !s.ok()) return fail(std::string(s.message()), 1);
  }
  return 0;
}

}  // namespace

Subcommand AddEvalCommand(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "pass@1, pass@k, maj@k, format and length of a model on a dataset");
  cmd->add_option("--model", o->model_dir, "model directory (Hugging Face layout)")->required();
  cmd->add_option("--data", o->data, "dataset JSONL (math and code tasks)")->required();
  cmd->add_option("-k", o->k, "samples per task (default eval.k)");
  cmd->add_option("--temperature", o->temperature, "sampling temperature; 0 is greedy, one sample (default eval.temperature)");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "longest completion (default eval.max_new_tokens)");
  cmd->add_option("--samples-out", o->samples_out, "JSONL, one line per sample");
  cmd->add_option("--json", o->json_out, "write the report as JSON here");
  cmd->add_option("--answer-extraction", o->answer_extraction, "free, answer_tag, boxed or answer_then_boxed (default eval.answer_extraction)");
  cmd->add_option("--max-tasks", o->max_tasks, "evaluate the first N tasks only");
  cmd->add_option("--seed", o->seed, "sampling seed");
  cmd->add_option("--config", o->config, "run config YAML (templates, reward.*, eval.*; default: the demo's)");
  cmd->add_option("--set", o->sets, "override a config field: section.key=value (repeatable)");
  cmd->add_option("--threads", o->threads, "LibTorch threads (0: LibTorch's default)");
  return {cmd, [o] { return RunEvalCommand(*o); }};
}

}  // namespace grpo

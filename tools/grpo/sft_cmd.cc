// grpo sft: supervised next-token training of a Hugging Face model directory.
//
//   grpo sft --model DIR --data FILE.jsonl --out DIR [--config FILE] [--set k=v]...
//            [--run-dir DIR] [--no-progress]
//
// Lines are {"text": ...} (loss on every token) or {"prompt": ..., "completion": ...}
// (the prompt through the config's template, loss on the completion only). The
// optimiser and its schedule, dtype, micro-batches, checkpoints and data-parallel
// ranks are the learner.* settings, the batch and passes sft.*. Running the same
// command again on an interrupted run resumes it from its newest checkpoint.
// services/learner/sft.h has the details.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/config.h"
#include "core/common/logging.h"
#include "services/learner/sft.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct SftCliOptions {
  std::string model_dir, data, out, run_dir, config;
  std::vector<std::string> sets;
  bool no_progress = false;
};

std::string SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("grpo") : p.string();
}

int RunSftCommand(const SftCliOptions& o) {
  std::vector<std::string> sets = o.sets;
  sets.insert(sets.begin(), absl::StrCat("model.path=", o.model_dir));
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides(o.config, sets);
  if (!cfg.ok()) {
    std::cerr << "grpo sft: " << cfg.status().message() << "\n";
    return 2;
  }
  SftJob job;
  job.model_dir = o.model_dir;
  job.data_path = o.data;
  job.out_dir = o.out;
  job.run_dir = o.run_dir;
  job.progress = !o.no_progress;
  job.argv = {SelfExe(), "sft", "--model", o.model_dir, "--data", o.data, "--out", o.out};
  if (!o.run_dir.empty()) job.argv.insert(job.argv.end(), {"--run-dir", o.run_dir});
  if (!o.config.empty()) job.argv.insert(job.argv.end(), {"--config", o.config});
  for (const std::string& s : o.sets) job.argv.insert(job.argv.end(), {"--set", s});
  absl::Status s = RunSft(*cfg, job);
  if (!s.ok()) {
    std::cerr << "grpo sft: " << s.message() << "\n";
    return 1;
  }
  if (cfg->learner.rank == 0) std::cerr << "grpo sft: model written to " << o.out << "\n";
  return 0;
}

}  // namespace

Subcommand AddSftCommand(CLI::App& app) {
  auto o = std::make_shared<SftCliOptions>();
  CLI::App* cmd = app.add_subcommand("sft", "supervised next-token training of a Hugging Face model directory");
  cmd->add_option("--model", o->model_dir, "starting model directory (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_option("--data", o->data, "JSONL: {\"text\"} or {\"prompt\", \"completion\"} per line")->required();
  cmd->add_option("--out", o->out, "directory for the trained model")->required();
  cmd->add_option("--run-dir", o->run_dir, "metrics.jsonl and checkpoints (default: --out)");
  cmd->add_option("--config", o->config, "run config YAML (learner.*, sft.*, model templates; default: the demo's)");
  cmd->add_option("--set", o->sets, "override a config field: section.key=value (repeatable)");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bar");
  return {cmd, [o] { return RunSftCommand(*o); }};
}

}  // namespace grpo

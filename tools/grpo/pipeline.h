// The stages `grpo run` runs around the GRPO services, as the R1-Zero demo needs them:
//
//   before:  data/train.jsonl + data/test.jsonl (pipeline.tasks = chains)
//            base/model: data/pretrain.jsonl -> grpo init-model -> grpo sft (pipeline.base_docs)
//            eval/before.json (pipeline.eval_before_after)
//   after:   final_model/ (grpo export of the newest checkpoint), eval/after.json,
//            report.html (pipeline.report)
//
// With pipeline.stages, R1's stages (tools/grpo/stages.h) take the GRPO run's place
// between the two.
//
// Model stages run as `grpo <subcommand>` child processes logging to logs/<stage>.log,
// so the launcher never loads a model itself. A stage whose output already exists is
// skipped, so a resumed run does not redo them. Ctrl-C stops a stage like a service.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/common/config.h"
#include "core/common/shutdown.h"

namespace grpo {

struct PipelineContext {
  std::filesystem::path run_dir;
  std::filesystem::path bin_dir;  // grpo and the grpo-* services
  ShutdownSignal* shutdown = nullptr;
};

// `grpo args...` as a child logging to logs/<name>.log; waits for it, calling on_poll
// (when set) every 200 ms. Ctrl-C stops it (SIGTERM, then SIGKILL after `grace`).
absl::Status RunStage(const std::string& name, const std::string& what, const std::vector<std::string>& args,
                      const PipelineContext& ctx, const std::function<void()>& on_poll = nullptr,
                      absl::Duration grace = absl::Seconds(10));

// `grpo eval` arguments evaluating `model` on eval.data into eval/<which>.json and
// eval/<which>_samples.jsonl.
std::vector<std::string> EvalArgs(const RunConfig& cfg, const PipelineContext& ctx, const std::string& model,
                                  const std::string& which);

// The `--set` values that give a pipeline `grpo sft` its own optimiser (AdamW at `lr`,
// `warmup` steps, cosine to 0.1 x, no weight decay), one fp32 rank on `threads`, and its
// checkpoints and metrics in its --run-dir; the run's learner.* stay GRPO's.
std::vector<std::string> SftSets(double lr, int64_t warmup, int64_t threads);

// Runs the stages before GRPO; points cfg.data.path, cfg.eval.data and cfg.model.path
// at what they made and writes <run>/config.yaml whenever cfg changes.
absl::Status RunStagesBefore(RunConfig& cfg, const PipelineContext& ctx);

// Runs the stages after a GRPO run that ended cleanly.
absl::Status RunStagesAfter(const RunConfig& cfg, const PipelineContext& ctx);

}  // namespace grpo

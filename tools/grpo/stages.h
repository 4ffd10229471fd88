// R1's pipeline (DeepSeek-R1, section 2.3) in miniature, run by `grpo run` when
// pipeline.stages names its stages (configs/r1.yaml):
//
//   cold_start     supervised fine-tuning of the base model on a small set of long,
//                  readable chains of thought (pipeline.cold_start_tasks training tasks
//                  worked in the notation each asks for, in the format);
//   reasoning_rl   GRPO from the previous stage's model with the rule rewards, the
//                  language-consistency reward among them (reward.language_weight);
//   rejection_sft  samples of the previous stage's model on training tasks, the correct,
//                  formatted and consistent ones kept, mixed with pretraining documents
//                  (the non-reasoning data), fine-tuned from the base model again;
//   final_rl       GRPO once more from that model.
//
// Each stage works in <run>/stages/<name>/ and leaves its model in model/ there; its
// held-out evaluation is eval/<name>.json (the fields `grpo eval --json` writes, with
// language_consistency) beside eval/before.json of the base. An RL stage is a whole
// `grpo run` of its own in its directory (config.yaml, metrics.jsonl, checkpoints,
// coordinator/), an SFT stage a `grpo sft` whose metrics.jsonl is in sft/. A finished
// stage writes done.json there ({"stage", "seconds", "model", ...}).
//
// Resuming: a stage with done.json is skipped; the first without it runs again and its
// own commands resume what they had (an RL stage's `grpo run` its checkpoint and queue,
// `grpo sft` its newest checkpoint). `grpo run --stage NAME` runs that stage again alone,
// from the model of the stage before it, which must be done.
//
// When the last stage is done its model is copied to final_model/ and its evaluation to
// eval/after.json, so what reads a plain run's results reads this run's too.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "core/common/config.h"
#include "tools/grpo/pipeline.h"

namespace grpo {

struct StageOptions {
  std::string only;       // "": every stage not yet done; else this stage alone, again
  bool secure = false;    // RL stages' services talk mutual TLS (grpo run --secure)
  bool progress = true;   // a progress line per RL step
};

// Runs the stages of cfg.pipeline.stages after RunStagesBefore (data, base model,
// eval/before.json). `cfg` is the run's resolved config (<run>/config.yaml).
absl::Status RunR1Stages(const RunConfig& cfg, const PipelineContext& ctx, const StageOptions& opts);

}  // namespace grpo

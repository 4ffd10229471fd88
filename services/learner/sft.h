// Supervised next-token training of a Hugging Face model directory (`grpo sft`): the
// pretraining of the demo's base model, R1's cold start, and distillation into a
// student. It runs on the GRPO learner's trainer (GrpoTrainer::SupervisedStep), so
// AdamW, the schedule, bf16 autocast, micro-batches, activation checkpointing,
// gradient clipping and data-parallel ranks are the same code and the same learner.*
// settings.
//
// Data (core/common/sft_data.h): {"text"} lines are trained on every token, with the
// tokenizer's leading special ids (BOS) in front and the end-of-text id after;
// {"prompt", "completion"} lines put the prompt through the run's template
// (model.chat_template, model.prompt_template, model.system_prompt: the same encoding
// the actors use, core/policy) and train on the completion and its end token only.
// Every line is parsed and encoded before the first step; any bad line (or one longer
// than sft.max_seq_len / the model's context) is reported by file:line and nothing runs.
//
// Steps: each pass over the data is shuffled by (run.seed, pass); step s takes the
// next sft.batch_size sequences (the last batch of a pass may be smaller); rank r of R
// trains its contiguous block of them. The steps are sft.max_steps or epochs x
// ceil(N / batch_size). A step depends only on its number, the weights and the
// optimizer state, so a run resumed from a checkpoint continues bit-identically.
//
// Files, under the run directory (default: the output directory):
//   metrics.jsonl         one line per step: step, epoch, loss, tokens, tokens_per_s, lr,
//                         grad_norm, time
//   checkpoints/step-N/   every learner.checkpoint_every steps and at the end (resume)
// and the output directory receives the trained model in the Hugging Face layout
// (config.json, generation_config.json, model.safetensors, the tokenizer files).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/common/config.h"

namespace grpo {

struct SftJob {
  std::string model_dir;  // the starting model (Hugging Face layout)
  std::string data_path;
  std::string out_dir;    // the trained model is written here
  std::string run_dir;    // metrics and checkpoints; default out_dir
  bool progress = false;  // a progress bar on stderr (rank 0)
  // With learner.world_size > 1 and no learner.dist_address, rank 0 starts ranks
  // 1..R-1 as `argv + --set learner.rank=r --set learner.dist_address=...`.
  std::vector<std::string> argv;
};

absl::Status RunSft(const RunConfig& cfg, const SftJob& job);

}  // namespace grpo

// One GRPO optimisation step over a batch of scored groups: the part of the learner
// that touches tensors. Owned by the learner's trainer thread; one per rank.
//
// A step turns this rank's groups into right-padded rows (prompt + completion),
// computes each group's advantages, and then, for each of `epochs` passes over the
// rows, splits them into `minibatches` minibatches (shuffled by (seed, step, epoch)
// when there are several) and takes one optimizer step per minibatch. A minibatch
// is processed `micro_batch_size` rows at a time (gradient accumulation), each
// micro-batch trimmed to its longest row.
//
// Every part of a minibatch (micro-batch, rank) divides its loss by the minibatch's
// totals over all ranks (completions, completion tokens), so the parts' losses and
// gradients add up exactly to the whole minibatch's: summing gradients over ranks
// (all-reduce) gives R ranks on R shards the same update as one rank on the batch.
//
// With importance_cap > 0 and more than one optimizer step per batch, the ratio is
// taken against the weights at the start of the step (one extra no-grad pass); with a
// single optimizer step those are the current weights and no pass is needed.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/optim/optimizer.h>

#include "core/grpo/collectives.h"
#include "core/grpo/grpo_loss.h"
#include "core/model/transformer.h"

namespace grpo {

struct TrainerOptions {
  rl::GrpoLossConfig loss;
  double adv_eps = 1e-6;
  bool scale_rewards = true;
  bool mask_truncated = false;  // truncated completions give no gradient
  int64_t epochs = 1;           // passes over each batch (PPO epochs, TRL's num_iterations)
  int64_t minibatches = 1;      // optimizer steps per pass
  int64_t micro_batch_size = 0;  // rows per forward/backward; 0: a whole minibatch at once
  bool bf16 = false;             // bf16 autocast (weights, optimizer state and loss stay fp32)
  bool activation_checkpointing = false;
  double grad_clip = 1.0;  // <= 0: no clipping (the norm is still reported)
  uint64_t seed = 0;       // minibatch shuffling
  c10::Device device = c10::Device(c10::kCPU);  // where the model lives; rows are moved there
};

// One scored group as the trainer needs it: the prompt, and each completion's tokens,
// sampling log-probs, reward and whether it was cut at the token limit. Plain data, so
// the trainer builds without the wire format (the learner converts its ScoredGroups).
struct TrainCompletion {
  std::vector<int64_t> token_ids;
  std::vector<float> logprobs;  // one per token, under the sampling temperature
  double reward = 0;
  bool truncated = false;
};
struct TrainGroup {
  std::vector<int64_t> prompt_token_ids;
  float temperature = 1.0f;  // 0 (greedy) counts as 1
  std::vector<TrainCompletion> completions;
};

// Over the whole batch (all ranks); token statistics are per completion token.
struct TrainStats {
  double loss = 0;      // mean over optimizer steps of the minibatch loss
  double pg_loss = 0;   // same, policy-gradient part
  double kl = 0;        // mean KL estimate (0 when beta == 0)
  double clip_fraction = 0, ratio_mean = 0, importance_weight_mean = 1;
  double entropy = 0;   // mean per-token entropy of the policy over the first pass (with several
                        // minibatches, later ones see the weights after earlier optimizer steps)
  double grad_norm = 0;  // of the last optimizer step, before clipping
  int64_t optimizer_steps = 0;
  int64_t loss_tokens = 0;  // completion tokens with gradient, per pass
};

// One supervised sequence: next-token loss on tokens[loss_from..] (each predicted from
// the tokens before it). loss_from = 1: every token but the first (pretraining text);
// the prompt's length: the completion only (SFT).
struct SupervisedExample {
  std::vector<int64_t> tokens;
  int64_t loss_from = 1;
};

// The trainer behind both GRPO (Step) and supervised training (SupervisedStep): the
// same rows, micro-batching, exact sums over ranks, bf16 autocast, activation
// checkpointing, gradient all-reduce, clipping and optimizer step. A supervised step
// is one optimizer step (epochs and minibatches are GRPO's) whose loss is the mean
// negative log-likelihood over the batch's loss tokens on all ranks.
class GrpoTrainer {
 public:
  // `reference` may be null (beta == 0). `pg`, when set, is the data-parallel group:
  // every rank calls Step with the same step number and its own shard.
  GrpoTrainer(model::Transformer policy, model::Transformer reference, torch::optim::Optimizer* optimizer,
              TrainerOptions options, int64_t pad_id, c10::intrusive_ptr<c10d::ProcessGroup> pg = {});

  // `groups`: this rank's share of the batch (may be empty), validated upstream.
  TrainStats Step(const std::vector<const TrainGroup*>& groups, uint64_t step);
  // `examples`: this rank's share of the batch (may be empty). TrainStats.loss is the
  // batch's mean token NLL, loss_tokens its loss-token count over all ranks.
  TrainStats SupervisedStep(const std::vector<const SupervisedExample*>& examples, uint64_t step);

  // Device tensors (weights, gradients) then go over `comm` instead of the Gloo group.
  void SetDeviceCollectives(std::unique_ptr<DeviceCollectives> comm) { device_comm_ = std::move(comm); }

  // Makes every rank's policy and reference weights equal to `root`'s (no-op without
  // a group).
  void BroadcastParameters(int root);

  const TrainerOptions& options() const { return opts_; }

 private:
  struct Rows;
  // The epochs x minibatches x micro-batches loop shared by both objectives.
  TrainStats Optimize(const Rows& rows, uint64_t step, bool supervised);
  // Log-probabilities (rows, T) of `model` at `rows` of `all`, micro-batched, no grad.
  at::Tensor NoGradLogprobs(model::Transformer& model, const Rows& all);
  // Sums `values` over ranks in place.
  void AllReduceSum(std::vector<at::Tensor>& values);
  void AllReduceGradients();

  model::Transformer policy_;
  model::Transformer reference_;
  torch::optim::Optimizer* optimizer_;
  TrainerOptions opts_;
  int64_t pad_id_;
  c10::intrusive_ptr<c10d::ProcessGroup> pg_;
  std::unique_ptr<DeviceCollectives> device_comm_;
};

}  // namespace grpo

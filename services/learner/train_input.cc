#include "services/learner/train_input.h"

namespace grpo {
namespace {

rl::KlEstimator ParseKl(const std::string& s) {
  if (s == "k1") return rl::KlEstimator::kK1;
  if (s == "k2") return rl::KlEstimator::kK2;
  return rl::KlEstimator::kK3;
}

rl::LossAggregation ParseAgg(const std::string& s) {
  if (s == "token-mean") return rl::LossAggregation::kTokenMean;
  if (s == "seq-mean-token-sum-norm") return rl::LossAggregation::kSeqMeanTokenSumNorm;
  return rl::LossAggregation::kSeqMeanTokenMean;
}

}  // namespace

TrainerOptions TrainerOptionsFromConfig(const RunConfig& cfg) {
  const LearnerConfig& l = cfg.learner;
  TrainerOptions o;
  o.loss.clip_eps_low = l.clip_eps;
  o.loss.clip_eps_high = l.clip_eps_high > 0 ? l.clip_eps_high : l.clip_eps;
  o.loss.beta = l.beta;
  o.loss.kl_estimator = ParseKl(l.kl_estimator);
  o.loss.aggregation = ParseAgg(l.loss_agg);
  // Dr. GRPO divides by a constant: the longest completion the actor may produce.
  o.loss.norm_length = static_cast<double>(cfg.actor.max_new_tokens);
  o.loss.importance_cap = l.importance_cap;
  o.adv_eps = l.adv_eps;
  o.scale_rewards = l.scale_rewards;
  o.mask_truncated = l.mask_truncated;
  o.epochs = l.epochs;
  o.minibatches = l.minibatches;
  o.micro_batch_size = l.micro_batch_size;
  o.bf16 = l.dtype == "bf16";
  o.activation_checkpointing = l.activation_checkpointing;
  o.grad_clip = l.grad_clip;
  o.seed = static_cast<uint64_t>(cfg.run.seed);
  o.device = c10::Device(l.device);
  return o;
}

TrainGroup ToTrainGroup(const v1::ScoredGroup& g) {
  const auto& r = g.group();
  TrainGroup t;
  t.prompt_token_ids.assign(r.prompt_token_ids().begin(), r.prompt_token_ids().end());
  t.temperature = r.temperature();
  t.completions.resize(static_cast<size_t>(r.completions_size()));
  for (int i = 0; i < r.completions_size(); ++i) {
    const auto& c = r.completions(i);
    TrainCompletion& out = t.completions[static_cast<size_t>(i)];
    out.token_ids.assign(c.token_ids().begin(), c.token_ids().end());
    out.logprobs.assign(c.logprobs().begin(), c.logprobs().end());
    out.truncated = c.truncated();
    out.reward = i < g.scores_size() ? g.scores(i).reward() : 0.0;
  }
  return t;
}

std::vector<const TrainGroup*> GroupPtrs(const std::vector<TrainGroup>& groups) {
  std::vector<const TrainGroup*> out;
  out.reserve(groups.size());
  for (const TrainGroup& g : groups) out.push_back(&g);
  return out;
}

}  // namespace grpo

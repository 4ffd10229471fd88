// The GRPO objective (DeepSeekMath, arXiv:2402.03300, eq. 3), in LibTorch only.
//
//   A_i      = (r_i - mean(r)) / (std(r) + eps)                 per group of G completions
//   ratio_t  = exp(logp_t - old_logp_t)                         per token, vs the sampling policy
//   pg_t     = -min(ratio_t * A, clip(ratio_t, 1-e, 1+e) * A)
//   kl_t     = exp(ref_t - logp_t) - (ref_t - logp_t) - 1       k3 estimator (Schulman)
//   loss     = mean_i [ (1/|o_i|) sum_t (pg_t + beta * kl_t) ]   mean over tokens, then completions
//
// Variants (GrpoLossConfig):
//   clip_eps_low / clip_eps_high  asymmetric clipping, clip(ratio, 1-low, 1+high) (DAPO
//                                 clip-higher); equal values give GRPO's symmetric clip
//   kl_estimator                  k1: logp - ref; k2: (logp - ref)^2 / 2; k3 as above
//   aggregation                   kSeqMeanTokenMean (GRPO, above);
//                                 kTokenMean (DAPO): sum over all tokens / all tokens;
//                                 kSeqMeanTokenSumNorm (Dr. GRPO): per completion
//                                 sum_t / norm_length, then mean over completions
//   prox_logp + importance_cap    decoupled off-policy correction: the ratio is taken
//                                 against the proximal policy (the weights at the start of
//                                 the step) and each token weighted by
//                                 min(exp(prox - old), cap), the truncated importance
//                                 weight of the proximal vs the sampling policy
#pragma once

#include <ATen/core/Tensor.h>

namespace grpo::rl {

// rewards (N, G) -> advantages (N, G). std is the unbiased sample std of each group (as
// in TRL and veRL); with scale_by_std = false only the mean is subtracted.
at::Tensor GroupAdvantages(const at::Tensor& rewards, double eps, bool scale_by_std = true);

// k3 KL estimate per token: exp(ref - logp) - (ref - logp) - 1, always >= 0.
at::Tensor KlK3(const at::Tensor& logp, const at::Tensor& ref_logp);

enum class KlEstimator { kK1, kK2, kK3 };
enum class LossAggregation { kSeqMeanTokenMean, kTokenMean, kSeqMeanTokenSumNorm };

// Per-token KL estimate of the chosen kind (k1 and k2 as in Schulman's note).
at::Tensor KlEstimate(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator kind);

struct GrpoLossConfig {
  double clip_eps_low = 0.2;
  double clip_eps_high = 0.2;
  double beta = 0.0;  // KL coefficient; 0 skips the KL term (ref_logp may be undefined)
  KlEstimator kl_estimator = KlEstimator::kK3;
  LossAggregation aggregation = LossAggregation::kSeqMeanTokenMean;
  double norm_length = 0;     // kSeqMeanTokenSumNorm divisor; 0: the batch's T
  double importance_cap = 0;  // > 0 with prox_logp: truncated importance weights
  // Denominators when one batch's loss is computed in parts (micro-batches, ranks): the
  // whole batch's completions (sequence aggregations) and completion tokens under the
  // mask (token-mean). The parts' losses and gradients then add up to the whole batch's.
  // 0: this call's own (B, mask.sum()).
  double total_sequences = 0;
  double total_tokens = 0;
};

struct GrpoLossTerms {
  at::Tensor loss;            // scalar, differentiable w.r.t. logp
  double pg_loss = 0;         // policy-gradient part, same aggregation
  double kl_mean = 0;         // mean KL estimate over completion tokens (0 when beta == 0)
  double clip_fraction = 0;   // share of completion tokens where the clipped branch was taken
  double ratio_mean = 0;      // mean ratio over completion tokens
  double importance_weight_mean = 0;  // mean truncated weight (1 without prox_logp)
  double n_tokens = 0;        // completion tokens under the mask in this call (the means' weight)
};

// logp, old_logp, ref_logp, mask: (B, T); advantages: (B). mask is 1 on completion
// tokens and 0 elsewhere (prompt, padding). A completion with no tokens contributes 0.
// prox_logp (B, T), optional: see importance_cap above.
GrpoLossTerms GrpoLoss(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                       const at::Tensor& advantages, const at::Tensor& mask, const GrpoLossConfig& cfg,
                       const at::Tensor& prox_logp = at::Tensor());

}  // namespace grpo::rl

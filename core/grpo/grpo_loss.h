// The GRPO objective (DeepSeekMath, arXiv:2402.03300, eq. 3), in LibTorch only.
//
//   A_i      = (r_i - mean(r)) / (std(r) + eps)                 per group of G completions
//   ratio_t  = exp(logp_t - old_logp_t)                         per token, vs the sampling policy
//   pg_t     = -min(ratio_t * A, clip(ratio_t, 1-e, 1+e) * A)
//   kl_t     = exp(ref_t - logp_t) - (ref_t - logp_t) - 1       k3 estimator (Schulman)
//   loss     = mean_i [ (1/|o_i|) sum_t (pg_t + beta * kl_t) ]   mean over tokens, then completions
#pragma once

#include <ATen/core/Tensor.h>

namespace grpo::rl {

// rewards (N, G) -> advantages (N, G). std is the unbiased sample std of each group (as
// in TRL and veRL); with scale_by_std = false only the mean is subtracted.
at::Tensor GroupAdvantages(const at::Tensor& rewards, double eps, bool scale_by_std = true);

// k3 KL estimate per token: exp(ref - logp) - (ref - logp) - 1, always >= 0.
at::Tensor KlK3(const at::Tensor& logp, const at::Tensor& ref_logp);

struct GrpoLossConfig {
  double clip_eps = 0.2;
  double beta = 0.0;  // KL coefficient; 0 skips the KL term (ref_logp may be undefined)
};

struct GrpoLossTerms {
  at::Tensor loss;            // scalar, differentiable w.r.t. logp
  double pg_loss = 0;         // policy-gradient part, same aggregation
  double kl_mean = 0;         // mean k3 KL over completion tokens (0 when beta == 0)
  double clip_fraction = 0;   // share of completion tokens where the clipped branch was taken
  double ratio_mean = 0;      // mean ratio over completion tokens
};

// logp, old_logp, ref_logp, mask: (B, T); advantages: (B). mask is 1 on completion
// tokens and 0 elsewhere (prompt, padding). A completion with no tokens contributes 0.
GrpoLossTerms GrpoLoss(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                       const at::Tensor& advantages, const at::Tensor& mask, const GrpoLossConfig& cfg);

}  // namespace grpo::rl

#include "core/grpo/grpo_loss.h"

#include <torch/torch.h>

namespace grpo::rl {

at::Tensor GroupAdvantages(const at::Tensor& rewards, double eps, bool scale_by_std) {
  TORCH_CHECK(rewards.dim() == 2, "rewards must be (N, G), got ", rewards.sizes());
  at::Tensor r = rewards.to(torch::kFloat64);            // (N, G)
  at::Tensor mean = r.mean(/*dim=*/1, /*keepdim=*/true);  // (N, 1)
  at::Tensor adv = r - mean;                              // (N, G)
  if (scale_by_std) {
    at::Tensor std = r.size(1) > 1 ? r.std(/*dim=*/1, /*unbiased=*/true, /*keepdim=*/true)
                                   : torch::zeros_like(mean);  // (N, 1)
    adv = adv / (std + eps);
  }
  return adv.to(rewards.scalar_type());
}

at::Tensor KlK3(const at::Tensor& logp, const at::Tensor& ref_logp) {
  at::Tensor d = ref_logp - logp;  // (B, T)
  return torch::exp(d) - d - 1;    // (B, T)
}

at::Tensor KlEstimate(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator kind) {
  switch (kind) {
    case KlEstimator::kK1:
      return logp - ref_logp;
    case KlEstimator::kK2:
      return 0.5 * (logp - ref_logp).pow(2);
    case KlEstimator::kK3:
      break;
  }
  return KlK3(logp, ref_logp);
}

GrpoLossTerms GrpoLoss(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                       const at::Tensor& advantages, const at::Tensor& mask, const GrpoLossConfig& cfg,
                       const at::Tensor& prox_logp) {
  TORCH_CHECK(logp.dim() == 2 && logp.sizes() == old_logp.sizes() && logp.sizes() == mask.sizes(),
              "logp, old_logp and mask must be (B, T) of one shape");
  TORCH_CHECK(advantages.dim() == 1 && advantages.size(0) == logp.size(0), "advantages must be (B)");
  at::Tensor m = mask.to(logp.scalar_type());                    // (B, T)
  at::Tensor adv = advantages.to(logp.scalar_type()).unsqueeze(1);  // (B, 1)
  // Decoupled correction: ratio against the proximal policy, weighted by the
  // truncated importance weight of proximal vs sampling policy.
  const bool decoupled = prox_logp.defined() && cfg.importance_cap > 0;
  TORCH_CHECK(!decoupled || prox_logp.sizes() == logp.sizes(), "prox_logp must be (B, T)");
  at::Tensor base = decoupled ? prox_logp.detach() : old_logp.detach();  // (B, T)
  at::Tensor weight = decoupled ? torch::exp(prox_logp.detach() - old_logp.detach()).clamp_max(cfg.importance_cap)
                                : torch::ones_like(logp);  // (B, T)
  at::Tensor ratio = torch::exp(logp - base);                     // (B, T)
  at::Tensor surr1 = ratio * adv;                                 // (B, T)
  at::Tensor surr2 = torch::clamp(ratio, 1.0 - cfg.clip_eps_low, 1.0 + cfg.clip_eps_high) * adv;  // (B, T)
  at::Tensor pg = -torch::min(surr1, surr2) * weight;             // (B, T)
  at::Tensor per_token = pg;                                      // (B, T)
  at::Tensor kl;
  if (cfg.beta != 0.0) {
    TORCH_CHECK(ref_logp.defined() && ref_logp.sizes() == logp.sizes(), "ref_logp must be (B, T) when beta != 0");
    kl = KlEstimate(logp, ref_logp.detach(), cfg.kl_estimator);  // (B, T)
    per_token = per_token + cfg.beta * kl;
  }
  at::Tensor lengths = m.sum(1).clamp_min(1.0);  // (B)
  const double norm = cfg.norm_length > 0 ? cfg.norm_length : static_cast<double>(logp.size(1));
  const double sequences = cfg.total_sequences > 0 ? cfg.total_sequences : static_cast<double>(logp.size(0));
  auto aggregate = [&](const at::Tensor& t) -> at::Tensor {
    switch (cfg.aggregation) {
      case LossAggregation::kTokenMean:  // every token of the batch weighs the same
        return cfg.total_tokens > 0 ? (t * m).sum() / cfg.total_tokens : (t * m).sum() / m.sum().clamp_min(1.0);
      case LossAggregation::kSeqMeanTokenSumNorm:  // Dr. GRPO: a constant length divisor
        return ((t * m).sum(1) / norm).sum() / std::max(1.0, sequences);
      case LossAggregation::kSeqMeanTokenMean:
        break;
    }
    // Mean over each completion, then over completions.
    return ((t * m).sum(1) / lengths).sum() / std::max(1.0, sequences);
  };

  GrpoLossTerms out;
  out.loss = aggregate(per_token);
  torch::NoGradGuard no_grad;
  out.n_tokens = m.sum().item<double>();
  const double n_tokens = std::max(1.0, out.n_tokens);
  out.pg_loss = aggregate(pg).item<double>();
  if (kl.defined()) out.kl_mean = (kl * m).sum().item<double>() / n_tokens;
  at::Tensor clipped = (surr2 < surr1).to(m.scalar_type());  // (B, T) min took the clipped branch
  out.clip_fraction = (clipped * m).sum().item<double>() / n_tokens;
  out.ratio_mean = (ratio * m).sum().item<double>() / n_tokens;
  out.importance_weight_mean = (weight * m).sum().item<double>() / n_tokens;
  return out;
}

}  // namespace grpo::rl

// GRPO objective against values computed by hand (see the comments for the arithmetic).
#include "core/grpo/grpo_loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace grpo::rl {
namespace {

torch::Tensor T(std::vector<double> v, std::vector<int64_t> shape) {
  return torch::tensor(v, torch::kFloat64).reshape(shape);
}

TEST(GroupAdvantages, SubtractsGroupMeanAndDividesBySampleStd) {
  // Group 0: rewards 1,0,0,1 -> mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.5773503.
  // Group 1: all equal -> advantages 0 (std 0, eps keeps it finite).
  torch::Tensor r = T({1, 0, 0, 1, 2, 2, 2, 2}, {2, 4});
  torch::Tensor a = GroupAdvantages(r, 1e-6);
  const double s = 0.5 / (std::sqrt(1.0 / 3.0) + 1e-6);
  EXPECT_NEAR(a[0][0].item<double>(), s, 1e-9);
  EXPECT_NEAR(a[0][1].item<double>(), -s, 1e-9);
  EXPECT_NEAR(a[0][3].item<double>(), s, 1e-9);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(a[1][j].item<double>(), 0.0);
}

TEST(GroupAdvantages, WithoutStdScalingOnlyCentres) {
  torch::Tensor a = GroupAdvantages(T({3, 1}, {1, 2}), 1e-6, /*scale_by_std=*/false);
  EXPECT_DOUBLE_EQ(a[0][0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(a[0][1].item<double>(), -1.0);
}

TEST(KlK3, IsZeroAtEqualPoliciesAndPositiveElsewhere) {
  torch::Tensor logp = T({std::log(0.5), std::log(2.0), 0.0}, {1, 3});
  torch::Tensor k = KlK3(logp, torch::zeros_like(logp));
  // 1/r + log r - 1 for r = 0.5, 2, 1.
  EXPECT_NEAR(k[0][0].item<double>(), 2 - std::log(2.0) - 1, 1e-12);
  EXPECT_NEAR(k[0][1].item<double>(), 0.5 + std::log(2.0) - 1, 1e-12);
  EXPECT_EQ(k[0][2].item<double>(), 0.0);
}

// Two completions, old_logp = 0 so ratio = exp(logp):
//   seq 0, A = +1: ratios 1.5 (clipped to 1.2 -> pg -1.2), 0.5 (pg -0.5), third token masked.
//   seq 1, A = -2: ratios 0.5 (min(-1, -1.6) -> clipped, pg 1.6), 1.1 (pg 2.2), 2.0 (pg 4;
//                  outside the range but unclipped because A < 0 picks the smaller surr1).
//   per-sequence means: -0.85 and 2.6; loss = 0.875; clipped tokens 2 of 5.
struct Case {
  torch::Tensor logp = T({std::log(1.5), std::log(0.5), std::log(7.0), std::log(0.5), std::log(1.1), std::log(2.0)}, {2, 3});
  torch::Tensor old_logp = torch::zeros({2, 3}, torch::kFloat64);
  torch::Tensor ref_logp = torch::zeros({2, 3}, torch::kFloat64);
  torch::Tensor adv = T({1.0, -2.0}, {2});
  torch::Tensor mask = T({1, 1, 0, 1, 1, 1}, {2, 3});
};

TEST(GrpoLoss, ClippedSurrogateMatchesHandComputedValue) {
  Case c;
  GrpoLossTerms t = GrpoLoss(c.logp, c.old_logp, {}, c.adv, c.mask, {0.2, 0.2, 0.0});
  EXPECT_NEAR(t.loss.item<double>(), 0.875, 1e-12);
  EXPECT_NEAR(t.pg_loss, 0.875, 1e-12);
  EXPECT_NEAR(t.clip_fraction, 0.4, 1e-12);
  EXPECT_NEAR(t.ratio_mean, (1.5 + 0.5 + 0.5 + 1.1 + 2.0) / 5, 1e-12);
  EXPECT_EQ(t.kl_mean, 0.0);
}

TEST(GrpoLoss, GradientIsZeroOnClippedTokensAndScaledElsewhere) {
  Case c;
  torch::Tensor logp = c.logp.clone().requires_grad_(true);
  GrpoLoss(logp, c.old_logp, {}, c.adv, c.mask, {0.2, 0.2, 0.0}).loss.backward();
  // d pg / d logp = -ratio * A on unclipped tokens, divided by |o_i| and by B = 2.
  std::vector<double> expect = {0.0, -0.5 / 4, 0.0, 0.0, 2.2 / 6, 4.0 / 6};
  torch::Tensor g = logp.grad().reshape({6});
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(g[i].item<double>(), expect[i], 1e-12) << "token " << i;
}

TEST(GrpoLoss, KlTermAddsBetaTimesMeanK3AndItsGradient) {
  Case c;
  const double beta = 0.1;
  torch::Tensor logp = c.logp.clone().requires_grad_(true);
  GrpoLossTerms t = GrpoLoss(logp, c.old_logp, c.ref_logp, c.adv, c.mask, {0.2, 0.2, beta});
  auto k3 = [](double r) { return 1 / r + std::log(r) - 1; };
  double kl0 = (k3(1.5) + k3(0.5)) / 2, kl1 = (k3(0.5) + k3(1.1) + k3(2.0)) / 3;
  EXPECT_NEAR(t.loss.item<double>(), 0.875 + beta * (kl0 + kl1) / 2, 1e-12);
  EXPECT_NEAR(t.kl_mean, (k3(1.5) + k3(0.5) + k3(0.5) + k3(1.1) + k3(2.0)) / 5, 1e-12);
  t.loss.backward();
  // d k3 / d logp = 1 - 1/r.
  auto dk = [](double r) { return 1 - 1 / r; };
  std::vector<double> expect = {beta * dk(1.5) / 4, -0.5 / 4 + beta * dk(0.5) / 4, 0.0,
                                beta * dk(0.5) / 6, 2.2 / 6 + beta * dk(1.1) / 6, 4.0 / 6 + beta * dk(2.0) / 6};
  torch::Tensor g = logp.grad().reshape({6});
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(g[i].item<double>(), expect[i], 1e-12) << "token " << i;
}

TEST(GrpoLoss, OnPolicyGradientIsMinusAdvantageOverLength) {
  // ratio == 1 everywhere: nothing clipped, d loss / d logp_t = -A_i / (|o_i| * B).
  torch::Tensor logp = torch::zeros({2, 2}, torch::kFloat64).requires_grad_(true);
  torch::Tensor mask = T({1, 1, 1, 0}, {2, 2});
  GrpoLossTerms t = GrpoLoss(logp, torch::zeros({2, 2}, torch::kFloat64), {}, T({0.5, -1.0}, {2}), mask, {});
  EXPECT_NEAR(t.loss.item<double>(), (-0.5 + 1.0) / 2, 1e-12);
  t.loss.backward();
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), -0.5 / 4, 1e-12);
  EXPECT_NEAR(logp.grad()[1][0].item<double>(), 1.0 / 2, 1e-12);
  EXPECT_EQ(logp.grad()[1][1].item<double>(), 0.0);
  EXPECT_EQ(t.clip_fraction, 0.0);
}

TEST(GrpoLoss, EmptyCompletionContributesNothing) {
  torch::Tensor logp = torch::zeros({2, 2}, torch::kFloat64);
  torch::Tensor mask = T({1, 1, 0, 0}, {2, 2});
  GrpoLossTerms t = GrpoLoss(logp, logp, {}, T({1.0, 5.0}, {2}), mask, {});
  EXPECT_NEAR(t.loss.item<double>(), -1.0 / 2, 1e-12);
}

// Per-token pg of Case: seq 0 [-1.2, -0.5, masked], seq 1 [1.6, 2.2, 4.0].

TEST(GrpoLossVariants, TokenMeanWeighsEveryTokenAlike) {
  Case c;
  torch::Tensor logp = c.logp.clone().requires_grad_(true);
  GrpoLossConfig cfg;
  cfg.aggregation = LossAggregation::kTokenMean;
  GrpoLossTerms t = GrpoLoss(logp, c.old_logp, {}, c.adv, c.mask, cfg);
  EXPECT_NEAR(t.loss.item<double>(), (-1.2 - 0.5 + 1.6 + 2.2 + 4.0) / 5, 1e-12);  // 1.22
  t.loss.backward();
  std::vector<double> expect = {0.0, -0.5 / 5, 0.0, 0.0, 2.2 / 5, 4.0 / 5};
  torch::Tensor g = logp.grad().reshape({6});
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(g[i].item<double>(), expect[i], 1e-12) << "token " << i;
}

TEST(GrpoLossVariants, DrGrpoDividesTokenSumsByAConstantLength) {
  Case c;
  torch::Tensor logp = c.logp.clone().requires_grad_(true);
  GrpoLossConfig cfg;
  cfg.aggregation = LossAggregation::kSeqMeanTokenSumNorm;
  cfg.norm_length = 4;
  GrpoLossTerms t = GrpoLoss(logp, c.old_logp, {}, c.adv, c.mask, cfg);
  EXPECT_NEAR(t.loss.item<double>(), (-1.7 / 4 + 7.8 / 4) / 2, 1e-12);  // 0.7625
  t.loss.backward();
  std::vector<double> expect = {0.0, -0.5 / 8, 0.0, 0.0, 2.2 / 8, 4.0 / 8};
  torch::Tensor g = logp.grad().reshape({6});
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(g[i].item<double>(), expect[i], 1e-12) << "token " << i;
  // Without norm_length the divisor is the batch's T (3).
  cfg.norm_length = 0;
  EXPECT_NEAR(GrpoLoss(c.logp, c.old_logp, {}, c.adv, c.mask, cfg).loss.item<double>(), (-1.7 / 3 + 7.8 / 3) / 2,
              1e-12);
}

TEST(GrpoLossVariants, ClipHigherRaisesOnlyTheUpperBound) {
  // high 0.28: seq 0's ratio 1.5 clips at 1.28 (pg -1.28); seq 1's ratio 0.5 with A < 0
  // still clips at 1 - 0.2; 2.0 with A < 0 stays unclipped.
  Case c;
  GrpoLossConfig cfg;
  cfg.clip_eps_low = 0.2;
  cfg.clip_eps_high = 0.28;
  GrpoLossTerms t = GrpoLoss(c.logp, c.old_logp, {}, c.adv, c.mask, cfg);
  EXPECT_NEAR(t.loss.item<double>(), ((-1.28 - 0.5) / 2 + (1.6 + 2.2 + 4.0) / 3) / 2, 1e-12);
  EXPECT_NEAR(t.clip_fraction, 0.4, 1e-12);
}

TEST(GrpoLossVariants, KlEstimatorsK1K2K3) {
  torch::Tensor logp = T({std::log(2.0), std::log(0.5)}, {1, 2}).requires_grad_(true);
  torch::Tensor ref = torch::zeros({1, 2}, torch::kFloat64);
  torch::Tensor k1 = KlEstimate(logp, ref, KlEstimator::kK1);
  torch::Tensor k2 = KlEstimate(logp, ref, KlEstimator::kK2);
  EXPECT_NEAR(k1[0][0].item<double>(), std::log(2.0), 1e-12);
  EXPECT_NEAR(k1[0][1].item<double>(), -std::log(2.0), 1e-12);
  EXPECT_NEAR(k2[0][1].item<double>(), 0.5 * std::log(2.0) * std::log(2.0), 1e-12);
  EXPECT_TRUE(torch::equal(KlEstimate(logp, ref, KlEstimator::kK3), KlK3(logp, ref)));
  // d k2 / d logp = logp - ref.
  k2.sum().backward();
  EXPECT_NEAR(logp.grad()[0][1].item<double>(), -std::log(2.0), 1e-12);
  // In the loss: beta * mean k1 over each completion.
  Case c;
  GrpoLossConfig cfg;
  cfg.beta = 0.5;
  cfg.kl_estimator = KlEstimator::kK1;
  GrpoLossTerms t = GrpoLoss(c.logp, c.old_logp, c.ref_logp, c.adv, c.mask, cfg);
  const double kl0 = (std::log(1.5) + std::log(0.5)) / 2, kl1 = (std::log(0.5) + std::log(1.1) + std::log(2.0)) / 3;
  EXPECT_NEAR(t.loss.item<double>(), 0.875 + 0.5 * (kl0 + kl1) / 2, 1e-12);
}

TEST(GrpoLossVariants, TruncatedImportanceWeightsCorrectStaleSamples) {
  // Sampled by an old policy (old = 0); the proximal policy (this step's start) puts
  // log 1.5 on every token, so the weight exp(prox - old) = 1.5 is truncated to 1.2.
  // At the first gradient step logp == prox: ratio 1, pg = -1.2 * A per token.
  Case c;
  torch::Tensor prox = torch::full({2, 3}, std::log(1.5), torch::kFloat64);
  torch::Tensor logp = prox.clone().requires_grad_(true);
  GrpoLossConfig cfg;
  cfg.importance_cap = 1.2;
  GrpoLossTerms t = GrpoLoss(logp, c.old_logp, {}, c.adv, c.mask, cfg, prox);
  EXPECT_NEAR(t.loss.item<double>(), (-1.2 + 2.4) / 2, 1e-12);
  EXPECT_NEAR(t.importance_weight_mean, 1.2, 1e-12);
  EXPECT_NEAR(t.ratio_mean, 1.0, 1e-12);
  t.loss.backward();
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), -1.2 / 4, 1e-12);
  EXPECT_NEAR(logp.grad()[1][2].item<double>(), 2.4 / 6, 1e-12);
  // Without a cap (or without prox) the ratio is against the sampling policy.
  GrpoLossTerms plain = GrpoLoss(c.logp, c.old_logp, {}, c.adv, c.mask, GrpoLossConfig{}, prox);
  EXPECT_NEAR(plain.loss.item<double>(), 0.875, 1e-12);
  EXPECT_NEAR(plain.importance_weight_mean, 1.0, 1e-12);
}

TEST(GrpoLossVariants, PartsWithWholeBatchTotalsSumToTheWholeBatchLossAndGradient) {
  // Rows 0 and 1 as two parts (micro-batches or ranks), each dividing by the whole
  // batch's totals (2 completions, 5 tokens): their losses and gradients add up.
  for (auto agg : {LossAggregation::kSeqMeanTokenMean, LossAggregation::kTokenMean, LossAggregation::kSeqMeanTokenSumNorm}) {
    Case c;
    GrpoLossConfig cfg;
    cfg.aggregation = agg;
    cfg.norm_length = 4;
    cfg.beta = 0.1;
    torch::Tensor whole_lp = c.logp.detach().clone().requires_grad_(true);
    GrpoLossTerms whole = GrpoLoss(whole_lp, c.old_logp, c.ref_logp, c.adv, c.mask, cfg);
    whole.loss.backward();
    cfg.total_sequences = 2;
    cfg.total_tokens = 5;
    torch::Tensor part_lp = c.logp.detach().clone().requires_grad_(true);
    double sum = 0;
    for (int64_t r = 0; r < 2; ++r) {
      auto row = [&](const torch::Tensor& t) { return t.slice(0, r, r + 1); };
      GrpoLossTerms part = GrpoLoss(row(part_lp), row(c.old_logp), row(c.ref_logp), c.adv.slice(0, r, r + 1), row(c.mask), cfg);
      part.loss.backward();
      sum += part.loss.item<double>();
      EXPECT_EQ(part.n_tokens, r == 0 ? 2 : 3);
    }
    EXPECT_NEAR(sum, whole.loss.item<double>(), 1e-12) << static_cast<int>(agg);
    EXPECT_TRUE(torch::allclose(part_lp.grad(), whole_lp.grad(), 0, 1e-12)) << static_cast<int>(agg);
  }
}

}  // namespace
}  // namespace grpo::rl

// The learning path checked against references computed another way (issue #21: the
// demo learned half as well for weeks while every unit test stayed green).
//
// 1. Gradients of the training forward (Transformer::forward as the trainer calls it:
//    right-padded rows, temperature-scaled log-probabilities of the next token) against
//    an op-by-op reference written here in float64 from the Hugging Face formulas, one
//    unpadded row at a time, for every architecture (llama, qwen2, qwen3), tied and
//    untied, with grouped-query attention, in fp32 and under bf16 autocast, with and
//    without activation checkpointing. The reference's own gradients are checked by
//    central finite differences, and its logits against the loop reference.
// 2. GrpoTrainer's update on a fixed batch against one worked out by hand: advantages
//    from the rewards as literal numbers, the clipped surrogate per token, the mean over
//    each completion's tokens and then over completions, and plain SGD.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/grpo/trainer.h"
#include "core/model/model_config.h"
#include "core/model/numerics_check.h"
#include "core/model/presets.h"
#include "core/model/safetensors.h"
#include "core/model/sampler.h"
#include "core/model/transformer.h"
#include "tests/reference_model.h"

namespace grpo {
namespace {

using model::ModelConfig;
using model::Transformer;

ModelConfig Config(const std::string& arch, bool tied) {
  ModelConfig c;
  c.model_type = arch;
  c.vocab_size = 37;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;  // grouped-query attention: two query heads per key/value head
  c.max_position_embeddings = 64;
  c.attention_bias = arch == "qwen2";
  c.tie_word_embeddings = tied;
  c.rope_theta = 10000.0;
  return c;
}

Transformer MakeModel(const ModelConfig& c, uint64_t seed, double scale = 10.0) {
  torch::manual_seed(seed);
  Transformer m(c);
  // Weights large enough that attention, RoPE and the norms shape the gradients (at
  // N(0, 0.02) the model is close to a bag of embeddings), and norm weights and biases
  // away from their initial ones and zeros, so that their gradients are exercised too.
  torch::NoGradGuard ng;
  for (auto& p : m->named_parameters()) {
    const std::string& name = p.key();
    if (name.find("norm") != std::string::npos) {
      p.value().copy_(1.0 + 0.3 * torch::randn_like(p.value()));
    } else if (name.find("bias") != std::string::npos) {
      p.value().copy_(0.2 * torch::randn_like(p.value()));
    } else {
      p.value().mul_(scale);
    }
  }
  return m;
}

// ---------------------------------------------------------------------------
// The op-by-op reference: every parameter a float64 leaf, one row at a time.
// ---------------------------------------------------------------------------
using Params = std::map<std::string, torch::Tensor>;

Params ReferenceParams(Transformer& m) {
  Params p;
  for (const auto& kv : m->named_parameters()) {
    p[kv.key()] = kv.value().detach().to(torch::kDouble).clone().requires_grad_(true);
  }
  return p;
}

torch::Tensor Rms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * w;
}

torch::Tensor Lin(const Params& p, const std::string& name, const torch::Tensor& x) {
  torch::Tensor y = torch::matmul(x, p.at(name + ".weight").t());
  auto b = p.find(name + ".bias");
  return b == p.end() ? y : y + b->second;
}

torch::Tensor RotateHalf(const torch::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

// ids (T) -> logits (T, V), float64, differentiable in every parameter of `p`.
torch::Tensor ReferenceLogits(const ModelConfig& c, const Params& p, const std::vector<int64_t>& ids) {
  const int64_t T = static_cast<int64_t>(ids.size()), C = c.hidden_size, H = c.num_attention_heads,
                K = c.num_key_value_heads, D = c.head_dim();
  const double eps = c.rms_norm_eps;
  torch::Tensor tok = torch::tensor(ids, torch::kInt64);
  torch::Tensor x = p.at("model.embed_tokens.weight").index_select(0, tok);  // (T, C)
  const std::vector<double> inv = model::testing::ReferenceInvFreq(c);
  torch::Tensor inv_freq = torch::tensor(inv, torch::kDouble);                               // (D/2)
  torch::Tensor angles = torch::arange(T, torch::kDouble).unsqueeze(1) * inv_freq.unsqueeze(0);  // (T, D/2)
  torch::Tensor cos = torch::cat({angles.cos(), angles.cos()}, -1).unsqueeze(1);  // (T, 1, D)
  torch::Tensor sin = torch::cat({angles.sin(), angles.sin()}, -1).unsqueeze(1);  // (T, 1, D)
  torch::Tensor causal = torch::ones({T, T}, torch::kBool).triu(1);              // true above the diagonal
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    torch::Tensor h = Rms(x, p.at(pre + "input_layernorm.weight"), eps);  // (T, C)
    torch::Tensor q = Lin(p, pre + "self_attn.q_proj", h).view({T, H, D});
    torch::Tensor k = Lin(p, pre + "self_attn.k_proj", h).view({T, K, D});
    torch::Tensor v = Lin(p, pre + "self_attn.v_proj", h).view({T, K, D});
    if (c.model_type == "qwen3") {
      q = Rms(q, p.at(pre + "self_attn.q_norm.weight"), eps);
      k = Rms(k, p.at(pre + "self_attn.k_norm.weight"), eps);
    }
    q = q * cos + RotateHalf(q) * sin;  // (T, H, D)
    k = k * cos + RotateHalf(k) * sin;  // (T, K, D)
    std::vector<torch::Tensor> heads;
    for (int64_t hd = 0; hd < H; ++hd) {
      const int64_t kv = hd / (H / K);  // query head hd reads key/value head hd / (H / K)
      torch::Tensor s = torch::matmul(q.select(1, hd), k.select(1, kv).t()) / std::sqrt(static_cast<double>(D));
      s = s.masked_fill(causal, -std::numeric_limits<double>::infinity());  // (T, T)
      heads.push_back(torch::matmul(torch::softmax(s, -1), v.select(1, kv)));  // (T, D)
    }
    x = x + Lin(p, pre + "self_attn.o_proj", torch::cat(heads, -1));  // (T, C)
    h = Rms(x, p.at(pre + "post_attention_layernorm.weight"), eps);
    torch::Tensor ff = torch::silu(Lin(p, pre + "mlp.gate_proj", h)) * Lin(p, pre + "mlp.up_proj", h);
    x = x + Lin(p, pre + "mlp.down_proj", ff);
  }
  x = Rms(x, p.at("model.norm.weight"), eps);
  const torch::Tensor& head = c.tie_word_embeddings ? p.at("model.embed_tokens.weight") : p.at("lm_head.weight");
  (void)C;
  return torch::matmul(x, head.t());  // (T, V)
}

// A batch as the trainer lays it out: right-padded rows; row r's loss weighs the
// temperature-scaled log-probability of each token after its prompt.
struct Batch {
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> prompt_len;
  std::vector<double> temperature;
  std::vector<std::vector<double>> weight;  // per predicted token after the prompt
};

Batch MakeBatch(int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  Batch b;
  const std::vector<int64_t> lengths = {9, 5, 12, 7};
  const std::vector<int64_t> prompts = {3, 2, 4, 1};
  for (size_t r = 0; r < lengths.size(); ++r) {
    torch::Tensor t = torch::randint(1, vocab, {lengths[r]}, torch::kInt64);
    b.rows.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + lengths[r]);
    b.prompt_len.push_back(prompts[r]);
    b.temperature.push_back(r % 2 ? 0.7 : 1.0);
    torch::Tensor w = torch::randn({lengths[r] - prompts[r]}, torch::kDouble);
    b.weight.emplace_back(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
  }
  return b;
}

// The reference loss: sum over rows and completion tokens of weight * logp, each row on
// its own (no padding), in float64.
torch::Tensor ReferenceLoss(const ModelConfig& c, const Params& p, const Batch& b) {
  torch::Tensor loss = torch::zeros({}, torch::kDouble);
  for (size_t r = 0; r < b.rows.size(); ++r) {
    const auto& ids = b.rows[r];
    torch::Tensor logp = torch::log_softmax(ReferenceLogits(c, p, ids) / b.temperature[r], -1);  // (T, V)
    for (size_t j = static_cast<size_t>(b.prompt_len[r]); j < ids.size(); ++j) {
      // Token j is predicted at position j - 1.
      loss = loss + b.weight[r][j - b.prompt_len[r]] * logp[static_cast<int64_t>(j) - 1][ids[j]];
    }
  }
  return loss;
}

// The same loss through the training forward: one padded (B, L) batch, as GrpoTrainer.
torch::Tensor ModelLoss(Transformer& m, const Batch& b, bool bf16) {
  const int64_t B = static_cast<int64_t>(b.rows.size());
  int64_t L = 0;
  for (const auto& r : b.rows) L = std::max<int64_t>(L, static_cast<int64_t>(r.size()));
  torch::Tensor tokens = torch::full({B, L}, 36, torch::kInt64);  // padded with an ordinary token
  torch::Tensor w = torch::zeros({B, L - 1}, torch::kFloat);
  torch::Tensor temps = torch::ones({B}, torch::kFloat);
  for (int64_t r = 0; r < B; ++r) {
    for (size_t j = 0; j < b.rows[r].size(); ++j) tokens[r][static_cast<int64_t>(j)] = b.rows[r][j];
    for (size_t j = static_cast<size_t>(b.prompt_len[r]); j < b.rows[r].size(); ++j) {
      w[r][static_cast<int64_t>(j) - 1] = b.weight[r][j - b.prompt_len[r]];
    }
    temps[r] = b.temperature[r];
  }
  torch::Tensor input = tokens.slice(1, 0, L - 1), target = tokens.slice(1, 1, L);
  torch::Tensor logits;
  {
    model::Bf16Autocast autocast(bf16);
    logits = m->forward(input) / temps.view({-1, 1, 1});  // (B, L-1, V)
  }
  return (model::TokenLogprobs(logits, target, 1.0) * w).sum();
}

// ||a - b|| / ||b|| over one tensor.
double RelErr(const torch::Tensor& a, const torch::Tensor& b) {
  const double nb = b.norm().item<double>();
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>() / std::max(nb, 1e-12);
}

struct Case {
  std::string arch;
  bool tied;
};

class TrainingForwardGradientTest : public ::testing::TestWithParam<Case> {};

TEST_P(TrainingForwardGradientTest, ReferenceGradientsMatchFiniteDifferences) {
  const ModelConfig c = Config(GetParam().arch, GetParam().tied);
  Transformer m = MakeModel(c, 21);
  Params p = ReferenceParams(m);
  const Batch b = MakeBatch(c.vocab_size, 3);
  // The reference's logits are the loop reference's (an independent forward).
  {
    torch::NoGradGuard ng;
    const auto loop = model::testing::ReferenceModel::FromStateDict(c, model::StateDict(*m)).Forward(b.rows[0]);
    torch::Tensor ours = ReferenceLogits(c, p, b.rows[0]);
    for (size_t t = 0; t < loop.size(); ++t) {
      EXPECT_LT(RelErr(ours[static_cast<int64_t>(t)], torch::tensor(loop[t], torch::kDouble)), 1e-5) << "position " << t;
    }
  }
  torch::Tensor loss = ReferenceLoss(c, p, b);
  loss.backward();
  // Central differences on a spread of entries of every parameter tensor.
  const double h = 1e-5;
  int checked = 0;
  for (auto& [name, t] : p) {
    torch::Tensor flat = t.detach().view({-1});
    const int64_t n = flat.numel();
    for (int64_t i : {int64_t{0}, n / 3, n - 1}) {
      const double g = t.grad().view({-1})[i].item<double>();
      const double x0 = flat[i].item<double>();
      double f[2];
      for (int s = 0; s < 2; ++s) {
        torch::NoGradGuard ng;
        flat[i] = x0 + (s ? h : -h);
        f[s] = ReferenceLoss(c, p, b).item<double>();
      }
      {
        torch::NoGradGuard ng;
        flat[i] = x0;
      }
      const double fd = (f[1] - f[0]) / (2 * h);
      EXPECT_NEAR(g, fd, 1e-5 * std::max(1.0, std::abs(fd))) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST_P(TrainingForwardGradientTest, ModelGradientsMatchTheReferenceInFp32AndBf16) {
  const ModelConfig c = Config(GetParam().arch, GetParam().tied);
  const Batch b = MakeBatch(c.vocab_size, 3);
  for (bool bf16 : {false, true}) {
    // fp32 at large weights, where any wrong term shows; bf16 (about three significant
    // digits per matmul) at weights whose logits stay in the range training sees.
    Transformer m = MakeModel(c, 21, bf16 ? 3.0 : 10.0);
    m->train();
    Params p = ReferenceParams(m);
    torch::Tensor ref_loss = ReferenceLoss(c, p, b);
    ref_loss.backward();
    for (bool checkpointing : {false, true}) {
      SCOPED_TRACE(std::string(bf16 ? "bf16" : "fp32") + (checkpointing ? ", checkpointed" : ""));
      m->set_activation_checkpointing(checkpointing);
      m->zero_grad();
      torch::Tensor loss = ModelLoss(m, b, bf16);
      EXPECT_LT(std::abs(loss.item<double>() - ref_loss.item<double>()),
                (bf16 ? 2e-2 : 1e-5) * std::max(1.0, std::abs(ref_loss.item<double>())));
      loss.backward();
      // fp32 against float64 agrees to float rounding. Under bf16 each tensor's gradient
      // must agree within bf16's rounding: a wrong term (a sign, a missing path, a
      // shifted position) is off by tens of percent.
      const double tol = bf16 ? 5e-2 : 2e-4;
      for (const auto& kv : m->named_parameters()) {
        const torch::Tensor& want = p.at(kv.key()).grad();
        ASSERT_TRUE(kv.value().grad().defined()) << kv.key();
        EXPECT_LT(RelErr(kv.value().grad(), want), tol) << kv.key();
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, TrainingForwardGradientTest,
                         ::testing::Values(Case{"llama", false}, Case{"llama", true}, Case{"qwen2", false},
                                           Case{"qwen3", false}, Case{"qwen3", true}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return i.param.arch + (i.param.tied ? "Tied" : "");
                         });

// ---------------------------------------------------------------------------
// GrpoTrainer's update on a fixed batch, worked out by hand.
// ---------------------------------------------------------------------------

// Float64 log-probabilities of a completion's tokens under the reference, at `temp`.
std::vector<torch::Tensor> CompletionLogprobs(const ModelConfig& c, const Params& p, const std::vector<int64_t>& prompt,
                                              const std::vector<int64_t>& completion, double temp) {
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), completion.begin(), completion.end());
  torch::Tensor logp = torch::log_softmax(ReferenceLogits(c, p, ids) / temp, -1);  // (T, V)
  std::vector<torch::Tensor> out;
  for (size_t j = 0; j < completion.size(); ++j) {
    out.push_back(logp[static_cast<int64_t>(prompt.size() + j) - 1][completion[j]]);
  }
  return out;
}

TEST(GrpoUpdateTest, OneStepOnAFixedBatchIsTheHandComputedUpdate) {
  const ModelConfig c = Config("qwen2", false);
  Transformer m = MakeModel(c, 5);
  {
    // Back to a moderate scale: the clipped tokens below are chosen by ratio, not by
    // saturated probabilities.
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.mul_(0.3);
  }
  Params p = ReferenceParams(m);

  // Two groups of four. Rewards as the reward service gives them (accuracy + 0.5 format).
  // Group 0: rewards 1.5, 0, 0.5, 0  -> mean 0.5, unbiased std sqrt(1/2):
  //   advantages (1.5-0.5)/0.70711 = 1.41421, -0.70711, 0, -0.70711.
  // Group 1: rewards 1, 1, 1, 1 -> every advantage 0 (nothing to learn from this group).
  const double s = std::sqrt(0.5);
  const std::vector<std::vector<double>> rewards = {{1.5, 0.0, 0.5, 0.0}, {1.0, 1.0, 1.0, 1.0}};
  const std::vector<std::vector<double>> advantages = {{1.0 / s, -0.5 / s, 0.0, -0.5 / s}, {0, 0, 0, 0}};
  const std::vector<std::vector<int64_t>> prompts = {{1, 5, 9}, {2, 7}};
  const std::vector<std::vector<std::vector<int64_t>>> completions = {
      {{4, 4, 11, 3}, {8, 3}, {12, 13, 14, 15, 3}, {6}}, {{9, 3}, {10, 11, 3}, {3}, {5, 5, 3}}};
  const std::vector<float> temps = {0.7f, 1.0f};

  // Sampling log-probabilities: the current policy's, shifted on chosen tokens so that
  // ratios land inside and outside the clip range [0.8, 1.2].
  std::vector<TrainGroup> groups(2);
  std::vector<std::vector<std::vector<double>>> shift(2);
  for (size_t g = 0; g < 2; ++g) {
    groups[g].prompt_token_ids = prompts[g];
    groups[g].temperature = temps[g];
    for (size_t i = 0; i < 4; ++i) {
      TrainCompletion tc;
      tc.token_ids = completions[g][i];
      tc.reward = rewards[g][i];
      auto lp = CompletionLogprobs(c, p, prompts[g], completions[g][i], temps[g]);
      std::vector<double> sh(lp.size(), 0.0);
      for (size_t j = 0; j < lp.size(); ++j) {
        // ratio = exp(logp - old): old = logp - shift gives ratio exp(shift).
        sh[j] = (j % 3 == 0) ? 0.0 : (j % 3 == 1 ? 0.5 : -0.4);  // ratio 1, 1.65 (clipped if A>0), 0.67 (clipped if A<0)
        tc.logprobs.push_back(static_cast<float>(lp[j].item<double>() - sh[j]));
      }
      shift[g].push_back(sh);
      groups[g].completions.push_back(std::move(tc));
    }
  }

  // By hand: per token pg = -min(r A, clip(r, 0.8, 1.2) A); its gradient is -A r grad(logp)
  // where the unclipped branch is the min, else 0. Loss = mean over the 8 completions of
  // the mean over each completion's tokens.
  torch::Tensor loss = torch::zeros({}, torch::kDouble);
  double value = 0;  // the loss's value, clipped tokens included
  for (size_t g = 0; g < 2; ++g) {
    for (size_t i = 0; i < 4; ++i) {
      const double A = advantages[g][i];
      auto lp = CompletionLogprobs(c, p, prompts[g], completions[g][i], temps[g]);
      torch::Tensor sum = torch::zeros({}, torch::kDouble);
      double v = 0;
      for (size_t j = 0; j < lp.size(); ++j) {
        const double r = std::exp(shift[g][i][j]);
        v -= std::min(r * A, std::clamp(r, 0.8, 1.2) * A);
        const bool clipped = (A > 0 && r > 1.2) || (A < 0 && r < 0.8);
        if (clipped || A == 0) continue;  // no gradient
        torch::Tensor ratio = torch::exp(lp[j] - (lp[j].detach() - shift[g][i][j]));
        sum = sum - ratio * A;
      }
      loss = loss + sum / static_cast<double>(lp.size());
      value += v / static_cast<double>(lp.size());
    }
  }
  loss = loss / 8.0;
  value /= 8.0;
  loss.backward();

  torch::optim::SGD sgd(m->parameters(), torch::optim::SGDOptions(1.0));
  TrainerOptions o;
  o.loss.clip_eps_low = 0.2;
  o.loss.clip_eps_high = 0.2;
  o.loss.beta = 0.0;
  o.grad_clip = 0;  // the raw gradient
  GrpoTrainer trainer(m, Transformer(nullptr), &sgd, o, /*pad_id=*/0);
  std::map<std::string, torch::Tensor> before;
  for (const auto& kv : m->named_parameters()) before[kv.key()] = kv.value().detach().clone();
  std::vector<const TrainGroup*> ptrs = {&groups[0], &groups[1]};
  TrainStats st = trainer.Step(ptrs, 1);
  EXPECT_EQ(st.optimizer_steps, 1);
  // Tokens of completions: 4+2+5+1 + 2+3+1+3 = 21.
  EXPECT_EQ(st.loss_tokens, 21);
  EXPECT_NEAR(st.loss, value, 1e-4);
  double moved = 0;
  for (const auto& kv : m->named_parameters()) {
    // SGD with learning rate 1: the parameter moves by minus the gradient.
    torch::Tensor delta = (kv.value().detach() - before[kv.key()]).to(torch::kDouble);
    const torch::Tensor& g = p.at(kv.key()).grad();
    EXPECT_LT(RelErr(delta, -g), 1e-3) << kv.key();
    moved += delta.norm().item<double>();
  }
  EXPECT_GT(moved, 1e-3);  // the batch does teach something
}

// ---------------------------------------------------------------------------
// The start-up check of the float32 kernels (learner and actor run it).
// ---------------------------------------------------------------------------

TEST(Float32KernelCheckTest, PassesOnThisMachineForTheDemoAndAQwenShape) {
  ModelConfig demo = Config("llama", false);
  demo.hidden_size = 128;
  demo.intermediate_size = 384;
  demo.num_attention_heads = 8;
  demo.num_key_value_heads = 8;
  demo.vocab_size = 960;
  model::KernelCheckOptions o;
  o.rows = 64;
  o.train_rows = 16 * 48;  // the demo's pretraining micro-batch
  absl::Status d = model::CheckFloat32Kernels(demo, o);
  EXPECT_TRUE(d.ok()) << d;
  auto qwen = model::PresetConfig("qwen2", "0.5b", 151936);
  ASSERT_TRUE(qwen.ok());
  o.train_rows = 8 * 512;
  absl::Status s = model::CheckFloat32Kernels(*qwen, o);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(Float32KernelCheckTest, AKernelThatMiscomputesOneRowIsNamed) {
  const ModelConfig c = Config("llama", false);
  // A matrix-vector product that drops the last input feature of a single row, as a
  // broken gemv kernel might: the check must refuse it and say which product.
  auto broken = [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    at::Tensor y = model::Linear(x, w, b);
    if (x.numel() == w.size(1)) y = y - x.narrow(-1, w.size(1) - 1, 1) * w.select(1, w.size(1) - 1);
    return y;
  };
  model::KernelCheckOptions o;
  o.rows = 64;
  o.linear = broken;
  absl::Status s = model::CheckFloat32Kernels(c, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("over 1 row(s)"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("OPENBLAS_CORETYPE"), std::string::npos) << s;
}

TEST(Float32KernelCheckTest, AWeightGradientKernelWrongOnlyAtTrainingSizeIsNamed) {
  const ModelConfig c = Config("llama", false);
  // A transposed product that drops the last term of its sum, but only over more than
  // 256 terms (as a size-selected BLAS kernel might): the forward products and the
  // one-block gradient check (a few dozen tokens) pass; the weight gradient at the
  // training micro-batch's size must not.
  auto broken = [](const at::Tensor& a, const at::Tensor& b) {
    at::Tensor y = torch::mm(a, b);
    if (a.size(1) > 256 && !a.is_contiguous()) y = y - torch::mm(a.narrow(1, a.size(1) - 1, 1), b.narrow(0, b.size(0) - 1, 1));
    return y;
  };
  model::KernelCheckOptions o;
  o.rows = 64;
  o.mm = broken;
  EXPECT_TRUE(model::CheckFloat32Kernels(c, o).ok()) << "no training size given: the backward products are not run";
  o.train_rows = 200;
  EXPECT_TRUE(model::CheckFloat32Kernels(c, o).ok()) << "under the broken size";
  o.train_rows = 1024;
  absl::Status s = model::CheckFloat32Kernels(c, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("the weight gradient of a linear layer"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("tokens"), std::string::npos) << s;
}

}  // namespace
}  // namespace grpo

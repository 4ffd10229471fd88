// Tests for core/model/generator: batched decoding with per-row positions,
// padding, prefix sharing, continuous batching, stop tokens and strings,
// sampling, and agreement with full forward passes and a naive reference.
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/model/generator.h"
#include "core/model/safetensors.h"
#include "core/model/transformer.h"
#include "tests/reference_model.h"

namespace grpo::model {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyConfig(const std::string& model_type) {
  ModelConfig c;
  c.model_type = model_type;
  c.vocab_size = 48;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 96;
  c.attention_bias = model_type == "qwen2";
  if (model_type == "qwen3") c.head_dim_value = 16;  // != hidden / heads
  return c;
}

Transformer MakeModel(const ModelConfig& config, uint64_t seed = 0) {
  torch::manual_seed(seed);
  Transformer model(config);
  model->eval();
  // Norm weights are ones at init; perturb them so a wrong norm shows.
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    if (p.key().find("norm") != std::string::npos) p.value().add_(torch::randn_like(p.value()) * 0.1);
  }
  return model;
}

std::vector<ModelConfig> AllArchs() {
  ModelConfig tied = TinyConfig("llama");
  tied.tie_word_embeddings = true;
  return {TinyConfig("llama"), TinyConfig("qwen2"), TinyConfig("qwen3"), tied};
}

// Full-forward logits (V) of the last token of `ids`.
torch::Tensor LastLogits(Transformer& model, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  torch::Tensor t = torch::tensor(ids, torch::kInt64).view({1, -1});
  return model->forward(t)[0][-1];
}

std::vector<std::vector<SampledSequence>> GenerateAll(Transformer& model, const std::vector<GenerationRequest>& requests,
                                              const SamplingParams& params, uint64_t seed, int64_t max_batch = 64,
                                              GenerationStats* stats = nullptr,
                                              std::vector<std::string> token_bytes = {}) {
  GeneratorOptions options;
  options.max_batch = max_batch;
  options.token_bytes = std::move(token_bytes);
  Generator gen(model, options);
  auto result = gen.Generate(requests, params, seed);
  EXPECT_TRUE(result.ok()) << result.status();
  if (stats != nullptr) *stats = gen.last_stats();
  return result.ok() ? *result : std::vector<std::vector<SampledSequence>>{};
}

SamplingParams Greedy(int64_t n) {
  SamplingParams p;
  p.temperature = 0.0;
  p.max_new_tokens = n;
  return p;
}

// Rows of different lengths decoded in one batch each get the logits a full
// forward pass gives that sequence alone.
TEST(GeneratorTest, BatchedDecodeOfDifferentLengthsMatchesFullForward) {
  for (const ModelConfig& config : AllArchs()) {
    Transformer model = MakeModel(config, 1);
    Generator gen(model, GeneratorOptions{});
    const std::vector<std::vector<int64_t>> contexts = {
        {1, 2}, {5, 6, 7, 8, 9, 10, 11}, {3, 4, 5}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 40, 41, 42}};
    torch::Tensor batched = gen.DecodeLogitsForTest(contexts);  // (4, V)
    for (size_t i = 0; i < contexts.size(); ++i) {
      torch::Tensor alone = LastLogits(model, contexts[i]);
      EXPECT_TRUE(torch::allclose(batched[i], alone, 1e-4, 1e-4))
          << config.model_type << " row " << i << " max diff " << (batched[i] - alone).abs().max().item<float>();
    }
  }
}

// Prompts of different lengths prefilled together (right-padded) and decoded
// together give each prompt's unpadded greedy continuation.
TEST(GeneratorTest, PaddedBatchGivesEachSequenceItsOwnResult) {
  for (const ModelConfig& config : AllArchs()) {
    Transformer model = MakeModel(config, 2);
    std::vector<GenerationRequest> requests = {{{1, 2, 3}, 1}, {{4}, 1}, {{7, 8, 9, 10, 11, 12, 13, 14}, 1}};
    auto together = GenerateAll(model, requests, Greedy(10), 0);
    for (size_t r = 0; r < requests.size(); ++r) {
      auto alone = GenerateAll(model, {requests[r]}, Greedy(10), 0);
      EXPECT_EQ(together[r][0].token_ids, alone[0][0].token_ids) << config.model_type << " request " << r;
    }
  }
}

// Every recorded logprob (one per decode step) equals the log-softmax of a
// full forward pass over prompt + completion: step-by-step decoding gives
// the logits of the full pass.
TEST(GeneratorTest, StepwiseLogprobsMatchFullForward) {
  for (const ModelConfig& config : AllArchs()) {
    Transformer model = MakeModel(config, 3);
    SamplingParams params;
    params.temperature = 1.0;
    params.max_new_tokens = 20;
    const std::vector<int64_t> prompt = {1, 20, 21, 22, 5};
    const auto result = GenerateAll(model, {{prompt, 3}}, params, 11);
    for (const auto& seq : result[0]) {
      std::vector<int64_t> all = prompt;
      all.insert(all.end(), seq.token_ids.begin(), seq.token_ids.end());
      torch::NoGradGuard no_grad;
      torch::Tensor logits = model->forward(torch::tensor(all, torch::kInt64).view({1, -1}))[0];  // (L, V)
      torch::Tensor logp = torch::log_softmax(logits, -1);
      for (size_t i = 0; i < seq.token_ids.size(); ++i) {
        const float expected = logp[prompt.size() - 1 + i][seq.token_ids[i]].item<float>();
        EXPECT_NEAR(seq.logprobs[i], expected, 1e-4) << config.model_type << " step " << i;
      }
    }
  }
}

// A bf16 model decodes with bf16 caches and matmuls; its logprobs agree with
// its own full forward pass within bf16 precision.
TEST(GeneratorTest, Bf16ModelDecodesLikeItsFullForward) {
  Transformer model = MakeModel(TinyConfig("qwen3"), 13);
  model->to(torch::kBFloat16);
  SamplingParams params;
  params.max_new_tokens = 16;
  const std::vector<int64_t> prompt = {1, 2, 3, 4};
  const auto result = GenerateAll(model, {{prompt, 2}}, params, 5);
  for (const auto& seq : result[0]) {
    ASSERT_EQ(seq.token_ids.size(), 16u);
    std::vector<int64_t> all = prompt;
    all.insert(all.end(), seq.token_ids.begin(), seq.token_ids.end());
    torch::NoGradGuard no_grad;
    torch::Tensor logp =
        torch::log_softmax(model->forward(torch::tensor(all, torch::kInt64).view({1, -1}))[0], -1);  // (L, V)
    for (size_t i = 0; i < seq.token_ids.size(); ++i) {
      EXPECT_NEAR(seq.logprobs[i], logp[prompt.size() - 1 + i][seq.token_ids[i]].item<float>(), 0.05) << i;
    }
  }
}

// Greedy decoding agrees with a naive reference implementation (plain loops
// written from the Hugging Face modeling code, full recompute each step).
TEST(GeneratorTest, GreedyMatchesNaiveReference) {
  for (const ModelConfig& config : AllArchs()) {
    Transformer model = MakeModel(config, 4);
    auto reference = testing::ReferenceModel::FromStateDict(config, StateDict(*model));
    const std::vector<int64_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
    const std::vector<int64_t> expected = reference.Greedy(prompt, 24);
    auto got = GenerateAll(model, {{prompt, 2}}, Greedy(24), 0);
    EXPECT_EQ(got[0][0].token_ids, expected) << config.model_type;
    EXPECT_EQ(got[0][1].token_ids, expected) << config.model_type;
  }
}

// A request's prompt is prefilled once for all its completions.
TEST(GeneratorTest, PrefixIsPrefilledOncePerRequest) {
  Transformer model = MakeModel(TinyConfig("qwen2"), 5);
  std::vector<int64_t> prompt(40);
  for (int i = 0; i < 40; ++i) prompt[i] = (i * 7) % 48;
  SamplingParams params;
  params.max_new_tokens = 6;
  GenerationStats shared, separate;
  auto a = GenerateAll(model, {{prompt, 16}}, params, 3, 64, &shared);
  EXPECT_EQ(shared.prefill_tokens, 40);
  EXPECT_EQ(shared.prefill_forwards, 1);
  std::vector<GenerationRequest> sixteen(16, GenerationRequest{prompt, 1});
  GenerateAll(model, sixteen, params, 3, 64, &separate);
  EXPECT_EQ(separate.prefill_tokens, 16 * 40);
  // The prompt's keys are held once for the 16 completions: one prefix slot
  // against sixteen, and the difference in KV bytes is exactly 15 prompts' keys.
  const ModelConfig& c = model->config();
  const int64_t prompt_bytes = c.num_hidden_layers * 2 * c.num_key_value_heads * 40 * c.head_dim() * 4;
  EXPECT_EQ(shared.prefix_slots, 1);
  EXPECT_EQ(separate.prefix_slots, 16);
  EXPECT_EQ(separate.kv_bytes - shared.kv_bytes, 15 * prompt_bytes);
  // One prompt's keys plus 16 rows of 6 generated positions each (own keys only).
  EXPECT_EQ(shared.kv_bytes, prompt_bytes + 16 * 6 * prompt_bytes / 40);
  ASSERT_EQ(a[0].size(), 16u);
  // The 16 completions are independent draws, not copies.
  std::set<std::vector<int64_t>> distinct;
  for (const auto& s : a[0]) distinct.insert(s.token_ids);
  EXPECT_GT(distinct.size(), 8u);
}

// The prefill budget counts padding: a long prompt is not batched with short
// ones when the padded batch would pass max_prefill_tokens.
TEST(GeneratorTest, PrefillBudgetCountsPadding) {
  Transformer model = MakeModel(TinyConfig("llama"), 14);
  std::vector<GenerationRequest> requests = {
      {std::vector<int64_t>(40, 7), 1}, {{1, 2, 3, 4}, 1}, {{5, 6, 7, 8}, 1}};
  GeneratorOptions options;
  options.max_prefill_tokens = 64;  // 40 + 4 + 4 fits, 3 x 40 padded does not
  Generator gen(model, options);
  auto out = gen.Generate(requests, Greedy(3), 0);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(gen.last_stats().prefill_forwards, 2);  // {40}, then {4, 4}
  EXPECT_EQ(gen.last_stats().prefill_tokens, 48);
  for (size_t r = 0; r < requests.size(); ++r) {
    EXPECT_EQ((*out)[r][0].token_ids, GenerateAll(model, {requests[r]}, Greedy(3), 0)[0][0].token_ids);
  }
}

// With fewer rows than completions, finished rows are replaced by waiting
// ones mid-decode, and the output is the same as with a batch big enough for
// all: each completion's randomness is its own.
TEST(GeneratorTest, ContinuousBatchingGivesTheSameOutputAsOneBigBatch) {
  Transformer model = MakeModel(TinyConfig("llama"), 6);
  SamplingParams params;
  params.temperature = 1.5;
  params.max_new_tokens = 30;
  params.stop_token_ids = {3, 4, 5, 6};  // rows finish at different steps
  std::vector<GenerationRequest> requests = {{{1, 2, 3}, 5}, {{7, 8}, 3}, {{9, 10, 11, 12}, 4}};
  GenerationStats small_stats, big_stats;
  auto small = GenerateAll(model, requests, params, 99, 3, &small_stats);
  auto big = GenerateAll(model, requests, params, 99, 64, &big_stats);
  EXPECT_LE(small_stats.max_active, 3);
  EXPECT_GT(big_stats.max_active, 3);  // all 12 at once, less any finished by their first token
  EXPECT_LE(big_stats.max_active, 12);
  EXPECT_GT(small_stats.joins_mid_decode, 0);
  // Fewer rows: more steps, but no more row-steps than needed.
  EXPECT_GT(small_stats.decode_steps, big_stats.decode_steps);
  EXPECT_EQ(small_stats.decode_tokens, big_stats.decode_tokens);
  std::set<size_t> lengths;
  for (size_t r = 0; r < requests.size(); ++r) {
    for (size_t s = 0; s < small[r].size(); ++s) {
      EXPECT_EQ(small[r][s].token_ids, big[r][s].token_ids) << r << "/" << s;
      ASSERT_EQ(small[r][s].logprobs.size(), big[r][s].logprobs.size());
      for (size_t i = 0; i < small[r][s].logprobs.size(); ++i) {
        EXPECT_NEAR(small[r][s].logprobs[i], big[r][s].logprobs[i], 1e-4);
      }
      lengths.insert(small[r][s].token_ids.size());
    }
  }
  EXPECT_GT(lengths.size(), 2u) << "rows should finish at different steps";
}

// Groups of many sizes with prompts of many lengths, through a small batch:
// prefix slots are taken, released, reused and grown while rows of several
// prompts decode together (read regrouped by slot or gathered per row), and
// every completion is what it is when its request runs alone.
TEST(GeneratorTest, MixedGroupsThroughFewRowsMatchEachRequestAlone) {
  for (const char* arch : {"qwen3", "qwen2"}) {
    Transformer model = MakeModel(TinyConfig(arch), 8);
    SamplingParams params;
    params.temperature = 1.2;
    params.max_new_tokens = 12;
    params.stop_token_ids = {3, 4};
    std::vector<GenerationRequest> requests;
    const int64_t sizes[] = {1, 6, 2, 1, 9, 3, 1, 1, 5};
    for (int r = 0; r < 9; ++r) {
      std::vector<int64_t> prompt(2 + (r * 5) % 11);
      for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = 7 + (r * 13 + i * 3) % 40;
      requests.push_back({prompt, sizes[r]});
    }
    std::vector<std::vector<SampledSequence>> first;
    for (int64_t max_batch : {4, 7, 64}) {
      GenerationStats stats;
      auto together = GenerateAll(model, requests, params, 17, max_batch, &stats);
      EXPECT_LE(stats.max_active, max_batch);
      EXPECT_LE(stats.prefix_slots, 16) << "slots are reused";
      if (first.empty()) first = together;
      for (size_t r = 0; r < requests.size(); ++r) {
        ASSERT_EQ(together[r].size(), static_cast<size_t>(sizes[r]));
        for (size_t s = 0; s < together[r].size(); ++s) {
          // The same draws whatever the batch: each completion's randomness is its own.
          EXPECT_EQ(together[r][s].token_ids, first[r][s].token_ids) << arch << " " << max_batch << " " << r << "/" << s;
          // And each token's logprob is its full forward's.
          std::vector<int64_t> ctx = requests[r].prompt_ids;
          for (size_t i = 0; i < together[r][s].token_ids.size(); ++i) {
            const int64_t tok = together[r][s].token_ids[i];
            torch::Tensor logits = LastLogits(model, ctx) / params.temperature;
            const double expected = (logits[tok] - logits.logsumexp(0)).item<double>();
            EXPECT_NEAR(together[r][s].logprobs[i], expected, 1e-4) << arch << " request " << r << "/" << s << " token " << i;
            ctx.push_back(tok);
          }
        }
      }
    }
    // Request 0 alone draws what it drew among the others.
    auto alone = GenerateAll(model, {requests[0]}, params, 17, 64);
    EXPECT_EQ(alone[0][0].token_ids, first[0][0].token_ids) << arch;
  }
}

// Packed weights (oneDNN, PackedLinears) and the fused decode kernels give
// what LibTorch's ops give, in float32 and bfloat16, and a weight changed in place between calls (as an
// actor loading a new version does) is packed again, never served stale.
TEST(GeneratorTest, PackedWeightsMatchTorchAndFollowWeightChanges) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
    Transformer model = MakeModel(TinyConfig("qwen2"), 12);
    model->to(dtype);
    SamplingParams params;
    params.temperature = 1.0;
    params.max_new_tokens = 10;
    const std::vector<GenerationRequest> requests = {{{5, 6, 7, 8}, 3}, {{9, 10}, 2}};
    GeneratorOptions packed_options, plain_options;
    plain_options.pack_weights = false;
    plain_options.fused_kernels = false;  // LibTorch ops alone
    Generator packed(model, packed_options), plain(model, plain_options);
    auto a = packed.Generate(requests, params, 4);
    ASSERT_TRUE(a.ok()) << a.status();
    const int64_t first_packs = packed.last_stats().weights_packed;
    if (first_packs == 0 && dtype == torch::kBFloat16) {
      // oneDNN has bf16 matmuls only with AVX-512 or AMX: bf16 layers stay with LibTorch.
      std::printf("bf16 weights not packed: this CPU has no oneDNN bf16 matmul\n");
      continue;
    }
    if (first_packs == 0) GTEST_SKIP() << "this build has no oneDNN: nothing is packed";
    // Per layer q/k/v as one matrix, o, gate/up as one, down; and the tied
    // embedding or the head.
    EXPECT_EQ(first_packs, 4 * model->config().num_hidden_layers + 1);
    auto b = plain.Generate(requests, params, 4);
    ASSERT_TRUE(b.ok()) << b.status();
    const double tolerance = dtype == torch::kFloat ? 1e-4 : 0.1;
    for (size_t r = 0; r < requests.size(); ++r) {
      for (size_t s = 0; s < (*a)[r].size(); ++s) {
        const auto& x = (*a)[r][s];
        const auto& y = (*b)[r][s];
        const size_t n = std::min(x.token_ids.size(), y.token_ids.size());
        // Equal up to a near-tie flip in bf16; compare up to the first difference.
        size_t same = 0;
        while (same < n && x.token_ids[same] == y.token_ids[same]) ++same;
        if (dtype == torch::kFloat) {
          EXPECT_EQ(x.token_ids, y.token_ids) << r << "/" << s;
        }
        for (size_t i = 0; i < same; ++i) EXPECT_NEAR(x.logprobs[i], y.logprobs[i], tolerance) << r << "/" << s << " " << i;
      }
    }
    // Unchanged weights: nothing packed again.
    ASSERT_TRUE(packed.Generate(requests, params, 4).ok());
    EXPECT_EQ(packed.last_stats().weights_packed, 0);
    // A new version written in place: the packed copies follow it.
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->parameters()) p.mul_(-1.5);
    }
    auto c = packed.Generate(requests, params, 4);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(packed.last_stats().weights_packed, first_packs);
    auto d = plain.Generate(requests, params, 4);
    ASSERT_TRUE(d.ok());
    if (dtype == torch::kFloat) {
      for (size_t r = 0; r < requests.size(); ++r) {
        for (size_t s = 0; s < (*c)[r].size(); ++s) {
          EXPECT_EQ((*c)[r][s].token_ids, (*d)[r][s].token_ids) << "after the change " << r << "/" << s;
        }
      }
    }
  }
}

// The fused CPU decode kernels (attention with rotary and cache writes,
// RMSNorm, SwiGLU) against LibTorch's ops, every architecture, f32 and bf16,
// several groups decoding together with prefix slots: the same greedy tokens
// (f32) and the same logprobs up to summation order.
TEST(GeneratorTest, FusedDecodeKernelsMatchLibTorchOps) {
  for (const ModelConfig& config : AllArchs()) {
    for (torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
      Transformer model = MakeModel(config, 21);
      model->to(dtype);
      SamplingParams params;
      params.temperature = 1.0;
      params.max_new_tokens = 14;
      const std::vector<GenerationRequest> requests = {{{5, 6, 7, 8, 9, 10, 11}, 3}, {{12, 13}, 2}, {{14, 15, 16}, 1}};
      GeneratorOptions fused, ops;
      fused.pack_weights = ops.pack_weights = false;  // the kernels alone
      ops.fused_kernels = false;
      fused.max_batch = ops.max_batch = 4;             // rows leave and join mid-decode
      auto a = Generator(model, fused).Generate(requests, params, 8);
      auto b = Generator(model, ops).Generate(requests, params, 8);
      ASSERT_TRUE(a.ok() && b.ok());
      const double tolerance = dtype == torch::kFloat ? 2e-5 : 2e-2;
      for (size_t r = 0; r < requests.size(); ++r) {
        for (size_t s = 0; s < (*a)[r].size(); ++s) {
          const auto& x = (*a)[r][s];
          const auto& y = (*b)[r][s];
          if (dtype == torch::kFloat) {
            EXPECT_EQ(x.token_ids, y.token_ids) << config.model_type << " " << r << "/" << s;
          }
          // Compare up to the first token that differs (a bf16 near-tie).
          for (size_t i = 0; i < std::min(x.token_ids.size(), y.token_ids.size()); ++i) {
            if (x.token_ids[i] != y.token_ids[i]) break;
            EXPECT_NEAR(x.logprobs[i], y.logprobs[i], tolerance)
                << config.model_type << (dtype == torch::kFloat ? " f32 " : " bf16 ") << r << "/" << s << " " << i;
          }
        }
      }
    }
  }
}

// No requests (an actor whose leased prompts were all skipped): nothing, no error.
TEST(GeneratorTest, NoRequestsGiveNoCompletions) {
  Transformer model = MakeModel(TinyConfig("qwen2"), 3);
  Generator gen(model, GeneratorOptions{});
  SamplingParams params;
  params.max_new_tokens = 4;
  auto out = gen.Generate({}, params, 1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->empty());
}

TEST(GeneratorTest, SameSeedSameOutputOtherSeedOther) {
  Transformer model = MakeModel(TinyConfig("qwen3"), 7);
  SamplingParams params;
  params.top_p = 0.9;
  params.top_k = 20;
  params.max_new_tokens = 12;
  auto a = GenerateAll(model, {{{1, 2}, 4}}, params, 5);
  auto b = GenerateAll(model, {{{1, 2}, 4}}, params, 5);
  auto c = GenerateAll(model, {{{1, 2}, 4}}, params, 6);
  bool differs = false;
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(a[0][s].token_ids, b[0][s].token_ids);
    EXPECT_EQ(a[0][s].logprobs, b[0][s].logprobs);
    differs |= a[0][s].token_ids != c[0][s].token_ids;
  }
  EXPECT_TRUE(differs);
}

// The first token's empirical distribution over many draws follows
// softmax(logits / T) (a loose check that the inverse-CDF sampler is right).
TEST(GeneratorTest, SamplesFollowTheModelDistribution) {
  Transformer model = MakeModel(TinyConfig("llama"), 8);
  {
    // Sharpen the output so a few tokens carry most of the mass.
    torch::NoGradGuard no_grad;
    model->lm_head->weight.mul_(40);
  }
  const std::vector<int64_t> prompt = {1, 2, 3};
  const double temperature = 0.7;
  torch::Tensor probs = torch::softmax(LastLogits(model, prompt) / temperature, -1);
  SamplingParams params;
  params.temperature = temperature;
  params.max_new_tokens = 1;
  const int n = 4000;
  auto out = GenerateAll(model, {{prompt, n}}, params, 17);
  std::map<int64_t, int> counts;
  for (const auto& s : out[0]) counts[s.token_ids[0]]++;
  for (int64_t v = 0; v < 48; ++v) {
    const double p = probs[v].item<double>();
    const double sd = std::sqrt(n * p * (1 - p)) + 1;
    EXPECT_NEAR(counts[v], n * p, 5 * sd) << "token " << v << " p " << p;
  }
}

TEST(GeneratorTest, StopStringSpanningTokensEndsTheCompletion) {
  Transformer model = MakeModel(TinyConfig("qwen2"), 9);
  std::vector<std::string> bytes(48);
  for (int i = 0; i < 48; ++i) bytes[i] = std::string("t") + std::to_string(i) + ";";
  auto greedy = GenerateAll(model, {{{1, 2}, 1}}, Greedy(16), 0)[0][0].token_ids;
  ASSERT_EQ(greedy.size(), 16u);
  // A stop string made of the end of token 5 and the start of token 6.
  const std::string stop = ";" + bytes[greedy[6]].substr(0, 2);
  SamplingParams params = Greedy(16);
  params.stop_strings = {"never appears", stop};
  auto got = GenerateAll(model, {{{1, 2}, 1}}, params, 0, 64, nullptr, bytes)[0][0];
  // The first place the string occurs ends it; compute it independently.
  std::string text;
  size_t end = 0;
  for (size_t i = 0; i < greedy.size(); ++i) {
    text += bytes[greedy[i]];
    if (text.find(stop) != std::string::npos) {
      end = i + 1;
      break;
    }
  }
  ASSERT_GT(end, 0u);
  EXPECT_EQ(got.token_ids, std::vector<int64_t>(greedy.begin(), greedy.begin() + end));
  EXPECT_EQ(got.finish_reason, FinishReason::kStopString);
  EXPECT_FALSE(got.truncated);
}

TEST(GeneratorTest, StopTokenAndLengthReasons) {
  Transformer model = MakeModel(TinyConfig("llama"), 10);
  auto greedy = GenerateAll(model, {{{1}, 1}}, Greedy(10), 0)[0][0].token_ids;
  SamplingParams params = Greedy(10);
  params.stop_token_ids = {greedy[4]};
  size_t first = 0;
  while (greedy[first] != greedy[4]) ++first;
  auto got = GenerateAll(model, {{{1}, 1}}, params, 0)[0][0];
  EXPECT_EQ(got.token_ids, std::vector<int64_t>(greedy.begin(), greedy.begin() + first + 1));
  EXPECT_EQ(got.finish_reason, FinishReason::kStopToken);
  auto full = GenerateAll(model, {{{1}, 1}}, Greedy(10), 0)[0][0];
  EXPECT_EQ(full.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(full.truncated);
}

// Completions stop when the model's context is full.
TEST(GeneratorTest, ContextLimitsCompletionLength) {
  ModelConfig config = TinyConfig("llama");
  config.max_position_embeddings = 12;
  Transformer model = MakeModel(config, 11);
  auto got = GenerateAll(model, {{{1, 2, 3, 4, 5}, 2}}, Greedy(100), 0);
  for (const auto& s : got[0]) {
    EXPECT_EQ(s.token_ids.size(), 7u);  // 5 + 7 = 12 positions
    EXPECT_EQ(s.finish_reason, FinishReason::kLength);
  }
}

TEST(GeneratorTest, BadRequestsAreRejectedWithReasons) {
  Transformer model = MakeModel(TinyConfig("llama"), 12);
  Generator gen(model, GeneratorOptions{});
  auto check = [&](const std::vector<GenerationRequest>& reqs, const SamplingParams& p, const std::string& what) {
    auto r = gen.Generate(reqs, p, 0);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(what));
  };
  check({{{1}, 1}, {{}, 1}}, Greedy(4), "request 1: the prompt is empty");
  check({{{1, 48}, 1}}, Greedy(4), "token id 48 is outside the vocabulary");
  check({{{1}, 0}}, Greedy(4), "num_samples");
  check({{std::vector<int64_t>(96, 1), 1}}, Greedy(4), "context is 96");
  SamplingParams p = Greedy(4);
  p.stop_strings = {"x"};
  check({{{1}, 1}}, p, "token bytes");
  p = Greedy(4);
  p.top_p = 0;
  check({{{1}, 1}}, p, "top_p");
  p = Greedy(4);
  p.temperature = -1;
  check({{{1}, 1}}, p, "temperature");
}

TEST(GeneratorTest, CounterUniformIsDeterministicAndSpread) {
  EXPECT_EQ(CounterUniform(1, 2, 3, 4), CounterUniform(1, 2, 3, 4));
  EXPECT_NE(CounterUniform(1, 2, 3, 4), CounterUniform(1, 2, 3, 5));
  EXPECT_NE(CounterUniform(1, 2, 3, 4), CounterUniform(1, 3, 2, 4));
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = CounterUniform(7, i, 0, 0);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

}  // namespace
}  // namespace grpo::model

// Tests for core/model: config, tokenizer, transformer + KV cache, sampler,
// safetensors. All models are tiny so each test runs in well under a second.
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/model/model_config.h"
#include "core/model/safetensors.h"
#include "core/model/sampler.h"
#include "core/model/tokenizer.h"
#include "core/model/transformer.h"
#include "tests/reference_model.h"

namespace grpo::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelConfig TinyConfig(const std::string& model_type = "llama",
                       bool tie_word_embeddings = false) {
  ModelConfig c;
  c.model_type = model_type;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.attention_bias = (model_type == "qwen2");
  c.tie_word_embeddings = tie_word_embeddings;
  return c;
}

Transformer MakeModel(const ModelConfig& config, uint64_t seed = 0) {
  torch::manual_seed(seed);
  Transformer model(config);
  model->eval();
  return model;
}

torch::Tensor Tokens(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kInt64).view({1, -1});  // (1, T)
}

// ---------------------------------------------------------------------------
// ModelConfig
// ---------------------------------------------------------------------------

TEST(ModelConfigTest, JsonRoundTrip) {
  ModelConfig c = TinyConfig("qwen2", /*tie_word_embeddings=*/true);
  c.rope_theta = 1e6;
  nlohmann::json json = c.ToJson();
  EXPECT_EQ(json["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(json["torch_dtype"], "float32");
  absl::StatusOr<ModelConfig> back = ModelConfig::FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToJson(), json);
  EXPECT_EQ(back->head_dim(), 8);
  EXPECT_TRUE(back->attention_bias);
  EXPECT_TRUE(back->tie_word_embeddings);
  EXPECT_EQ(TinyConfig().ToJson()["architectures"][0], "LlamaForCausalLM");
}

TEST(ModelConfigTest, MissingAndBadFieldsAreNamed) {
  nlohmann::json json = TinyConfig().ToJson();
  json.erase("hidden_size");
  absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(json);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("hidden_size"));

  json = TinyConfig().ToJson();
  json["num_hidden_layers"] = "two";
  c = ModelConfig::FromJson(json);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("num_hidden_layers"));

  json = TinyConfig().ToJson();
  json["num_key_value_heads"] = 3;
  c = ModelConfig::FromJson(json);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("num_key_value_heads"));

  json = TinyConfig().ToJson();
  json["num_attention_heads"] = 5;
  json["num_key_value_heads"] = 5;
  json.erase("head_dim");  // an explicit head_dim lifts the divisibility rule
  c = ModelConfig::FromJson(json);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("divisible"));

  EXPECT_FALSE(ModelConfig::FromJson(nlohmann::json::array()).ok());
}

TEST(ModelConfigTest, HuggingFaceDefaults) {
  nlohmann::json json = {{"model_type", "qwen2"},       {"vocab_size", 40},
                         {"hidden_size", 32},           {"intermediate_size", 64},
                         {"num_hidden_layers", 1},      {"num_attention_heads", 4}};
  absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_TRUE(c->attention_bias);  // Qwen2 always has q/k/v bias
}

TEST(ModelConfigTest, TransformersFiveRopeParameters) {
  // transformers 5 moves rope_theta and the scaling into "rope_parameters".
  nlohmann::json json = {{"model_type", "llama"},  {"vocab_size", 40},        {"hidden_size", 32},
                         {"intermediate_size", 64}, {"num_hidden_layers", 1}, {"num_attention_heads", 4},
                         {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 500000.0}}}};
  absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_FALSE(c->rope_scaling.has_value());
  json["rope_parameters"] = {{"rope_type", "llama3"},       {"rope_theta", 500000.0},
                             {"factor", 8.0},              {"low_freq_factor", 1.0},
                             {"high_freq_factor", 4.0},    {"original_max_position_embeddings", 64}};
  c = ModelConfig::FromJson(json);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->rope_type, "llama3");
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 64);
  json["rope_parameters"]["rope_type"] = "yarn";
  c = ModelConfig::FromJson(json);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), ::testing::HasSubstr("rope_parameters.rope_type \"yarn\""));
}

// ---------------------------------------------------------------------------
// CharTokenizer
// ---------------------------------------------------------------------------

TEST(CharTokenizerTest, RoundTripWithTags) {
  absl::StatusOr<CharTokenizer> tok = CharTokenizer::Create();
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->vocab_size(), 8 + 95);
  const std::string text = "<think>2+2 is 4</think><answer>4</answer>";
  std::vector<int64_t> ids = tok->Encode(text);
  EXPECT_EQ(ids.front(), CharTokenizer::kThinkId);
  EXPECT_EQ(ids.back(), CharTokenizer::kEndAnswerId);
  EXPECT_EQ(ids.size(), 4u + 8u + 1u);
  EXPECT_EQ(tok->Decode(ids), text);
  // '<' alone is an ordinary character.
  EXPECT_EQ(tok->Decode(tok->Encode("a<b <thin")), "a<b <thin");
}

TEST(CharTokenizerTest, UnknownAndSpecialTokens) {
  absl::StatusOr<CharTokenizer> tok = CharTokenizer::Create("ab");
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->vocab_size(), 10);
  EXPECT_THAT(tok->Encode("abz"), ElementsAre(8, 9, CharTokenizer::kUnkId));
  std::vector<int64_t> ids = {tok->bos_id(), 8, CharTokenizer::kUnkId,
                              CharTokenizer::kAnswerId, 9, tok->eos_id(),
                              tok->pad_id()};
  EXPECT_EQ(tok->Decode(ids), "a<answer>b");
  EXPECT_EQ(tok->Decode(ids, /*skip_special=*/false),
            "<bos>a<unk><answer>b<eos><pad>");
}

TEST(CharTokenizerTest, DuplicateCharsetIsAnError) {
  absl::StatusOr<CharTokenizer> tok = CharTokenizer::Create("abca");
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(tok.status().message(), HasSubstr("more than once"));
}

// ---------------------------------------------------------------------------
// Transformer
// ---------------------------------------------------------------------------

TEST(TransformerTest, ParameterNamesMatchHuggingFace) {
  Transformer model = MakeModel(TinyConfig("qwen2"));
  std::vector<std::string> expected = {"model.embed_tokens.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* name :
         {"input_layernorm.weight", "self_attn.q_proj.weight",
          "self_attn.q_proj.bias", "self_attn.k_proj.weight",
          "self_attn.k_proj.bias", "self_attn.v_proj.weight",
          "self_attn.v_proj.bias", "self_attn.o_proj.weight",
          "post_attention_layernorm.weight", "mlp.gate_proj.weight",
          "mlp.up_proj.weight", "mlp.down_proj.weight"}) {
      expected.push_back(p + name);
    }
  }
  expected.push_back("model.norm.weight");
  expected.push_back("lm_head.weight");
  EXPECT_EQ(model->named_parameters().keys(), expected);
  EXPECT_TRUE(model->named_buffers().is_empty());

  // Count: embed 40*32; per layer: norms 2*32, q 32*32+32, k,v 16*32+16 each,
  // o 32*32, mlp 3*32*64; final norm 32; lm_head 40*32.
  int64_t per_layer = 2 * 32 + (32 * 32 + 32) + 2 * (16 * 32 + 16) + 32 * 32 +
                      3 * 32 * 64;
  int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  EXPECT_EQ(total, 40 * 32 + 2 * per_layer + 32 + 40 * 32);
}

TEST(TransformerTest, LlamaAndTiedNamesHaveNoBiasOrHead) {
  Transformer llama = MakeModel(TinyConfig("llama"));
  for (const auto& key : llama->named_parameters().keys()) {
    EXPECT_THAT(key, ::testing::Not(HasSubstr("bias")));
  }
  EXPECT_EQ(llama->named_parameters().size(), 1u + 2u * 9u + 1u + 1u);
  Transformer tied = MakeModel(TinyConfig("llama", /*tie=*/true));
  EXPECT_EQ(tied->named_parameters().find("lm_head.weight"), nullptr);
  EXPECT_EQ(tied->named_parameters().size(), 1u + 2u * 9u + 1u);
}

TEST(TransformerTest, InitIsDeterministicUnderManualSeed) {
  Transformer a = MakeModel(TinyConfig(), 7);
  Transformer b = MakeModel(TinyConfig(), 7);
  Transformer c = MakeModel(TinyConfig(), 8);
  torch::Tensor tokens = Tokens({1, 2, 3});
  EXPECT_TRUE(torch::equal(a->forward(tokens), b->forward(tokens)));
  EXPECT_FALSE(torch::equal(a->forward(tokens), c->forward(tokens)));
}

TEST(TransformerTest, CausalityFutureTokensDoNotChangePastLogits) {
  Transformer model = MakeModel(TinyConfig());
  torch::NoGradGuard no_grad;
  torch::Tensor a = model->forward(Tokens({5, 6, 7, 8}));  // (1, 4, V)
  torch::Tensor b = model->forward(Tokens({5, 6, 7, 30}));  // (1, 4, V)
  EXPECT_TRUE(torch::allclose(a.narrow(1, 0, 3), b.narrow(1, 0, 3), 0, 1e-6));
  EXPECT_FALSE(torch::allclose(a.select(1, 3), b.select(1, 3)));
}

// The loop-based reference of the Hugging Face forward pass
// (tests/reference_model.h); hf_model_test covers every architecture.
// Nodes of the autograd graph reachable from `t`.
size_t GraphSize(const torch::Tensor& t, bool* saw_checkpoint) {
  std::vector<torch::autograd::Node*> stack{t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!stack.empty()) {
    torch::autograd::Node* n = stack.back();
    stack.pop_back();
    if (n == nullptr || !seen.insert(n).second) continue;
    if (n->name().find("CheckpointedBlock") != std::string::npos) *saw_checkpoint = true;
    for (const auto& e : n->next_edges()) stack.push_back(e.function.get());
  }
  return seen.size();
}

TEST(TransformerTest, ActivationCheckpointingStoresLessAndGivesTheSameGradients) {
  for (bool bf16 : {false, true}) {
    Transformer model = MakeModel(TinyConfig("qwen2"), 3);
    model->train();
    torch::Tensor tokens = torch::randint(40, {2, 9}, torch::kInt64);
    auto grads = [&](bool ckpt, size_t* graph, bool* saw) {
      model->set_activation_checkpointing(ckpt);
      model->zero_grad();
      torch::Tensor logits;
      {
        Bf16Autocast autocast(bf16);
        logits = model->forward(tokens);  // (2, 9, 40)
      }
      *graph = GraphSize(logits, saw);
      (logits * torch::linspace(-1, 1, 40)).sum().backward();
      std::vector<torch::Tensor> g;
      for (const auto& p : model->parameters()) g.push_back(p.grad().clone());
      return g;
    };
    size_t plain_nodes = 0, ckpt_nodes = 0;
    bool plain_saw = false, ckpt_saw = false;
    auto plain = grads(false, &plain_nodes, &plain_saw);
    auto ckpt = grads(true, &ckpt_nodes, &ckpt_saw);
    // The blocks' insides are not recorded: only their inputs are kept.
    EXPECT_TRUE(ckpt_saw);
    EXPECT_FALSE(plain_saw);
    EXPECT_LT(ckpt_nodes * 3, plain_nodes) << ckpt_nodes << " vs " << plain_nodes;
    ASSERT_EQ(plain.size(), ckpt.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      EXPECT_TRUE(torch::allclose(plain[i], ckpt[i], 1e-5, bf16 ? 1e-4 : 1e-6)) << "parameter " << i << " bf16 " << bf16;
    }
  }
}

// LibTorch 2.4 names the autocast switches by device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool CudaAutocastOn() { return at::autocast::is_autocast_enabled(at::kCUDA); }
bool CpuAutocastOn() { return at::autocast::is_autocast_enabled(at::kCPU); }
at::ScalarType CudaAutocastDtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
#else
bool CudaAutocastOn() { return at::autocast::is_enabled(); }
bool CpuAutocastOn() { return at::autocast::is_cpu_enabled(); }
at::ScalarType CudaAutocastDtype() { return at::autocast::get_autocast_gpu_dtype(); }
#endif

TEST(TransformerTest, LinearOfOneRowIsAMatrixVectorProductWithTheSameResultAndGradient) {
  torch::manual_seed(4);
  torch::Tensor w = torch::randn({24, 16}, torch::requires_grad()), b = torch::randn({24}, torch::requires_grad());
  torch::Tensor x = torch::randn({1, 1, 16});
  torch::Tensor y = Linear(x, w, b);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 1, 24}));
  EXPECT_TRUE(torch::allclose(y, torch::nn::functional::linear(x, w, b), 1e-5, 1e-5));
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(w.grad(), torch::ones({24, 1}) * x.view({1, 16}), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(b.grad(), torch::ones({24})));
  // Several rows, and no bias: the matrix product.
  torch::Tensor xs = torch::randn({3, 2, 16});
  EXPECT_TRUE(torch::allclose(Linear(xs, w.detach()), torch::nn::functional::linear(xs, w.detach()), 1e-5, 1e-5));
  {
    Bf16Autocast autocast(true);  // under autocast the bf16 matmul is kept
    EXPECT_EQ(Linear(x, w.detach(), b.detach()).scalar_type(), torch::kBFloat16);
  }
}

TEST(TransformerTest, Bf16AutocastRunsLinearLayersInBf16AndForgetsCastsAfterwards) {
  Transformer model = MakeModel(TinyConfig("qwen2"), 4);
  torch::Tensor x = torch::randn({2, 32});
  auto& q = model->model->layers->at<BlockImpl>(0).self_attn->q_proj;
  torch::Tensor before;
  {
    Bf16Autocast autocast(true);
    before = q->forward(x);
    EXPECT_EQ(before.scalar_type(), torch::kBFloat16);
    // CUDA autocast is switched on too, for models on a GPU.
    EXPECT_TRUE(CudaAutocastOn());
    EXPECT_EQ(CudaAutocastDtype(), at::kBFloat16);
  }
  EXPECT_EQ(q->forward(x).scalar_type(), torch::kFloat32);
  EXPECT_FALSE(CudaAutocastOn());
  EXPECT_FALSE(CpuAutocastOn());
  {
    torch::NoGradGuard ng;
    q->weight.mul_(2);  // an optimizer step between two autocast regions
  }
  Bf16Autocast autocast(true);
  torch::Tensor after = q->forward(x);
  // A stale cached bf16 weight would give `before` again.
  EXPECT_TRUE(torch::allclose(after.to(torch::kFloat32), 2 * before.to(torch::kFloat32) - q->bias.to(torch::kBFloat16).to(torch::kFloat32), 2e-2, 2e-2));
  EXPECT_FALSE(torch::allclose(after, before));
}

TEST(TransformerTest, MatchesLoopReferenceImplementation) {
  for (const ModelConfig& config : {TinyConfig("qwen2"), TinyConfig("llama", true)}) {
    Transformer model = MakeModel(config, 12);
    // Larger weights so that attention and RoPE visibly matter.
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->parameters()) p.mul_(10.0);
    }
    const std::vector<int64_t> ids = {1, 17, 3, 29, 8, 8};
    torch::NoGradGuard no_grad;
    torch::Tensor ours = model->forward(Tokens(ids))[0];  // (T, V)
    const auto reference =
        testing::ReferenceModel::FromStateDict(config, StateDict(*model)).Forward(ids);  // (T, V)
    for (size_t t = 0; t < ids.size(); ++t) {
      torch::Tensor expected = torch::tensor(reference[t]);  // (V)
      EXPECT_TRUE(torch::allclose(ours[t], expected, 1e-4, 1e-4))
          << (ours[t] - expected).abs().max();
    }
  }
}

class KVCacheTest : public ::testing::TestWithParam<ModelConfig> {};

TEST_P(KVCacheTest, IncrementalDecodingMatchesFullForward) {
  Transformer model = MakeModel(GetParam(), 3);
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  const int64_t B = 2, T = 9, prefix = 4;
  torch::Tensor tokens = torch::randint(0, 40, {B, T}, torch::kInt64);  // (B, T)
  torch::Tensor full = model->forward(tokens);                          // (B, T, V)

  KVCache cache = KVCache::Allocate(model->config(), B, T, torch::kFloat);
  torch::Tensor pre = model->forward(tokens.narrow(1, 0, prefix), 0, &cache);  // (B, prefix, V)
  EXPECT_EQ(cache.length, prefix);
  EXPECT_TRUE(torch::allclose(pre, full.narrow(1, 0, prefix), 0, 1e-5));
  for (int64_t t = prefix; t < T; ++t) {
    torch::Tensor step = model->forward(tokens.narrow(1, t, 1), t, &cache);  // (B, 1, V)
    EXPECT_TRUE(torch::allclose(step.select(1, 0), full.select(1, t), 0, 1e-5))
        << "position " << t;
  }
  EXPECT_EQ(cache.length, T);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, KVCacheTest,
    ::testing::Values(TinyConfig("llama"), TinyConfig("qwen2"),
                      TinyConfig("llama", /*tie=*/true)),
    [](const auto& info) {
      return info.param.model_type +
             (info.param.tie_word_embeddings ? "_tied" : "");
    });

// Rows that share a prompt's keys in a prefix slot, each with its own
// positions after it, get what each would get from a cache of its own. Two
// prompts of different lengths; both ways of reading the slots (regrouped by
// slot, and gathered per row) give the same result.
TEST(SharedPrefixTest, RowsSharingAPromptSlotMatchSeparateCaches) {
  for (const char* arch : {"qwen2", "qwen3", "llama"}) {
    Transformer model = MakeModel(TinyConfig(arch), 4);
    const ModelConfig& c = model->config();
    torch::NoGradGuard no_grad;
    const std::vector<std::vector<int64_t>> prompts = {{1, 9, 10, 11, 12}, {3, 4, 5}};
    // Rows: (prompt, tokens after it); rows 0-2 share prompt 0, rows 3-4 prompt 1.
    const std::vector<std::pair<int, std::vector<int64_t>>> rows = {
        {0, {20}}, {0, {21, 22}}, {0, {23, 24, 25}}, {1, {26, 27}}, {1, {28}}};
    for (bool spread : {false, true}) {
      // spread: the prompts sit in slots 0 and 7 of 8, which makes the slot grid
      // mostly padding and the plan gathers per row.
      const int64_t slot_of[2] = {0, spread ? 7 : 1};
      KVCache shared = KVCache::Allocate(c, rows.size(), 4, torch::kFloat);
      for (auto* part : {&shared.prefix_k, &shared.prefix_v}) {
        for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
          part->push_back(torch::zeros({8, c.num_key_value_heads, 6, c.head_dim()}));
        }
      }
      for (int p = 0; p < 2; ++p) {
        KVCache one = KVCache::Allocate(c, 1, 6, torch::kFloat);
        model->forward(torch::tensor(prompts[p], torch::kInt64).view({1, -1}), 0, &one);
        for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
          shared.prefix_k[l][slot_of[p]].copy_(one.k[l][0]);
          shared.prefix_v[l][slot_of[p]].copy_(one.v[l][0]);
        }
      }
      // Decode step by step; at step t every row still having a token feeds it.
      // Rows are fed all but their last token first (steps), then compared on it.
      std::vector<torch::Tensor> ours(rows.size());
      for (int64_t t = 0; t < 3; ++t) {
        std::vector<int64_t> feed;
        RowLayout layout;
        std::vector<size_t> which;
        for (size_t i = 0; i < rows.size(); ++i) {
          if (t >= static_cast<int64_t>(rows[i].second.size())) continue;
          which.push_back(i);
        }
        // The step's rows must be rows [0, n) of the cache: compact them first.
        KVCache step = shared;
        std::vector<torch::Tensor> k, v;
        torch::Tensor index = torch::tensor(std::vector<int64_t>(which.begin(), which.end()), torch::kInt64);
        for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
          step.k[l] = shared.k[l].index_select(0, index);
          step.v[l] = shared.v[l].index_select(0, index);
        }
        for (size_t i : which) {
          const int p = rows[i].first;
          feed.push_back(rows[i].second[t]);
          layout.position.push_back(static_cast<int64_t>(prompts[p].size()) + t);
          layout.own_start.push_back(t);
          layout.prefix_slot.push_back(slot_of[p]);
          layout.prefix_len.push_back(static_cast<int64_t>(prompts[p].size()));
        }
        const int64_t n = static_cast<int64_t>(which.size());
        ForwardPlan plan = PlanForward(layout, n, 1, true, 4, c, model->inv_freq(), torch::kFloat);
        if (t == 0) {
          EXPECT_EQ(plan.gather, spread) << arch;
        }
        torch::Tensor logits =
            model->Logits(model->Hidden(torch::tensor(feed, torch::kInt64).view({n, 1}), plan, &step));  // (n, 1, V)
        for (int64_t j = 0; j < n; ++j) {
          for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
            shared.k[l][which[j]].copy_(step.k[l][j]);
            shared.v[l][which[j]].copy_(step.v[l][j]);
          }
          ours[which[j]] = logits[j][0];
        }
      }
      for (size_t i = 0; i < rows.size(); ++i) {
        std::vector<int64_t> all = prompts[rows[i].first];
        all.insert(all.end(), rows[i].second.begin(), rows[i].second.end());
        torch::Tensor full = model->forward(torch::tensor(all, torch::kInt64).view({1, -1}));  // (1, L, V)
        EXPECT_TRUE(torch::allclose(ours[i], full[0][all.size() - 1], 1e-5, 1e-5))
            << arch << " row " << i << (spread ? " gathered" : " regrouped") << ": "
            << (ours[i] - full[0][all.size() - 1]).abs().max();
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------

std::vector<SampledSequence> Sample(Transformer& model,
                                    const std::vector<int64_t>& prompt,
                                    int64_t group, const SamplingParams& params,
                                    uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return SampleGroup(model, prompt, group, params, gen);
}

TEST(SamplerTest, SameSeedSameOutput) {
  Transformer model = MakeModel(TinyConfig());
  SamplingParams params;
  params.max_new_tokens = 12;
  params.top_p = 0.9;
  params.top_k = 20;
  auto a = Sample(model, {1, 5, 6}, 4, params, 123);
  auto b = Sample(model, {1, 5, 6}, 4, params, 123);
  auto c = Sample(model, {1, 5, 6}, 4, params, 124);
  ASSERT_EQ(a.size(), 4u);
  bool any_difference = false;
  for (size_t g = 0; g < a.size(); ++g) {
    EXPECT_EQ(a[g].token_ids, b[g].token_ids);
    EXPECT_EQ(a[g].logprobs, b[g].logprobs);
    EXPECT_EQ(a[g].token_ids.size(), 12u);
    EXPECT_TRUE(a[g].truncated);
    any_difference |= a[g].token_ids != c[g].token_ids;
  }
  EXPECT_TRUE(any_difference);
  // Rows of one group are independent samples, not copies.
  EXPECT_NE(a[0].token_ids, a[1].token_ids);
}

// Greedy continuation computed by hand with full forward passes.
std::vector<int64_t> GreedyByHand(Transformer& model, std::vector<int64_t> ids,
                                  int64_t n) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    torch::Tensor logits = model->forward(Tokens(ids));  // (1, T, V)
    int64_t next = logits[0][-1].argmax().item<int64_t>();
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

TEST(SamplerTest, TemperatureZeroIsGreedy) {
  Transformer model = MakeModel(TinyConfig("qwen2"), 5);
  SamplingParams params;
  params.temperature = 0.0;
  params.max_new_tokens = 10;
  const std::vector<int64_t> expected = GreedyByHand(model, {1, 7, 8}, 10);
  for (const SampledSequence& seq : Sample(model, {1, 7, 8}, 3, params, 1)) {
    EXPECT_EQ(seq.token_ids, expected);
  }
}

TEST(SamplerTest, TopKOneIsGreedy) {
  Transformer model = MakeModel(TinyConfig(), 6);
  SamplingParams params;
  params.temperature = 0.7;
  params.top_k = 1;
  params.max_new_tokens = 8;
  const std::vector<int64_t> expected = GreedyByHand(model, {1, 12}, 8);
  for (const SampledSequence& seq : Sample(model, {1, 12}, 2, params, 9)) {
    EXPECT_EQ(seq.token_ids, expected);
  }
}

TEST(SamplerTest, TinyTopPIsGreedy) {
  Transformer model = MakeModel(TinyConfig(), 6);
  SamplingParams params;
  params.top_p = 1e-6;
  params.max_new_tokens = 8;
  const std::vector<int64_t> expected = GreedyByHand(model, {1, 12}, 8);
  EXPECT_EQ(Sample(model, {1, 12}, 1, params, 9)[0].token_ids, expected);
}

TEST(SamplerTest, LogprobsMatchRecomputedTokenLogprobs) {
  for (double temperature : {0.0, 0.8, 1.3}) {
    Transformer model = MakeModel(TinyConfig("qwen2", /*tie=*/true), 2);
    SamplingParams params;
    params.temperature = temperature;
    params.top_k = 10;  // truncation must not change the recorded logprob
    params.max_new_tokens = 7;
    const std::vector<int64_t> prompt = {1, 20, 21, 22};
    for (const SampledSequence& seq : Sample(model, prompt, 3, params, 42)) {
      ASSERT_EQ(seq.logprobs.size(), seq.token_ids.size());
      std::vector<int64_t> all = prompt;
      all.insert(all.end(), seq.token_ids.begin(), seq.token_ids.end());
      torch::NoGradGuard no_grad;
      torch::Tensor logits = model->forward(Tokens(all));  // (1, L, V)
      const int64_t P = prompt.size(), N = seq.token_ids.size();
      torch::Tensor lp = TokenLogprobs(logits.narrow(1, P - 1, N),
                                       Tokens(seq.token_ids), temperature);  // (1, N)
      torch::Tensor sampled = torch::tensor(seq.logprobs).view({1, N});     // (1, N)
      EXPECT_TRUE(torch::allclose(lp, sampled, 0, 1e-4))
          << "temperature " << temperature << "\n" << lp << "\n" << sampled;
      EXPECT_TRUE((sampled <= 0).all().item<bool>());
    }
  }
}

TEST(SamplerTest, StopTokenEndsSequenceAndIsKept) {
  Transformer model = MakeModel(TinyConfig(), 5);
  SamplingParams params;
  params.temperature = 0.0;
  params.max_new_tokens = 10;
  const std::vector<int64_t> greedy = GreedyByHand(model, {1, 7, 8}, 10);
  params.stop_token_ids = {greedy[3]};
  // The stop token may occur earlier in the chain; the first occurrence ends it.
  size_t first = 0;
  while (greedy[first] != greedy[3]) ++first;
  for (const SampledSequence& seq : Sample(model, {1, 7, 8}, 2, params, 1)) {
    EXPECT_EQ(seq.token_ids,
              std::vector<int64_t>(greedy.begin(), greedy.begin() + first + 1));
    EXPECT_EQ(seq.logprobs.size(), first + 1);
    EXPECT_FALSE(seq.truncated);
  }
}

TEST(SamplerTest, RowsFinishIndependently) {
  Transformer model = MakeModel(TinyConfig(), 8);
  SamplingParams params;
  params.temperature = 2.0;  // high entropy: rows diverge
  params.max_new_tokens = 30;
  params.stop_token_ids = {3, 4, 5};
  auto seqs = Sample(model, {1, 2}, 8, params, 77);
  for (const SampledSequence& seq : seqs) {
    ASSERT_FALSE(seq.token_ids.empty());
    for (size_t i = 0; i + 1 < seq.token_ids.size(); ++i) {
      EXPECT_THAT(params.stop_token_ids,
                  ::testing::Not(::testing::Contains(seq.token_ids[i])));
    }
    const bool stopped = !seq.truncated;
    if (stopped) {
      EXPECT_THAT(params.stop_token_ids,
                  ::testing::Contains(seq.token_ids.back()));
    } else {
      EXPECT_EQ(seq.token_ids.size(), 30u);
    }
  }
}

TEST(SamplerTest, MaxNewTokensTruncates) {
  Transformer model = MakeModel(TinyConfig(), 5);
  SamplingParams params;
  params.max_new_tokens = 3;
  for (const SampledSequence& seq : Sample(model, {1}, 2, params, 3)) {
    EXPECT_EQ(seq.token_ids.size(), 3u);
    EXPECT_TRUE(seq.truncated);
  }
  params.max_new_tokens = 0;
  auto empty = Sample(model, {1}, 2, params, 3);
  EXPECT_TRUE(empty[0].token_ids.empty());
}

TEST(SamplerTest, TokenLogprobsIsDifferentiable) {
  torch::Tensor logits = torch::randn({2, 3, 5}, torch::requires_grad());  // (2, 3, 5)
  torch::Tensor targets = torch::randint(0, 5, {2, 3}, torch::kInt64);     // (2, 3)
  torch::Tensor lp = TokenLogprobs(logits, targets, 0.5);                 // (2, 3)
  torch::Tensor expected =
      torch::log_softmax(logits / 0.5, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  EXPECT_TRUE(torch::allclose(lp, expected, 1e-6, 1e-6));
  lp.sum().backward();
  EXPECT_TRUE(logits.grad().defined());
}

// ---------------------------------------------------------------------------
// Safetensors
// ---------------------------------------------------------------------------

TensorMap SampleTensors() {
  torch::manual_seed(0);
  return {{"b.f32", torch::randn({3, 4})},
          {"a.bf16", torch::randn({5}).to(torch::kBFloat16)},
          {"c.i64", torch::arange(-3, 3, torch::kInt64).view({2, 3})},
          {"d.scalar", torch::tensor(2.5f)},
          {"e.empty", torch::zeros({0, 4})}};
}

std::string HeaderOf(const std::string& file) {
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  return file.substr(8, n);
}

// Builds a file with the given header text and `data_bytes` zero data bytes.
std::string FileWithHeader(const std::string& header, size_t data_bytes) {
  const uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + std::string(data_bytes, '\0');
}

TEST(SafetensorsTest, RoundTripIsBitIdentical) {
  const TensorMap tensors = SampleTensors();
  const std::string bytes = SerializeSafetensors(tensors, {{"format", "pt"}});
  EXPECT_EQ(HeaderOf(bytes).size() % 8, 0u);
  nlohmann::json header = nlohmann::json::parse(HeaderOf(bytes));
  EXPECT_EQ(header["a.bf16"]["dtype"], "BF16");
  EXPECT_EQ(header["a.bf16"]["data_offsets"], nlohmann::json({0, 10}));
  EXPECT_EQ(header["b.f32"]["data_offsets"], nlohmann::json({10, 58}));

  MetadataMap metadata;
  absl::StatusOr<TensorMap> back = ParseSafetensors(bytes, &metadata);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(metadata, (MetadataMap{{"format", "pt"}}));
  ASSERT_EQ(back->size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const torch::Tensor& u = back->at(name);
    EXPECT_EQ(u.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(u.sizes(), t.sizes()) << name;
    EXPECT_EQ(std::memcmp(u.data_ptr(), t.data_ptr(), t.nbytes()), 0) << name;
  }
  // Serializing again gives the same bytes.
  EXPECT_EQ(SerializeSafetensors(*back, metadata), bytes);
}

TEST(SafetensorsTest, CorruptInputsGiveClearErrors) {
  const std::string good = SerializeSafetensors(SampleTensors());
  auto error_of = [](std::string_view bytes) {
    absl::StatusOr<TensorMap> r = ParseSafetensors(bytes);
    return r.ok() ? std::string("OK") : std::string(r.status().message());
  };
  EXPECT_THAT(error_of(good.substr(0, 5)), HasSubstr("too short"));
  EXPECT_THAT(error_of(good.substr(0, 20)), HasSubstr("header length"));
  EXPECT_THAT(error_of(good.substr(0, good.size() - 4)), HasSubstr("out of range"));
  EXPECT_THAT(error_of(FileWithHeader("{\"x\": [", 0)), HasSubstr("not valid JSON"));
  EXPECT_THAT(error_of(FileWithHeader("[1]", 0)), HasSubstr("JSON object"));
  EXPECT_THAT(error_of(FileWithHeader(
                  R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8)),
              ::testing::AllOf(HasSubstr("\"w\""), HasSubstr("unknown dtype \"Q4\"")));
  EXPECT_THAT(error_of(FileWithHeader(
                  R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8)),
              ::testing::AllOf(HasSubstr("\"w\""), HasSubstr("out of range")));
  EXPECT_THAT(error_of(FileWithHeader(
                  R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
              ::testing::AllOf(HasSubstr("\"w\""), HasSubstr("needs 12")));
  EXPECT_THAT(error_of(FileWithHeader(
                  R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
              HasSubstr("overlapping"));
  EXPECT_THAT(error_of(FileWithHeader(
                  R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
              HasSubstr("non-negative"));
  EXPECT_THAT(error_of(FileWithHeader(R"({"w":{"dtype":"F32","shape":[2]}})", 8)),
              HasSubstr("data_offsets"));
}

TEST(SafetensorsTest, StateDictRoundTripReproducesLogits) {
  for (const ModelConfig& config : {TinyConfig("qwen2"), TinyConfig("llama", true)}) {
    Transformer source = MakeModel(config, 1);
    Transformer target = MakeModel(config, 2);
    torch::NoGradGuard no_grad;
    torch::Tensor tokens = Tokens({1, 4, 9, 16, 25});
    ASSERT_FALSE(torch::equal(source->forward(tokens), target->forward(tokens)));

    const TensorMap state = StateDict(*source);
    EXPECT_EQ(state.size(), source->named_parameters().size());
    absl::StatusOr<TensorMap> parsed = ParseSafetensors(SerializeSafetensors(state));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_TRUE(LoadStateDict(*target, *parsed).ok());
    EXPECT_TRUE(torch::equal(source->forward(tokens), target->forward(tokens)));
  }
}

// What an actor does with a received version (issue #24): views into the bytes instead
// of a copy per tensor, equal to the copying parser's tensors; a tensor whose bytes are
// not aligned to its element size (after a bf16 tensor of odd length) is copied.
TEST(SafetensorsTest, ViewsOverTheBlobEqualTheCopies) {
  TensorMap tensors;
  tensors["a.odd_bf16"] = torch::randn({3}).to(torch::kBFloat16);
  tensors["b.fp32"] = torch::randn({4, 5});
  tensors["c.i64"] = torch::arange(7, torch::kLong);
  const std::string bytes = SerializeSafetensors(tensors);
  absl::StatusOr<TensorMap> copies = ParseSafetensors(bytes);
  absl::StatusOr<TensorMap> views = ParseSafetensorsViews(bytes);
  ASSERT_TRUE(copies.ok() && views.ok()) << views.status();
  const char* lo = bytes.data();
  const char* hi = bytes.data() + bytes.size();
  int inside = 0;
  for (const auto& [name, t] : *copies) {
    const torch::Tensor& v = views->at(name);
    EXPECT_TRUE(torch::equal(t, v)) << name;
    const char* p = static_cast<const char*>(v.data_ptr());
    const bool aligned = reinterpret_cast<uintptr_t>(p) % v.element_size() == 0;
    EXPECT_TRUE(aligned) << name;
    inside += p >= lo && p < hi;
  }
  EXPECT_GE(inside, 1) << "no tensor was a view into the blob";
  // Loading from views gives the model the same weights as loading from copies.
  Transformer source = MakeModel(TinyConfig(), 1);
  Transformer target = MakeModel(TinyConfig(), 2);
  const std::string blob = SerializeSafetensors(StateDictViews(*source));
  absl::StatusOr<TensorMap> parsed = ParseSafetensorsViews(blob);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_TRUE(LoadStateDict(*target, *parsed).ok());
  for (const auto& [name, t] : StateDict(*source)) EXPECT_TRUE(torch::equal(t, StateDict(*target).at(name))) << name;
  EXPECT_EQ(ParseSafetensorsViews(blob.substr(0, blob.size() - 1)).ok(), false) << "a short blob must be refused";
}

TEST(SafetensorsTest, StateDictIsASnapshot) {
  Transformer model = MakeModel(TinyConfig());
  const TensorMap state = StateDict(*model);
  torch::Tensor before = state.at("model.norm.weight").clone();
  {
    torch::NoGradGuard no_grad;
    model->model->norm->weight.add_(1.0);
  }
  EXPECT_TRUE(torch::equal(state.at("model.norm.weight"), before));
}

TEST(SafetensorsTest, LoadStateDictErrorsNameTheTensor) {
  Transformer model = MakeModel(TinyConfig());
  const TensorMap good = StateDict(*model);

  TensorMap missing = good;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  absl::Status s = LoadStateDict(*model, missing);
  EXPECT_THAT(s.message(), ::testing::AllOf(HasSubstr("missing"),
                                            HasSubstr("model.layers.1.mlp.up_proj.weight")));

  TensorMap wrong_shape = good;
  wrong_shape["model.norm.weight"] = torch::ones({31});
  wrong_shape["model.layers.0.input_layernorm.weight"] = torch::full({32}, 5.0);
  s = LoadStateDict(*model, wrong_shape);
  EXPECT_THAT(s.message(), ::testing::AllOf(HasSubstr("model.norm.weight"),
                                            HasSubstr("shape")));
  // Nothing was copied before the error was found.
  EXPECT_TRUE(torch::equal(model->model->layers[0]->as<Block>()->input_layernorm->weight,
                           torch::ones({32})));

  TensorMap extra = good;
  extra["lm_head.bias"] = torch::zeros({40});
  s = LoadStateDict(*model, extra);
  EXPECT_THAT(s.message(), ::testing::AllOf(HasSubstr("unexpected"), HasSubstr("lm_head.bias")));

  // Dtype is converted on load.
  TensorMap bf16;
  for (const auto& [name, t] : good) bf16[name] = t.to(torch::kBFloat16);
  ASSERT_TRUE(LoadStateDict(*model, bf16).ok());
  EXPECT_EQ(model->model->norm->weight.scalar_type(), torch::kFloat);
}

TEST(SafetensorsTest, FileHelpers) {
  const std::string path = ::testing::TempDir() + "/model_test.safetensors";
  ASSERT_TRUE(WriteSafetensorsFile(path, SampleTensors(), {{"k", "v"}}).ok());
  MetadataMap metadata;
  absl::StatusOr<TensorMap> back = ReadSafetensorsFile(path, &metadata);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->size(), 5u);
  EXPECT_EQ(metadata.at("k"), "v");
  absl::StatusOr<TensorMap> none = ReadSafetensorsFile(path + ".nope");
  EXPECT_THAT(none.status().message(), HasSubstr(".nope"));
}

}  // namespace
}  // namespace grpo::model

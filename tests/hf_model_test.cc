// Tests for the Hugging Face checkpoint format: config.json for Llama / Qwen2
// / Qwen3, the transformer against a naive loop reference
// (tests/reference_model.h), safetensors files (mmap, dtypes, hand-built
// files, corruption) and model directories (LoadPretrained / SavePretrained,
// single file and sharded). Models are tiny; the whole suite runs in seconds.
#include <ftw.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/model/hf_model.h"
#include "core/model/model_config.h"
#include "core/model/safetensors.h"
#include "core/model/transformer.h"
#include "tests/reference_model.h"

namespace grpo::model {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

// vocab 40, hidden 32, 2 layers, 4 heads, 2 kv heads. Qwen3 gets head_dim
// 16 (!= 32 / 4) as the real Qwen3 models have head_dim != hidden / heads.
ModelConfig TinyConfig(const std::string& model_type = "llama", bool tie = false) {
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
  c.tie_word_embeddings = tie;
  if (model_type == "qwen3") c.head_dim_value = 16;
  c.bos_token_id = 1;
  c.eos_token_id = {2};
  return c;
}

// Llama 3 rope scaling whose bands all hit D = 8's frequencies (wavelengths
// 6.3, 63, 628, 6283 against thresholds 16 and 64).
ModelConfig Llama3RopeConfig() {
  ModelConfig c = TinyConfig("llama");
  c.rope_scaling = RopeScaling{"llama3", 8.0, 1.0, 4.0, 64};
  return c;
}

// A model whose every parameter is random (biases and norm weights too), so
// that each one visibly affects the output.
Transformer RandomModel(const ModelConfig& config, uint64_t seed) {
  torch::manual_seed(seed);
  Transformer model(config);
  model->eval();
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    torch::Tensor& p = item.value();
    if (item.key().find("norm") != std::string::npos) {
      p.copy_(1.0 + 0.2 * torch::randn(p.sizes()));
    } else if (item.key().find("bias") != std::string::npos) {
      p.copy_(0.1 * torch::randn(p.sizes()));
    } else {
      p.copy_(0.2 * torch::randn(p.sizes()));
    }
  }
  return model;
}

torch::Tensor Tokens(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kInt64).view({1, -1});  // (1, T)
}

double MaxAbsDiff(const torch::Tensor& ours,  // (T, V)
                  const std::vector<std::vector<float>>& reference) {
  double diff = 0;
  for (size_t t = 0; t < reference.size(); ++t) {
    for (size_t v = 0; v < reference[t].size(); ++v) {
      diff = std::max(diff, std::abs(ours[t][v].item<double>() - reference[t][v]));
    }
  }
  return diff;
}

std::vector<int64_t> TransformerGreedy(Transformer& model, std::vector<int64_t> ids, int n) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) {
    const int64_t next = model->forward(Tokens(ids))[0][-1].argmax().item<int64_t>();
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

// Removes a directory tree without std::filesystem::remove_all: torch 2.11's libtorch.so
// exports its own copy of std::filesystem, and a test binary linked against it calls
// that remove_all, which jumped to address 0 on the GPU check machine (gpu-check run 2).
void RemoveTree(const std::string& dir) {
  ::nftw(dir.c_str(), [](const char* path, const struct stat*, int, struct FTW*) {
           ::remove(path);
           return 0;  // go on: what cannot be removed shows in create_directories
         },
         16, FTW_DEPTH | FTW_PHYS);
}

// A fresh, empty directory for this test.
std::string FreshDir(const std::string& suffix = "") {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& ch : name) {
    if (ch == '/') ch = '_';
  }
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("hf_model_test." + std::to_string(::getpid()) + "." + name + suffix);
  RemoveTree(dir.string());
  fs::create_directories(dir);
  return dir.string();
}

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream out;
  out << file.rdbuf();
  return out.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadBytes(path));
}

nlohmann::json SafetensorsHeader(const std::string& path) {
  const std::string bytes = ReadBytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return nlohmann::json::parse(bytes.substr(8, n));
}

// Every parameter of `a` equals (torch::equal: same values, same dtype) the
// parameter of the same name of `b`, and both have the same names.
void ExpectSameWeights(const Transformer& a, const Transformer& b) {
  const auto pa = a->named_parameters();
  const auto pb = b->named_parameters();
  ASSERT_EQ(pa.keys(), pb.keys());
  for (const auto& item : pa) {
    const torch::Tensor& other = pb[item.key()];
    EXPECT_EQ(item.value().scalar_type(), other.scalar_type()) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), other)) << item.key();
  }
}

// The model's parameters converted to `dtype` and back to float32: what a
// save in `dtype` followed by a float32 load should give.
TensorMap RoundedState(const Transformer& model, torch::ScalarType dtype) {
  TensorMap out;
  for (const auto& [name, t] : StateDict(*model)) out[name] = t.to(dtype).to(torch::kFloat);
  return out;
}

void ExpectWeightsEqual(const Transformer& model, const TensorMap& expected) {
  const auto params = model->named_parameters();
  ASSERT_EQ(params.size(), expected.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_TRUE(torch::equal(params[name], t)) << name;
  }
}

// ---------------------------------------------------------------------------
// Transformer against the naive reference
// ---------------------------------------------------------------------------

struct ReferenceCase {
  std::string name;
  ModelConfig config;
};

void PrintTo(const ReferenceCase& c, std::ostream* os) { *os << c.name; }

class ReferenceTest : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceTest, FullForwardAndGreedyMatchTheReference) {
  const ModelConfig& config = GetParam().config;
  Transformer model = RandomModel(config, 21);
  const auto reference = testing::ReferenceModel::FromStateDict(config, StateDict(*model));

  const std::vector<int64_t> ids = {1, 17, 3, 29, 8, 8, 39, 0, 12, 5, 21, 30};
  torch::NoGradGuard no_grad;
  torch::Tensor ours = model->forward(Tokens(ids))[0];  // (T, V)
  const std::vector<std::vector<float>> expected = reference.Forward(ids);  // (T, V)
  ASSERT_EQ(expected.size(), ids.size());
  ASSERT_EQ(expected[0].size(), 40u);
  EXPECT_LT(MaxAbsDiff(ours, expected), 1e-4);
  // The logits are not trivially small: the comparison means something.
  EXPECT_GT(ours.abs().max().item<double>(), 0.5);

  const std::vector<int64_t> prompt = {1, 9, 4};
  EXPECT_EQ(TransformerGreedy(model, prompt, 10), reference.Greedy(prompt, 10));
  EXPECT_EQ(testing::ReferenceGreedy(StateDict(*model), config, prompt, 10),
            reference.Greedy(prompt, 10));
}

ModelConfig WithBiases(ModelConfig c) {
  c.attention_bias = true;
  c.mlp_bias = c.model_type == "llama";
  return c;
}

ModelConfig WithLinearRope(ModelConfig c) {
  c.rope_scaling = RopeScaling{"linear", 4.0};
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Archs, ReferenceTest,
    ::testing::Values(ReferenceCase{"llama", TinyConfig("llama")},
                      ReferenceCase{"qwen2", TinyConfig("qwen2")},
                      ReferenceCase{"qwen3_head_dim16", TinyConfig("qwen3")},
                      ReferenceCase{"llama_tied", TinyConfig("llama", true)},
                      ReferenceCase{"qwen2_tied", TinyConfig("qwen2", true)},
                      ReferenceCase{"qwen3_tied_bias", WithBiases(TinyConfig("qwen3", true))},
                      ReferenceCase{"llama_biases", WithBiases(TinyConfig("llama"))},
                      ReferenceCase{"llama_rope_llama3", Llama3RopeConfig()},
                      ReferenceCase{"qwen2_rope_linear", WithLinearRope(TinyConfig("qwen2"))}),
    [](const auto& info) { return info.param.name; });

TEST(RotaryTest, Llama3ScalingMatchesTheFormulaInEachBand) {
  Transformer model = RandomModel(Llama3RopeConfig(), 1);
  const torch::Tensor& inv_freq = model->inv_freq();  // (D/2)
  ASSERT_EQ(inv_freq.scalar_type(), torch::kFloat);
  ASSERT_EQ(inv_freq.numel(), 4);
  const std::vector<double> expected = testing::ReferenceInvFreq(Llama3RopeConfig());
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(inv_freq[i].item<double>(), expected[i], 1e-6 * expected[i]) << i;
  }
  // High frequency kept, low frequencies divided by 8, the middle one blended.
  EXPECT_FLOAT_EQ(inv_freq[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(inv_freq[2].item<float>(), 0.01f / 8);
  EXPECT_FLOAT_EQ(inv_freq[3].item<float>(), 0.001f / 8);
  EXPECT_GT(inv_freq[1].item<float>(), 0.1f / 8);
  EXPECT_LT(inv_freq[1].item<float>(), 0.1f);

  Transformer plain = RandomModel(TinyConfig("llama"), 1);
  EXPECT_FLOAT_EQ(plain->inv_freq()[3].item<float>(), 0.001f);
  Transformer linear = RandomModel(WithLinearRope(TinyConfig("llama")), 1);
  EXPECT_FLOAT_EQ(linear->inv_freq()[1].item<float>(), 0.1f / 4);
}

TEST(TransformerNamesTest, Qwen3HasPerHeadNormsAndExplicitHeadDim) {
  Transformer model = RandomModel(TinyConfig("qwen3"), 0);
  auto params = model->named_parameters();
  EXPECT_EQ(params["model.layers.1.self_attn.q_norm.weight"].sizes(), torch::IntArrayRef({16}));
  EXPECT_EQ(params["model.layers.1.self_attn.k_norm.weight"].sizes(), torch::IntArrayRef({16}));
  EXPECT_EQ(params["model.layers.0.self_attn.q_proj.weight"].sizes(), torch::IntArrayRef({64, 32}));
  EXPECT_EQ(params["model.layers.0.self_attn.k_proj.weight"].sizes(), torch::IntArrayRef({32, 32}));
  EXPECT_EQ(params["model.layers.0.self_attn.o_proj.weight"].sizes(), torch::IntArrayRef({32, 64}));
  for (const auto& key : params.keys()) EXPECT_THAT(key, Not(HasSubstr("bias")));
  // 1 embed + 2 layers * (2 norms + q,k,v,o + q_norm, k_norm + 3 mlp) + norm + head.
  EXPECT_EQ(params.size(), 1u + 2u * 11u + 1u + 1u);
  EXPECT_TRUE(model->named_buffers().is_empty());

  // Llama with attention_bias: o_proj has a bias too; Qwen2's never does.
  auto llama = RandomModel(WithBiases(TinyConfig("llama")), 0)->named_parameters();
  EXPECT_TRUE(llama.contains("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_TRUE(llama.contains("model.layers.0.mlp.down_proj.bias"));
  auto qwen2 = RandomModel(TinyConfig("qwen2"), 0)->named_parameters();
  EXPECT_TRUE(qwen2.contains("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(qwen2.contains("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(qwen2.contains("model.layers.0.self_attn.q_norm.weight"));
}

// ---------------------------------------------------------------------------
// config.json
// ---------------------------------------------------------------------------

// config.json files as published on the Hugging Face Hub.
const char kQwen3Config[] = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

const char kLlama32Config[] = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

const char kQwen25Config[] = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";

TEST(HfConfigTest, PublishedConfigsReadAndWriteBackTheSameKeys) {
  for (const char* text : {kQwen3Config, kLlama32Config, kQwen25Config}) {
    const nlohmann::json published = nlohmann::json::parse(text);
    absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(published);
    ASSERT_TRUE(c.ok()) << c.status();
    const nlohmann::json written = c->ToJson();
    for (const auto& [key, value] : published.items()) {
      if (key == "transformers_version") continue;
      ASSERT_TRUE(written.contains(key)) << published["model_type"] << " " << key;
      EXPECT_EQ(written[key], value) << published["model_type"] << " " << key;
    }
    for (const auto& [key, value] : written.items()) {
      if (!published.contains(key)) {
        // Only keys transformers itself writes with their default value.
        EXPECT_EQ(key, "rope_scaling") << published["model_type"];
        EXPECT_TRUE(value.is_null());
      }
    }
    absl::StatusOr<ModelConfig> back = ModelConfig::FromJson(written);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, *c);
  }
}

TEST(HfConfigTest, Qwen3FieldsAndDefaults) {
  absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(nlohmann::json::parse(kQwen3Config));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "qwen3");
  EXPECT_EQ(c->head_dim(), 128);
  EXPECT_NE(c->head_dim(), c->hidden_size / c->num_attention_heads);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->bos_token_id, 151643);
  EXPECT_EQ(c->eos_token_id, std::vector<int64_t>{151645});
  EXPECT_FALSE(c->rope_scaling.has_value());

  // model_type inferred from "architectures"; Qwen3's head_dim defaults to 128.
  nlohmann::json minimal = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", 40},
                            {"hidden_size", 32}, {"intermediate_size", 64},
                            {"num_hidden_layers", 1}, {"num_attention_heads", 4}};
  c = ModelConfig::FromJson(minimal);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "qwen3");
  EXPECT_EQ(c->head_dim(), 128);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  EXPECT_FALSE(c->bos_token_id.has_value());

  // Llama defaults (LlamaConfig): bos 1, eos 2, head_dim hidden / heads.
  minimal["architectures"] = {"LlamaForCausalLM"};
  c = ModelConfig::FromJson(minimal);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->head_dim(), 8);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_id, std::vector<int64_t>{2});
  EXPECT_EQ(c->ToJson()["head_dim"], 8);

  // transformers >= 4.56 writes "dtype".
  minimal["dtype"] = "bfloat16";
  c = ModelConfig::FromJson(minimal);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->torch_dtype, "bfloat16");
}

TEST(HfConfigTest, RoundTripIsExact) {
  std::vector<ModelConfig> configs = {TinyConfig("llama"), TinyConfig("qwen2", true),
                                      TinyConfig("qwen3"), Llama3RopeConfig(),
                                      WithLinearRope(WithBiases(TinyConfig("llama")))};
  ModelConfig multi_eos = TinyConfig("qwen3", true);
  multi_eos.eos_token_id = {2, 7, 9};
  multi_eos.bos_token_id.reset();
  multi_eos.torch_dtype = "bfloat16";
  multi_eos.use_sliding_window = true;  // but on no layer: max_window_layers >= layers
  multi_eos.sliding_window = 16;
  multi_eos.max_window_layers = 2;
  configs.push_back(multi_eos);
  ModelConfig derived_head = TinyConfig("qwen3");
  derived_head.head_dim_value = 0;  // hidden / heads
  configs.push_back(derived_head);
  for (const ModelConfig& c : configs) {
    ASSERT_TRUE(c.Validate().ok()) << c.Validate();
    const nlohmann::json json = c.ToJson();
    absl::StatusOr<ModelConfig> back = ModelConfig::FromJson(json);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << json.dump();
    EXPECT_EQ(*back, c) << json.dump();
    EXPECT_EQ(back->ToJson(), json);
  }
  const nlohmann::json json = multi_eos.ToJson();
  EXPECT_EQ(json["eos_token_id"], nlohmann::json({2, 7, 9}));
  EXPECT_TRUE(json["bos_token_id"].is_null());
  EXPECT_EQ(json["architectures"], nlohmann::json({"Qwen3ForCausalLM"}));
  EXPECT_EQ(json["head_dim"], 16);
  EXPECT_EQ(json["hidden_act"], "silu");
  EXPECT_EQ(json["attention_dropout"], 0.0);
  EXPECT_EQ(json["use_cache"], true);
  EXPECT_TRUE(json.contains("transformers_version"));
  EXPECT_EQ(Llama3RopeConfig().ToJson()["rope_scaling"],
            nlohmann::json({{"rope_type", "llama3"}, {"factor", 8.0},
                            {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 64}}));
}

TEST(HfConfigTest, RopeScalingVariants) {
  nlohmann::json json = TinyConfig().ToJson();
  json["rope_scaling"] = {{"type", "linear"}, {"factor", 2}};  // older key, int factor
  absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling->rope_type, "linear");
  EXPECT_EQ(c->rope_scaling->factor, 2.0);

  json["rope_scaling"] = {{"rope_type", "default"}};
  c = ModelConfig::FromJson(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->rope_scaling.has_value());

  json["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  c = ModelConfig::FromJson(json);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), AllOf(HasSubstr("rope_scaling.rope_type"), HasSubstr("yarn")));

  json["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}};
  c = ModelConfig::FromJson(json);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("rope_scaling.original_max_position_embeddings"));
}

TEST(HfConfigTest, UnsupportedConfigsAreNamed) {
  auto error_of = [](const nlohmann::json& json) {
    absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(json);
    return c.ok() ? std::string("OK") : std::string(c.status().message());
  };
  nlohmann::json json = TinyConfig().ToJson();
  json["architectures"] = {"MistralForCausalLM"};
  json["model_type"] = "mistral";
  EXPECT_THAT(error_of(json), HasSubstr("MistralForCausalLM"));
  json.erase("architectures");
  EXPECT_THAT(error_of(json), AllOf(HasSubstr("model_type"), HasSubstr("mistral")));
  json = TinyConfig().ToJson();
  json["model_type"] = "qwen2";  // architectures still says Llama
  EXPECT_THAT(error_of(json), AllOf(HasSubstr("LlamaForCausalLM"), HasSubstr("qwen2")));

  json = TinyConfig().ToJson();
  json["hidden_act"] = "gelu";
  EXPECT_THAT(error_of(json), AllOf(HasSubstr("hidden_act"), HasSubstr("gelu")));

  json = TinyConfig("qwen2").ToJson();
  json["use_sliding_window"] = true;
  json["sliding_window"] = 16;
  json["max_window_layers"] = 1;  // layer 1 would use the window
  EXPECT_THAT(error_of(json), HasSubstr("sliding"));
  json["max_window_layers"] = 2;
  EXPECT_EQ(error_of(json), "OK");

  json = TinyConfig().ToJson();
  json["eos_token_id"] = "two";
  EXPECT_THAT(error_of(json), HasSubstr("eos_token_id"));
  json = TinyConfig().ToJson();
  json["torch_dtype"] = "int8";
  EXPECT_THAT(error_of(json), HasSubstr("torch_dtype"));
  json = TinyConfig("qwen2").ToJson();
  json["attention_bias"] = false;
  EXPECT_THAT(error_of(json), HasSubstr("attention_bias"));

  // Explicit head_dim lifts the divisibility requirement.
  json = TinyConfig("qwen3").ToJson();
  json["num_attention_heads"] = 6;
  json["num_key_value_heads"] = 3;
  EXPECT_EQ(error_of(json), "OK");
  json.erase("head_dim");  // now 128 (Qwen3 default): still fine
  EXPECT_EQ(error_of(json), "OK");
  json["model_type"] = "llama";
  json["architectures"] = {"LlamaForCausalLM"};
  EXPECT_THAT(error_of(json), HasSubstr("divisible"));
}

// ---------------------------------------------------------------------------
// Model directories: save / load round trips
// ---------------------------------------------------------------------------

TEST(HfModelTest, SaveLoadRoundTripFloat32IsBitIdentical) {
  for (const ModelConfig& config : {TinyConfig("qwen3"), TinyConfig("llama", true),
                                    TinyConfig("qwen2"), Llama3RopeConfig()}) {
    const std::string dir = FreshDir("." + config.model_type);
    Transformer model = RandomModel(config, 3);
    ASSERT_TRUE(SavePretrained(model, dir).ok());

    EXPECT_TRUE(fs::exists(dir + "/config.json"));
    EXPECT_TRUE(fs::exists(dir + "/generation_config.json"));
    EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
    EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
    const nlohmann::json header = SafetensorsHeader(dir + "/model.safetensors");
    EXPECT_EQ(header["__metadata__"], nlohmann::json({{"format", "pt"}}));
    EXPECT_EQ(header["model.norm.weight"]["dtype"], "F32");
    // Tied models leave lm_head.weight to transformers' tying.
    EXPECT_EQ(header.contains("lm_head.weight"), !config.tie_word_embeddings);
    const nlohmann::json generation = ReadJson(dir + "/generation_config.json");
    EXPECT_EQ(generation["bos_token_id"], 1);
    EXPECT_EQ(generation["eos_token_id"], 2);
    EXPECT_EQ(ReadJson(dir + "/config.json"), config.ToJson());

    absl::StatusOr<Transformer> loaded = LoadPretrained(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->config(), config);
    ExpectSameWeights(model, *loaded);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(model->forward(Tokens({1, 2, 3})),
                             (*loaded)->forward(Tokens({1, 2, 3}))));
  }
}

TEST(HfModelTest, SaveLoadRoundTripBfloat16IsBitIdentical) {
  const std::string dir = FreshDir();
  Transformer model = RandomModel(TinyConfig("qwen3", true), 4);
  model->to(torch::kBFloat16);
  ASSERT_TRUE(SavePretrained(model, dir).ok());  // the model's dtype
  EXPECT_EQ(ReadJson(dir + "/config.json")["torch_dtype"], "bfloat16");
  EXPECT_EQ(SafetensorsHeader(dir + "/model.safetensors")["model.embed_tokens.weight"]["dtype"],
            "BF16");
  EXPECT_EQ(fs::file_size(dir + "/model.safetensors") % 2, 0u);

  LoadOptions options;
  options.dtype = torch::kBFloat16;
  absl::StatusOr<Transformer> loaded = LoadPretrained(dir, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config().torch_dtype, "bfloat16");
  ExpectSameWeights(model, *loaded);
}

TEST(HfModelTest, SavedInAnotherDtypeLoadsIntoFloat32) {
  Transformer model = RandomModel(TinyConfig("llama"), 5);
  for (torch::ScalarType dtype : {torch::kBFloat16, torch::kFloat16}) {
    const std::string dir = FreshDir(dtype == torch::kBFloat16 ? ".bf16" : ".f16");
    SaveOptions save;
    save.dtype = dtype;
    ASSERT_TRUE(SavePretrained(model, dir, save).ok());
    EXPECT_EQ(SafetensorsHeader(dir + "/model.safetensors")["lm_head.weight"]["dtype"],
              dtype == torch::kBFloat16 ? "BF16" : "F16");
    EXPECT_EQ(ReadJson(dir + "/config.json")["torch_dtype"],
              dtype == torch::kBFloat16 ? "bfloat16" : "float16");
    absl::StatusOr<Transformer> loaded = LoadPretrained(dir);  // float32 by default
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->config().torch_dtype, "float32");
    EXPECT_EQ((*loaded)->model->norm->weight.scalar_type(), torch::kFloat);
    ExpectWeightsEqual(*loaded, RoundedState(model, dtype));
  }
  // The model itself is unchanged by saving in another dtype.
  EXPECT_EQ(model->model->norm->weight.scalar_type(), torch::kFloat);
}

TEST(HfModelTest, ShardedSaveLoadRoundTrip) {
  const std::string dir = FreshDir();
  Transformer model = RandomModel(TinyConfig("qwen2"), 6);
  SaveOptions options;
  options.max_shard_bytes = 12000;  // embed and lm_head (5120 B) fit; the layers split
  ASSERT_TRUE(SavePretrained(model, dir, options).ok());
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));

  const nlohmann::json index = ReadJson(dir + "/model.safetensors.index.json");
  const nlohmann::json& weight_map = index["weight_map"];
  EXPECT_EQ(weight_map.size(), model->named_parameters().size());
  std::set<std::string> shards;
  for (const auto& [name, file] : weight_map.items()) shards.insert(file.get<std::string>());
  ASSERT_GE(shards.size(), 3u);
  const std::string count = std::to_string(shards.size());
  EXPECT_EQ(*shards.begin(), "model-00001-of-0000" + count + ".safetensors");
  uint64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel() * 4;
  EXPECT_EQ(index["metadata"]["total_size"], total);
  for (const std::string& shard : shards) {
    const nlohmann::json header = SafetensorsHeader(dir + "/" + shard);
    EXPECT_EQ(header["__metadata__"]["format"], "pt");
    uint64_t bytes = 0;
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") continue;
      EXPECT_EQ(weight_map[name], shard) << name;
      bytes += info["data_offsets"][1].get<uint64_t>() - info["data_offsets"][0].get<uint64_t>();
    }
    EXPECT_LE(bytes, options.max_shard_bytes) << shard;
  }

  absl::StatusOr<Transformer> loaded = LoadPretrained(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameWeights(model, *loaded);

  // A tensor larger than the limit gets a shard of its own.
  options.max_shard_bytes = 3000;
  ASSERT_TRUE(SavePretrained(model, dir, options).ok());
  const nlohmann::json small = ReadJson(dir + "/model.safetensors.index.json");
  const std::string embed_shard = small["weight_map"]["model.embed_tokens.weight"];
  for (const auto& [name, file] : small["weight_map"].items()) {
    if (name != "model.embed_tokens.weight") {
      EXPECT_NE(file, embed_shard) << name;
    }
  }
  loaded = LoadPretrained(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameWeights(model, *loaded);

  // Saving unsharded into the same directory removes the stale shards.
  ASSERT_TRUE(SavePretrained(model, dir).ok());
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    files.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(files, ::testing::UnorderedElementsAre("config.json", "generation_config.json",
                                                     "model.safetensors"));
  loaded = LoadPretrained(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameWeights(model, *loaded);
}

// A checkpoint written byte by byte the way Python's safetensors lays it
// out (its own tensor order, BF16 and F32 mixed, header padded with spaces),
// with a config.json as transformers writes it, loads and runs.
TEST(HfModelTest, HandBuiltCheckpointLoads) {
  const std::string dir = FreshDir();
  const ModelConfig config = TinyConfig("qwen3", /*tie=*/true);
  const Transformer source = RandomModel(config, 8);

  // Reverse name order; norms in F32, everything else in BF16.
  TensorMap expected;
  std::vector<std::pair<std::string, torch::Tensor>> order;
  for (const auto& [name, t] : StateDict(*source)) {
    torch::Tensor stored = name.find("norm") != std::string::npos ? t : t.to(torch::kBFloat16);
    expected[name] = stored.to(torch::kFloat);
    order.insert(order.begin(), {name, stored});
  }
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::string data;
  for (const auto& [name, t] : order) {
    const std::string dtype = t.scalar_type() == torch::kBFloat16 ? "BF16" : "F32";
    std::string shape;
    for (int64_t d : t.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += ",\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + t.nbytes()) + "]}";
    data.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  WriteBytes(dir + "/model.safetensors",
             std::string(reinterpret_cast<const char*>(&n), 8) + header + data);
  WriteBytes(dir + "/config.json", config.ToJson().dump(2));

  absl::StatusOr<Transformer> loaded = LoadPretrained(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectWeightsEqual(*loaded, expected);

  // The file agrees with the reference implementation too.
  absl::StatusOr<TensorMap> file = ReadSafetensorsFile(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto reference = testing::ReferenceModel::FromStateDict(config, *file);
  const std::vector<int64_t> ids = {3, 14, 15, 9, 2, 6};
  torch::NoGradGuard no_grad;
  EXPECT_LT(MaxAbsDiff((*loaded)->forward(Tokens(ids))[0], reference.Forward(ids)), 1e-4);
}

TEST(HfModelTest, SmallHandWrittenFileHasTheRightValues) {
  const std::string path = FreshDir() + "/tiny.safetensors";
  // {"a": F32 [2] = 1.5, -2.0; "b": BF16 [1] = 1.0}, header padded to 8.
  std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  const float a[2] = {1.5f, -2.0f};
  const uint16_t b = 0x3F80;  // bfloat16 1.0
  std::string bytes(reinterpret_cast<const char*>(&n), 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(a), 8);
  bytes.append(reinterpret_cast<const char*>(&b), 2);
  WriteBytes(path, bytes);
  absl::StatusOr<TensorMap> t = ReadSafetensorsFile(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(torch::equal(t->at("a"), torch::tensor({1.5f, -2.0f})));
  EXPECT_EQ(t->at("b").scalar_type(), torch::kBFloat16);
  EXPECT_EQ(t->at("b").item<float>(), 1.0f);

  // Bytes not covered by any tensor are rejected, as the reference does.
  WriteBytes(path, bytes + "xx");
  t = ReadSafetensorsFile(path);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), AllOf(HasSubstr(path), HasSubstr("trailing")));
}

// ---------------------------------------------------------------------------
// Corrupt and mismatched checkpoints
// ---------------------------------------------------------------------------

class CorruptCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    ASSERT_TRUE(SavePretrained(RandomModel(config_, 10), dir_).ok());
    file_ = dir_ + "/model.safetensors";
    target_ = RandomModel(config_, 11);
    before_ = StateDict(*target_);
  }

  // Loads dir_ into target_ (expecting failure) and returns the message;
  // checks the model is unchanged and that LoadPretrained fails alike.
  std::string LoadError() {
    absl::Status s = LoadPretrainedWeights(target_, dir_);
    EXPECT_FALSE(s.ok());
    ExpectWeightsEqual(target_, before_);
    absl::StatusOr<Transformer> fresh = LoadPretrained(dir_);
    EXPECT_FALSE(fresh.ok());
    if (!fresh.ok()) {
      EXPECT_EQ(fresh.status().message(), s.message());
    }
    return std::string(s.message());
  }

  // Rewrites model.safetensors with `tensors`.
  void WriteWeights(const TensorMap& tensors) {
    ASSERT_TRUE(WriteSafetensorsFile(file_, tensors, {{"format", "pt"}}).ok());
  }

  const ModelConfig config_ = TinyConfig("qwen2");
  std::string dir_;
  std::string file_;
  Transformer target_{nullptr};
  TensorMap before_;
};

TEST_F(CorruptCheckpointTest, TruncatedFile) {
  const std::string bytes = ReadBytes(file_);
  WriteBytes(file_, bytes.substr(0, bytes.size() - 100));
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(file_), HasSubstr("out of range"),
                                 HasSubstr("truncated")));
  WriteBytes(file_, bytes.substr(0, 5));
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(file_), HasSubstr("too short")));
}

TEST_F(CorruptCheckpointTest, HeaderLengthPastTheEnd) {
  std::string bytes = ReadBytes(file_);
  const uint64_t huge = bytes.size();
  std::memcpy(bytes.data(), &huge, 8);
  WriteBytes(file_, bytes);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(file_), HasSubstr("header length")));
}

TEST_F(CorruptCheckpointTest, BadHeaderJson) {
  std::string bytes = ReadBytes(file_);
  bytes[8] = '[';  // the header's opening brace
  WriteBytes(file_, bytes);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(file_), HasSubstr("not valid JSON")));
}

TEST_F(CorruptCheckpointTest, UnknownDtypeNamesTheTensor) {
  std::string bytes = ReadBytes(file_);
  const size_t at = bytes.find("\"F32\"");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 5, "\"Q32\"");
  WriteBytes(file_, bytes);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(file_), HasSubstr("unknown dtype \"Q32\""),
                                 HasSubstr("tensor \"")));
}

TEST_F(CorruptCheckpointTest, WrongShape) {
  TensorMap tensors = ReadSafetensorsFile(file_).value();
  tensors["model.layers.1.mlp.up_proj.weight"] = torch::zeros({32, 32});
  WriteWeights(tensors);
  EXPECT_THAT(LoadError(),
              HasSubstr(file_ + ": tensor model.layers.1.mlp.up_proj.weight has shape "
                                "[32, 32], expected [64, 32]"));
}

TEST_F(CorruptCheckpointTest, WrongDtype) {
  TensorMap tensors = ReadSafetensorsFile(file_).value();
  tensors["model.norm.weight"] = torch::ones({32}, torch::kInt64);
  WriteWeights(tensors);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(file_), HasSubstr("model.norm.weight"),
                                 HasSubstr("I64"), HasSubstr("floating-point")));
}

TEST_F(CorruptCheckpointTest, MissingTensor) {
  TensorMap tensors = ReadSafetensorsFile(file_).value();
  tensors.erase("model.layers.0.self_attn.k_proj.bias");
  WriteWeights(tensors);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(dir_), HasSubstr("missing tensor"),
                                 HasSubstr("model.layers.0.self_attn.k_proj.bias")));
}

TEST_F(CorruptCheckpointTest, ExtraTensor) {
  TensorMap tensors = ReadSafetensorsFile(file_).value();
  // Rotary buffers some exporters write are ignored ...
  tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch::ones({4});
  WriteWeights(tensors);
  ASSERT_TRUE(LoadPretrainedWeights(target_, dir_).ok());
  before_ = StateDict(*target_);
  // ... anything else is an error.
  tensors["model.layers.0.self_attn.o_proj.bias"] = torch::zeros({32});
  WriteWeights(tensors);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(file_), HasSubstr("unexpected tensor"),
                                 HasSubstr("model.layers.0.self_attn.o_proj.bias")));
}

TEST_F(CorruptCheckpointTest, NoWeightsAndBadConfig) {
  fs::remove(file_);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(dir_), HasSubstr("model.safetensors")));

  nlohmann::json config = config_.ToJson();
  config["architectures"] = {"MistralForCausalLM"};
  config["model_type"] = "mistral";
  WriteBytes(dir_ + "/config.json", config.dump());
  absl::StatusOr<Transformer> loaded = LoadPretrained(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              AllOf(HasSubstr(dir_ + "/config.json"), HasSubstr("MistralForCausalLM")));

  config = config_.ToJson();
  config.erase("hidden_size");
  WriteBytes(dir_ + "/config.json", config.dump());
  loaded = LoadPretrained(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              AllOf(HasSubstr(dir_ + "/config.json"), HasSubstr("hidden_size")));

  WriteBytes(dir_ + "/config.json", "{\"vocab_size\": ");
  loaded = LoadPretrained(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              AllOf(HasSubstr(dir_ + "/config.json"), HasSubstr("JSON")));

  fs::remove(dir_ + "/config.json");
  loaded = LoadPretrained(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr(dir_ + "/config.json"));
}

TEST_F(CorruptCheckpointTest, TiedCheckpointMayCarryLmHead) {
  // A tied model ignores lm_head.weight in the file (transformers ties it).
  const ModelConfig tied = TinyConfig("qwen2", /*tie=*/true);
  Transformer model = RandomModel(tied, 12);
  ASSERT_TRUE(SavePretrained(model, dir_).ok());
  TensorMap tensors = ReadSafetensorsFile(file_).value();
  ASSERT_FALSE(tensors.count("lm_head.weight"));
  tensors["lm_head.weight"] = torch::zeros({40, 32});
  WriteWeights(tensors);
  absl::StatusOr<Transformer> loaded = LoadPretrained(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameWeights(model, *loaded);
}

class CorruptShardsTest : public CorruptCheckpointTest {
 protected:
  void SetUp() override {
    CorruptCheckpointTest::SetUp();
    SaveOptions options;
    options.max_shard_bytes = 12000;
    ASSERT_TRUE(SavePretrained(RandomModel(config_, 10), dir_, options).ok());
    ASSERT_FALSE(fs::exists(file_));
    index_path_ = dir_ + "/model.safetensors.index.json";
    index_ = ReadJson(index_path_);
  }
  std::string index_path_;
  nlohmann::json index_;
};

TEST_F(CorruptShardsTest, MissingShard) {
  const std::string shard = index_["weight_map"]["model.layers.1.mlp.up_proj.weight"];
  fs::remove(dir_ + "/" + shard);
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(index_path_), HasSubstr(shard), HasSubstr("missing")));
}

TEST_F(CorruptShardsTest, TensorListedButAbsentFromItsShard) {
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  const std::string shard = index_["weight_map"][name];
  const std::string other = index_["weight_map"]["model.embed_tokens.weight"];
  ASSERT_NE(shard, other);
  // Move the tensor out of its shard into another one the index does not say.
  TensorMap from = ReadSafetensorsFile(dir_ + "/" + shard).value();
  from.erase(name);
  ASSERT_TRUE(WriteSafetensorsFile(dir_ + "/" + shard, from).ok());
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(dir_ + "/" + shard), HasSubstr(name),
                                 HasSubstr("listed in"), HasSubstr(index_path_)));
}

TEST_F(CorruptShardsTest, ShardHoldsATensorTheIndexDoesNotList) {
  const std::string name = "model.layers.0.input_layernorm.weight";
  const std::string shard = index_["weight_map"][name];
  index_["weight_map"].erase(name);
  WriteBytes(index_path_, index_.dump());
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(dir_ + "/" + shard), HasSubstr(name),
                                 HasSubstr("does not list")));
}

TEST_F(CorruptShardsTest, WrongShapeInAShardNamesTheShard) {
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  const std::string shard = index_["weight_map"][name];
  TensorMap tensors = ReadSafetensorsFile(dir_ + "/" + shard).value();
  tensors[name] = torch::zeros({32, 32});
  ASSERT_TRUE(WriteSafetensorsFile(dir_ + "/" + shard, tensors).ok());
  EXPECT_THAT(LoadError(), HasSubstr(shard + ": tensor " + name +
                                     " has shape [32, 32], expected [64, 32]"));
}

TEST_F(CorruptShardsTest, BadIndex) {
  WriteBytes(index_path_, "{\"weight_map\": [1, 2]}");
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(index_path_), HasSubstr("weight_map")));
  index_["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors";
  WriteBytes(index_path_, index_.dump());
  EXPECT_THAT(LoadError(), AllOf(HasSubstr(index_path_), HasSubstr("model.norm.weight")));
}

// ---------------------------------------------------------------------------
// Memory mapping
// ---------------------------------------------------------------------------

// [start, end) of the mappings of `path` in this process.
std::vector<std::pair<uintptr_t, uintptr_t>> MappingsOf(const std::string& path) {
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() < path.size() || line.compare(line.size() - path.size(), path.size(), path) != 0) {
      continue;
    }
    out.emplace_back(std::stoull(line.substr(0, line.find('-')), nullptr, 16),
                     std::stoull(line.substr(line.find('-') + 1), nullptr, 16));
  }
  return out;
}

TEST(SafetensorsMmapTest, TensorsAreViewsIntoOneMappingThatLivesAsLongAsThey) {
  const std::string dir = FreshDir();
  Transformer model = RandomModel(TinyConfig("llama"), 13);
  ASSERT_TRUE(SavePretrained(model, dir).ok());
  const std::string path = fs::canonical(dir + "/model.safetensors").string();
  ASSERT_TRUE(MappingsOf(path).empty());

  absl::StatusOr<TensorMap> tensors = ReadSafetensorsFile(path);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  const auto mappings = MappingsOf(path);
  ASSERT_EQ(mappings.size(), 1u);
  const auto [start, end] = mappings[0];
  EXPECT_GE(end - start, fs::file_size(path));
  const nlohmann::json header = SafetensorsHeader(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, ReadBytes(path).data(), 8);
  const uintptr_t data_start = start + 8 + header_len;  // the file is mapped at `start`
  for (const auto& [name, t] : *tensors) {
    const auto address = reinterpret_cast<uintptr_t>(t.data_ptr());
    // Not a copy: exactly where the header says the bytes are in the file.
    EXPECT_EQ(address, data_start + header[name]["data_offsets"][0].get<uintptr_t>()) << name;
    EXPECT_TRUE(torch::equal(t, model->named_parameters()[name])) << name;
  }

  // One tensor keeps the mapping alive after the map is gone.
  torch::Tensor kept = tensors->at("model.norm.weight");
  tensors->clear();
  EXPECT_EQ(MappingsOf(path).size(), 1u);
  EXPECT_TRUE(torch::equal(kept, model->model->norm->weight));
  kept = torch::Tensor();
  EXPECT_TRUE(MappingsOf(path).empty());

  // A model loaded from the file owns its weights: no mapping remains.
  absl::StatusOr<Transformer> loaded = LoadPretrained(dir);
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(MappingsOf(path).empty());
}

// ---------------------------------------------------------------------------
// Weights as blobs (what travels between services)
// ---------------------------------------------------------------------------

TEST(SafetensorsBlobTest, LoadStateDictRejectsNonFloatIntoFloat) {
  Transformer model = RandomModel(TinyConfig("llama"), 14);
  const TensorMap before = StateDict(*model);
  TensorMap tensors = before;
  tensors["model.norm.weight"] = torch::ones({32}, torch::kInt32);
  absl::StatusOr<TensorMap> parsed = ParseSafetensors(SerializeSafetensors(tensors));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  absl::Status s = LoadStateDict(*model, *parsed);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("model.norm.weight"), HasSubstr("I32")));
  ExpectWeightsEqual(model, before);

  // F16, BF16 and F64 blobs load into a float32 model.
  for (torch::ScalarType dtype : {torch::kFloat16, torch::kBFloat16, torch::kFloat64}) {
    TensorMap converted, expected;
    for (const auto& [name, t] : before) {
      converted[name] = t.to(dtype);
      expected[name] = t.to(dtype).to(torch::kFloat);
    }
    parsed = ParseSafetensors(SerializeSafetensors(converted));
    ASSERT_TRUE(parsed.ok());
    ASSERT_TRUE(LoadStateDict(*model, *parsed).ok());
    ExpectWeightsEqual(model, expected);
  }
}

}  // namespace
}  // namespace grpo::model

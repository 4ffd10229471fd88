#include "core/policy/policy.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/model/safetensors.h"

namespace grpo {

absl::StatusOr<model::ModelConfig> PolicyModelConfig(const RunConfig& cfg, int64_t vocab_size) {
  model::ModelConfig m;
  m.model_type = cfg.model.arch;
  m.vocab_size = vocab_size;
  m.hidden_size = cfg.model.hidden_size;
  m.intermediate_size = cfg.model.intermediate_size;
  m.num_hidden_layers = cfg.model.num_layers;
  m.num_attention_heads = cfg.model.num_heads;
  m.num_key_value_heads = cfg.model.num_kv_heads;
  m.max_position_embeddings = cfg.model.max_position_embeddings;
  m.rope_theta = cfg.model.rope_theta;
  m.rms_norm_eps = cfg.model.rms_norm_eps;
  m.tie_word_embeddings = cfg.model.tie_word_embeddings;
  m.attention_bias = cfg.model.arch == "qwen2";
  absl::Status s = m.Validate();
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("model config: ", s.message()));
  return m;
}

absl::StatusOr<std::unique_ptr<Policy>> BuildPolicy(const RunConfig& cfg, uint64_t seed) {
  absl::StatusOr<model::CharTokenizer> tok = model::CharTokenizer::Create(cfg.model.charset);
  if (!tok.ok()) return absl::InvalidArgumentError(absl::StrCat("model.charset: ", tok.status().message()));
  absl::StatusOr<model::ModelConfig> mc = PolicyModelConfig(cfg, tok->vocab_size());
  if (!mc.ok()) return mc.status();
  torch::manual_seed(seed);
  auto p = std::unique_ptr<Policy>(new Policy{std::move(*tok), model::Transformer(*mc), cfg.model.prompt_template});
  return p;
}

std::vector<int64_t> EncodePrompt(const Policy& policy, const std::string& prompt) {
  std::string text = absl::StrReplaceAll(policy.prompt_template, {{"{prompt}", prompt}});
  std::vector<int64_t> ids{policy.tokenizer.bos_id()};
  std::vector<int64_t> body = policy.tokenizer.Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::string WeightsToBlob(const model::Transformer& model, uint64_t version) {
  return model::SerializeSafetensors(model::StateDict(*model), {{"format", "pt"}, {"grpo_version", std::to_string(version)}});
}

absl::Status LoadWeightsBlob(model::Transformer& model, std::string_view blob) {
  absl::StatusOr<model::TensorMap> tensors = model::ParseSafetensors(blob);
  if (!tensors.ok()) return tensors.status();
  return model::LoadStateDict(*model, *tensors);
}

}  // namespace grpo

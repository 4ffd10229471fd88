#include "core/policy/policy.h"

#include <algorithm>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/model/hf_model.h"
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

std::vector<int64_t> HfStopTokenIds(const std::string& model_dir, const model::ModelConfig& config,
                                    const tokenizer::BpeTokenizer& tok, tokenizer::ChatTemplate chat_template) {
  std::vector<int64_t> ids = model::GenerationEosTokenIds(model_dir, config);
  for (const std::string& s : tokenizer::ChatTemplateStopTokens(chat_template)) {
    if (auto id = tok.TokenToId(s)) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<int64_t> EncodeHfPrompt(const tokenizer::BpeTokenizer& tok, tokenizer::ChatTemplate chat_template,
                                    std::string_view prompt, std::string_view plain_template,
                                    std::string_view system) {
  std::vector<int64_t> ids;
  if (chat_template == tokenizer::ChatTemplate::kPlain) ids = tok.LeadingSpecialIds();
  std::vector<int64_t> body = tok.Encode(tokenizer::ApplyChatTemplate(chat_template, prompt, plain_template, system));
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {

absl::StatusOr<std::unique_ptr<Policy>> LoadHfPolicy(const RunConfig& cfg) {
  auto p = std::make_unique<Policy>();
  absl::StatusOr<model::Transformer> m = model::LoadPretrained(cfg.model.path);
  if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat("model.path: ", m.status().message()));
  p->model = *m;
  absl::StatusOr<tokenizer::BpeTokenizer> tok = tokenizer::BpeTokenizer::FromFile(cfg.model.path);
  if (!tok.ok()) return absl::InvalidArgumentError(absl::StrCat("model.path: ", tok.status().message()));
  absl::StatusOr<tokenizer::ChatTemplate> t = tokenizer::ParseChatTemplate(cfg.model.chat_template);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("model.chat_template: ", t.status().message()));
  p->chat_template = *t;
  const model::ModelConfig& mc = p->model->config();
  p->stop_token_ids = HfStopTokenIds(cfg.model.path, mc, *tok, *t);
  if (p->stop_token_ids.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("model.path: ", cfg.model.path,
                                                   "/config.json has no eos_token_id and the template no end token"));
  }
  p->pad_id = p->stop_token_ids[0];
  if (tok->vocab_size() > mc.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("model.path: tokenizer.json has ", tok->vocab_size(),
                                                   " tokens but the model's vocab_size is ", mc.vocab_size));
  }
  if (mc.max_position_embeddings < cfg.actor.max_new_tokens + 8) {
    return absl::InvalidArgumentError(absl::StrCat("actor.max_new_tokens: ", cfg.actor.max_new_tokens,
                                                   " does not fit the model's context of ", mc.max_position_embeddings));
  }
  p->bpe_tokenizer = std::move(*tok);
  p->prompt_template = cfg.model.prompt_template;
  p->system_prompt = cfg.model.system_prompt;
  return p;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Policy>> BuildPolicy(const RunConfig& cfg, uint64_t seed) {
  if (!cfg.model.path.empty()) return LoadHfPolicy(cfg);
  absl::StatusOr<model::CharTokenizer> tok = model::CharTokenizer::Create(cfg.model.charset);
  if (!tok.ok()) return absl::InvalidArgumentError(absl::StrCat("model.charset: ", tok.status().message()));
  absl::StatusOr<model::ModelConfig> mc = PolicyModelConfig(cfg, tok->vocab_size());
  if (!mc.ok()) return mc.status();
  torch::manual_seed(seed);
  auto p = std::make_unique<Policy>();
  p->model = model::Transformer(*mc);
  p->stop_token_ids = {tok->eos_id()};
  p->pad_id = tok->pad_id();
  p->char_tokenizer = std::move(*tok);
  p->prompt_template = cfg.model.prompt_template;
  return p;
}

std::vector<int64_t> EncodePrompt(const Policy& policy, const std::string& prompt) {
  if (policy.bpe_tokenizer) {
    return EncodeHfPrompt(*policy.bpe_tokenizer, policy.chat_template, prompt, policy.prompt_template,
                          policy.system_prompt);
  }
  std::string text = absl::StrReplaceAll(policy.prompt_template, {{"{prompt}", prompt}});
  std::vector<int64_t> ids{policy.char_tokenizer->bos_id()};
  std::vector<int64_t> body = policy.char_tokenizer->Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::string Policy::Decode(const std::vector<int64_t>& ids) const {
  if (bpe_tokenizer) return bpe_tokenizer->Decode(ids, /*skip_special_tokens=*/true);
  return char_tokenizer->Decode(ids, /*skip_special=*/true);
}

std::vector<std::string> Policy::TokenBytes() const {
  std::vector<std::string> out(model->config().vocab_size);
  for (int64_t id = 0; id < static_cast<int64_t>(out.size()); ++id) {
    if (bpe_tokenizer) {
      if (bpe_tokenizer->IsValidId(id)) out[id] = bpe_tokenizer->TokenBytes(id);
    } else {
      out[id] = char_tokenizer->Decode({id}, /*skip_special=*/false);
    }
  }
  return out;
}

std::string WeightsToBlob(const model::Transformer& model, uint64_t version, torch::ScalarType floating) {
  // Straight from the parameters into the blob: one copy of the weights (plus the move to
  // the CPU for a model on a GPU), no state-dict clone in between; a cast to the
  // receivers' dtype first where it differs (then the copy is of the narrower bytes).
  model::TensorMap tensors = model::StateDictViews(*model);
  for (auto& [name, t] : tensors) {
    if (t.is_floating_point() && t.scalar_type() != floating) t = t.to(floating);
  }
  return model::SerializeSafetensors(tensors, {{"format", "pt"}, {"grpo_version", std::to_string(version)}});
}

absl::Status LoadWeightsBlob(model::Transformer& model, std::string_view blob) {
  // Views into the received bytes, copied (and cast) into the parameters once.
  absl::StatusOr<model::TensorMap> tensors = model::ParseSafetensorsViews(blob);
  if (!tensors.ok()) return tensors.status();
  return model::LoadStateDict(*model, *tensors);
}

}  // namespace grpo

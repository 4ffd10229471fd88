// The run's policy: the model and tokenizer a run config describes, how prompts become
// token ids, and how weights travel as safetensors blobs. Shared by actor and learner.
//
// Two kinds of policy:
//   * model.path set: a Hugging Face model directory (config.json, safetensors weights,
//     tokenizer.json), loaded as is; prompts go through model.chat_template (plain,
//     chatml or llama3); generation stops at the config's eos_token_id and the
//     template's end-of-turn token.
//   * model.path empty: the demo's character tokenizer and a freshly initialised
//     model shaped by the model.* fields; prompts are <bos> + prompt_template.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/config.h"
#include "core/model/model_config.h"
#include "core/model/tokenizer.h"
#include "core/model/transformer.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/chat_template.h"

namespace grpo {

struct Policy {
  model::Transformer model{nullptr};
  // Exactly one of the two is set.
  std::optional<model::CharTokenizer> char_tokenizer;
  std::optional<tokenizer::BpeTokenizer> bpe_tokenizer;
  tokenizer::ChatTemplate chat_template = tokenizer::ChatTemplate::kPlain;
  std::string prompt_template;
  std::string system_prompt;
  std::vector<int64_t> stop_token_ids;  // generation ends at any of these
  int64_t pad_id = 0;                   // fills batches past a sequence's end (masked)

  // Text of completion ids, special tokens dropped.
  std::string Decode(const std::vector<int64_t>& ids) const;
  // Bytes of every token id, for stop strings.
  std::vector<std::string> TokenBytes() const;
  int64_t max_positions() const { return model->config().max_position_embeddings; }
};

// Generation stops for a Hugging Face model directory: its config/generation_config
// eos ids plus the chat template's end-of-turn tokens, sorted, without repeats.
std::vector<int64_t> HfStopTokenIds(const std::string& model_dir, const model::ModelConfig& config,
                                    const tokenizer::BpeTokenizer& tok, tokenizer::ChatTemplate chat_template);

// A prompt as Hugging Face would encode it: the template applied, and for the plain
// template the tokenizer's leading special ids (Llama's BOS) in front, since chat
// templates spell their own.
std::vector<int64_t> EncodeHfPrompt(const tokenizer::BpeTokenizer& tok, tokenizer::ChatTemplate chat_template,
                                    std::string_view prompt, std::string_view plain_template,
                                    std::string_view system);

absl::StatusOr<model::ModelConfig> PolicyModelConfig(const RunConfig& cfg, int64_t vocab_size);

// Loads model.path, or builds the demo tokenizer and a freshly initialised model
// (seeded by `seed`). Errors name the file or config field at fault.
absl::StatusOr<std::unique_ptr<Policy>> BuildPolicy(const RunConfig& cfg, uint64_t seed);

// The model input for a task's prompt: the chat template (or <bos> + prompt template
// for the demo tokenizer) applied and encoded.
std::vector<int64_t> EncodePrompt(const Policy& policy, const std::string& prompt);

// Weights as a safetensors blob (tensor names as Hugging Face writes them), tagged
// with the version in the metadata.
// `floating`: the dtype the floating-point tensors are sent in (the receivers': an actor
// in bf16 gets bf16 bytes, half of fp32's); the model's own tensors stay as they are.
std::string WeightsToBlob(const model::Transformer& model, uint64_t version,
                          torch::ScalarType floating = torch::kFloat);
// Loads a blob made by WeightsToBlob; errors name the tensor that does not fit.
absl::Status LoadWeightsBlob(model::Transformer& model, std::string_view blob);

}  // namespace grpo

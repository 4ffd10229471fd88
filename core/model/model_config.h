// ModelConfig: the shape of a Llama / Qwen2 family decoder-only transformer.
//
// Field names match the Hugging Face config.json keys, so a config written by
// ToJson() can be read by transformers and a Hugging Face config.json can be
// read by FromJson(). Plain value type; safe to copy between threads.
#ifndef GRPO_CORE_MODEL_MODEL_CONFIG_H_
#define GRPO_CORE_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace grpo::model {

struct ModelConfig {
  std::string model_type = "llama";  // "llama" or "qwen2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  // True when q/k/v projections carry a bias (Qwen2 does, Llama does not).
  bool attention_bias = false;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }

  // Checks positive sizes, hidden_size % heads == 0, heads % kv_heads == 0
  // and a known model_type. The message names the offending field.
  absl::Status Validate() const;

  // Hugging Face config.json shape, including "architectures" and
  // "torch_dtype": "float32".
  nlohmann::json ToJson() const;

  // Reads a Hugging Face config.json. Required: vocab_size, hidden_size,
  // intermediate_size, num_hidden_layers, num_attention_heads. Optional with
  // defaults: model_type ("llama"), num_key_value_heads (= attention heads),
  // max_position_embeddings (2048), rope_theta, rms_norm_eps,
  // tie_word_embeddings, attention_bias (true for qwen2 unless given).
  // The result is validated.
  static absl::StatusOr<ModelConfig> FromJson(const nlohmann::json& json);
};

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_MODEL_CONFIG_H_

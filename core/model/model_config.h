// ModelConfig: the shape of a Llama / Qwen2 / Qwen3 decoder-only transformer.
//
// Field names match the Hugging Face config.json keys, so a config written by
// ToJson() loads in transformers unchanged and a Hugging Face config.json
// (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM) reads with
// FromJson(). Missing optional keys take the defaults of transformers'
// LlamaConfig / Qwen2Config / Qwen3Config. Plain value type; safe to copy
// between threads.
#ifndef GRPO_CORE_MODEL_MODEL_CONFIG_H_
#define GRPO_CORE_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace grpo::model {

// config.json "rope_scaling": how the rotary inverse frequencies are rescaled
// for a longer context. Only the two kinds the supported checkpoints use.
struct RopeScaling {
  // "linear": inv_freq / factor.
  // "llama3": Llama 3.1 / 3.2 frequency-dependent scaling (transformers'
  //           _compute_llama3_parameters), using all fields below.
  std::string rope_type;
  double factor = 1.0;
  double low_freq_factor = 1.0;                     // llama3 only
  double high_freq_factor = 4.0;                    // llama3 only
  int64_t original_max_position_embeddings = 8192;  // llama3 only

  bool operator==(const RopeScaling& other) const;
  bool operator!=(const RopeScaling& other) const { return !(*this == other); }
};

struct ModelConfig {
  std::string model_type = "llama";  // "llama", "qwen2" or "qwen3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t max_position_embeddings = 0;
  // config.json "head_dim", which may differ from hidden_size /
  // num_attention_heads (Qwen3-0.6B: 128 with hidden 1024 and 16 heads);
  // 0 = unset (hidden / heads). Read it through head_dim().
  int64_t head_dim_value = 0;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;  // null in config.json: none
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  // q/k/v (and, for llama/qwen3, o_proj) projections carry a bias. Qwen2
  // always has the q/k/v bias (its o_proj never does); qwen3 and llama
  // default to none.
  bool attention_bias = false;
  // gate/up/down projections carry a bias (llama only; default none).
  bool mlp_bias = false;
  // Dtype the weights are stored in: "float32", "bfloat16", "float16" or
  // "float64". Informational: loading picks the model dtype separately.
  std::string torch_dtype = "float32";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_id;  // config.json: an int or a list
  // Qwen2/Qwen3 sliding-window attention. Recorded so configs round-trip;
  // Validate() rejects a config in which it would actually apply.
  bool use_sliding_window = false;
  std::optional<int64_t> sliding_window;
  int64_t max_window_layers = 28;

  // Per-head size D: head_dim_value when set, else hidden / heads.
  int64_t head_dim() const {
    return head_dim_value > 0 ? head_dim_value
                              : hidden_size / num_attention_heads;
  }

  // Checks positive sizes, a known model_type, hidden_size % heads == 0
  // (unless head_dim is explicit), even head_dim, heads % kv_heads == 0,
  // a supported rope_scaling and no active sliding window. The message names
  // the offending field.
  absl::Status Validate() const;

  // Hugging Face config.json: the keys transformers writes for this
  // model_type ("architectures", "model_type", "torch_dtype", "head_dim",
  // "rope_scaling", "bos_token_id", "eos_token_id", "hidden_act": "silu",
  // "use_cache", "transformers_version", ...). FromJson(ToJson(c)) == c.
  nlohmann::json ToJson() const;

  // Reads a Hugging Face config.json. Required: vocab_size, hidden_size,
  // intermediate_size, num_hidden_layers, num_attention_heads. model_type is
  // inferred from "architectures" when missing (and "llama" when both are);
  // an unknown model_type or architecture is an error naming it, as is
  // hidden_act other than "silu" or an unsupported rope_scaling.rope_type.
  // Other fields default as in transformers. The result is validated.
  static absl::StatusOr<ModelConfig> FromJson(const nlohmann::json& json);

  // Field-wise equality; head_dim compares head_dim(), so an explicit
  // head_dim equal to hidden / heads equals an unset one.
  bool operator==(const ModelConfig& other) const;
  bool operator!=(const ModelConfig& other) const { return !(*this == other); }
};

// "LlamaForCausalLM" for "llama", etc.; empty for an unknown model_type.
std::string ArchitectureOf(const std::string& model_type);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_MODEL_CONFIG_H_

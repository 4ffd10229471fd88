#include "core/model/presets.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace grpo::model {

std::vector<std::string> PresetNames() { return {"tiny", "small", "0.5b"}; }

absl::StatusOr<ModelConfig> PresetConfig(const std::string& arch, const std::string& preset, int64_t vocab_size) {
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3") {
    return absl::InvalidArgumentError(absl::StrCat("unknown architecture \"", arch, "\" (known: llama, qwen2, qwen3)"));
  }
  ModelConfig c;
  c.model_type = arch;
  c.vocab_size = vocab_size;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  c.attention_bias = arch == "qwen2";
  if (preset == "tiny") {
    c.hidden_size = 64;
    c.intermediate_size = 192;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 1024;
  } else if (preset == "small") {
    c.hidden_size = 512;
    c.intermediate_size = 1536;
    c.num_hidden_layers = 8;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 4096;
  } else if (preset == "0.5b") {
    // The shape of Qwen2.5-0.5B (head_dim 64, 14 query and 2 key/value heads), for
    // benchmarks with random weights; its vocabulary is 151936.
    c.hidden_size = 896;
    c.intermediate_size = 4864;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 14;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 32768;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown preset \"", preset, "\" (known: ", absl::StrJoin(PresetNames(), ", "), ")"));
  }
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  return c;
}

}  // namespace grpo::model

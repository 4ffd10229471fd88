#include "core/model/model_config.h"

#include "absl/strings/str_cat.h"

namespace grpo::model {
namespace {

// Reads json[key] into *out. Missing key: error if required, else leaves *out.
// Wrong JSON type: always an error naming the key and the expected type.
template <typename T>
absl::Status ReadField(const nlohmann::json& json, const char* key,
                       bool required, T* out) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) {
    if (required) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: missing required field \"", key, "\""));
    }
    return absl::OkStatus();
  }
  bool type_ok = false;
  const char* expected = "";
  if constexpr (std::is_same_v<T, bool>) {
    type_ok = it->is_boolean();
    expected = "a boolean";
  } else if constexpr (std::is_integral_v<T>) {
    type_ok = it->is_number_integer();
    expected = "an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    type_ok = it->is_number();
    expected = "a number";
  } else {
    type_ok = it->is_string();
    expected = "a string";
  }
  if (!type_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: field \"", key, "\" must be ", expected, ", got ",
        it->dump()));
  }
  *out = it->get<T>();
  return absl::OkStatus();
}

absl::Status MustBePositive(const char* name, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "model config: \"", name, "\" must be positive, got ", value));
}

}  // namespace

absl::Status ModelConfig::Validate() const {
  if (model_type != "llama" && model_type != "qwen2") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: \"model_type\" must be \"llama\" or \"qwen2\", got \"",
        model_type, "\""));
  }
  for (const auto& [name, value] : {
           std::pair<const char*, int64_t>{"vocab_size", vocab_size},
           {"hidden_size", hidden_size},
           {"intermediate_size", intermediate_size},
           {"num_hidden_layers", num_hidden_layers},
           {"num_attention_heads", num_attention_heads},
           {"num_key_value_heads", num_key_value_heads},
           {"max_position_embeddings", max_position_embeddings}}) {
    if (absl::Status s = MustBePositive(name, value); !s.ok()) return s;
  }
  if (hidden_size % num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: \"hidden_size\" (", hidden_size,
        ") must be divisible by \"num_attention_heads\" (",
        num_attention_heads, ")"));
  }
  if (head_dim() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: head_dim = hidden_size / num_attention_heads = ",
        head_dim(), " must be even for rotary embeddings"));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: \"num_attention_heads\" (", num_attention_heads,
        ") must be divisible by \"num_key_value_heads\" (",
        num_key_value_heads, ")"));
  }
  if (!(rope_theta > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: \"rope_theta\" must be positive, got ", rope_theta));
  }
  if (!(rms_norm_eps > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: \"rms_norm_eps\" must be positive, got ",
        rms_norm_eps));
  }
  return absl::OkStatus();
}

nlohmann::json ModelConfig::ToJson() const {
  nlohmann::json json;
  json["architectures"] = {model_type == "qwen2" ? "Qwen2ForCausalLM"
                                                 : "LlamaForCausalLM"};
  json["model_type"] = model_type;
  json["vocab_size"] = vocab_size;
  json["hidden_size"] = hidden_size;
  json["intermediate_size"] = intermediate_size;
  json["num_hidden_layers"] = num_hidden_layers;
  json["num_attention_heads"] = num_attention_heads;
  json["num_key_value_heads"] = num_key_value_heads;
  json["max_position_embeddings"] = max_position_embeddings;
  json["rope_theta"] = rope_theta;
  json["rms_norm_eps"] = rms_norm_eps;
  json["tie_word_embeddings"] = tie_word_embeddings;
  json["attention_bias"] = attention_bias;
  json["hidden_act"] = "silu";
  json["torch_dtype"] = "float32";
  return json;
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const nlohmann::json& json) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        "model config: expected a JSON object, got " +
        std::string(json.type_name()));
  }
  ModelConfig c;
  c.max_position_embeddings = 2048;
  absl::Status s;
  auto read = [&](const char* key, bool required, auto* out) {
    if (s.ok()) s = ReadField(json, key, required, out);
  };
  read("model_type", false, &c.model_type);
  read("vocab_size", true, &c.vocab_size);
  read("hidden_size", true, &c.hidden_size);
  read("intermediate_size", true, &c.intermediate_size);
  read("num_hidden_layers", true, &c.num_hidden_layers);
  read("num_attention_heads", true, &c.num_attention_heads);
  c.num_key_value_heads = c.num_attention_heads;  // HF default: plain MHA
  read("num_key_value_heads", false, &c.num_key_value_heads);
  read("max_position_embeddings", false, &c.max_position_embeddings);
  read("rope_theta", false, &c.rope_theta);
  read("rms_norm_eps", false, &c.rms_norm_eps);
  read("tie_word_embeddings", false, &c.tie_word_embeddings);
  // Qwen2 configs do not spell out the q/k/v bias: the architecture has it.
  c.attention_bias = (c.model_type == "qwen2");
  read("attention_bias", false, &c.attention_bias);
  if (!s.ok()) return s;
  if (s = c.Validate(); !s.ok()) return s;
  return c;
}

}  // namespace grpo::model

#include "core/model/model_config.h"

#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace grpo::model {
namespace {

// The transformers release whose config.json layout ToJson() follows (the
// first with Qwen3).
constexpr char kTransformersVersion[] = "4.51.3";

struct Architecture {
  const char* model_type;
  const char* class_name;
};
constexpr Architecture kArchitectures[] = {
    {"llama", "LlamaForCausalLM"},
    {"qwen2", "Qwen2ForCausalLM"},
    {"qwen3", "Qwen3ForCausalLM"},
};

std::string ModelTypeOfArchitecture(const std::string& class_name) {
  for (const Architecture& a : kArchitectures) {
    if (class_name == a.class_name) return a.model_type;
  }
  return "";
}

bool IsQwen(const std::string& model_type) {
  return model_type == "qwen2" || model_type == "qwen3";
}

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError("model config: " + message);
}

// Reads json[key] into *out. Missing or null key: error if required, else
// leaves *out. Wrong JSON type: always an error naming the key (with
// `prefix`, e.g. "rope_scaling.") and the expected type.
template <typename T>
absl::Status ReadField(const nlohmann::json& json, const char* key,
                       bool required, T* out, const char* prefix = "") {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) {
    if (required) {
      return Invalid(absl::StrCat("missing required field \"", prefix, key, "\""));
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
    return Invalid(absl::StrCat("field \"", prefix, key, "\" must be ", expected,
                                ", got ", it->dump()));
  }
  *out = it->get<T>();
  return absl::OkStatus();
}

// An optional integer field: absent leaves *out; null clears it.
absl::Status ReadOptionalInt(const nlohmann::json& json, const char* key,
                             std::optional<int64_t>* out) {
  auto it = json.find(key);
  if (it == json.end()) return absl::OkStatus();
  if (it->is_null()) {
    out->reset();
    return absl::OkStatus();
  }
  if (!it->is_number_integer()) {
    return Invalid(absl::StrCat("field \"", key, "\" must be an integer or null, got ",
                                it->dump()));
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

// "eos_token_id": an int, a list of ints, or null. Absent leaves *out.
absl::Status ReadTokenIds(const nlohmann::json& json, const char* key,
                          std::vector<int64_t>* out) {
  auto it = json.find(key);
  if (it == json.end()) return absl::OkStatus();
  out->clear();
  if (it->is_null()) return absl::OkStatus();
  if (it->is_number_integer()) {
    out->push_back(it->get<int64_t>());
    return absl::OkStatus();
  }
  if (it->is_array()) {
    for (const nlohmann::json& id : *it) {
      if (!id.is_number_integer()) {
        return Invalid(absl::StrCat("field \"", key,
                                    "\" must be an integer or a list of integers, got ",
                                    it->dump()));
      }
      out->push_back(id.get<int64_t>());
    }
    return absl::OkStatus();
  }
  return Invalid(absl::StrCat("field \"", key,
                              "\" must be an integer or a list of integers, got ",
                              it->dump()));
}

// config.json "rope_scaling": null, or an object with "rope_type" (older
// configs: "type"). "default" means no scaling, as in transformers. transformers 5
// writes "rope_parameters" instead (the same keys, plus rope_theta), read the same way.
absl::Status ReadRopeScaling(const nlohmann::json& json,
                             std::optional<RopeScaling>* out) {
  const char* key = json.contains("rope_scaling") || !json.contains("rope_parameters") ? "rope_scaling"
                                                                                      : "rope_parameters";
  const std::string prefix = absl::StrCat(key, ".");
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) {
    return Invalid(absl::StrCat("field \"", key, "\" must be an object or null, got ", it->dump()));
  }
  const nlohmann::json& rs = *it;
  RopeScaling scaling;
  const char* type_key = rs.contains("rope_type") ? "rope_type" : "type";
  if (!rs.contains(type_key) && std::string(key) == "rope_parameters") return absl::OkStatus();
  absl::Status s = ReadField(rs, type_key, /*required=*/true, &scaling.rope_type,
                             prefix.c_str());
  if (!s.ok()) return s;
  if (scaling.rope_type == "default") return absl::OkStatus();
  if (scaling.rope_type != "linear" && scaling.rope_type != "llama3") {
    return Invalid(absl::StrCat(prefix, "rope_type \"", scaling.rope_type,
                                "\" is not supported (supported: linear, llama3)"));
  }
  s = ReadField(rs, "factor", true, &scaling.factor, prefix.c_str());
  if (s.ok() && scaling.rope_type == "llama3") {
    s = ReadField(rs, "low_freq_factor", true, &scaling.low_freq_factor,
                  prefix.c_str());
    if (s.ok()) {
      s = ReadField(rs, "high_freq_factor", true, &scaling.high_freq_factor,
                    prefix.c_str());
    }
    if (s.ok()) {
      s = ReadField(rs, "original_max_position_embeddings", true,
                    &scaling.original_max_position_embeddings, prefix.c_str());
    }
  }
  if (!s.ok()) return s;
  *out = scaling;
  return absl::OkStatus();
}

nlohmann::json RopeScalingJson(const std::optional<RopeScaling>& scaling) {
  if (!scaling) return nullptr;
  nlohmann::json json = {{"rope_type", scaling->rope_type},
                         {"factor", scaling->factor}};
  if (scaling->rope_type == "llama3") {
    json["low_freq_factor"] = scaling->low_freq_factor;
    json["high_freq_factor"] = scaling->high_freq_factor;
    json["original_max_position_embeddings"] =
        scaling->original_max_position_embeddings;
  }
  return json;
}

absl::Status MustBePositive(const char* name, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return Invalid(absl::StrCat("\"", name, "\" must be positive, got ", value));
}

absl::Status ValidateRopeScaling(const RopeScaling& rs) {
  if (rs.rope_type != "linear" && rs.rope_type != "llama3") {
    return Invalid(absl::StrCat("rope_scaling.rope_type \"", rs.rope_type,
                                "\" is not supported (supported: linear, llama3)"));
  }
  if (!(rs.factor > 0)) {
    return Invalid(absl::StrCat("rope_scaling.factor must be positive, got ", rs.factor));
  }
  if (rs.rope_type == "llama3") {
    if (!(rs.low_freq_factor > 0) || !(rs.high_freq_factor > rs.low_freq_factor)) {
      return Invalid(absl::StrCat(
          "rope_scaling.low_freq_factor (", rs.low_freq_factor,
          ") must be positive and below rope_scaling.high_freq_factor (",
          rs.high_freq_factor, ")"));
    }
    if (rs.original_max_position_embeddings <= 0) {
      return Invalid(absl::StrCat(
          "rope_scaling.original_max_position_embeddings must be positive, got ",
          rs.original_max_position_embeddings));
    }
  }
  return absl::OkStatus();
}

// Defaults of ModelConfig's fields before they are reset per model type.
const ModelConfig& DefaultConfig() {
  static const ModelConfig* config = new ModelConfig();
  return *config;
}

}  // namespace

std::string ArchitectureOf(const std::string& model_type) {
  for (const Architecture& a : kArchitectures) {
    if (model_type == a.model_type) return a.class_name;
  }
  return "";
}

bool RopeScaling::operator==(const RopeScaling& o) const {
  return std::tie(rope_type, factor, low_freq_factor, high_freq_factor,
                  original_max_position_embeddings) ==
         std::tie(o.rope_type, o.factor, o.low_freq_factor, o.high_freq_factor,
                  o.original_max_position_embeddings);
}

bool ModelConfig::operator==(const ModelConfig& o) const {
  auto fields = [](const ModelConfig& c) {
    return std::make_tuple(
        c.model_type, c.vocab_size, c.hidden_size, c.intermediate_size,
        c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
        c.max_position_embeddings, c.head_dim(), c.rope_theta, c.rope_scaling,
        c.rms_norm_eps, c.tie_word_embeddings, c.attention_bias, c.mlp_bias,
        c.torch_dtype, c.bos_token_id, c.eos_token_id, c.use_sliding_window,
        c.sliding_window, c.max_window_layers);
  };
  return fields(*this) == fields(o);
}

absl::Status ModelConfig::Validate() const {
  if (ArchitectureOf(model_type).empty()) {
    return Invalid(absl::StrCat("\"model_type\" \"", model_type,
                                "\" is not supported (supported: llama, qwen2, qwen3)"));
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
  if (head_dim_value < 0) {
    return Invalid(absl::StrCat("\"head_dim\" must be positive, got ", head_dim_value));
  }
  if (head_dim_value == 0 && hidden_size % num_attention_heads != 0) {
    return Invalid(absl::StrCat("\"hidden_size\" (", hidden_size,
                                ") must be divisible by \"num_attention_heads\" (",
                                num_attention_heads, ") unless \"head_dim\" is given"));
  }
  if (head_dim() % 2 != 0) {
    return Invalid(absl::StrCat("\"head_dim\" (", head_dim(),
                                ") must be even for rotary embeddings"));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return Invalid(absl::StrCat("\"num_attention_heads\" (", num_attention_heads,
                                ") must be divisible by \"num_key_value_heads\" (",
                                num_key_value_heads, ")"));
  }
  if (!(rope_theta > 0)) {
    return Invalid(absl::StrCat("\"rope_theta\" must be positive, got ", rope_theta));
  }
  if (rope_scaling) {
    if (absl::Status s = ValidateRopeScaling(*rope_scaling); !s.ok()) return s;
  }
  if (!(rms_norm_eps > 0)) {
    return Invalid(absl::StrCat("\"rms_norm_eps\" must be positive, got ", rms_norm_eps));
  }
  if (model_type == "qwen2" && !attention_bias) {
    return Invalid("\"attention_bias\" must be true for qwen2 (its q/k/v projections always have a bias)");
  }
  if (mlp_bias && model_type != "llama") {
    return Invalid(absl::StrCat("\"mlp_bias\" is only supported for llama, not ", model_type));
  }
  if (torch_dtype != "float32" && torch_dtype != "bfloat16" &&
      torch_dtype != "float16" && torch_dtype != "float64") {
    return Invalid(absl::StrCat("\"torch_dtype\" \"", torch_dtype,
                                "\" is not supported (float32, bfloat16, float16, float64)"));
  }
  if (use_sliding_window) {
    if (!IsQwen(model_type)) {
      return Invalid(absl::StrCat("\"use_sliding_window\" is not supported for ", model_type));
    }
    // transformers applies the window to layers >= max_window_layers.
    if (sliding_window && max_window_layers < num_hidden_layers) {
      return Invalid(absl::StrCat(
          "sliding-window attention is not supported: \"use_sliding_window\" is true with "
          "\"sliding_window\" ", *sliding_window, " on layers from \"max_window_layers\" ",
          max_window_layers, " of ", num_hidden_layers));
    }
  }
  return absl::OkStatus();
}

nlohmann::json ModelConfig::ToJson() const {
  nlohmann::json json;
  json["architectures"] = {ArchitectureOf(model_type)};
  json["model_type"] = model_type;
  json["vocab_size"] = vocab_size;
  json["hidden_size"] = hidden_size;
  json["intermediate_size"] = intermediate_size;
  json["num_hidden_layers"] = num_hidden_layers;
  json["num_attention_heads"] = num_attention_heads;
  json["num_key_value_heads"] = num_key_value_heads;
  json["max_position_embeddings"] = max_position_embeddings;
  json["rope_theta"] = rope_theta;
  json["rope_scaling"] = RopeScalingJson(rope_scaling);
  json["rms_norm_eps"] = rms_norm_eps;
  json["tie_word_embeddings"] = tie_word_embeddings;
  json["hidden_act"] = "silu";
  json["attention_dropout"] = 0.0;
  json["initializer_range"] = 0.02;
  json["use_cache"] = true;
  json["torch_dtype"] = torch_dtype;
  json["transformers_version"] = kTransformersVersion;
  json["bos_token_id"] = bos_token_id ? nlohmann::json(*bos_token_id) : nullptr;
  if (eos_token_id.empty()) {
    json["eos_token_id"] = nullptr;
  } else if (eos_token_id.size() == 1) {
    json["eos_token_id"] = eos_token_id[0];
  } else {
    json["eos_token_id"] = eos_token_id;
  }
  // Qwen2's q/k/v bias is implied by the architecture (no config key).
  if (model_type != "qwen2") json["attention_bias"] = attention_bias;
  // LlamaConfig and Qwen3Config always write head_dim (Qwen3's default, 128,
  // is rarely hidden / heads); Qwen2Config only knows it when given.
  if (model_type != "qwen2" || head_dim_value > 0) json["head_dim"] = head_dim();
  if (model_type == "llama") {
    json["mlp_bias"] = mlp_bias;
    json["pretraining_tp"] = 1;
  }
  const ModelConfig& d = DefaultConfig();
  if (IsQwen(model_type) || use_sliding_window != d.use_sliding_window ||
      sliding_window != d.sliding_window ||
      max_window_layers != d.max_window_layers) {
    json["use_sliding_window"] = use_sliding_window;
    json["sliding_window"] = sliding_window ? nlohmann::json(*sliding_window) : nullptr;
    json["max_window_layers"] = max_window_layers;
  }
  return json;
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const nlohmann::json& json) {
  if (!json.is_object()) {
    return Invalid("expected a JSON object, got " + std::string(json.type_name()));
  }
  ModelConfig c;
  absl::Status s;

  // Architecture: "model_type", checked against "architectures".
  std::string from_architectures;
  if (auto it = json.find("architectures"); it != json.end() && !it->is_null()) {
    if (!it->is_array() || it->empty()) {
      return Invalid("field \"architectures\" must be a non-empty list, got " + it->dump());
    }
    for (const nlohmann::json& name : *it) {
      const std::string type =
          name.is_string() ? ModelTypeOfArchitecture(name.get<std::string>()) : "";
      if (type.empty()) {
        return Invalid(absl::StrCat(
            "unknown architecture ", name.dump(),
            " in \"architectures\" (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
            "Qwen3ForCausalLM)"));
      }
      if (from_architectures.empty()) from_architectures = type;
    }
  }
  c.model_type = from_architectures.empty() ? "llama" : from_architectures;
  if (s = ReadField(json, "model_type", false, &c.model_type); !s.ok()) return s;
  if (ArchitectureOf(c.model_type).empty()) {
    return Invalid(absl::StrCat("\"model_type\" \"", c.model_type,
                                "\" is not supported (supported: llama, qwen2, qwen3)"));
  }
  if (!from_architectures.empty() && from_architectures != c.model_type) {
    return Invalid(absl::StrCat("\"architectures\" names ",
                                ArchitectureOf(from_architectures),
                                " but \"model_type\" is \"", c.model_type, "\""));
  }
  std::string hidden_act = "silu";
  if (s = ReadField(json, "hidden_act", false, &hidden_act); !s.ok()) return s;
  if (hidden_act != "silu") {
    return Invalid(absl::StrCat("\"hidden_act\" \"", hidden_act,
                                "\" is not supported (only \"silu\")"));
  }

  // transformers' per-architecture defaults.
  const bool qwen = IsQwen(c.model_type);
  c.max_position_embeddings = qwen ? 32768 : 2048;
  if (c.model_type == "qwen3") c.head_dim_value = 128;
  c.attention_bias = (c.model_type == "qwen2");
  if (!qwen) {
    c.bos_token_id = 1;
    c.eos_token_id = {2};
  }

  auto read = [&](const char* key, bool required, auto* out) {
    if (s.ok()) s = ReadField(json, key, required, out);
  };
  read("vocab_size", true, &c.vocab_size);
  read("hidden_size", true, &c.hidden_size);
  read("intermediate_size", true, &c.intermediate_size);
  read("num_hidden_layers", true, &c.num_hidden_layers);
  read("num_attention_heads", true, &c.num_attention_heads);
  c.num_key_value_heads = c.num_attention_heads;  // HF default: plain MHA
  read("num_key_value_heads", false, &c.num_key_value_heads);
  read("max_position_embeddings", false, &c.max_position_embeddings);
  read("head_dim", false, &c.head_dim_value);
  read("rope_theta", false, &c.rope_theta);
  // transformers 5: rope_theta inside "rope_parameters".
  if (s.ok() && !json.contains("rope_theta") && json.contains("rope_parameters") &&
      json["rope_parameters"].is_object()) {
    s = ReadField(json["rope_parameters"], "rope_theta", false, &c.rope_theta, "rope_parameters.");
  }
  read("rms_norm_eps", false, &c.rms_norm_eps);
  read("tie_word_embeddings", false, &c.tie_word_embeddings);
  read("attention_bias", false, &c.attention_bias);
  read("mlp_bias", false, &c.mlp_bias);
  // transformers >= 4.56 writes "dtype" in place of "torch_dtype".
  read(json.contains("torch_dtype") ? "torch_dtype" : "dtype", false, &c.torch_dtype);
  read("use_sliding_window", false, &c.use_sliding_window);
  read("max_window_layers", false, &c.max_window_layers);
  if (s.ok()) s = ReadOptionalInt(json, "sliding_window", &c.sliding_window);
  if (s.ok()) s = ReadOptionalInt(json, "bos_token_id", &c.bos_token_id);
  if (s.ok()) s = ReadTokenIds(json, "eos_token_id", &c.eos_token_id);
  if (s.ok()) s = ReadRopeScaling(json, &c.rope_scaling);
  if (!s.ok()) return s;
  if (s = c.Validate(); !s.ok()) return s;
  return c;
}

}  // namespace grpo::model

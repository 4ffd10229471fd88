#include "core/model/hf_model.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/atomic_file.h"
#include "core/model/safetensors.h"
#include "nlohmann/json.hpp"

namespace grpo::model {
namespace {

namespace fs = std::filesystem;

constexpr char kConfigFile[] = "config.json";
constexpr char kGenerationConfigFile[] = "generation_config.json";

std::string Join(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

// config.json's torch_dtype for a parameter dtype; empty if it has none.
std::string TorchDtypeName(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    default: return "";
  }
}

// The weights in `dir` (single file or sharded), with each tensor's file.
absl::StatusOr<TensorMap> ReadCheckpoint(const std::string& dir, TensorSources* sources) {
  const std::string single = Join(dir, kSafetensorsSingleFile);
  const std::string index = Join(dir, kSafetensorsIndexFile);
  std::error_code ec;
  if (fs::exists(single, ec)) {
    absl::StatusOr<TensorMap> tensors = ReadSafetensorsFile(single);
    if (!tensors.ok()) return tensors.status();
    for (const auto& [name, tensor] : *tensors) (*sources)[name] = single;
    return tensors;
  }
  if (fs::exists(index, ec)) return ReadSafetensorsIndex(index, sources);
  return absl::NotFoundError(absl::StrCat(
      dir, ": no ", kSafetensorsSingleFile, " or ", kSafetensorsIndexFile,
      " (only safetensors checkpoints are supported; convert pytorch_model.bin first)"));
}

// Checkpoint tensors a model without them still accepts: rotary buffers some
// exporters include, and lm_head.weight of a tied model (transformers ties
// it to the embeddings whatever the file holds).
std::function<bool(const std::string&)> IgnoredTensors(const ModelConfig& config) {
  const bool tied = config.tie_word_embeddings;
  return [tied](const std::string& name) {
    return absl::EndsWith(name, ".rotary_emb.inv_freq") ||
           (tied && name == "lm_head.weight");
  };
}

absl::Status LoadWeights(Transformer& model, const std::string& dir) {
  TensorSources sources;
  absl::StatusOr<TensorMap> tensors = ReadCheckpoint(dir, &sources);
  if (!tensors.ok()) return tensors.status();
  LoadStateDictOptions options;
  options.sources = &sources;
  options.origin = dir;
  options.ignore_unexpected = IgnoredTensors(model->config());
  return LoadStateDict(*model, *tensors, options);
}

// Removes weight files in `dir` left from an earlier save (a single file
// after a sharded save, or shards of another count) that `written` lacks.
void RemoveStaleWeightFiles(const std::string& dir, const std::vector<std::string>& written) {
  static const std::regex kShard(R"(model-\d{5}-of-\d{5}\.safetensors)");
  const std::set<std::string> keep(written.begin(), written.end());
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name == kSafetensorsSingleFile || name == kSafetensorsIndexFile ||
                      std::regex_match(name, kShard);
    if (ours && !keep.count(name)) fs::remove(entry.path(), ec);
  }
}

}  // namespace

absl::StatusOr<ModelConfig> LoadConfigFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(path + ": cannot open the model config");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  absl::StatusOr<ModelConfig> config = ModelConfig::FromJson(json);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

absl::StatusOr<Transformer> LoadPretrained(const std::string& dir, const LoadOptions& options) {
  absl::StatusOr<ModelConfig> config = LoadConfigFile(Join(dir, kConfigFile));
  if (!config.ok()) return config.status();
  const std::string dtype_name = TorchDtypeName(options.dtype);
  if (dtype_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LoadPretrained: dtype ", c10::toString(options.dtype),
        " is not a floating-point dtype (use float32 or bfloat16)"));
  }
  config->torch_dtype = dtype_name;  // the config describes the loaded model
  try {
    Transformer model(*config);
    model->to(options.device, options.dtype);
    if (absl::Status s = LoadWeights(model, dir); !s.ok()) return s;
    model->eval();
    return model;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": building the model failed: ",
                                            e.what_without_backtrace()));
  }
}

absl::Status LoadPretrainedWeights(Transformer& model, const std::string& dir) {
  try {
    return LoadWeights(model, dir);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": loading weights failed: ",
                                            e.what_without_backtrace()));
  }
}

absl::Status SavePretrained(const Transformer& model, const std::string& dir,
                            const SaveOptions& options) {
  try {
    const auto params = model->named_parameters(/*recurse=*/true);
    const torch::ScalarType model_dtype =
        params.is_empty() ? torch::kFloat32 : params.values()[0].scalar_type();
    const torch::ScalarType dtype = options.dtype.value_or(model_dtype);
    const std::string dtype_name = TorchDtypeName(dtype);
    if (dtype_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SavePretrained: dtype ", c10::toString(dtype),
          " is not a floating-point dtype (use float32 or bfloat16)"));
    }
    if (options.max_shard_bytes == 0) {
      return absl::InvalidArgumentError("SavePretrained: max_shard_bytes must be positive");
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return absl::UnavailableError(absl::StrCat(dir, ": cannot create: ", ec.message()));

    ModelConfig config = model->config();
    config.torch_dtype = dtype_name;
    absl::Status s =
        WriteFileAtomically(Join(dir, kConfigFile), config.ToJson().dump(2) + "\n");
    if (!s.ok()) return s;

    // What transformers' GenerationConfig.from_model_config writes.
    const nlohmann::json config_json = config.ToJson();
    nlohmann::json generation = {{"_from_model_config", true},
                                 {"transformers_version", config_json["transformers_version"]}};
    if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
    if (!config.eos_token_id.empty()) generation["eos_token_id"] = config_json["eos_token_id"];
    s = WriteFileAtomically(Join(dir, kGenerationConfigFile), generation.dump(2) + "\n");
    if (!s.ok()) return s;

    // Tensors in the saved dtype on the CPU. Parameters already so are not
    // copied: the writer streams them straight from the module.
    TensorMap tensors;
    for (const auto& item : params) {
      tensors[item.key()] = item.value().detach().to(torch::kCPU, dtype);
    }
    for (const auto& item : model->named_buffers(/*recurse=*/true)) {
      tensors[item.key()] = item.value().detach().to(torch::kCPU);
    }
    absl::StatusOr<std::vector<std::string>> written = WriteShardedSafetensors(
        dir, tensors, options.max_shard_bytes, {{"format", "pt"}});
    if (!written.ok()) return written.status();
    RemoveStaleWeightFiles(dir, *written);
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": saving the model failed: ",
                                            e.what_without_backtrace()));
  }
}

std::vector<int64_t> GenerationEosTokenIds(const std::string& dir, const ModelConfig& config) {
  std::vector<int64_t> ids = config.eos_token_id;
  std::ifstream in((fs::path(dir) / "generation_config.json").string());
  if (in) {
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("eos_token_id")) {
      const nlohmann::json& e = j["eos_token_id"];
      if (e.is_number_integer()) ids.push_back(e.get<int64_t>());
      if (e.is_array()) {
        for (const auto& x : e) {
          if (x.is_number_integer()) ids.push_back(x.get<int64_t>());
        }
      }
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace grpo::model

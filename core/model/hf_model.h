// Hugging Face model directories: loading and saving a Transformer in the
// layout transformers' from_pretrained / save_pretrained use.
//
//   config.json                     ModelConfig (model_config.h)
//   generation_config.json          bos / eos token ids (written only)
//   model.safetensors               all weights, or when sharded:
//   model.safetensors.index.json    + model-00001-of-0000N.safetensors ...
//
// Tensor names are transformers' (model.layers.0.self_attn.q_proj.weight,
// ...). Loading maps the safetensors files and copies each tensor once into
// the module, converting dtype and device on the way; it checks every tensor
// (present, right shape, convertible dtype, nothing unexpected) before
// copying any, so a failed load changes nothing. Errors name the file and the
// tensor or config field. Saving writes every file atomically (temporary file
// + rename); what it writes loads in transformers unchanged.
//
// Threads: the functions share no state; the model must not be changed by
// another thread while it is loaded into or saved.
#ifndef GRPO_CORE_MODEL_HF_MODEL_H_
#define GRPO_CORE_MODEL_HF_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/model_config.h"
#include "core/model/transformer.h"

namespace grpo::model {

struct LoadOptions {
  // The model's parameter dtype (floating point; F32 and BF16 are the usual
  // choices) whatever the checkpoint stores (F32, BF16, F16, F64).
  torch::ScalarType dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
};

struct SaveOptions {
  // Dtype written to disk; default: the model's own dtype.
  std::optional<torch::ScalarType> dtype;
  // Largest shard, in bytes; beyond it the weights are split into
  // model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json.
  // Default: transformers' "5GB" (5 * 10^9 bytes).
  uint64_t max_shard_bytes = 5'000'000'000;
};

// Reads and validates a config.json. Errors name the path and the field.
absl::StatusOr<ModelConfig> LoadConfigFile(const std::string& path);

// Builds the model `dir`/config.json describes and loads its weights
// (model.safetensors or the sharded index). The returned model is in eval
// mode, with options.dtype on options.device, and its config()'s torch_dtype
// names options.dtype. Tied models may lack lm_head.weight (and an
// lm_head.weight present in one is ignored, as transformers ties it);
// "*.rotary_emb.inv_freq" buffers some checkpoints carry are ignored.
absl::StatusOr<Transformer> LoadPretrained(const std::string& dir,
                                           const LoadOptions& options = {});

// Loads the weights in `dir` (model.safetensors or the sharded index) into
// an existing model of the same architecture, all or nothing: on error the
// model is unchanged. Does not read config.json.
absl::Status LoadPretrainedWeights(Transformer& model, const std::string& dir);

// Writes config.json (torch_dtype = the saved dtype), generation_config.json
// and the weights with safetensors metadata {"format": "pt"}, creating `dir`
// if needed. Tied models write no lm_head.weight. Weight files of an earlier
// save in `dir` that this save did not write (model.safetensors, the index,
// model-*-of-*.safetensors) are removed afterwards, as transformers does.
absl::Status SavePretrained(const Transformer& model, const std::string& dir,
                            const SaveOptions& options = {});

// The ids that end generation for the model in `dir`: config.eos_token_id plus
// generation_config.json's eos_token_id (an int or a list; Llama-3 Instruct lists
// <|eot_id|> only there), sorted and without repeats. A missing or unreadable
// generation_config.json adds nothing.
std::vector<int64_t> GenerationEosTokenIds(const std::string& dir, const ModelConfig& config);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_HF_MODEL_H_

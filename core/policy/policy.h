// The run's policy: the model and tokenizer a run config describes, how prompts become
// token ids, and how weights travel as safetensors blobs. Shared by actor and learner.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/config.h"
#include "core/model/model_config.h"
#include "core/model/tokenizer.h"
#include "core/model/transformer.h"

namespace grpo {

struct Policy {
  model::CharTokenizer tokenizer;
  model::Transformer model{nullptr};
  std::string prompt_template;
};

absl::StatusOr<model::ModelConfig> PolicyModelConfig(const RunConfig& cfg, int64_t vocab_size);

// Builds the tokenizer and a freshly initialised model (seeded by `seed`).
absl::StatusOr<std::unique_ptr<Policy>> BuildPolicy(const RunConfig& cfg, uint64_t seed);

// <bos> + the prompt template applied to `prompt`, as ids.
std::vector<int64_t> EncodePrompt(const Policy& policy, const std::string& prompt);

// Weights as a safetensors blob (tensor names as Hugging Face writes them), tagged
// with the version in the metadata.
std::string WeightsToBlob(const model::Transformer& model, uint64_t version);
// Loads a blob made by WeightsToBlob; errors name the tensor that does not fit.
absl::Status LoadWeightsBlob(model::Transformer& model, std::string_view blob);

}  // namespace grpo

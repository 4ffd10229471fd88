// Named model shapes for `grpo init-model`, the benchmarks and the demo.
//
//   tiny:  64 wide, 2 layers, 4 heads (2 key/value heads)   ~0.1 M parameters + embeddings
//   small: 512 wide, 8 layers, 8 heads (2 key/value heads)  ~24 M parameters + embeddings
//
// The shapes follow the Qwen2.5 family's proportions (grouped-query attention
// with 4 query heads per key/value head, SwiGLU at 3x width, rope_theta 1e6,
// tied embeddings), scaled down so they run on a laptop CPU.
#ifndef GRPO_CORE_MODEL_PRESETS_H_
#define GRPO_CORE_MODEL_PRESETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model_config.h"

namespace grpo::model {

// The config of preset `preset` ("tiny", "small" or "0.5b", the shape of Qwen2.5-0.5B) for architecture `arch`
// ("llama", "qwen2" or "qwen3") with the given vocabulary size. Errors name
// the unknown preset or architecture.
absl::StatusOr<ModelConfig> PresetConfig(const std::string& arch, const std::string& preset, int64_t vocab_size);

std::vector<std::string> PresetNames();

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_PRESETS_H_

#include "core/model/sampler.h"

#include <algorithm>
#include <limits>

#include <mutex>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/model/generator.h"

namespace grpo::model {

std::vector<SampledSequence> SampleGroup(Transformer& model,
                                         const std::vector<int64_t>& prompt_ids,
                                         int64_t group_size,
                                         const SamplingParams& params,
                                         at::Generator& gen) {
  TORCH_CHECK(!prompt_ids.empty(), "SampleGroup: the prompt is empty");
  TORCH_CHECK(group_size > 0, "SampleGroup: group_size must be positive, got ",
              group_size);
  uint64_t seed = 0;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
  }
  GeneratorOptions options;
  options.max_batch = group_size;
  Generator generator(model, options);
  auto result = generator.Generate({GenerationRequest{prompt_ids, group_size}},
                                   params, seed);
  TORCH_CHECK(result.ok(), "SampleGroup: ", std::string(result.status().message()));
  return std::move((*result)[0]);
}

torch::Tensor TokenLogprobs(const torch::Tensor& logits,
                            const torch::Tensor& targets, double temperature) {
  TORCH_CHECK(logits.dim() == 3 && targets.dim() == 2 &&
                  logits.size(0) == targets.size(0) &&
                  logits.size(1) == targets.size(1),
              "TokenLogprobs: expected logits (B, T, V) and targets (B, T), got ",
              logits.sizes(), " and ", targets.sizes());
  const double t = temperature == 0.0 ? 1.0 : temperature;
  torch::Tensor scaled = logits.to(torch::kFloat) / t;  // (B, T, V)
  torch::Tensor chosen =
      scaled.gather(-1, targets.unsqueeze(-1)).squeeze(-1);  // (B, T)
  return chosen - scaled.logsumexp(-1);                      // (B, T)
}

}  // namespace grpo::model

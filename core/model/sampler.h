// Sampling completions from a Transformer for GRPO rollouts.
//
// SampleGroup draws G completions of one prompt: the prompt is prefilled once
// (batch 1), its KV cache is copied to G rows, and the G rows are decoded
// together one token per step. Each sampled token's logprob under the
// sampling policy (temperature-scaled, full vocabulary, before top-k/top-p)
// is recorded; the learner recomputes the same quantity with TokenLogprobs.
//
// Reproducible: the same model, prompt, params and generator state give the
// same output. Not thread-safe with respect to `gen`; use one per thread.
#ifndef GRPO_CORE_MODEL_SAMPLER_H_
#define GRPO_CORE_MODEL_SAMPLER_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>

#include "core/model/transformer.h"

namespace grpo::model {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy (argmax)
  double top_p = 1.0;        // < 1: nucleus sampling
  int64_t top_k = 0;         // > 0: keep only the k most likely tokens
  int64_t max_new_tokens = 64;
  std::vector<int64_t> stop_token_ids;  // e.g. {eos}; the stop token is kept
};

struct SampledSequence {
  std::vector<int64_t> token_ids;  // completion only, without the prompt
  std::vector<float> logprobs;     // one per token in token_ids
  bool truncated = false;          // hit max_new_tokens without a stop token
};

// Samples `group_size` completions of `prompt_ids` (non-empty). Runs without
// autograd. Throws c10::Error on bad arguments (empty prompt, group_size < 1,
// negative temperature, top_p outside (0, 1]).
std::vector<SampledSequence> SampleGroup(Transformer& model,
                                         const std::vector<int64_t>& prompt_ids,
                                         int64_t group_size,
                                         const SamplingParams& params,
                                         at::Generator& gen);

// log_softmax(logits / temperature) gathered at `targets`; temperature 0 is
// treated as 1. logits: (B, T, V), targets: (B, T) int64 -> (B, T) float32.
// Differentiable: the learner uses it for the policy-gradient loss.
torch::Tensor TokenLogprobs(const torch::Tensor& logits,
                            const torch::Tensor& targets, double temperature);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_SAMPLER_H_

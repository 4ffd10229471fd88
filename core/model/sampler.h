// Sampling completions from a Transformer for GRPO rollouts.
//
// Sampling parameters and results shared with Generator (generator.h), which
// does the work. SampleGroup draws G completions of one prompt with a
// Generator (one prefill, G rows decoded together) seeded from `gen`. Each sampled token's logprob under the
// sampling policy (temperature-scaled, full vocabulary, before top-k/top-p)
// is recorded; the learner recomputes the same quantity with TokenLogprobs.
//
// Reproducible: the same model, prompt, params and generator state give the
// same output. Not thread-safe with respect to `gen`; use one per thread.
#ifndef GRPO_CORE_MODEL_SAMPLER_H_
#define GRPO_CORE_MODEL_SAMPLER_H_

#include <cstdint>
#include <string>
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
  // Generation also stops once the completion's bytes contain one of these
  // (Generator only). The token that completed the string is kept; the
  // string itself is left in the text for the caller to cut if it wants.
  std::vector<std::string> stop_strings;
};

enum class FinishReason {
  kStopToken,   // sampled one of stop_token_ids
  kStopString,  // the completion's bytes now contain a stop string
  kLength,      // max_new_tokens, or the model's context is full
};

struct SampledSequence {
  std::vector<int64_t> token_ids;  // completion only, without the prompt
  std::vector<float> logprobs;     // one per token in token_ids
  bool truncated = false;          // hit max_new_tokens without a stop token
  FinishReason finish_reason = FinishReason::kLength;
};

// "stop", "stop_string" or "length".
const char* FinishReasonName(FinishReason reason);

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

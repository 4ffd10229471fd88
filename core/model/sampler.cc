#include "core/model/sampler.h"

#include <algorithm>
#include <limits>

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

namespace grpo::model {
namespace {

// Logprob of each row's chosen token under log_softmax(logits) over the full
// vocabulary. logits: (N, V) float32, tokens: (N) int64 -> (N).
torch::Tensor ChosenLogprobs(const torch::Tensor& logits,
                             const torch::Tensor& tokens) {
  torch::Tensor chosen = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1);  // (N)
  return chosen - logits.logsumexp(-1);                                       // (N)
}

// Picks one token per row. logits: (N, V) float32 -> tokens (N) int64 and
// their sampling-policy logprobs (N).
std::pair<torch::Tensor, torch::Tensor> PickTokens(const torch::Tensor& logits,
                                                   const SamplingParams& params,
                                                   at::Generator& gen) {
  if (params.temperature == 0.0) {
    torch::Tensor tokens = logits.argmax(-1);          // (N)
    return {tokens, ChosenLogprobs(logits, tokens)};   // (N), (N)
  }
  torch::Tensor scaled = logits / params.temperature;  // (N, V)
  const int64_t V = scaled.size(-1);

  // Work in descending-probability order so top-k and top-p are prefixes.
  auto [sorted, order] = scaled.sort(-1, /*descending=*/true);  // (N, V) each
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (params.top_k > 0 && params.top_k < V) {
    sorted.narrow(-1, params.top_k, V - params.top_k).fill_(neg_inf);  // (N, V)
  }
  if (params.top_p < 1.0) {
    torch::Tensor probs = torch::softmax(sorted, -1);  // (N, V)
    // Mass of the strictly more likely tokens; a token is dropped once that
    // alone reaches top_p. The most likely token always stays (mass 0).
    torch::Tensor mass_before = probs.cumsum(-1) - probs;  // (N, V)
    sorted = sorted.masked_fill(mass_before >= params.top_p, neg_inf);  // (N, V)
  }
  torch::Tensor probs = torch::softmax(sorted, -1);  // (N, V)
  torch::Tensor rank = torch::multinomial(probs, /*num_samples=*/1,
                                          /*replacement=*/false, gen);  // (N, 1)
  torch::Tensor tokens = order.gather(-1, rank).squeeze(-1);            // (N)
  return {tokens, ChosenLogprobs(scaled, tokens)};                      // (N), (N)
}

}  // namespace

std::vector<SampledSequence> SampleGroup(Transformer& model,
                                         const std::vector<int64_t>& prompt_ids,
                                         int64_t group_size,
                                         const SamplingParams& params,
                                         at::Generator& gen) {
  TORCH_CHECK(!prompt_ids.empty(), "SampleGroup: the prompt is empty");
  TORCH_CHECK(group_size > 0, "SampleGroup: group_size must be positive, got ",
              group_size);
  TORCH_CHECK(params.temperature >= 0.0,
              "SampleGroup: temperature must be >= 0, got ", params.temperature);
  TORCH_CHECK(params.top_p > 0.0 && params.top_p <= 1.0,
              "SampleGroup: top_p must lie in (0, 1], got ", params.top_p);
  TORCH_CHECK(params.max_new_tokens >= 0,
              "SampleGroup: max_new_tokens must be >= 0, got ",
              params.max_new_tokens);

  std::vector<SampledSequence> out(group_size);
  if (params.max_new_tokens == 0) {
    for (SampledSequence& seq : out) seq.truncated = true;
    return out;
  }

  c10::InferenceMode inference_mode;
  const int64_t P = static_cast<int64_t>(prompt_ids.size());
  const auto& weight = model->model->embed_tokens->weight;
  const torch::Device device = weight.device();

  // Prefill the prompt once, then share its cache across the group.
  torch::Tensor prompt =
      torch::tensor(prompt_ids, torch::kInt64).view({1, P}).to(device);  // (1, P)
  KVCache prompt_cache = KVCache::Allocate(
      model->config(), /*batch=*/1, P + params.max_new_tokens,
      torch::TensorOptions().dtype(weight.scalar_type()).device(device));
  torch::Tensor last_logits =
      model->forward(prompt, /*start_pos=*/0, &prompt_cache)
          .select(1, P - 1);  // (1, V)
  KVCache cache = prompt_cache.RepeatBatch(group_size);
  torch::Tensor logits = last_logits.expand({group_size, -1});  // (G, V)

  std::vector<bool> finished(group_size, false);
  int64_t num_finished = 0;
  for (int64_t step = 0; step < params.max_new_tokens; ++step) {
    auto [tokens, logprobs] = PickTokens(logits, params, gen);  // (G), (G)
    torch::Tensor tokens_cpu = tokens.to(torch::kCPU);          // (G)
    torch::Tensor logprobs_cpu = logprobs.to(torch::kCPU, torch::kFloat);  // (G)
    const int64_t* token_data = tokens_cpu.data_ptr<int64_t>();
    const float* logprob_data = logprobs_cpu.data_ptr<float>();
    for (int64_t g = 0; g < group_size; ++g) {
      if (finished[g]) continue;
      out[g].token_ids.push_back(token_data[g]);
      out[g].logprobs.push_back(logprob_data[g]);
      const auto& stops = params.stop_token_ids;
      if (std::find(stops.begin(), stops.end(), token_data[g]) != stops.end()) {
        finished[g] = true;
        ++num_finished;
      }
    }
    if (num_finished == group_size || step + 1 == params.max_new_tokens) break;
    // Finished rows are still computed; their outputs are ignored above.
    logits = model->forward(tokens.view({group_size, 1}), P + step, &cache)
                 .select(1, 0);  // (G, V)
  }
  for (int64_t g = 0; g < group_size; ++g) out[g].truncated = !finished[g];
  return out;
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

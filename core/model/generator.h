// Batched generation with a slot KV cache, continuous batching and prompt
// prefix sharing: the engine the actors and `grpo generate` sample with.
//
// A call to Generator::Generate takes requests, each a prompt and a number of
// completions G to draw from it. The engine keeps up to `max_batch` rows
// decoding together, one token per row per step:
//   * Prefill: prompts of requests about to start are run through the model
//     once, batched and right-padded (causal attention never lets a real token
//     see a pad after it). Each request is prefilled exactly once, however
//     many completions it has, and its prompt's keys and values are kept once,
//     in a prefix slot, until its last completion finishes: the G rows of a
//     group attend to that one copy (KV memory for the prompt is 1/G of G
//     copies), and each row keeps only the keys of its own generated tokens.
//   * Decode: every active row feeds its last token at its own position,
//     through the model's one forward path (TransformerImpl::Hidden with a
//     ForwardPlan of per-row rotary positions, per-row key masks and prefix
//     slots), so rows of different lengths decode together and each gets the
//     result it would get alone; each prompt's keys are read once per step
//     for all the rows that share them.
//   * Continuous batching: a row that finishes (stop token, stop string,
//     max_new_tokens or the model's context) leaves at once, the last active
//     row moves into its slot, and a waiting completion joins. One long
//     completion therefore never idles the batch.
//
// Sampling: temperature, top-k and top-p, or greedy at temperature 0. Each
// completion draws its random numbers from its own counter-based stream keyed
// by (seed, request index, completion index, step), so the output depends on
// the seed, not on max_batch, on the order rows join, or on which other
// requests share the batch, up to floating point: a different batch shape
// can change logits in the last bits (about 1e-6 in f32), which flips a
// sample only when its uniform lands that close to a CDF boundary. The logprob recorded for each sampled token is
// log_softmax(logits / temperature) over the full vocabulary (before top-k and
// top-p), the quantity the learner recomputes with TokenLogprobs.
//
// Threads: one Generate call at a time per Generator; the model must not be
// changed while it runs. Runs without autograd (inference mode).
#ifndef GRPO_CORE_MODEL_GENERATOR_H_
#define GRPO_CORE_MODEL_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/packed_linear.h"
#include "core/model/sampler.h"
#include "core/model/transformer.h"

namespace grpo::model {

// One prompt and how many completions to draw from it.
struct GenerationRequest {
  std::vector<int64_t> prompt_ids;  // non-empty
  int64_t num_samples = 1;          // G >= 1
};

struct GeneratorOptions {
  // Rows decoded together. Larger batches use the matrix units better; the
  // slot cache holds max_batch x (longest prompt + max_new_tokens) positions.
  int64_t max_batch = 64;
  // Most prompt positions (counting right-padding to the batch's longest
  // prompt) prefilled in one forward pass; at least one prompt is always
  // taken. Bounds the prefill's activation memory.
  int64_t max_prefill_tokens = 8192;
  // On a CPU, run the linear layers through oneDNN with weights packed once
  // per weights version (PackedLinears): faster, at the cost of a second copy
  // of the linear weights kept by the Generator. No effect without oneDNN.
  bool pack_weights = true;
  // On a CPU, run decode steps' attention, norms and SwiGLU through fused
  // kernels (cpu_kernels.h) instead of chains of LibTorch ops.
  bool fused_kernels = true;
  // Bytes of each token id, needed only for stop strings (the engine matches
  // stop strings on bytes, so a string split across tokens is still found).
  std::vector<std::string> token_bytes;
};

// Counters of one Generate call, for benchmarks and tests.
struct GenerationStats {
  int64_t prefill_forwards = 0;  // batched prefill passes
  int64_t prefill_tokens = 0;    // prompt tokens run through the model
  int64_t decode_steps = 0;      // batched decode passes
  int64_t decode_tokens = 0;     // row-steps of those passes (tokens produced)
  int64_t max_active = 0;        // most rows decoding at once
  int64_t joins_mid_decode = 0;  // rows that joined while others were decoding
  int64_t prefix_slots = 0;      // most prompts whose keys were held at once (slots allocated)
  int64_t kv_bytes = 0;          // most bytes of keys and values held (own rows and prefix slots)
  int64_t weights_packed = 0;    // weight matrices (re)packed for this call (0: unchanged or not packing)
};

class Generator {
 public:
  // `model` must outlive the Generator. Throws c10::Error if max_batch < 1.
  Generator(Transformer model, GeneratorOptions options);
  ~Generator();

  // Generates every request's completions; result[r][s] is completion s of
  // request r. Errors (InvalidArgument): empty prompt, num_samples < 1, a
  // prompt that leaves no room in the model's context, a token id outside
  // the vocabulary, bad sampling parameters, stop strings without
  // token_bytes. `on_token(request, sample, token)` (optional) is called for
  // each sampled token as it is produced, for streaming.
  absl::StatusOr<std::vector<std::vector<SampledSequence>>> Generate(
      const std::vector<GenerationRequest>& requests,
      const SamplingParams& params, uint64_t seed,
      const std::function<void(int64_t, int64_t, int64_t)>& on_token = {});

  const GenerationStats& last_stats() const { return stats_; }

  // Logits of the last token of each row after one batched decode step, for
  // tests: rows hold `contexts` (different lengths), prefilled one by one;
  // the step feeds each context's final token at its own position. Returns
  // (N, V) float32.
  torch::Tensor DecodeLogitsForTest(
      const std::vector<std::vector<int64_t>>& contexts);

 private:
  struct Impl;
  // Packs the weights on first use and again after they change; null when not packing.
  const PackedLinears* Packed();

  Transformer model_;
  std::unique_ptr<PackedLinears> packed_;
  GeneratorOptions options_;
  GenerationStats stats_;
};

// Uniform random number in [0, 1) from a counter-based generator: the same
// arguments always give the same number.
double CounterUniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_GENERATOR_H_

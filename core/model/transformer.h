// A Llama / Qwen2 / Qwen3 family decoder-only transformer in LibTorch.
//
// Layout follows gpt-fast's model.py: KV cache, Transformer, Block, Attention,
// FeedForward, RMSNorm (rotary helpers live in transformer.cc). Submodules are
// registered so that named_parameters() yields exactly the Hugging Face tensor
// names (model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight,
// ..., lm_head.weight), which lets safetensors checkpoints load by name. The
// math follows transformers' modeling_llama / modeling_qwen2 / modeling_qwen3:
// rotate_half RoPE (with "linear" or "llama3" rope_scaling), grouped-query
// attention, Qwen3's per-head q_norm / k_norm before RoPE, SwiGLU MLP,
// RMSNorm computed in float32. tests/reference_model.h is a loop-based
// reference of the same formulas.
//
// Shape letters: B batch, T new tokens, S attended positions (cache length),
// C hidden size, H query heads, K key/value heads, D head dim, V vocab size,
// F intermediate (MLP) size.
//
// Threads: a module is not safe to use from several threads at once while its
// weights are being changed; concurrent forward() calls with distinct caches
// under NoGradGuard are fine.
#ifndef GRPO_CORE_MODEL_TRANSFORMER_H_
#define GRPO_CORE_MODEL_TRANSFORMER_H_

#include <cstdint>
#include <initializer_list>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "core/model/model_config.h"

namespace grpo::model {

// ---------------------------------------------------------------------------
// KV cache: per-layer keys and values of the positions seen so far. Kept
// outside the module so state dicts and weight broadcasts never touch it.
//
// Each row has its own keys (k, v). Rows may also share a prefix: a prompt's
// keys kept once in a slot of (prefix_k, prefix_v) and attended, before the
// row's own keys, by every completion of that prompt (see ForwardPlan).
// ---------------------------------------------------------------------------
struct KVCache {
  std::vector<torch::Tensor> k;  // per layer: (B, K, max_len, D)
  std::vector<torch::Tensor> v;  // per layer: (B, K, max_len, D)
  int64_t length = 0;            // positions [0, length) hold valid entries (uniform use)
  std::vector<torch::Tensor> prefix_k;  // per layer: (slots, K, prefix_len, D); empty: none
  std::vector<torch::Tensor> prefix_v;  // per layer: (slots, K, prefix_len, D)

  // Zero-filled cache for `batch` rows and up to `max_len` positions, no prefixes.
  static KVCache Allocate(const ModelConfig& config, int64_t batch,
                          int64_t max_len, torch::TensorOptions options);

  int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
  int64_t max_len() const { return k.empty() ? 0 : k[0].size(2); }
  int64_t prefix_slots() const { return prefix_k.empty() ? 0 : prefix_k[0].size(0); }
  // Bytes held by keys and values, own and shared.
  int64_t bytes() const;
};

// Where the tokens of one forward pass sit in their sequences and which keys
// each attends to: built once per pass (PlanForward) and read by every layer.
struct RowLayout {
  // Per row (all of size B, or of size 1 for "every row alike"):
  std::vector<int64_t> position;    // rotary position of the row's first new token
  std::vector<int64_t> own_start;   // where its new keys go in its own cache row
  // Shared prefixes (decoding one token per row, with a cache): empty for none.
  std::vector<int64_t> prefix_slot;  // the row's slot in KVCache::prefix_k
  std::vector<int64_t> prefix_len;   // keys of that slot it attends to
};

struct ForwardPlan {
  torch::Tensor cos, sin;  // (B or 1, T, 1, D) rotary tables in the model's dtype
  torch::Tensor hidden;    // (B or 1, 1, 1, T, P + S) bool: true where a key is not attended
  // New keys go to own positions [write_start, write_start + T) of every row, or,
  // when write_index is defined (T == 1, per-row starts), to rows of the flat
  // (rows * K * max_len, D) view of the cache at write_index (B * K).
  int64_t write_start = 0;
  torch::Tensor write_index;
  int64_t own_keys = 0;     // S: own positions [0, S) attended (T without a cache)
  RowLayout rows;           // the layout planned, on the host (for CPU kernels)
  int64_t prefix_keys = 0;  // P: prefix positions [0, P) of the row's slot; 0 = none
  // Prefix attention reads each slot once: rows are regrouped as (slots, per_slot),
  // row b at group_index[b] = slot * per_slot + its rank among that slot's rows.
  // When that grid would be mostly padding, each row gathers its slot instead
  // (gather, row_slot (B)).
  int64_t slots = 0, per_slot = 0;
  torch::Tensor group_index;
  bool gather = false;
  torch::Tensor row_slot;
};

// A host vector as a 1-D tensor on `device` (int64 or float64). On a GPU the
// bytes go through pinned memory with an asynchronous copy, so feeding a step
// never waits for the device.
torch::Tensor HostToDevice(const std::vector<int64_t>& values, const torch::Device& device);
torch::Tensor HostToDevice(const std::vector<double>& values, const torch::Device& device);

// A plan for tokens (B, T) laid out as `layout` says, on `device` in `dtype`.
// `inv_freq` is RotaryInverseFrequencies on `device`. `cached`: keys go to a
// KVCache (without one, T tokens from position 0 attend causally to each other).
ForwardPlan PlanForward(const RowLayout& layout, int64_t B, int64_t T, bool cached, int64_t cache_max_len,
                        const ModelConfig& config, const torch::Tensor& inv_freq, torch::ScalarType dtype);

// Rotary inverse frequencies inv_freq[i] = 1 / rope_theta^(2i / D), i < D/2,
// then rescaled as config.rope_scaling says ("linear": / factor; "llama3":
// transformers' _compute_llama3_parameters). (D/2) float32 on the CPU,
// computed with the same float32 operations as transformers.
torch::Tensor RotaryInverseFrequencies(const ModelConfig& config);

// ---------------------------------------------------------------------------
// RMSNorm: x / sqrt(mean(x^2) + eps) * weight, computed in float32.
// ---------------------------------------------------------------------------
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., C) -> (..., C)

  torch::Tensor weight;  // (C)

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// ---------------------------------------------------------------------------
// FeedForward: SwiGLU MLP, down(silu(gate(x)) * up(x)). Biases only with
// config.mlp_bias (llama).
// ---------------------------------------------------------------------------
class FeedForwardImpl : public torch::nn::Module {
 public:
  explicit FeedForwardImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) -> (B, T, C)

  torch::nn::Linear gate_proj{nullptr};  // C -> F
  torch::nn::Linear up_proj{nullptr};    // C -> F
  torch::nn::Linear down_proj{nullptr};  // F -> C
};
TORCH_MODULE(FeedForward);

// ---------------------------------------------------------------------------
// Attention: causal grouped-query self-attention with rotary positions.
// q/k/v biases with config.attention_bias (always for qwen2); o_proj bias with
// attention_bias for llama and qwen3 (never for qwen2). Qwen3 normalizes each
// head of q and k (RMSNorm over D) after the projection and before RoPE.
// ---------------------------------------------------------------------------
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& config, int64_t layer_index);

  // x: (B, T, C) placed as `plan` says. Without cache: attends causally
  // within x. With cache: stores this layer's k/v where the plan says, then
  // attends to the row's shared prefix (if any) and own keys. Returns (B, T, C).
  // The one attention of the code base: training, tests and the Generator.
  torch::Tensor forward(const torch::Tensor& x, const ForwardPlan& plan, KVCache* cache);

  torch::nn::Linear q_proj{nullptr};  // C -> H * D
  torch::nn::Linear k_proj{nullptr};  // C -> K * D
  torch::nn::Linear v_proj{nullptr};  // C -> K * D
  torch::nn::Linear o_proj{nullptr};  // H * D -> C
  RMSNorm q_norm{nullptr};  // (D), qwen3 only; null otherwise
  RMSNorm k_norm{nullptr};  // (D), qwen3 only; null otherwise

 private:
  int64_t layer_index_;
  int64_t n_heads_;
  int64_t n_kv_heads_;
  int64_t head_dim_;
};
TORCH_MODULE(Attention);

// ---------------------------------------------------------------------------
// Block: pre-norm residual block, x + attn(norm(x)), then h + mlp(norm(h)).
// ---------------------------------------------------------------------------
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& config, int64_t layer_index);
  torch::Tensor forward(const torch::Tensor& x, const ForwardPlan& plan,
                        KVCache* cache);  // (B, T, C) -> (B, T, C)

  RMSNorm input_layernorm{nullptr};
  Attention self_attn{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
  FeedForward mlp{nullptr};
};
TORCH_MODULE(Block);

// ---------------------------------------------------------------------------
// DecoderStack: embeddings, blocks and final norm; registered as "model" so
// parameter names get Hugging Face's "model." prefix.
// ---------------------------------------------------------------------------
class DecoderStackImpl : public torch::nn::Module {
 public:
  explicit DecoderStackImpl(const ModelConfig& config);

  torch::nn::Embedding embed_tokens{nullptr};  // (V, C)
  torch::nn::ModuleList layers{nullptr};       // of Block
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderStack);

// ---------------------------------------------------------------------------
// Transformer: the causal language model.
// ---------------------------------------------------------------------------
class TransformerImpl : public torch::nn::Module {
 public:
  // Crashes (c10::Error) if config.Validate() fails. Weights are drawn from
  // N(0, 0.02) (norms: ones, biases: zeros) using torch's default generator,
  // so torch::manual_seed makes them deterministic.
  explicit TransformerImpl(ModelConfig config);

  // tokens: (B, T) int64. Returns logits (B, T, V) as float32.
  // Without cache: full causal attention over the T tokens; start_pos must
  // be 0. With cache: the tokens sit at positions [start_pos, start_pos + T);
  // requires start_pos <= cache->length and start_pos + T <= max_len; on
  // return cache->length == start_pos + T.
  torch::Tensor forward(const torch::Tensor& tokens, int64_t start_pos = 0,
                        KVCache* cache = nullptr);

  // The blocks alone: tokens (B, T) placed as `plan` says, through embeddings
  // and blocks; returns the hidden states (B, T, C) before the final norm.
  // forward() is Logits(Hidden(...)); the Generator calls both with its own plans.
  torch::Tensor Hidden(const torch::Tensor& tokens, const ForwardPlan& plan, KVCache* cache);
  // Final norm and output projection: hidden (..., C) -> logits (..., V) float32.
  torch::Tensor Logits(const torch::Tensor& hidden);

  const ModelConfig& config() const { return config_; }

  // Activation checkpointing: when on, a forward pass that records gradients
  // (grad mode on, no cache) keeps only each block's input and recomputes the
  // block during backward, trading one more forward for O(layers) less memory.
  // The recomputation runs under the autocast state of the original forward.
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }
  bool activation_checkpointing() const { return checkpointing_; }

  // (D/2) float32 CPU rotary inverse frequencies, rope_scaling applied
  // (RotaryInverseFrequencies(config())). Position p of a head is rotated by
  // angles p * inv_freq, the halves [0, D/2) and [D/2, D) paired.
  const torch::Tensor& inv_freq() const { return inv_freq_; }

  DecoderStack model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // C -> V; null when embeddings are tied

 private:
  ModelConfig config_;
  torch::Tensor inv_freq_;  // (D / 2) rotary frequencies, float32, not a buffer
  bool checkpointing_ = false;
};

// bf16 autocast on CPU and CUDA for a scope (matmuls and linear layers run in bfloat16,
// everything else, weights and gradients stay float32). Nests; the cast cache
// is cleared when the outermost guard ends, so weights changed by an optimizer
// step are never served from a stale bf16 copy. Disabled: does nothing.
// x (..., in) times weight (out, in) transposed, plus bias when defined: a linear layer.
// A single fp32 row on the CPU goes through a matrix-vector product (BLAS gemv), which
// streams the weights once; a matrix product first packs (copies) them (OpenBLAS sgemm),
// about 5x slower at one row, as in decoding one sequence.
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {});
inline torch::Tensor Linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return Linear(x, layer->weight, layer->bias);
}

// Several linear layers that read the same x, one output each: one matrix
// product when PackedLinears holds their weights packed together (the
// outputs are then views side by side in one tensor), else one Linear each.
std::vector<torch::Tensor> Linears(const torch::Tensor& x, std::initializer_list<const torch::nn::Linear*> layers);

class Bf16Autocast {
 public:
  explicit Bf16Autocast(bool enabled);
  ~Bf16Autocast();
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool enabled_;
  bool prev_enabled_ = false;
  c10::ScalarType prev_dtype_ = c10::ScalarType::BFloat16;
  bool prev_gpu_enabled_ = false;
  c10::ScalarType prev_gpu_dtype_ = c10::ScalarType::Half;
};
TORCH_MODULE(Transformer);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_TRANSFORMER_H_

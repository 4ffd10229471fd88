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
// ---------------------------------------------------------------------------
struct KVCache {
  std::vector<torch::Tensor> k;  // per layer: (B, K, max_len, D)
  std::vector<torch::Tensor> v;  // per layer: (B, K, max_len, D)
  int64_t length = 0;            // positions [0, length) hold valid entries

  // Zero-filled cache for `batch` rows and up to `max_len` positions.
  static KVCache Allocate(const ModelConfig& config, int64_t batch,
                          int64_t max_len, torch::TensorOptions options);

  // A new cache with `n` rows, each a copy of row 0 of this one. Used to
  // prefill a prompt once and then decode G completions of it in one batch.
  KVCache RepeatBatch(int64_t n) const;

  int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
  int64_t max_len() const { return k.empty() ? 0 : k[0].size(2); }
};

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

  // x: (B, T, C) for positions [start_pos, start_pos + T).
  // cos, sin: (T, D) rotary tables for those positions.
  // Without cache: attends causally within x (start_pos must be 0).
  // With cache: stores this layer's k/v at [start_pos, start_pos + T) and
  // attends causally over [0, start_pos + T). Returns (B, T, C).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin, int64_t start_pos,
                        KVCache* cache);

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
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin, int64_t start_pos,
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

#include "core/model/transformer.h"

#include <torch/version.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace grpo::model {
namespace {

namespace F = torch::nn::functional;

// A bias-free (unless `bias`) linear layer with N(0, 0.02) weights.
torch::nn::Linear MakeLinear(int64_t in, int64_t out, bool bias) {
  torch::nn::Linear linear(torch::nn::LinearOptions(in, out).bias(bias));
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(linear->weight, 0.0, 0.02);  // (out, in)
  if (bias) torch::nn::init::zeros_(linear->bias);      // (out)
  return linear;
}

// ---------------------------------------------------------------------------
// RoPE helpers (Hugging Face "rotate_half" convention: the head dimension is
// split into two halves rather than interleaved pairs).
// ---------------------------------------------------------------------------

// cos/sin tables for positions [start_pos, start_pos + T).
std::pair<torch::Tensor, torch::Tensor> RotaryTables(
    const torch::Tensor& inv_freq, int64_t start_pos, int64_t T) {
  torch::Tensor positions =
      torch::arange(start_pos, start_pos + T, torch::kInt64)
          .to(torch::kFloat);                               // (T)
  torch::Tensor freqs = torch::outer(positions, inv_freq);  // (T, D/2)
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);       // (T, D)
  return {emb.cos(), emb.sin()};                            // (T, D) each
}

// [x1, x2] -> [-x2, x1] on the last dimension.
torch::Tensor RotateHalf(const torch::Tensor& x) {  // (B, h, T, D)
  const int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half);     // (B, h, T, D/2)
  torch::Tensor x2 = x.narrow(-1, half, half);  // (B, h, T, D/2)
  return torch::cat({-x2, x1}, -1);             // (B, h, T, D)
}

torch::Tensor ApplyRotary(const torch::Tensor& x,     // (B, h, T, D)
                          const torch::Tensor& cos,   // (T, D)
                          const torch::Tensor& sin) { // (T, D)
  return x * cos + RotateHalf(x) * sin;  // (B, h, T, D)
}

}  // namespace

// transformers' _compute_default_rope_parameters, then
// _compute_linear_scaling_rope_parameters or _compute_llama3_parameters,
// op for op in float32 so the result matches bit for bit (Python's
// `scalar / tensor` is tensor.reciprocal() * scalar, hence the reciprocals).
torch::Tensor RotaryInverseFrequencies(const ModelConfig& config) {
  const int64_t D = config.head_dim();
  torch::Tensor exponents =
      torch::arange(0, D, 2, torch::kInt64).to(torch::kFloat) /
      static_cast<double>(D);                                      // (D/2)
  torch::Tensor inv_freq =
      torch::pow(config.rope_theta, exponents).reciprocal();  // (D/2)
  if (!config.rope_scaling) return inv_freq;

  const RopeScaling& rs = *config.rope_scaling;
  if (rs.rope_type == "linear") return inv_freq / rs.factor;  // (D/2)
  TORCH_CHECK(rs.rope_type == "llama3", "unsupported rope_scaling.rope_type \"",
              rs.rope_type, "\"");
  const double old_context_len =
      static_cast<double>(rs.original_max_position_embeddings);
  const double low_freq_wavelen = old_context_len / rs.low_freq_factor;
  const double high_freq_wavelen = old_context_len / rs.high_freq_factor;
  torch::Tensor wavelen = inv_freq.reciprocal() * (2 * M_PI);  // (D/2)
  // Long wavelengths (low frequencies) are divided by factor, short ones kept.
  torch::Tensor inv_freq_llama = torch::where(
      wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);  // (D/2)
  // In between: interpolate smoothly.
  torch::Tensor smooth_factor =
      (wavelen.reciprocal() * old_context_len - rs.low_freq_factor) /
      (rs.high_freq_factor - rs.low_freq_factor);  // (D/2)
  torch::Tensor smoothed_inv_freq =
      (1 - smooth_factor) * inv_freq_llama / rs.factor +
      smooth_factor * inv_freq_llama;  // (D/2)
  torch::Tensor is_medium_freq = (wavelen < high_freq_wavelen).logical_not() *
                                 (wavelen > low_freq_wavelen).logical_not();  // (D/2)
  return torch::where(is_medium_freq, smoothed_inv_freq, inv_freq_llama);  // (D/2)
}

// ---------------------------------------------------------------------------
// KVCache
// ---------------------------------------------------------------------------

KVCache KVCache::Allocate(const ModelConfig& config, int64_t batch,
                          int64_t max_len, torch::TensorOptions options) {
  TORCH_CHECK(batch > 0 && max_len > 0, "KVCache::Allocate: batch (", batch,
              ") and max_len (", max_len, ") must be positive");
  KVCache cache;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    cache.k.push_back(torch::zeros(
        {batch, config.num_key_value_heads, max_len, config.head_dim()},
        options));  // (B, K, max_len, D)
    cache.v.push_back(torch::zeros(
        {batch, config.num_key_value_heads, max_len, config.head_dim()},
        options));  // (B, K, max_len, D)
  }
  return cache;
}

KVCache KVCache::RepeatBatch(int64_t n) const {
  TORCH_CHECK(n > 0, "KVCache::RepeatBatch: n must be positive, got ", n);
  TORCH_CHECK(batch() > 0, "KVCache::RepeatBatch: empty cache");
  KVCache out;
  out.length = length;
  for (size_t i = 0; i < k.size(); ++i) {
    torch::Tensor k_row = k[i].narrow(0, 0, 1);  // (1, K, max_len, D)
    torch::Tensor v_row = v[i].narrow(0, 0, 1);  // (1, K, max_len, D)
    out.k.push_back(k_row.expand({n, -1, -1, -1}).clone());  // (n, K, max_len, D)
    out.v.push_back(v_row.expand({n, -1, -1, -1}).clone());  // (n, K, max_len, D)
  }
  return out;
}

// ---------------------------------------------------------------------------
// Transformer
// ---------------------------------------------------------------------------

DecoderStackImpl::DecoderStackImpl(const ModelConfig& config) {
  embed_tokens = register_module(
      "embed_tokens",
      torch::nn::Embedding(config.vocab_size, config.hidden_size));
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(embed_tokens->weight, 0.0, 0.02);  // (V, C)
  }
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    layers->push_back(Block(config, i));
  }
  norm = register_module("norm",
                         RMSNorm(config.hidden_size, config.rms_norm_eps));
}

TransformerImpl::TransformerImpl(ModelConfig config)
    : config_(std::move(config)) {
  const absl::Status valid = config_.Validate();
  TORCH_CHECK(valid.ok(), "Transformer: ", std::string(valid.message()));
  model = register_module("model", DecoderStack(config_));
  if (!config_.tie_word_embeddings) {
    lm_head = register_module(
        "lm_head",
        MakeLinear(config_.hidden_size, config_.vocab_size, /*bias=*/false));
  }
  inv_freq_ = RotaryInverseFrequencies(config_);  // (D/2)
}

namespace {

// Reentrant activation checkpointing of one Block (as torch.utils.checkpoint
// with use_reentrant=True): forward runs without recording a graph and saves
// only the block's input; backward recomputes the block with grad mode on and
// back-propagates through it, which accumulates the block's parameter
// gradients directly and returns the gradient of the input.
// Autocast state of this thread (CPU and CUDA), restored on destruction.
struct AutocastState {
  bool cpu = at::autocast::is_cpu_enabled();
  at::ScalarType cpu_dtype = at::autocast::get_autocast_cpu_dtype();
  bool gpu = at::autocast::is_enabled();
  at::ScalarType gpu_dtype = at::autocast::get_autocast_gpu_dtype();
  void Apply() const {
    at::autocast::set_cpu_enabled(cpu);
    at::autocast::set_autocast_cpu_dtype(cpu_dtype);
    at::autocast::set_enabled(gpu);
    at::autocast::set_autocast_gpu_dtype(gpu_dtype);
  }
};

// Enters the autocast state `to` (nesting once) and restores the previous one on
// destruction, also when the scope ends by an exception; the cast cache is cleared
// when the outermost region ends.
class AutocastScope {
 public:
  explicit AutocastScope(const AutocastState& to) {
    to.Apply();
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    prev_.Apply();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  AutocastState prev_;
};

// Reentrant activation checkpointing of one Block (as torch.utils.checkpoint
// with use_reentrant=True): forward runs without recording a graph and saves
// only the block's input; backward recomputes the block with grad mode on and
// back-propagates through it, which accumulates the block's parameter
// gradients directly and returns the gradient of the input.
struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor cos,
                               torch::Tensor sin, BlockImpl* block) {
    ctx->save_for_backward({x, cos, sin});
    // The block outlives the graph (it is a registered submodule of the model
    // that built the graph); the pointer travels as an integer.
    ctx->saved_data["block"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(block));
    AutocastState a;
    ctx->saved_data["autocast_cpu"] = a.cpu;
    ctx->saved_data["autocast_cpu_dtype"] = static_cast<int64_t>(a.cpu_dtype);
    ctx->saved_data["autocast_gpu"] = a.gpu;
    ctx->saved_data["autocast_gpu_dtype"] = static_cast<int64_t>(a.gpu_dtype);
    return block->forward(x, cos, sin, 0, nullptr);  // (B, T, C)
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    auto* block = reinterpret_cast<BlockImpl*>(static_cast<intptr_t>(ctx->saved_data["block"].toInt()));
    AutocastState forward_state;
    forward_state.cpu = ctx->saved_data["autocast_cpu"].toBool();
    forward_state.cpu_dtype = static_cast<at::ScalarType>(ctx->saved_data["autocast_cpu_dtype"].toInt());
    forward_state.gpu = ctx->saved_data["autocast_gpu"].toBool();
    forward_state.gpu_dtype = static_cast<at::ScalarType>(ctx->saved_data["autocast_gpu_dtype"].toInt());
    AutocastScope scope(forward_state);  // recompute exactly as the forward ran
    torch::Tensor x = saved[0].detach().requires_grad_(true);  // (B, T, C)
    {
      torch::AutoGradMode grad(true);
      torch::Tensor y = block->forward(x, saved[1], saved[2], 0, nullptr);  // (B, T, C)
      torch::autograd::backward({y}, {grad_out[0]});
    }
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

// LibTorch 2.4 replaced the per-backend autocast switches by ones taking a device type
// (the old names remain only as deprecated wrappers).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define GRPO_AUTOCAST_BY_DEVICE 1
#endif

torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t in = weight.size(1);
#ifdef GRPO_AUTOCAST_BY_DEVICE
  const bool autocast = at::autocast::is_autocast_enabled(at::kCPU);
#else
  const bool autocast = at::autocast::is_cpu_enabled();
#endif
  // Under autocast the matmul runs in bf16 (F::linear is on autocast's list): leave it so.
  if (x.numel() == in && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
      weight.scalar_type() == torch::kFloat && !autocast) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    torch::Tensor v = x.reshape({in});
    torch::Tensor y = bias.defined() ? torch::addmv(bias, weight, v) : torch::mv(weight, v);  // (out)
    return y.view(shape);
  }
  return F::linear(x, weight, bias);
}

Bf16Autocast::Bf16Autocast(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  // CPU and CUDA autocast are separate switches; the model's device decides which acts.
#ifdef GRPO_AUTOCAST_BY_DEVICE
  prev_enabled_ = at::autocast::is_autocast_enabled(at::kCPU);
  prev_dtype_ = at::autocast::get_autocast_dtype(at::kCPU);
  prev_gpu_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
  prev_gpu_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
  at::autocast::set_autocast_enabled(at::kCPU, true);
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
  prev_enabled_ = at::autocast::is_cpu_enabled();
  prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
  prev_gpu_enabled_ = at::autocast::is_enabled();
  prev_gpu_dtype_ = at::autocast::get_autocast_gpu_dtype();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(true);
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
  at::autocast::increment_nesting();
}

Bf16Autocast::~Bf16Autocast() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#ifdef GRPO_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(at::kCPU, prev_enabled_);
  at::autocast::set_autocast_dtype(at::kCPU, prev_dtype_);
  at::autocast::set_autocast_enabled(at::kCUDA, prev_gpu_enabled_);
  at::autocast::set_autocast_dtype(at::kCUDA, prev_gpu_dtype_);
#else
  at::autocast::set_cpu_enabled(prev_enabled_);
  at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  at::autocast::set_enabled(prev_gpu_enabled_);
  at::autocast::set_autocast_gpu_dtype(prev_gpu_dtype_);
#endif
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens,
                                       int64_t start_pos, KVCache* cache) {
  TORCH_CHECK(tokens.dim() == 2, "Transformer: tokens must be (B, T), got ",
              tokens.sizes());
  const int64_t T = tokens.size(1);
  if (cache == nullptr) {
    TORCH_CHECK(start_pos == 0,
                "Transformer: start_pos must be 0 without a KV cache");
  } else {
    TORCH_CHECK(cache->k.size() ==
                    static_cast<size_t>(config_.num_hidden_layers),
                "Transformer: KV cache has ", cache->k.size(),
                " layers, model has ", config_.num_hidden_layers);
    TORCH_CHECK(cache->batch() == tokens.size(0), "Transformer: KV cache batch ",
                cache->batch(), " != token batch ", tokens.size(0));
    TORCH_CHECK(start_pos >= 0 && start_pos <= cache->length,
                "Transformer: start_pos ", start_pos,
                " must lie in [0, cache length ", cache->length, "]");
    TORCH_CHECK(start_pos + T <= cache->max_len(), "Transformer: positions up to ",
                start_pos + T, " exceed the KV cache size ", cache->max_len());
  }

  auto [cos, sin] = RotaryTables(inv_freq_, start_pos, T);  // (T, D) each
  torch::Tensor x = model->embed_tokens->forward(tokens);     // (B, T, C)
  cos = cos.to(x.device(), x.scalar_type());                  // (T, D)
  sin = sin.to(x.device(), x.scalar_type());                  // (T, D)
  // Only when the block input records gradients (it does while the embedding trains):
  // the custom function records no backward otherwise, and the block's parameters
  // would silently get none.
  const bool checkpoint = checkpointing_ && cache == nullptr && torch::GradMode::is_enabled() && x.requires_grad();
  for (const auto& layer : *model->layers) {
    BlockImpl* block = layer->as<Block>();
    x = checkpoint ? CheckpointedBlock::apply(x, cos, sin, block)      // (B, T, C)
                   : block->forward(x, cos, sin, start_pos, cache);  // (B, T, C)
  }
  x = model->norm->forward(x);  // (B, T, C)
  if (cache != nullptr) cache->length = start_pos + T;

  torch::Tensor logits =
      config_.tie_word_embeddings
          ? Linear(x, model->embed_tokens->weight)  // (B, T, V)
          : Linear(lm_head, x);                     // (B, T, V)
  return logits.to(torch::kFloat);                     // (B, T, V)
}

// ---------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------

BlockImpl::BlockImpl(const ModelConfig& config, int64_t layer_index) {
  input_layernorm = register_module(
      "input_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
  self_attn = register_module("self_attn", Attention(config, layer_index));
  post_attention_layernorm =
      register_module("post_attention_layernorm",
                      RMSNorm(config.hidden_size, config.rms_norm_eps));
  mlp = register_module("mlp", FeedForward(config));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x,
                                 const torch::Tensor& cos,
                                 const torch::Tensor& sin, int64_t start_pos,
                                 KVCache* cache) {
  torch::Tensor h = x + self_attn->forward(input_layernorm->forward(x), cos,
                                           sin, start_pos, cache);  // (B, T, C)
  return h + mlp->forward(post_attention_layernorm->forward(h));    // (B, T, C)
}

// ---------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------

AttentionImpl::AttentionImpl(const ModelConfig& config, int64_t layer_index)
    : layer_index_(layer_index),
      n_heads_(config.num_attention_heads),
      n_kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim()) {
  const int64_t C = config.hidden_size;
  const bool bias = config.attention_bias;
  // Qwen2 has q/k/v biases but never an o_proj bias; Llama and Qwen3 use
  // attention_bias for all four projections.
  const bool o_bias = bias && config.model_type != "qwen2";
  q_proj = register_module("q_proj", MakeLinear(C, n_heads_ * head_dim_, bias));
  k_proj = register_module("k_proj", MakeLinear(C, n_kv_heads_ * head_dim_, bias));
  v_proj = register_module("v_proj", MakeLinear(C, n_kv_heads_ * head_dim_, bias));
  o_proj = register_module("o_proj", MakeLinear(n_heads_ * head_dim_, C, o_bias));
  if (config.model_type == "qwen3") {
    q_norm = register_module("q_norm", RMSNorm(head_dim_, config.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(head_dim_, config.rms_norm_eps));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x,
                                     const torch::Tensor& cos,
                                     const torch::Tensor& sin,
                                     int64_t start_pos, KVCache* cache) {
  const int64_t B = x.size(0);
  const int64_t T = x.size(1);

  torch::Tensor q = Linear(q_proj, x).view({B, T, n_heads_, head_dim_});  // (B, T, H, D)
  torch::Tensor k = Linear(k_proj, x).view({B, T, n_kv_heads_, head_dim_});  // (B, T, K, D)
  if (q_norm) {  // Qwen3: RMSNorm over each head's D values, before RoPE.
    q = q_norm->forward(q);  // (B, T, H, D)
    k = k_norm->forward(k);  // (B, T, K, D)
  }
  q = q.transpose(1, 2);  // (B, H, T, D)
  k = k.transpose(1, 2);  // (B, K, T, D)
  torch::Tensor v = Linear(v_proj, x)
                        .view({B, T, n_kv_heads_, head_dim_})
                        .transpose(1, 2);  // (B, K, T, D)
  q = ApplyRotary(q, cos, sin);  // (B, H, T, D)
  k = ApplyRotary(k, cos, sin);  // (B, K, T, D)

  if (cache != nullptr) {
    torch::Tensor& k_cache = cache->k[layer_index_];  // (B, K, max_len, D)
    torch::Tensor& v_cache = cache->v[layer_index_];  // (B, K, max_len, D)
    k_cache.narrow(2, start_pos, T).copy_(k);
    v_cache.narrow(2, start_pos, T).copy_(v);
    k = k_cache.narrow(2, 0, start_pos + T);  // (B, K, S, D)
    v = v_cache.narrow(2, 0, start_pos + T);  // (B, K, S, D)
  }
  const int64_t S = k.size(2);

  // Grouped-query attention: each key/value head serves H / K query heads.
  const int64_t n_rep = n_heads_ / n_kv_heads_;
  if (n_rep > 1) {
    k = k.repeat_interleave(n_rep, /*dim=*/1);  // (B, H, S, D)
    v = v.repeat_interleave(n_rep, /*dim=*/1);  // (B, H, S, D)
  }

  // Query i sits at absolute position start_pos + i and sees keys 0..that.
  torch::Tensor key_pos =
      torch::arange(S, torch::TensorOptions().device(x.device()));  // (S)
  torch::Tensor query_pos =
      torch::arange(start_pos, start_pos + T,
                    torch::TensorOptions().device(x.device()));  // (T)
  torch::Tensor allowed =
      key_pos.unsqueeze(0) <= query_pos.unsqueeze(1);  // (T, S) bool

  torch::Tensor scores =
      torch::matmul(q, k.transpose(-2, -1)) *
      (1.0 / std::sqrt(static_cast<double>(head_dim_)));  // (B, H, T, S)
  scores = scores.to(torch::kFloat)
               .masked_fill(allowed.logical_not(),
                            -std::numeric_limits<float>::infinity());  // (B, H, T, S)
  torch::Tensor probs = torch::softmax(scores, -1).to(q.scalar_type());  // (B, H, T, S)
  torch::Tensor out = torch::matmul(probs, v);  // (B, H, T, D)
  out = out.transpose(1, 2).contiguous().view(
      {B, T, n_heads_ * head_dim_});  // (B, T, H * D)
  return Linear(o_proj, out);         // (B, T, C)
}

// ---------------------------------------------------------------------------
// FeedForward
// ---------------------------------------------------------------------------

FeedForwardImpl::FeedForwardImpl(const ModelConfig& config) {
  const int64_t C = config.hidden_size;
  const int64_t Fdim = config.intermediate_size;
  const bool bias = config.mlp_bias;
  gate_proj = register_module("gate_proj", MakeLinear(C, Fdim, bias));
  up_proj = register_module("up_proj", MakeLinear(C, Fdim, bias));
  down_proj = register_module("down_proj", MakeLinear(Fdim, C, bias));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  torch::Tensor gate = F::silu(Linear(gate_proj, x));  // (B, T, F)
  torch::Tensor up = Linear(up_proj, x);               // (B, T, F)
  return Linear(down_proj, gate * up);                 // (B, T, C)
}

// ---------------------------------------------------------------------------
// RMSNorm
// ---------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));  // (C)
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  torch::Tensor x32 = x.to(torch::kFloat);                      // (..., C)
  torch::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);  // (..., 1)
  torch::Tensor normed = x32 * torch::rsqrt(variance + eps_);  // (..., C)
  return weight * normed.to(x.scalar_type());                  // (..., C)
}

}  // namespace grpo::model

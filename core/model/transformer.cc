#include "core/model/transformer.h"

#include "core/model/cpu_kernels.h"
#include "core/model/packed_linear.h"

#include <torch/version.h>

#include <algorithm>
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

// [x1, x2] -> [-x2, x1] on the last dimension.
torch::Tensor RotateHalf(const torch::Tensor& x) {  // (..., D)
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);  // (..., D)
}

torch::Tensor ApplyRotary(const torch::Tensor& x,     // (B, T, h, D)
                          const torch::Tensor& cos,   // (B or 1, T, 1, D)
                          const torch::Tensor& sin) { // (B or 1, T, 1, D)
  return x * cos + RotateHalf(x) * sin;  // (B, T, h, D)
}

template <typename T>
torch::Tensor HostToDeviceImpl(const std::vector<T>& values, torch::ScalarType dtype, const torch::Device& device) {
  const int64_t n = static_cast<int64_t>(values.size());
  if (!device.is_cuda()) return torch::tensor(values, dtype);
  torch::Tensor host = torch::empty({n}, torch::TensorOptions().dtype(dtype).pinned_memory(true));
  std::copy(values.begin(), values.end(), host.data_ptr<T>());
  return host.to(device, /*non_blocking=*/true);
}

bool AllEqual(const std::vector<int64_t>& v) {
  return std::all_of(v.begin(), v.end(), [&](int64_t x) { return x == v[0]; });
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

torch::Tensor HostToDevice(const std::vector<int64_t>& values, const torch::Device& device) {
  return HostToDeviceImpl(values, torch::kInt64, device);
}
torch::Tensor HostToDevice(const std::vector<double>& values, const torch::Device& device) {
  return HostToDeviceImpl(values, torch::kDouble, device);
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

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (const auto* part : {&k, &v, &prefix_k, &prefix_v}) {
    for (const torch::Tensor& t : *part) n += t.numel() * static_cast<int64_t>(t.element_size());
  }
  return n;
}

// ---------------------------------------------------------------------------
// ForwardPlan
// ---------------------------------------------------------------------------

ForwardPlan PlanForward(const RowLayout& layout, int64_t B, int64_t T, bool cached, int64_t cache_max_len,
                        const ModelConfig& config, const torch::Tensor& inv_freq, torch::ScalarType dtype) {
  const torch::Device device = inv_freq.device();
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const size_t rows = layout.position.size();
  TORCH_CHECK(rows == 1 || static_cast<int64_t>(rows) == B, "PlanForward: ", rows, " positions for ", B, " rows");
  TORCH_CHECK(layout.own_start.size() == rows, "PlanForward: own_start and position differ in size");
  const bool prefix = !layout.prefix_slot.empty();
  ForwardPlan plan;
  plan.rows = layout;

  // Rotary tables: (rows, T, 1, D), in float32, then the model's dtype.
  torch::Tensor pos = (AllEqual(layout.position) ? torch::full({1, 1}, layout.position[0], i64)
                                                 : HostToDevice(layout.position, device).view({-1, 1})) +
                      torch::arange(T, i64).view({1, T});                            // (1 or B, T)
  torch::Tensor angles = pos.to(torch::kFloat).unsqueeze(-1) * inv_freq;            // (., T, D/2)
  torch::Tensor emb = torch::cat({angles, angles}, -1);                              // (., T, D)
  plan.cos = emb.cos().to(dtype).unsqueeze(2);                                       // (., T, 1, D)
  plan.sin = emb.sin().to(dtype).unsqueeze(2);                                       // (., T, 1, D)

  // Own keys: key j is visible to the token at own position p when j <= p.
  const bool uniform = AllEqual(layout.own_start);
  int64_t max_start = *std::max_element(layout.own_start.begin(), layout.own_start.end());
  if (!cached) {
    TORCH_CHECK(max_start == 0 && !prefix, "PlanForward: without a cache tokens start at 0 and share no prefix");
  }
  plan.own_keys = max_start + T;
  torch::Tensor own_pos = (uniform ? torch::full({1, 1}, layout.own_start[0], i64)
                                   : HostToDevice(layout.own_start, device).view({-1, 1})) +
                          torch::arange(T, i64).view({1, T});                           // (1 or B, T)
  torch::Tensor hidden = torch::arange(plan.own_keys, i64).view({1, 1, -1}) > own_pos.unsqueeze(-1);  // (., T, S)
  if (cached) {
    TORCH_CHECK(plan.own_keys <= cache_max_len, "PlanForward: positions up to ", plan.own_keys,
                " exceed the KV cache size ", cache_max_len);
    if (uniform) {
      plan.write_start = layout.own_start[0];
    } else {
      TORCH_CHECK(T == 1, "PlanForward: a multi-token pass needs equal starts");
      const int64_t K = config.num_key_value_heads;
      plan.write_index = ((torch::arange(B, i64).unsqueeze(1) * K + torch::arange(K, i64).unsqueeze(0)) * cache_max_len +
                          own_pos.view({B, 1}))
                             .view({B * K});  // (B*K)
    }
  }
  if (prefix) {
    TORCH_CHECK(T == 1 && layout.prefix_slot.size() == static_cast<size_t>(B) &&
                    layout.prefix_len.size() == static_cast<size_t>(B),
                "PlanForward: shared prefixes need one slot and length per row and one token per row");
    plan.prefix_keys = *std::max_element(layout.prefix_len.begin(), layout.prefix_len.end());
    torch::Tensor prefix_hidden = torch::arange(plan.prefix_keys, i64).view({1, 1, -1}) >=
                                  HostToDevice(layout.prefix_len, device).view({B, 1, 1});  // (B, 1, P)
    hidden = torch::cat({prefix_hidden, hidden.expand({B, T, plan.own_keys})}, -1);     // (B, T, P + S)
    // Regroup rows by slot: slot s's m-th row at s * per_slot + m.
    std::vector<int64_t> rank(B), count;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = layout.prefix_slot[b];
      if (s >= static_cast<int64_t>(count.size())) count.resize(s + 1, 0);
      rank[b] = count[s]++;
    }
    plan.slots = static_cast<int64_t>(count.size());
    plan.per_slot = *std::max_element(count.begin(), count.end());
    // Mostly padding (few rows spread over many slots with uneven counts): gather instead.
    plan.gather = plan.slots * plan.per_slot > 2 * B + 8;
    if (plan.gather) {
      plan.row_slot = HostToDevice(layout.prefix_slot, device);  // (B)
    } else {
      std::vector<int64_t> index(B);
      for (int64_t b = 0; b < B; ++b) index[b] = layout.prefix_slot[b] * plan.per_slot + rank[b];
      plan.group_index = HostToDevice(index, device);  // (B)
    }
  }
  plan.hidden = hidden.unsqueeze(1).unsqueeze(1);  // (B or 1, 1, 1, T, P + S)
  return plan;
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
                               torch::Tensor sin, torch::Tensor hidden, BlockImpl* block) {
    ctx->save_for_backward({x, cos, sin, hidden});
    // The block outlives the graph (it is a registered submodule of the model
    // that built the graph); the pointer travels as an integer.
    ctx->saved_data["block"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(block));
    AutocastState a;
    ctx->saved_data["autocast_cpu"] = a.cpu;
    ctx->saved_data["autocast_cpu_dtype"] = static_cast<int64_t>(a.cpu_dtype);
    ctx->saved_data["autocast_gpu"] = a.gpu;
    ctx->saved_data["autocast_gpu_dtype"] = static_cast<int64_t>(a.gpu_dtype);
    return block->forward(x, Plan(cos, sin, hidden), nullptr);  // (B, T, C)
  }

  static ForwardPlan Plan(const torch::Tensor& cos, const torch::Tensor& sin, const torch::Tensor& hidden) {
    ForwardPlan plan;
    plan.cos = cos;
    plan.sin = sin;
    plan.hidden = hidden;
    plan.own_keys = hidden.size(-1);
    return plan;
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
      torch::Tensor y = block->forward(x, Plan(saved[1], saved[2], saved[3]), nullptr);  // (B, T, C)
      torch::autograd::backward({y}, {grad_out[0]});
    }
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

// LibTorch 2.4 replaced the per-backend autocast switches by ones taking a device type
// (the old names remain only as deprecated wrappers).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define GRPO_AUTOCAST_BY_DEVICE 1
#endif

torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (const PackedLinears* packed = PackedLinearScope::Current()) {
    torch::Tensor y = packed->Apply(x, weight, bias);
    if (y.defined()) return y;
  }
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

std::vector<torch::Tensor> Linears(const torch::Tensor& x, std::initializer_list<const torch::nn::Linear*> layers) {
  std::vector<torch::Tensor> out;
  if (const PackedLinears* packed = PackedLinearScope::Current()) {
    std::vector<torch::Tensor> weights, biases;
    for (const auto* layer : layers) {
      weights.push_back((*layer)->weight);
      biases.push_back((*layer)->bias);
    }
    torch::Tensor y = packed->ApplyGroup(x, weights, biases);  // (..., sum of outs)
    if (y.defined()) {
      int64_t at = 0;
      for (const torch::Tensor& w : weights) {
        out.push_back(y.narrow(-1, at, w.size(0)));  // (..., out_i)
        at += w.size(0);
      }
      return out;
    }
  }
  for (const auto* layer : layers) out.push_back(Linear(*layer, x));
  return out;
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
    TORCH_CHECK(cache->batch() == tokens.size(0), "Transformer: KV cache batch ",
                cache->batch(), " != token batch ", tokens.size(0));
    TORCH_CHECK(start_pos >= 0 && start_pos <= cache->length,
                "Transformer: start_pos ", start_pos,
                " must lie in [0, cache length ", cache->length, "]");
    TORCH_CHECK(start_pos + T <= cache->max_len(), "Transformer: positions up to ",
                start_pos + T, " exceed the KV cache size ", cache->max_len());
  }
  const torch::Tensor& weight = model->embed_tokens->weight;
  RowLayout layout;
  layout.position = {start_pos};
  layout.own_start = {start_pos};
  // Rotary tables in the activations' dtype: the weights' (autocast keeps float32 ones).
  ForwardPlan plan = PlanForward(layout, tokens.size(0), T, cache != nullptr, cache ? cache->max_len() : 0, config_,
                                 inv_freq_.to(weight.device()), weight.scalar_type());
  torch::Tensor logits = Logits(Hidden(tokens, plan, cache));  // (B, T, V)
  if (cache != nullptr) cache->length = start_pos + T;
  return logits;
}

torch::Tensor TransformerImpl::Hidden(const torch::Tensor& tokens, const ForwardPlan& plan, KVCache* cache) {
  if (cache != nullptr) {
    TORCH_CHECK(cache->k.size() == static_cast<size_t>(config_.num_hidden_layers), "Transformer: KV cache has ",
                cache->k.size(), " layers, model has ", config_.num_hidden_layers);
  }
  torch::Tensor x = model->embed_tokens->forward(tokens);  // (B, T, C)
  // Only when the block input records gradients (it does while the embedding trains):
  // the custom function records no backward otherwise, and the block's parameters
  // would silently get none.
  const bool checkpoint = checkpointing_ && cache == nullptr && torch::GradMode::is_enabled() && x.requires_grad();
  for (const auto& layer : *model->layers) {
    BlockImpl* block = layer->as<Block>();
    x = checkpoint ? CheckpointedBlock::apply(x, plan.cos, plan.sin, plan.hidden, block)  // (B, T, C)
                   : block->forward(x, plan, cache);                                     // (B, T, C)
  }
  return x;  // (B, T, C)
}

torch::Tensor TransformerImpl::Logits(const torch::Tensor& hidden) {
  torch::Tensor x = model->norm->forward(hidden);  // (..., C)
  torch::Tensor logits = config_.tie_word_embeddings ? Linear(x, model->embed_tokens->weight)  // (..., V)
                                                     : Linear(lm_head, x);                     // (..., V)
  return logits.to(torch::kFloat);                                                              // (..., V)
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

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const ForwardPlan& plan, KVCache* cache) {
  torch::Tensor h = x + self_attn->forward(input_layernorm->forward(x), plan, cache);  // (B, T, C)
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

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const ForwardPlan& plan, KVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = n_heads_, K = n_kv_heads_, D = head_dim_, R = H / K;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));

  std::vector<torch::Tensor> qkv = Linears(x, {&q_proj, &k_proj, &v_proj});
  torch::Tensor q = qkv[0].view({B, T, H, D});  // (B, T, H, D)
  torch::Tensor k = qkv[1].view({B, T, K, D});  // (B, T, K, D)
  torch::Tensor v = qkv[2].view({B, T, K, D});  // (B, T, K, D)
  if (q_norm) {  // Qwen3: RMSNorm over each head's D values, before RoPE.
    q = q_norm->forward(q);  // (B, T, H, D)
    k = k_norm->forward(k);  // (B, T, K, D)
  }
  if (cache != nullptr && T == 1 && FusedDecodeApplies(x) && q.scalar_type() == x.scalar_type() &&
      cache->k[layer_index_].scalar_type() == x.scalar_type() && plan.cos.scalar_type() == x.scalar_type()) {
    // One decode step on the CPU: rotary, cache write and attention in one kernel.
    torch::Tensor out = FusedDecodeAttention(q.view({B, H * D}), k.view({B, K * D}), v.view({B, K * D}), plan, *cache,
                                             layer_index_, H, K, D);  // (B, H*D)
    return Linear(o_proj, out.view({B, 1, H * D}));                 // (B, 1, C)
  }
  q = ApplyRotary(q, plan.cos, plan.sin);  // (B, T, H, D)
  k = ApplyRotary(k, plan.cos, plan.sin);  // (B, T, K, D)

  torch::Tensor keys, values;  // (B, K, S, D)
  if (cache == nullptr) {
    keys = k.transpose(1, 2);
    values = v.transpose(1, 2);
  } else {
    torch::Tensor& kc = cache->k[layer_index_];  // (rows, K, max_len, D)
    torch::Tensor& vc = cache->v[layer_index_];  // (rows, K, max_len, D)
    if (plan.write_index.defined()) {  // one token per row, each at its own position
      kc.view({-1, D}).index_copy_(0, plan.write_index, k.reshape({B * K, D}));
      vc.view({-1, D}).index_copy_(0, plan.write_index, v.reshape({B * K, D}));
    } else {
      kc.narrow(0, 0, B).narrow(2, plan.write_start, T).copy_(k.transpose(1, 2));
      vc.narrow(0, 0, B).narrow(2, plan.write_start, T).copy_(v.transpose(1, 2));
    }
    keys = kc.narrow(0, 0, B).narrow(2, 0, plan.own_keys);    // (B, K, S, D)
    values = vc.narrow(0, 0, B).narrow(2, 0, plan.own_keys);  // (B, K, S, D)
  }
  const int64_t S = keys.size(2), P = plan.prefix_keys;

  // Grouped-query attention without copying keys: the R query heads of each
  // key/value head (query head h reads key/value head h / R, as transformers'
  // repeat_kv) form the rows of one matmul against that head's keys.
  torch::Tensor qg = q.view({B, T, K, R, D}).permute({0, 2, 3, 1, 4}).reshape({B, K, R * T, D});  // (B, K, R*T, D)
  // Scaled in the model's dtype, then softmax in float32, as transformers' eager
  // attention does (same rounding in bf16).
  torch::Tensor scores = torch::matmul(qg, keys.transpose(-2, -1)).mul_(scale).view({B, K, R, T, S});  // (B, K, R, T, S)

  // A shared prefix: rows regrouped by slot, so each slot's keys are read once
  // for all the rows that share it (or gathered per row, see ForwardPlan).
  torch::Tensor prefix_keys, prefix_values;  // (slots or B, K, P, D)
  auto to_slots = [&](const torch::Tensor& t) {  // (B, K, R*T, n) -> (slots, K, per_slot*R*T, n)
    const int64_t G = plan.slots, M = plan.per_slot, n = t.size(-1);
    return torch::zeros({G * M, K, R * T, n}, t.options())
        .index_copy_(0, plan.group_index, t)
        .view({G, M, K, R * T, n})
        .transpose(1, 2)
        .reshape({G, K, M * R * T, n});
  };
  auto from_slots = [&](const torch::Tensor& t) {  // (slots, K, per_slot*R*T, n) -> (B, K, R*T, n)
    const int64_t G = plan.slots, M = plan.per_slot, n = t.size(-1);
    return t.view({G, K, M, R * T, n}).transpose(1, 2).reshape({G * M, K, R * T, n}).index_select(0, plan.group_index);
  };
  if (P > 0) {
    TORCH_CHECK(cache != nullptr && !cache->prefix_k.empty(), "Attention: a plan with a shared prefix needs its cache");
    const torch::Tensor& pk = cache->prefix_k[layer_index_];  // (slots, K, P_max, D)
    const torch::Tensor& pv = cache->prefix_v[layer_index_];
    torch::Tensor prefix_scores;  // (B, K, R*T, P)
    if (plan.gather) {
      prefix_keys = pk.index_select(0, plan.row_slot).narrow(2, 0, P);    // (B, K, P, D)
      prefix_values = pv.index_select(0, plan.row_slot).narrow(2, 0, P);  // (B, K, P, D)
      prefix_scores = torch::matmul(qg, prefix_keys.transpose(-2, -1));
    } else {
      prefix_keys = pk.narrow(0, 0, plan.slots).narrow(2, 0, P);    // (slots, K, P, D)
      prefix_values = pv.narrow(0, 0, plan.slots).narrow(2, 0, P);  // (slots, K, P, D)
      prefix_scores = from_slots(torch::matmul(to_slots(qg), prefix_keys.transpose(-2, -1)));
    }
    scores = torch::cat({prefix_scores.mul_(scale).view({B, K, R, T, P}), scores}, -1);  // (B, K, R, T, P + S)
  }
  scores = scores.to(torch::kFloat).masked_fill_(plan.hidden, -std::numeric_limits<float>::infinity());
  torch::Tensor probs = torch::softmax(scores, -1).to(q.scalar_type());  // (B, K, R, T, P + S)

  torch::Tensor out;  // (B, K, R*T, D)
  if (P == 0) {
    out = torch::matmul(probs.view({B, K, R * T, S}), values);
  } else {
    out = torch::matmul(probs.narrow(-1, P, S).reshape({B, K, R * T, S}), values);
    torch::Tensor prefix_probs = probs.narrow(-1, 0, P).reshape({B, K, R * T, P});
    out = out + (plan.gather ? torch::matmul(prefix_probs, prefix_values)
                             : from_slots(torch::matmul(to_slots(prefix_probs), prefix_values)));
  }
  out = out.view({B, K, R, T, D}).permute({0, 3, 1, 2, 4}).reshape({B, T, H * D});  // (B, T, H*D)
  return Linear(o_proj, out);                                                          // (B, T, C)
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
  std::vector<torch::Tensor> gate_up = Linears(x, {&gate_proj, &up_proj});  // (B, T, F) each
  torch::Tensor h = FusedDecodeApplies(x) ? FusedSwiGlu(gate_up[0], gate_up[1])
                                          : F::silu(gate_up[0]) * gate_up[1];  // (B, T, F)
  return Linear(down_proj, h);                                                  // (B, T, C)
}

// ---------------------------------------------------------------------------
// RMSNorm
// ---------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));  // (C)
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  if (FusedDecodeApplies(x) && weight.scalar_type() == x.scalar_type()) return FusedRmsNorm(x, weight, eps_);
  torch::Tensor x32 = x.to(torch::kFloat);                      // (..., C)
  torch::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);  // (..., 1)
  torch::Tensor normed = x32 * torch::rsqrt(variance + eps_);  // (..., C)
  return weight * normed.to(x.scalar_type());                  // (..., C)
}

}  // namespace grpo::model

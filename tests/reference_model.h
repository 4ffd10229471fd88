// A naive reference of the Hugging Face Llama / Qwen2 / Qwen3 causal LM
// forward pass, for tests (llm.c style golden checks).
//
// Written straight from transformers' modeling_llama / modeling_qwen2 /
// modeling_qwen3 formulas with plain loops over std::vector: no LibTorch op
// takes part in the math (LibTorch only converts the weights to float when
// they are copied out of the TensorMap). Weights are kept as float and every
// sum is accumulated in double, so the reference is at least as accurate as
// a float32 model; compare against it with a tolerance (~1e-4).
//
//   x      = embed_tokens[ids]
//   per layer:
//     h    = RMSNorm(x) * input_layernorm              (mean of squares over C)
//     q,k,v = h W^T (+ bias: attention_bias; qwen2 always)
//     qwen3: q, k = RMSNorm over each head's D values * q_norm / k_norm
//     q,k  = rotate_half RoPE: pairs (i, i + D/2), angle pos * inv_freq[i],
//            inv_freq = 1 / theta^(2i/D) rescaled by rope_scaling
//            ("linear": / factor; "llama3": _compute_llama3_parameters)
//     attn = softmax(q k^T / sqrt(D), causal) v, query head h reading
//            key/value head h / (H / K)
//     x   += attn W_o^T (+ o_proj bias: attention_bias, not qwen2)
//     h    = RMSNorm(x) * post_attention_layernorm
//     x   += (silu(h W_gate^T) * (h W_up^T)) W_down^T (+ biases: mlp_bias)
//   logits = RMSNorm(x) * norm, times lm_head^T (embed_tokens^T when tied)
//
// Header-only; include it from a test that links grpo_model.
#ifndef GRPO_TESTS_REFERENCE_MODEL_H_
#define GRPO_TESTS_REFERENCE_MODEL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "core/model/model_config.h"
#include "core/model/safetensors.h"

namespace grpo::model::testing {

// Rotary inverse frequencies in double: 1 / theta^(2i / D) for i < D/2, then
// rope_scaling as transformers applies it.
inline std::vector<double> ReferenceInvFreq(const ModelConfig& config) {
  const int64_t D = config.head_dim();
  std::vector<double> inv_freq(D / 2);
  for (int64_t i = 0; i < D / 2; ++i) {
    inv_freq[i] = 1.0 / std::pow(config.rope_theta, static_cast<double>(2 * i) / D);
  }
  if (!config.rope_scaling) return inv_freq;
  const RopeScaling& rs = *config.rope_scaling;
  if (rs.rope_type == "linear") {
    for (double& f : inv_freq) f /= rs.factor;
    return inv_freq;
  }
  if (rs.rope_type != "llama3") {
    throw std::invalid_argument("reference: unsupported rope_type " + rs.rope_type);
  }
  // _compute_llama3_parameters: keep high frequencies, divide low ones by
  // factor, interpolate in between.
  const double old_context_len = static_cast<double>(rs.original_max_position_embeddings);
  const double low_freq_wavelen = old_context_len / rs.low_freq_factor;
  const double high_freq_wavelen = old_context_len / rs.high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2 * M_PI / f;
    if (wavelen < high_freq_wavelen) continue;
    if (wavelen > low_freq_wavelen) {
      f /= rs.factor;
      continue;
    }
    const double smooth = (old_context_len / wavelen - rs.low_freq_factor) /
                          (rs.high_freq_factor - rs.low_freq_factor);
    f = (1 - smooth) * f / rs.factor + smooth * f;
  }
  return inv_freq;
}

class ReferenceModel {
 public:
  // Copies the weights the architecture needs, by Hugging Face name, out of
  // `weights` (any floating dtype). Throws std::invalid_argument naming a
  // missing tensor or one of the wrong size. Extra tensors are ignored.
  static ReferenceModel FromStateDict(const ModelConfig& config, const TensorMap& weights) {
    ReferenceModel m;
    m.config_ = config;
    m.inv_freq_ = ReferenceInvFreq(config);
    const int64_t C = config.hidden_size, D = config.head_dim();
    const int64_t H = config.num_attention_heads, K = config.num_key_value_heads;
    const int64_t Fdim = config.intermediate_size, V = config.vocab_size;
    const bool qkv_bias = config.attention_bias || config.model_type == "qwen2";
    const bool o_bias = config.attention_bias && config.model_type != "qwen2";
    auto take = [&](const std::string& name, int64_t numel) {
      auto it = weights.find(name);
      if (it == weights.end()) throw std::invalid_argument("reference: missing tensor " + name);
      torch::Tensor t = it->second.detach().to(torch::kCPU, torch::kFloat).contiguous();
      if (t.numel() != numel) {
        throw std::invalid_argument("reference: tensor " + name + " has " +
                                    std::to_string(t.numel()) + " elements, expected " +
                                    std::to_string(numel));
      }
      m.w_[name] = std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + numel);
    };
    take("model.embed_tokens.weight", V * C);
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      take(p + "input_layernorm.weight", C);
      take(p + "post_attention_layernorm.weight", C);
      take(p + "self_attn.q_proj.weight", H * D * C);
      take(p + "self_attn.k_proj.weight", K * D * C);
      take(p + "self_attn.v_proj.weight", K * D * C);
      take(p + "self_attn.o_proj.weight", C * H * D);
      if (qkv_bias) {
        take(p + "self_attn.q_proj.bias", H * D);
        take(p + "self_attn.k_proj.bias", K * D);
        take(p + "self_attn.v_proj.bias", K * D);
      }
      if (o_bias) take(p + "self_attn.o_proj.bias", C);
      if (config.model_type == "qwen3") {
        take(p + "self_attn.q_norm.weight", D);
        take(p + "self_attn.k_norm.weight", D);
      }
      take(p + "mlp.gate_proj.weight", Fdim * C);
      take(p + "mlp.up_proj.weight", Fdim * C);
      take(p + "mlp.down_proj.weight", C * Fdim);
      if (config.mlp_bias) {
        take(p + "mlp.gate_proj.bias", Fdim);
        take(p + "mlp.up_proj.bias", Fdim);
        take(p + "mlp.down_proj.bias", C);
      }
    }
    take("model.norm.weight", C);
    if (!config.tie_word_embeddings) take("lm_head.weight", V * C);
    return m;
  }

  // Logits (T, V) at every position of `ids` (full causal forward, T >= 1).
  std::vector<std::vector<float>> Forward(const std::vector<int64_t>& ids) const {
    const ModelConfig& c = config_;
    const int64_t T = static_cast<int64_t>(ids.size());
    const int64_t C = c.hidden_size, D = c.head_dim();
    const int64_t H = c.num_attention_heads, K = c.num_key_value_heads;
    const int64_t group = H / K;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));

    std::vector<Vec> x(T);  // (T, C) residual stream
    const std::vector<float>& embed = W("model.embed_tokens.weight");
    for (int64_t t = 0; t < T; ++t) {
      if (ids[t] < 0 || ids[t] >= c.vocab_size) {
        throw std::invalid_argument("reference: token id " + std::to_string(ids[t]) +
                                    " outside the vocabulary");
      }
      x[t].assign(embed.begin() + ids[t] * C, embed.begin() + (ids[t] + 1) * C);
    }

    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      std::vector<Vec> q(T), k(T), v(T);  // (T, H*D), (T, K*D), (T, K*D)
      for (int64_t t = 0; t < T; ++t) {
        const Vec h = RmsNorm(x[t], W(p + "input_layernorm.weight"));
        q[t] = Linear(p + "self_attn.q_proj", h);
        k[t] = Linear(p + "self_attn.k_proj", h);
        v[t] = Linear(p + "self_attn.v_proj", h);
        if (c.model_type == "qwen3") {
          NormHeads(&q[t], W(p + "self_attn.q_norm.weight"));
          NormHeads(&k[t], W(p + "self_attn.k_norm.weight"));
        }
        Rope(&q[t], t);
        Rope(&k[t], t);
      }
      for (int64_t t = 0; t < T; ++t) {
        Vec attn(H * D, 0.0);  // (H*D) for position t
        for (int64_t head = 0; head < H; ++head) {
          const int64_t kv = head / group;
          std::vector<double> scores(t + 1);  // keys 0..t (causal)
          double max_score = -INFINITY;
          for (int64_t j = 0; j <= t; ++j) {
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += q[t][head * D + d] * k[j][kv * D + d];
            scores[j] = dot * scale;
            max_score = std::max(max_score, scores[j]);
          }
          double total = 0;
          for (double& s : scores) total += (s = std::exp(s - max_score));
          for (int64_t j = 0; j <= t; ++j) {
            const double prob = scores[j] / total;
            for (int64_t d = 0; d < D; ++d) attn[head * D + d] += prob * v[j][kv * D + d];
          }
        }
        const Vec out = Linear(p + "self_attn.o_proj", attn);  // (C)
        for (int64_t i = 0; i < C; ++i) x[t][i] += out[i];
      }
      for (int64_t t = 0; t < T; ++t) {
        const Vec h = RmsNorm(x[t], W(p + "post_attention_layernorm.weight"));
        Vec gate = Linear(p + "mlp.gate_proj", h);  // (F)
        const Vec up = Linear(p + "mlp.up_proj", h);  // (F)
        for (size_t i = 0; i < gate.size(); ++i) {
          gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];  // silu(gate) * up
        }
        const Vec down = Linear(p + "mlp.down_proj", gate);  // (C)
        for (int64_t i = 0; i < C; ++i) x[t][i] += down[i];
      }
    }

    const std::string head =
        c.tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    std::vector<std::vector<float>> logits(T);  // (T, V)
    for (int64_t t = 0; t < T; ++t) {
      const Vec out = Linear(head, RmsNorm(x[t], W("model.norm.weight")));
      logits[t].assign(out.begin(), out.end());
    }
    return logits;
  }

  // Greedy continuation of `prompt` by n tokens, recomputing the full
  // forward each step; ties pick the lowest id (as torch.argmax does).
  std::vector<int64_t> Greedy(std::vector<int64_t> prompt, int n) const {
    std::vector<int64_t> out;
    for (int i = 0; i < n; ++i) {
      const std::vector<float> last = Forward(prompt).back();  // (V)
      int64_t best = 0;
      for (int64_t id = 1; id < static_cast<int64_t>(last.size()); ++id) {
        if (last[id] > last[best]) best = id;
      }
      out.push_back(best);
      prompt.push_back(best);
    }
    return out;
  }

  const ModelConfig& config() const { return config_; }
  const std::vector<double>& inv_freq() const { return inv_freq_; }

 private:
  using Vec = std::vector<double>;

  const std::vector<float>& W(const std::string& name) const { return w_.at(name); }

  // y = x W^T + b for `<name>.weight` (out, in) and `<name>.bias` if loaded.
  Vec Linear(const std::string& name, const Vec& x) const {
    const std::vector<float>& w = W(name + ".weight");
    const int64_t in = static_cast<int64_t>(x.size());
    const int64_t out = static_cast<int64_t>(w.size()) / in;
    auto bias = w_.find(name + ".bias");
    Vec y(out);
    for (int64_t o = 0; o < out; ++o) {
      double sum = bias == w_.end() ? 0.0 : bias->second[o];
      for (int64_t i = 0; i < in; ++i) sum += w[o * in + i] * x[i];
      y[o] = sum;
    }
    return y;
  }

  // x / sqrt(mean(x^2) + eps) * weight.
  Vec RmsNorm(const Vec& x, const std::vector<float>& weight) const {
    double sum_sq = 0;
    for (double value : x) sum_sq += value * value;
    const double inv_rms = 1.0 / std::sqrt(sum_sq / x.size() + config_.rms_norm_eps);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv_rms * weight[i];
    return y;
  }

  // Qwen3's q_norm / k_norm: RMSNorm over each D-sized head of *x.
  void NormHeads(Vec* x, const std::vector<float>& weight) const {
    const size_t D = weight.size();
    for (size_t start = 0; start < x->size(); start += D) {
      const Vec head(x->begin() + start, x->begin() + start + D);
      const Vec normed = RmsNorm(head, weight);
      std::copy(normed.begin(), normed.end(), x->begin() + start);
    }
  }

  // rotate_half RoPE at position `pos` on every D-sized head of *x:
  // (a, b) = (x[i], x[i + D/2]) -> (a cos - b sin, b cos + a sin).
  void Rope(Vec* x, int64_t pos) const {
    const size_t D = static_cast<size_t>(config_.head_dim()), half = D / 2;
    for (size_t start = 0; start < x->size(); start += D) {
      for (size_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(pos) * inv_freq_[i];
        const double cs = std::cos(angle), sn = std::sin(angle);
        const double a = (*x)[start + i], b = (*x)[start + i + half];
        (*x)[start + i] = a * cs - b * sn;
        (*x)[start + i + half] = b * cs + a * sn;
      }
    }
  }

  ModelConfig config_;
  std::vector<double> inv_freq_;
  std::map<std::string, std::vector<float>> w_;
};

// Greedy continuation straight from a state dict (see ReferenceModel).
inline std::vector<int64_t> ReferenceGreedy(const TensorMap& weights, const ModelConfig& config,
                                            const std::vector<int64_t>& prompt, int n) {
  return ReferenceModel::FromStateDict(config, weights).Greedy(prompt, n);
}

}  // namespace grpo::model::testing

#endif  // GRPO_TESTS_REFERENCE_MODEL_H_

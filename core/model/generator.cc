#include "core/model/generator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <utility>

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace grpo::model {
namespace {

namespace F = torch::nn::functional;

// Prompt tokens per prefill chunk: bounds the (T x T) attention scores.
constexpr int64_t kPrefillChunk = 512;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// [x1, x2] -> [-x2, x1] on the last dimension (Hugging Face rotate_half).
torch::Tensor RotateHalf(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// A host vector as a tensor on `device`. On a GPU the bytes go through pinned memory
// with an asynchronous copy, so feeding a decode step never waits for the device (the
// step's one synchronisation is reading its sampled tokens back).
template <typename T>
torch::Tensor ToDevice(const std::vector<T>& values, torch::ScalarType dtype, const torch::Device& device) {
  const int64_t n = static_cast<int64_t>(values.size());
  if (!device.is_cuda()) return torch::tensor(values, dtype);
  torch::Tensor host = torch::empty({n}, torch::TensorOptions().dtype(dtype).pinned_memory(true));
  std::copy(values.begin(), values.end(), host.data_ptr<T>());
  return host.to(device, /*non_blocking=*/true);
}

// Per-layer keys and values: k[l], v[l] are (rows, K, max_len, D).
struct LayerCache {
  std::vector<torch::Tensor> k, v;

  static LayerCache Allocate(const ModelConfig& c, int64_t rows, int64_t len,
                             torch::TensorOptions options) {
    LayerCache cache;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      cache.k.push_back(torch::zeros({rows, c.num_key_value_heads, len, c.head_dim()}, options));
      cache.v.push_back(torch::zeros({rows, c.num_key_value_heads, len, c.head_dim()}, options));
    }
    return cache;
  }
  // Copies positions [0, len) of row `src` of `from` into row `dst` of this.
  void CopyRow(int64_t dst, const LayerCache& from, int64_t src, int64_t len) {
    for (size_t l = 0; l < k.size(); ++l) {
      k[l][dst].narrow(1, 0, len).copy_(from.k[l][src].narrow(1, 0, len));
      v[l][dst].narrow(1, 0, len).copy_(from.v[l][src].narrow(1, 0, len));
    }
  }
};

// A completion being decoded in a row of the slot cache.
struct Row {
  int64_t request = 0;
  int64_t sample = 0;
  int64_t prompt_len = 0;
  int64_t length = 0;      // positions of this row's slot holding keys
  int64_t next_token = 0;  // sampled, not yet fed to the model
  int64_t limit = 0;       // most tokens this completion may have
  std::string tail;        // last bytes of the completion, for stop strings
};

// A prefilled prompt waiting for its completions to take rows.
struct Prefix {
  std::shared_ptr<LayerCache> cache;  // rows of one batched prefill
  int64_t row = 0;                    // this prompt's row in `cache`
  torch::Tensor logits;               // (V) float32, of the prompt's last token
  int64_t remaining = 0;              // completions not yet placed
};

}  // namespace

double CounterUniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t h = SplitMix64(seed);
  h = SplitMix64(h ^ a);
  h = SplitMix64(h ^ (b * 0x9e3779b97f4a7c15ULL));
  h = SplitMix64(h ^ (c * 0xc2b2ae3d27d4eb4fULL));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStopToken: return "stop";
    case FinishReason::kStopString: return "stop_string";
    case FinishReason::kLength: return "length";
  }
  return "length";
}

// ---------------------------------------------------------------------------
// The forward pass over rows with their own positions.
// ---------------------------------------------------------------------------
struct Generator::Impl {
  Transformer& model;
  const ModelConfig& c;
  torch::Device device;
  torch::ScalarType dtype;
  torch::Tensor inv_freq;  // (D/2) float32 on `device`

  explicit Impl(Transformer& m)
      : model(m),
        c(m->config()),
        device(m->model->embed_tokens->weight.device()),
        dtype(m->model->embed_tokens->weight.scalar_type()),
        inv_freq(device.is_cuda() ? m->inv_freq().pin_memory().to(device, /*non_blocking=*/true)
                                  : m->inv_freq()) {}

  // Runs tokens (B, T) through the blocks. Row b's tokens sit at positions
  // start[b] + t; its keys and values are written to row b of `cache` there,
  // and it attends to cache positions [0, start[b] + t]. T > 1 requires all
  // starts equal (prefill chunks). Returns the final-normed hidden states
  // (B, T, C).
  torch::Tensor Blocks(const torch::Tensor& tokens, const std::vector<int64_t>& start,
                       LayerCache& cache) {
    const int64_t B = tokens.size(0), T = tokens.size(1);
    const int64_t H = c.num_attention_heads, K = c.num_key_value_heads, D = c.head_dim();
    const int64_t R = H / K;
    const int64_t max_len = cache.k[0].size(2);
    const int64_t S = *std::max_element(start.begin(), start.end()) + T;  // keys attended
    const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);

    torch::Tensor start_t = ToDevice(start, torch::kInt64, device);                           // (B)
    torch::Tensor pos = start_t.unsqueeze(1) + torch::arange(T, i64).unsqueeze(0);          // (B, T)
    torch::Tensor angles = pos.to(torch::kFloat).unsqueeze(-1) * inv_freq;                  // (B, T, D/2)
    torch::Tensor emb = torch::cat({angles, angles}, -1);                                    // (B, T, D)
    torch::Tensor cos = emb.cos().to(dtype).unsqueeze(2);                                    // (B, T, 1, D)
    torch::Tensor sin = emb.sin().to(dtype).unsqueeze(2);                                    // (B, T, 1, D)
    // Key j is visible to the token at position p when j <= p.
    torch::Tensor hidden_keys =
        torch::arange(S, i64).view({1, 1, S}) > pos.unsqueeze(-1);                           // (B, T, S)
    torch::Tensor mask = hidden_keys.view({B, 1, 1, T, S});
    // Flat (row, kv head, position) index of each new key, for T == 1.
    torch::Tensor flat_index;
    if (T == 1) {
      flat_index = ((torch::arange(B, i64).unsqueeze(1) * K + torch::arange(K, i64).unsqueeze(0)) * max_len +
                    start_t.unsqueeze(1)).view({B * K});                                     // (B*K)
    } else {
      for (int64_t s : start) TORCH_CHECK(s == start[0], "Generator: a multi-token chunk needs equal starts");
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));

    torch::Tensor x = model->model->embed_tokens->forward(tokens);  // (B, T, C)
    int64_t l = 0;
    for (const auto& layer_module : *model->model->layers) {
      auto* block = layer_module->as<Block>();
      auto& attn = block->self_attn;
      torch::Tensor h = block->input_layernorm->forward(x);          // (B, T, C)
      torch::Tensor q = Linear(attn->q_proj, h).view({B, T, H, D});  // (B, T, H, D)
      torch::Tensor k = Linear(attn->k_proj, h).view({B, T, K, D});  // (B, T, K, D)
      torch::Tensor v = Linear(attn->v_proj, h).view({B, T, K, D});  // (B, T, K, D)
      if (attn->q_norm) {
        q = attn->q_norm->forward(q);
        k = attn->k_norm->forward(k);
      }
      q = q * cos + RotateHalf(q) * sin;  // (B, T, H, D)
      k = k * cos + RotateHalf(k) * sin;  // (B, T, K, D)

      torch::Tensor& kc = cache.k[l];  // (rows, K, max_len, D)
      torch::Tensor& vc = cache.v[l];
      if (T == 1) {
        kc.view({-1, D}).index_copy_(0, flat_index, k.view({B * K, D}));
        vc.view({-1, D}).index_copy_(0, flat_index, v.view({B * K, D}));
      } else {
        kc.narrow(0, 0, B).narrow(2, start[0], T).copy_(k.transpose(1, 2));
        vc.narrow(0, 0, B).narrow(2, start[0], T).copy_(v.transpose(1, 2));
      }
      torch::Tensor keys = kc.narrow(0, 0, B).narrow(2, 0, S);    // (B, K, S, D)
      torch::Tensor values = vc.narrow(0, 0, B).narrow(2, 0, S);  // (B, K, S, D)

      // Grouped-query attention without copying keys: the R query heads of
      // each key/value head form the rows of one matmul against its keys.
      torch::Tensor qg = q.view({B, T, K, R, D}).permute({0, 2, 3, 1, 4}).reshape({B, K, R * T, D});
      // Scaled in the model's dtype, then softmax in float32, as transformers' eager
      // attention and Transformer::forward do (same rounding in bf16).
      torch::Tensor scores = torch::matmul(qg, keys.transpose(-2, -1)).mul_(scale).view({B, K, R, T, S});
      scores = scores.to(torch::kFloat).masked_fill_(mask, -std::numeric_limits<float>::infinity());
      torch::Tensor probs = torch::softmax(scores, -1).to(dtype).view({B, K, R * T, S});
      torch::Tensor out = torch::matmul(probs, values)                          // (B, K, R*T, D)
                              .view({B, K, R, T, D})
                              .permute({0, 3, 1, 2, 4})
                              .reshape({B, T, H * D});                          // (B, T, H*D)
      x = x + Linear(attn->o_proj, out);                                        // (B, T, C)
      x = x + block->mlp->forward(block->post_attention_layernorm->forward(x));  // (B, T, C)
      ++l;
    }
    return x;
  }

  // Final norm and output projection of hidden states (N, C) -> (N, V) f32.
  torch::Tensor Logits(const torch::Tensor& hidden) {
    torch::Tensor h = model->model->norm->forward(hidden);
    torch::Tensor logits = c.tie_word_embeddings ? Linear(h, model->model->embed_tokens->weight)
                                                 : Linear(model->lm_head, h);
    return logits.to(torch::kFloat);
  }

  // Prefills prompts (right-padded into one batch, in chunks) into a new
  // prefix cache; returns it and the logits (N, V) of each prompt's last token.
  std::pair<std::shared_ptr<LayerCache>, torch::Tensor> Prefill(
      const std::vector<const std::vector<int64_t>*>& prompts) {
    const int64_t N = static_cast<int64_t>(prompts.size());
    int64_t P = 0;
    for (const auto* p : prompts) P = std::max<int64_t>(P, p->size());
    auto cache = std::make_shared<LayerCache>(
        LayerCache::Allocate(c, N, P, torch::TensorOptions().dtype(dtype).device(device)));
    std::vector<int64_t> flat(static_cast<size_t>(N * P), 0);  // (N, P), pads are token 0
    for (int64_t i = 0; i < N; ++i) std::copy(prompts[i]->begin(), prompts[i]->end(), flat.begin() + i * P);
    torch::Tensor ids = ToDevice(flat, torch::kInt64, device).view({N, P});
    std::vector<torch::Tensor> last(N);
    for (int64_t c0 = 0; c0 < P; c0 += kPrefillChunk) {
      const int64_t T = std::min(kPrefillChunk, P - c0);
      torch::Tensor hidden = Blocks(ids.narrow(1, c0, T), std::vector<int64_t>(N, c0), *cache);  // (N, T, C)
      for (int64_t i = 0; i < N; ++i) {
        const int64_t p = static_cast<int64_t>(prompts[i]->size()) - 1;
        if (p >= c0 && p < c0 + T) last[i] = hidden[i][p - c0];  // (C)
      }
    }
    return {cache, Logits(torch::stack(last))};  // (N, V)
  }
};

// ---------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------
namespace {

// Picks one token per row of logits (N, V) with the given uniforms; returns
// the tokens and their logprobs under log_softmax(logits / temperature).
std::pair<std::vector<int64_t>, std::vector<float>> PickTokens(const torch::Tensor& logits,
                                                               const SamplingParams& params,
                                                               const std::vector<double>& uniforms) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  torch::Tensor tokens, scaled;
  if (params.temperature == 0.0) {
    scaled = logits;
    tokens = logits.argmax(-1);  // (N)
  } else {
    scaled = logits / params.temperature;  // (N, V)
    torch::Tensor filtered = scaled;
    if (params.top_k > 0 && params.top_k < V) {
      torch::Tensor kth = std::get<0>(scaled.topk(params.top_k, -1)).narrow(-1, params.top_k - 1, 1);  // (N, 1)
      filtered = filtered.masked_fill(filtered < kth, neg_inf);
    }
    if (params.top_p < 1.0) {
      auto [sorted, order] = filtered.sort(-1, /*descending=*/true);  // (N, V)
      torch::Tensor p = torch::softmax(sorted, -1);
      // Drop a token once the strictly more likely ones already hold top_p;
      // the most likely token always stays.
      torch::Tensor drop_sorted = (p.cumsum(-1) - p) >= params.top_p;                 // (N, V)
      torch::Tensor drop = torch::zeros_like(drop_sorted).scatter_(-1, order, drop_sorted);
      filtered = filtered.masked_fill(drop, neg_inf);
    }
    // The CDF and the target in float64, so tokens of tiny probability keep their
    // share (a float32 cumsum on the GPU would not).
    torch::Tensor probs = torch::softmax(filtered.to(torch::kDouble), -1);  // (N, V)
    torch::Tensor cdf = probs.cumsum(-1);                                   // (N, V)
    torch::Tensor target = ToDevice(uniforms, torch::kDouble, logits.device()).view({N, 1}) *
                           cdf.narrow(-1, V - 1, 1);  // (N, 1), below the total since u < 1
    tokens = torch::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).clamp_max(V - 1);      // (N, 1)
    // Rounding at the very top of the cdf could land on a dropped token.
    torch::Tensor ok = probs.gather(-1, tokens) > 0;
    tokens = torch::where(ok, tokens, probs.argmax(-1, /*keepdim=*/true)).squeeze(-1);  // (N)
  }
  torch::Tensor logprobs = scaled.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - scaled.logsumexp(-1);  // (N)
  // Tokens and logprobs come back in one copy: the decode step's only wait for the
  // device. Token ids are exact in float64 (vocabularies are far below 2^53).
  torch::Tensor both = torch::stack({tokens.to(torch::kDouble), logprobs.to(torch::kDouble)}).to(torch::kCPU);  // (2, N)
  const double* t = both.data_ptr<double>();
  std::vector<int64_t> token_ids(static_cast<size_t>(N));
  std::vector<float> lps(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    token_ids[i] = static_cast<int64_t>(t[i]);
    lps[i] = static_cast<float>(t[N + i]);
  }
  return {std::move(token_ids), std::move(lps)};
}

absl::Status CheckParams(const SamplingParams& p) {
  if (!(p.temperature >= 0.0)) return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, got ", p.temperature));
  if (!(p.top_p > 0.0 && p.top_p <= 1.0)) return absl::InvalidArgumentError(absl::StrCat("top_p must lie in (0, 1], got ", p.top_p));
  if (p.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", p.top_k));
  if (p.max_new_tokens < 0) return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be >= 0, got ", p.max_new_tokens));
  for (const std::string& s : p.stop_strings) {
    if (s.empty()) return absl::InvalidArgumentError("a stop string is empty");
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------

Generator::Generator(Transformer model, GeneratorOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  TORCH_CHECK(options_.max_batch >= 1, "Generator: max_batch must be >= 1, got ", options_.max_batch);
  TORCH_CHECK(options_.max_prefill_tokens >= 1, "Generator: max_prefill_tokens must be >= 1");
}

absl::StatusOr<std::vector<std::vector<SampledSequence>>> Generator::Generate(
    const std::vector<GenerationRequest>& requests, const SamplingParams& params, uint64_t seed,
    const std::function<void(int64_t, int64_t, int64_t)>& on_token) {
  stats_ = GenerationStats{};
  const ModelConfig& cfg = model_->config();
  if (absl::Status s = CheckParams(params); !s.ok()) return s;
  if (!params.stop_strings.empty() && static_cast<int64_t>(options_.token_bytes.size()) < cfg.vocab_size) {
    return absl::InvalidArgumentError("stop strings need the tokenizer's token bytes (GeneratorOptions::token_bytes)");
  }
  const int64_t context = cfg.max_position_embeddings;
  int64_t max_len = 1;
  for (size_t r = 0; r < requests.size(); ++r) {
    const GenerationRequest& req = requests[r];
    const int64_t P = static_cast<int64_t>(req.prompt_ids.size());
    if (P == 0) return absl::InvalidArgumentError(absl::StrCat("request ", r, ": the prompt is empty"));
    if (req.num_samples < 1) return absl::InvalidArgumentError(absl::StrCat("request ", r, ": num_samples must be >= 1"));
    if (P >= context) {
      return absl::InvalidArgumentError(absl::StrCat("request ", r, ": the prompt has ", P,
                                                     " tokens; the model's context is ", context));
    }
    for (int64_t id : req.prompt_ids) {
      if (id < 0 || id >= cfg.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("request ", r, ": token id ", id, " is outside the vocabulary [0, ",
                                                       cfg.vocab_size, ")"));
      }
    }
    max_len = std::max(max_len, P + std::min(params.max_new_tokens, context - P));
  }

  std::vector<std::vector<SampledSequence>> out(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) out[r].resize(requests[r].num_samples);
  if (params.max_new_tokens == 0) {
    for (auto& group : out) for (SampledSequence& s : group) s.truncated = true;
    return out;
  }

  c10::InferenceMode inference_mode;
  Impl impl(model_);
  std::vector<std::pair<int64_t, int64_t>> queue;  // (request, sample) in order
  for (size_t r = 0; r < requests.size(); ++r) {
    for (int64_t s = 0; s < requests[r].num_samples; ++s) queue.emplace_back(r, s);
  }
  size_t next = 0;  // first completion in `queue` without a row yet
  const int64_t max_batch = std::min<int64_t>(options_.max_batch, queue.size());
  LayerCache slots = LayerCache::Allocate(cfg, max_batch, max_len,
                                          torch::TensorOptions().dtype(impl.dtype).device(impl.device));
  std::map<int64_t, Prefix> prefixes;  // prefilled prompts with completions still to place
  std::vector<Row> rows;               // rows[i] decodes in slot i
  size_t max_stop = 0;
  for (const std::string& s : params.stop_strings) max_stop = std::max(max_stop, s.size());

  // Records `token` for `row`; returns true when the completion is finished.
  auto record = [&](Row& row, int64_t token, float logprob) {
    SampledSequence& seq = out[row.request][row.sample];
    seq.token_ids.push_back(token);
    seq.logprobs.push_back(logprob);
    if (on_token) on_token(row.request, row.sample, token);
    row.next_token = token;
    const auto& stops = params.stop_token_ids;
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
      seq.finish_reason = FinishReason::kStopToken;
      return true;
    }
    if (max_stop > 0 && token >= 0 && token < static_cast<int64_t>(options_.token_bytes.size())) {
      const std::string& bytes = options_.token_bytes[token];
      row.tail += bytes;
      // A stop string completed by this token ends within the last
      // (stop length + token length - 1) bytes.
      for (const std::string& stop : params.stop_strings) {
        const size_t from = row.tail.size() > stop.size() + bytes.size() ? row.tail.size() - stop.size() - bytes.size() : 0;
        if (row.tail.find(stop, from) != std::string::npos) {
          seq.finish_reason = FinishReason::kStopString;
          return true;
        }
      }
      if (row.tail.size() > max_stop) row.tail.erase(0, row.tail.size() - max_stop);
    }
    if (static_cast<int64_t>(seq.token_ids.size()) >= row.limit) {
      seq.finish_reason = FinishReason::kLength;
      seq.truncated = true;
      return true;
    }
    return false;
  };

  while (true) {
    // 1. Fill free rows with waiting completions, prefilling the prompts of
    // requests that have none yet (batched, within the token budget).
    const int64_t free_rows = max_batch - static_cast<int64_t>(rows.size());
    if (free_rows > 0 && next < queue.size()) {
      std::vector<int64_t> to_prefill;
      int64_t covered = 0, tokens = 0, longest = 0;
      for (size_t i = next; i < queue.size() && covered < free_rows; ++i) {
        const int64_t r = queue[i].first;
        ++covered;
        if (prefixes.count(r) || (!to_prefill.empty() && to_prefill.back() == r)) continue;
        const int64_t P = static_cast<int64_t>(requests[r].prompt_ids.size());
        // The batch is right-padded to its longest prompt: budget the padded size.
        const int64_t padded = static_cast<int64_t>(to_prefill.size() + 1) * std::max(longest, P);
        if (!to_prefill.empty() && padded > options_.max_prefill_tokens) break;
        to_prefill.push_back(r);
        tokens += P;
        longest = std::max(longest, P);
      }
      if (!to_prefill.empty()) {
        std::vector<const std::vector<int64_t>*> prompts;
        for (int64_t r : to_prefill) prompts.push_back(&requests[r].prompt_ids);
        auto [cache, logits] = impl.Prefill(prompts);
        ++stats_.prefill_forwards;
        stats_.prefill_tokens += tokens;
        for (size_t i = 0; i < to_prefill.size(); ++i) {
          const int64_t r = to_prefill[i];
          prefixes[r] = Prefix{cache, static_cast<int64_t>(i), logits[i], requests[r].num_samples};
        }
      }
      // Place completions whose prompt is prefilled: sample their first
      // tokens from the prompt's logits, then copy the prompt's keys and
      // values into a slot for each one that goes on decoding.
      std::vector<Row> joined;
      std::vector<std::pair<std::shared_ptr<LayerCache>, int64_t>> sources;
      std::vector<torch::Tensor> first_logits;
      std::vector<double> uniforms;
      while (static_cast<int64_t>(rows.size() + joined.size()) < max_batch && next < queue.size()) {
        auto [r, s] = queue[next];
        auto it = prefixes.find(r);
        if (it == prefixes.end()) break;  // beyond this round's prefill budget
        ++next;
        Prefix& prefix = it->second;
        Row row;
        row.request = r;
        row.sample = s;
        row.prompt_len = static_cast<int64_t>(requests[r].prompt_ids.size());
        row.length = row.prompt_len;
        row.limit = std::min(params.max_new_tokens, context - row.prompt_len);
        sources.emplace_back(prefix.cache, prefix.row);
        first_logits.push_back(prefix.logits);
        uniforms.push_back(CounterUniform(seed, r, s, 0));
        joined.push_back(std::move(row));
        if (--prefix.remaining == 0) prefixes.erase(it);
      }
      if (!joined.empty()) {
        if (stats_.decode_steps > 0 && !rows.empty()) stats_.joins_mid_decode += joined.size();
        auto [tokens, logprobs] = PickTokens(torch::stack(first_logits), params, uniforms);
        for (size_t j = 0; j < joined.size(); ++j) {
          if (record(joined[j], tokens[j], logprobs[j])) continue;  // finished by its first token
          slots.CopyRow(static_cast<int64_t>(rows.size()), *sources[j].first, sources[j].second,
                        joined[j].prompt_len);
          rows.push_back(std::move(joined[j]));
        }
      }
      stats_.max_active = std::max<int64_t>(stats_.max_active, rows.size());
      if (rows.empty()) {
        if (next >= queue.size()) break;
        continue;
      }
    } else if (rows.empty()) {
      break;
    }
    // 2. One decode step for every active row.
    const int64_t n = static_cast<int64_t>(rows.size());
    std::vector<int64_t> feed(n), start(n);
    std::vector<double> uniforms(n);
    for (int64_t i = 0; i < n; ++i) {
      feed[i] = rows[i].next_token;
      start[i] = rows[i].length;
      uniforms[i] = CounterUniform(seed, rows[i].request, rows[i].sample,
                                   out[rows[i].request][rows[i].sample].token_ids.size());
    }
    torch::Tensor ids = ToDevice(feed, torch::kInt64, impl.device).view({n, 1});
    torch::Tensor hidden = impl.Blocks(ids, start, slots);             // (n, 1, C)
    torch::Tensor logits = impl.Logits(hidden.select(1, 0));           // (n, V)
    ++stats_.decode_steps;
    stats_.decode_tokens += n;
    auto [tokens, logprobs] = PickTokens(logits, params, uniforms);
    std::vector<bool> done(n);
    for (int64_t i = 0; i < n; ++i) {
      rows[i].length += 1;
      done[i] = record(rows[i], tokens[i], logprobs[i]);
    }
    // 3. Finished rows leave; the last active row moves into each hole.
    for (int64_t i = n - 1; i >= 0; --i) {
      if (!done[i]) continue;
      const int64_t last = static_cast<int64_t>(rows.size()) - 1;
      if (i != last) {
        slots.CopyRow(i, slots, last, rows[last].length);
        rows[i] = std::move(rows[last]);
      }
      rows.pop_back();
    }
  }
  return out;
}

torch::Tensor Generator::DecodeLogitsForTest(const std::vector<std::vector<int64_t>>& contexts) {
  c10::InferenceMode inference_mode;
  Impl impl(model_);
  const int64_t N = static_cast<int64_t>(contexts.size());
  int64_t max_len = 0;
  for (const auto& ctx : contexts) {
    TORCH_CHECK(ctx.size() >= 2, "DecodeLogitsForTest: each context needs at least two tokens");
    max_len = std::max<int64_t>(max_len, ctx.size());
  }
  LayerCache slots = LayerCache::Allocate(model_->config(), N, max_len,
                                          torch::TensorOptions().dtype(impl.dtype).device(impl.device));
  std::vector<int64_t> feed(N), start(N);
  for (int64_t i = 0; i < N; ++i) {
    std::vector<int64_t> prefix(contexts[i].begin(), contexts[i].end() - 1);
    auto prefilled = impl.Prefill({&prefix});
    slots.CopyRow(i, *prefilled.first, 0, prefix.size());
    feed[i] = contexts[i].back();
    start[i] = static_cast<int64_t>(prefix.size());
  }
  torch::Tensor ids = torch::tensor(feed, torch::kInt64).view({N, 1}).to(impl.device);
  return impl.Logits(impl.Blocks(ids, start, slots).select(1, 0));
}

}  // namespace grpo::model

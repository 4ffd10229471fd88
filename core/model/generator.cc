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
#include "core/model/cpu_kernels.h"

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

// The keys and values of one Generate call: each decoding row's own keys (its
// generated positions) in cache.k / cache.v, row i for the completion decoding
// in row i; and each prefilled prompt's keys once, in a slot of
// cache.prefix_k / prefix_v that all its completions attend to. A slot is held
// until the prompt's last completion finishes; the slots grow (doubling) when
// all are held.
struct SlotStore {
  KVCache cache;
  std::vector<int64_t> free_slots;  // in increasing order of preference (lowest last)
  std::vector<int64_t> users;       // per slot: completions still holding it

  SlotStore(const ModelConfig& c, int64_t rows, int64_t own_len, int64_t prefix_len, int64_t slots,
            torch::TensorOptions options) {
    cache = KVCache::Allocate(c, rows, own_len, options);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      cache.prefix_k.push_back(torch::zeros({0, c.num_key_value_heads, prefix_len, c.head_dim()}, options));
      cache.prefix_v.push_back(torch::zeros({0, c.num_key_value_heads, prefix_len, c.head_dim()}, options));
    }
    Grow(slots);
  }

  void Grow(int64_t extra) {
    const int64_t old = cache.prefix_slots();
    for (auto* part : {&cache.prefix_k, &cache.prefix_v}) {
      for (torch::Tensor& t : *part) {
        std::vector<int64_t> shape = t.sizes().vec();
        shape[0] = extra;
        t = torch::cat({t, torch::zeros(shape, t.options())}, 0);  // (old + extra, K, P, D)
      }
    }
    users.resize(old + extra, 0);
    for (int64_t s = old + extra - 1; s >= old; --s) free_slots.push_back(s);
  }

  // A free slot for a prompt with `completions` completions.
  int64_t Take(int64_t completions) {
    if (free_slots.empty()) Grow(std::max<int64_t>(1, cache.prefix_slots()));
    // The lowest free slot, so the slots in use stay packed at the front.
    auto lowest = std::min_element(free_slots.begin(), free_slots.end());
    const int64_t slot = *lowest;
    free_slots.erase(lowest);
    users[slot] = completions;
    return slot;
  }

  // A completion of the slot's prompt finished.
  void Release(int64_t slot) {
    if (--users[slot] == 0) free_slots.push_back(slot);
  }

  // Positions [0, len) of row `row` of `from` into prefix slot `slot`.
  void PutPrefix(int64_t slot, const KVCache& from, int64_t row, int64_t len) {
    for (size_t l = 0; l < cache.prefix_k.size(); ++l) {
      cache.prefix_k[l][slot].narrow(1, 0, len).copy_(from.k[l][row].narrow(1, 0, len));
      cache.prefix_v[l][slot].narrow(1, 0, len).copy_(from.v[l][row].narrow(1, 0, len));
    }
  }

  // Own positions [0, len) of row `src` into row `dst`.
  void MoveRow(int64_t dst, int64_t src, int64_t len) {
    if (len == 0) return;
    for (size_t l = 0; l < cache.k.size(); ++l) {
      cache.k[l][dst].narrow(1, 0, len).copy_(cache.k[l][src].narrow(1, 0, len));
      cache.v[l][dst].narrow(1, 0, len).copy_(cache.v[l][src].narrow(1, 0, len));
    }
  }
};

// A completion being decoded in a row of the slot store.
struct Row {
  int64_t request = 0;
  int64_t sample = 0;
  int64_t prompt_len = 0;
  int64_t slot = 0;        // its prompt's prefix slot
  int64_t own = 0;         // generated tokens fed to the model (keys in its own row)
  int64_t next_token = 0;  // sampled, not yet fed to the model
  int64_t limit = 0;       // most tokens this completion may have
  std::string tail;        // last bytes of the completion, for stop strings
};

// A prefilled prompt waiting for its completions to take rows.
struct Prefix {
  int64_t slot = 0;       // its keys in the slot store
  torch::Tensor logits;   // (V) float32, of the prompt's last token
  int64_t remaining = 0;  // completions not yet placed
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
// The model's forward pass (TransformerImpl::Hidden) over rows with their own
// positions and shared prompt prefixes.
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

  torch::TensorOptions options() const { return torch::TensorOptions().dtype(dtype).device(device); }

  // Prefills prompts (right-padded into one batch, in chunks) into a new
  // cache, row i for prompt i; returns it and the logits (N, V) of each
  // prompt's last token.
  std::pair<KVCache, torch::Tensor> Prefill(const std::vector<const std::vector<int64_t>*>& prompts) {
    const int64_t N = static_cast<int64_t>(prompts.size());
    int64_t P = 0;
    for (const auto* p : prompts) P = std::max<int64_t>(P, p->size());
    KVCache cache = KVCache::Allocate(c, N, P, options());
    std::vector<int64_t> flat(static_cast<size_t>(N * P), 0);  // (N, P), pads are token 0
    for (int64_t i = 0; i < N; ++i) std::copy(prompts[i]->begin(), prompts[i]->end(), flat.begin() + i * P);
    torch::Tensor ids = HostToDevice(flat, device).view({N, P});
    std::vector<torch::Tensor> last(N);
    for (int64_t c0 = 0; c0 < P; c0 += kPrefillChunk) {
      const int64_t T = std::min(kPrefillChunk, P - c0);
      RowLayout layout;
      layout.position = {c0};
      layout.own_start = {c0};
      ForwardPlan plan = PlanForward(layout, N, T, /*cached=*/true, P, c, inv_freq, dtype);
      torch::Tensor hidden = model->Hidden(ids.narrow(1, c0, T), plan, &cache);  // (N, T, C)
      for (int64_t i = 0; i < N; ++i) {
        const int64_t p = static_cast<int64_t>(prompts[i]->size()) - 1;
        if (p >= c0 && p < c0 + T) last[i] = hidden[i][p - c0];  // (C)
      }
    }
    return {std::move(cache), model->Logits(torch::stack(last))};  // (N, V)
  }

  // One decode step: row i feeds tokens[i] after its prompt (prefix slot) and
  // its own fed tokens. Returns the logits (n, V).
  torch::Tensor Decode(const std::vector<int64_t>& tokens, const std::vector<Row>& rows, SlotStore& store) {
    const int64_t n = static_cast<int64_t>(rows.size());
    RowLayout layout;
    for (const Row& row : rows) {
      layout.position.push_back(row.prompt_len + row.own);
      layout.own_start.push_back(row.own);
      layout.prefix_slot.push_back(row.slot);
      layout.prefix_len.push_back(row.prompt_len);
    }
    ForwardPlan plan = PlanForward(layout, n, 1, /*cached=*/true, store.cache.max_len(), c, inv_freq, dtype);
    torch::Tensor ids = HostToDevice(tokens, device).view({n, 1});
    return model->Logits(model->Hidden(ids, plan, &store.cache).select(1, 0));  // (n, V)
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
    torch::Tensor target = HostToDevice(uniforms, logits.device()).view({N, 1}) *
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

Generator::~Generator() = default;

const PackedLinears* Generator::Packed() {
  if (!options_.pack_weights) return nullptr;
  if (packed_ == nullptr) {
    packed_ = PackedLinears::Pack(*model_);
    if (packed_ != nullptr) stats_.weights_packed = packed_->packs();
  } else {
    stats_.weights_packed = packed_->Refresh(*model_);
  }
  return packed_.get();
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
  int64_t own_len = 1, prefix_len = 1, min_samples = std::numeric_limits<int64_t>::max();
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
    own_len = std::max(own_len, std::min(params.max_new_tokens, context - P));
    prefix_len = std::max(prefix_len, P);
    min_samples = std::min(min_samples, req.num_samples);
  }

  std::vector<std::vector<SampledSequence>> out(requests.size());
  for (size_t r = 0; r < requests.size(); ++r) out[r].resize(requests[r].num_samples);
  if (requests.empty()) return out;
  if (params.max_new_tokens == 0) {
    for (auto& group : out) for (SampledSequence& s : group) s.truncated = true;
    return out;
  }

  c10::InferenceMode inference_mode;
  PackedLinearScope packed(Packed());
  Impl impl(model_);
  FusedDecodeScope fused(options_.fused_kernels && impl.device.is_cpu());
  std::vector<std::pair<int64_t, int64_t>> queue;  // (request, sample) in order
  for (size_t r = 0; r < requests.size(); ++r) {
    for (int64_t s = 0; s < requests[r].num_samples; ++s) queue.emplace_back(r, s);
  }
  size_t next = 0;  // first completion in `queue` without a row yet
  const int64_t max_batch = std::min<int64_t>(options_.max_batch, queue.size());
  // Rows from about max_batch / G prompts decode at once; the slots grow if more.
  const int64_t first_slots =
      std::min<int64_t>(requests.size(), (max_batch + min_samples - 1) / min_samples + 1);
  SlotStore store(cfg, max_batch, own_len, prefix_len, first_slots, impl.options());
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
          const int64_t slot = store.Take(requests[r].num_samples);
          store.PutPrefix(slot, cache, static_cast<int64_t>(i), static_cast<int64_t>(prompts[i]->size()));
          prefixes[r] = Prefix{slot, logits[i], requests[r].num_samples};
        }
      }
      // Place completions whose prompt is prefilled: sample their first
      // tokens from the prompt's logits; each one that goes on decoding takes
      // a row and attends to the prompt's keys in its slot.
      std::vector<Row> joined;
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
        row.slot = prefix.slot;
        row.limit = std::min(params.max_new_tokens, context - row.prompt_len);
        first_logits.push_back(prefix.logits);
        uniforms.push_back(CounterUniform(seed, r, s, 0));
        joined.push_back(std::move(row));
        if (--prefix.remaining == 0) prefixes.erase(it);
      }
      if (!joined.empty()) {
        if (stats_.decode_steps > 0 && !rows.empty()) stats_.joins_mid_decode += joined.size();
        auto [tokens, logprobs] = PickTokens(torch::stack(first_logits), params, uniforms);
        for (size_t j = 0; j < joined.size(); ++j) {
          if (record(joined[j], tokens[j], logprobs[j])) {  // finished by its first token
            store.Release(joined[j].slot);
            continue;
          }
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
    std::vector<int64_t> feed(n);
    std::vector<double> uniforms(n);
    for (int64_t i = 0; i < n; ++i) {
      feed[i] = rows[i].next_token;
      uniforms[i] = CounterUniform(seed, rows[i].request, rows[i].sample,
                                   out[rows[i].request][rows[i].sample].token_ids.size());
    }
    torch::Tensor logits = impl.Decode(feed, rows, store);  // (n, V)
    ++stats_.decode_steps;
    stats_.decode_tokens += n;
    auto [tokens, logprobs] = PickTokens(logits, params, uniforms);
    std::vector<bool> done(n);
    for (int64_t i = 0; i < n; ++i) {
      rows[i].own += 1;
      done[i] = record(rows[i], tokens[i], logprobs[i]);
    }
    // 3. Finished rows leave; the last active row moves into each hole.
    for (int64_t i = n - 1; i >= 0; --i) {
      if (!done[i]) continue;
      store.Release(rows[i].slot);
      const int64_t last = static_cast<int64_t>(rows.size()) - 1;
      if (i != last) {
        store.MoveRow(i, last, rows[last].own);
        rows[i] = std::move(rows[last]);
      }
      rows.pop_back();
    }
  }
  // The store only grows: its final size is the most it held.
  stats_.prefix_slots = store.cache.prefix_slots();
  stats_.kv_bytes = store.cache.bytes();
  return out;
}

torch::Tensor Generator::DecodeLogitsForTest(const std::vector<std::vector<int64_t>>& contexts) {
  c10::InferenceMode inference_mode;
  PackedLinearScope packed(Packed());
  Impl impl(model_);
  FusedDecodeScope fused(options_.fused_kernels && impl.device.is_cpu());
  const int64_t N = static_cast<int64_t>(contexts.size());
  int64_t prefix_len = 0;
  for (const auto& ctx : contexts) {
    TORCH_CHECK(ctx.size() >= 2, "DecodeLogitsForTest: each context needs at least two tokens");
    prefix_len = std::max<int64_t>(prefix_len, ctx.size() - 1);
  }
  SlotStore store(model_->config(), N, 1, prefix_len, N, impl.options());
  std::vector<int64_t> feed(N);
  std::vector<Row> rows(N);
  for (int64_t i = 0; i < N; ++i) {
    std::vector<int64_t> prefix(contexts[i].begin(), contexts[i].end() - 1);
    auto prefilled = impl.Prefill({&prefix});
    rows[i].slot = store.Take(1);
    rows[i].prompt_len = static_cast<int64_t>(prefix.size());
    store.PutPrefix(rows[i].slot, prefilled.first, 0, rows[i].prompt_len);
    feed[i] = contexts[i].back();
  }
  return impl.Decode(feed, rows, store);
}

}  // namespace grpo::model

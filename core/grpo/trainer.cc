#include "core/grpo/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <cmath>

#include "core/model/sampler.h"

namespace grpo {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

struct GrpoTrainer::Rows {
  c10::Device device = c10::Device(c10::kCPU);
  int64_t B = 0;
  at::Tensor tokens;    // (B, L) int64, right-padded
  at::Tensor lengths;   // (B) int64, prompt + completion
  at::Tensor old_logp;  // (B, L-1) sampling log-probs at the predicting position
  at::Tensor mask;      // (B, L-1) 1 on completion tokens that get gradient
  at::Tensor present;   // (B, L-1) 1 on every completion token
  at::Tensor temps;     // (B) sampling temperature (1 for greedy)
  at::Tensor adv;       // (B) float32 advantages

  // B right-padded rows of up to L tokens, every table zero (temperatures 1).
  void Allocate(int64_t rows_, int64_t L, int64_t pad_id, c10::Device dev) {
    B = rows_;
    device = dev;
    tokens = torch::full({B, L}, pad_id, torch::kInt64);
    lengths = torch::zeros({B}, torch::kInt64);
    old_logp = torch::zeros({B, L - 1}, torch::kFloat32);
    mask = torch::zeros({B, L - 1}, torch::kFloat32);
    present = torch::zeros({B, L - 1}, torch::kFloat32);
    temps = torch::ones({B}, torch::kFloat32);
  }
  // The micro-batch `idx` trimmed to its longest row: inputs and targets (b, T).
  std::pair<at::Tensor, at::Tensor> Inputs(const at::Tensor& idx, int64_t* T) const {
    const int64_t len = std::max<int64_t>(2, lengths.index_select(0, idx).max().item<int64_t>());
    *T = len - 1;
    at::Tensor t = tokens.index_select(0, idx).slice(1, 0, len).to(device);  // (b, len)
    return {t.slice(1, 0, len - 1), t.slice(1, 1, len)};
  }
  // Rows `idx` of a (B, L-1) table, first T columns, on the model's device.
  at::Tensor Take(const at::Tensor& x, const at::Tensor& idx, int64_t T) const {
    return x.index_select(0, idx).slice(1, 0, T).to(device);  // (b, T)
  }
  // Rows `idx` of a (B) vector on the model's device.
  at::Tensor Pick(const at::Tensor& x, const at::Tensor& idx) const { return x.index_select(0, idx).to(device); }
};

GrpoTrainer::GrpoTrainer(model::Transformer policy, model::Transformer reference, torch::optim::Optimizer* optimizer,
                         TrainerOptions options, int64_t pad_id, c10::intrusive_ptr<c10d::ProcessGroup> pg)
    : policy_(std::move(policy)),
      reference_(std::move(reference)),
      optimizer_(optimizer),
      opts_(std::move(options)),
      pad_id_(pad_id),
      pg_(std::move(pg)) {
  policy_->set_activation_checkpointing(opts_.activation_checkpointing);
}

void GrpoTrainer::AllReduceSum(std::vector<at::Tensor>& values) {
  if (!pg_ || pg_->getSize() == 1) return;
  pg_->allreduce(values)->wait();
}

namespace {

// Applies `fn` to one flat buffer holding all of `tensors` and copies the result back:
// one collective instead of one per tensor.
void OverFlat(const std::vector<at::Tensor>& tensors, const std::function<void(at::Tensor&)>& fn) {
  std::vector<at::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
  at::Tensor buf = torch::cat(flat);
  fn(buf);
  int64_t off = 0;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    at::Tensor dst = t;
    dst.copy_(buf.slice(0, off, off + n).view_as(t));
    off += n;
  }
}

}  // namespace

void GrpoTrainer::AllReduceGradients() {
  if (!pg_ || pg_->getSize() == 1) return;
  std::vector<at::Tensor> grads;
  for (auto& p : policy_->parameters()) {
    if (!p.mutable_grad().defined()) p.mutable_grad() = torch::zeros_like(p);  // a rank with no rows
    grads.push_back(p.grad());
  }
  OverFlat(grads, [&](at::Tensor& buf) {
    if (device_comm_) {
      device_comm_->AllReduceSum(buf);
    } else {
      std::vector<at::Tensor> v{buf};
      pg_->allreduce(v)->wait();
    }
  });
}

void GrpoTrainer::BroadcastParameters(int root) {
  if (!pg_ || pg_->getSize() == 1) return;
  torch::NoGradGuard ng;
  std::vector<at::Tensor> params;
  for (auto& p : policy_->parameters()) params.push_back(p.detach());
  if (!reference_.is_empty()) {
    for (auto& p : reference_->parameters()) params.push_back(p.detach());
  }
  OverFlat(params, [&](at::Tensor& buf) {
    if (device_comm_) {
      device_comm_->Broadcast(buf, root);
    } else {
      std::vector<at::Tensor> v{buf};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      pg_->broadcast(v, o)->wait();
    }
  });
}

at::Tensor GrpoTrainer::NoGradLogprobs(model::Transformer& model, const Rows& rows) {
  torch::NoGradGuard ng;
  at::Tensor out = torch::zeros({rows.B, rows.tokens.size(1) - 1}, torch::kFloat32);  // (B, L-1)
  const int64_t mbs = opts_.micro_batch_size > 0 ? opts_.micro_batch_size : std::max<int64_t>(rows.B, 1);
  model::Bf16Autocast autocast(opts_.bf16);
  for (int64_t s = 0; s < rows.B; s += mbs) {
    at::Tensor idx = torch::arange(s, std::min(rows.B, s + mbs), torch::kInt64);
    int64_t T = 0;
    auto [input, target] = rows.Inputs(idx, &T);
    at::Tensor logits = model->forward(input) / rows.Pick(rows.temps, idx).view({-1, 1, 1});  // (b, T, V)
    out.index_put_({idx, torch::indexing::Slice(0, T)}, model::TokenLogprobs(logits, target, 1.0).to(torch::kCPU));
  }
  return out;
}

TrainStats GrpoTrainer::Step(const std::vector<const TrainGroup*>& groups, uint64_t step) {
  // ---- Rows and advantages (each group lies whole on one rank).
  Rows rows;
  int64_t max_len = 2;
  for (const auto* g : groups) {
    for (const auto& c : g->completions) {
      max_len = std::max<int64_t>(max_len, static_cast<int64_t>(g->prompt_token_ids.size() + c.token_ids.size()));
      ++rows.B;
    }
  }
  rows.Allocate(rows.B, max_len, pad_id_, opts_.device);
  std::vector<at::Tensor> advs;
  {
    auto tok = rows.tokens.accessor<int64_t, 2>();
    auto len = rows.lengths.accessor<int64_t, 1>();
    auto olp = rows.old_logp.accessor<float, 2>();
    auto msk = rows.mask.accessor<float, 2>();
    auto prs = rows.present.accessor<float, 2>();
    auto tmp = rows.temps.accessor<float, 1>();
    int64_t row = 0;
    for (const auto* g : groups) {
      const int64_t p = static_cast<int64_t>(g->prompt_token_ids.size());
      std::vector<double> rewards;
      for (const TrainCompletion& c : g->completions) {
        const int64_t n = static_cast<int64_t>(c.token_ids.size());
        TORCH_CHECK(static_cast<int64_t>(c.logprobs.size()) == n, "GrpoTrainer: a completion has ", n,
                    " tokens and ", c.logprobs.size(), " logprobs");
        for (int64_t j = 0; j < p; ++j) tok[row][j] = g->prompt_token_ids[j];
        for (int64_t j = 0; j < n; ++j) {
          tok[row][p + j] = c.token_ids[j];
          // Token p + j is predicted at input position p + j - 1.
          olp[row][p + j - 1] = c.logprobs[j];
          // DAPO's overlong filtering: a truncated completion still counts in its
          // group's advantages but contributes no gradient.
          msk[row][p + j - 1] = (c.truncated && opts_.mask_truncated) ? 0.0f : 1.0f;
          prs[row][p + j - 1] = 1.0f;
        }
        len[row] = p + n;
        tmp[row] = g->temperature > 0 ? g->temperature : 1.0f;
        rewards.push_back(c.reward);
        ++row;
      }
      at::Tensor rw = torch::tensor(rewards, torch::kFloat64).view({1, -1});  // (1, G)
      advs.push_back(rl::GroupAdvantages(rw, opts_.adv_eps, opts_.scale_rewards).view({-1}));
    }
  }
  rows.adv = advs.empty() ? torch::zeros({0}, torch::kFloat32) : torch::cat(advs).to(torch::kFloat32);  // (B)
  return Optimize(rows, step, /*supervised=*/false);
}

TrainStats GrpoTrainer::SupervisedStep(const std::vector<const SupervisedExample*>& unsorted, uint64_t step) {
  // Longest first: each micro-batch is cut to its longest row, so rows of similar
  // length together waste little on padding. The loss is a sum, so order is free.
  std::vector<const SupervisedExample*> examples = unsorted;
  std::stable_sort(examples.begin(), examples.end(), [](const SupervisedExample* a, const SupervisedExample* b) {
    return a->tokens.size() > b->tokens.size();
  });
  Rows rows;
  int64_t max_len = 2;
  for (const auto* e : examples) max_len = std::max<int64_t>(max_len, static_cast<int64_t>(e->tokens.size()));
  const int64_t B = static_cast<int64_t>(examples.size());
  rows.Allocate(B, max_len, pad_id_, opts_.device);
  rows.adv = torch::zeros({B}, torch::kFloat32);
  {
    auto tok = rows.tokens.accessor<int64_t, 2>();
    auto len = rows.lengths.accessor<int64_t, 1>();
    auto msk = rows.mask.accessor<float, 2>();
    for (int64_t row = 0; row < B; ++row) {
      const SupervisedExample& e = *examples[static_cast<size_t>(row)];
      const int64_t n = static_cast<int64_t>(e.tokens.size());
      for (int64_t j = 0; j < n; ++j) tok[row][j] = e.tokens[static_cast<size_t>(j)];
      // Token j is predicted at position j - 1; only targets at or after loss_from count.
      for (int64_t j = std::max<int64_t>(1, e.loss_from); j < n; ++j) msk[row][j - 1] = 1.0f;
      len[row] = n;
    }
  }
  return Optimize(rows, step, /*supervised=*/true);
}

TrainStats GrpoTrainer::Optimize(const Rows& rows, uint64_t step, bool supervised) {
  const int64_t B = rows.B;
  // ---- Fixed log-probs: reference, and the step's starting policy when needed.
  const int64_t E = supervised ? 1 : std::max<int64_t>(1, opts_.epochs);
  const int64_t M = supervised ? 1 : std::max<int64_t>(1, opts_.minibatches);
  const bool decoupled = !supervised && opts_.loss.importance_cap > 0;
  policy_->train();
  at::Tensor prox = decoupled && E * M > 1 ? NoGradLogprobs(policy_, rows) : at::Tensor();  // (B, L-1)
  at::Tensor ref = !supervised && !reference_.is_empty() && opts_.loss.beta != 0 ? NoGradLogprobs(reference_, rows)
                                                                                    : at::Tensor();  // (B, L-1)

  // Local sums, reduced over ranks at the end.
  double loss_sum = 0, pg_sum = 0, kl_tok = 0, clip_tok = 0, ratio_tok = 0, iw_tok = 0, tok = 0;
  double ent_sum = 0, ent_tok = 0;
  double grad_norm = 0;
  TrainStats st;
  const int64_t mbs = opts_.micro_batch_size;
  for (int64_t e = 0; e < E; ++e) {
    at::Tensor perm = torch::arange(B, torch::kInt64);
    if (M > 1 && B > 1) {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(SplitMix64(opts_.seed ^ SplitMix64(step * 1000 + e)));
      perm = torch::randperm(B, gen, torch::TensorOptions().dtype(torch::kInt64));
    }
    for (int64_t m = 0; m < M; ++m) {
      at::Tensor idx = perm.slice(0, B * m / M, B * (m + 1) / M);  // (b)
      // The minibatch's totals over all ranks: every part divides by them.
      std::vector<at::Tensor> totals{torch::tensor({static_cast<double>(idx.numel()),
                                                    rows.mask.index_select(0, idx).sum().item<double>()},
                                                   torch::kFloat64)};
      AllReduceSum(totals);
      rl::GrpoLossConfig lc = opts_.loss;
      lc.total_sequences = std::max(1.0, totals[0][0].item<double>());
      lc.total_tokens = std::max(1.0, totals[0][1].item<double>());
      optimizer_->zero_grad();
      const int64_t n = idx.numel();
      const int64_t step_rows = mbs > 0 ? mbs : std::max<int64_t>(n, 1);
      for (int64_t s = 0; s < n; s += step_rows) {
        at::Tensor mi = idx.slice(0, s, std::min(n, s + step_rows));  // (b)
        int64_t T = 0;
        auto [input, target] = rows.Inputs(mi, &T);
        at::Tensor logits;
        {
          model::Bf16Autocast autocast(opts_.bf16);
          logits = policy_->forward(input) / rows.Pick(rows.temps, mi).view({-1, 1, 1});  // (b, T, V)
        }
        at::Tensor logp = model::TokenLogprobs(logits, target, 1.0);  // (b, T)
        at::Tensor mask = rows.Take(rows.mask, mi, T);                // (b, T)
        if (supervised) {
          // Next-token cross-entropy over the masked targets, divided by the whole
          // minibatch's count over all ranks (so parts sum to the batch's mean).
          at::Tensor loss = -(logp * mask).sum() / lc.total_tokens;
          loss.backward();
          loss_sum += loss.item<double>();
          tok += mask.sum().item<double>();
          continue;
        }
        if (e == 0) {
          // Entropy over every completion token, in the first pass.
          torch::NoGradGuard ng;
          at::Tensor lsm = torch::log_softmax(logits.detach(), -1);  // (b, T, V)
          at::Tensor ent = -(lsm.exp() * lsm).sum(-1);               // (b, T)
          at::Tensor present = rows.Take(rows.present, mi, T);
          ent_sum += (ent * present).sum().item<double>();
          ent_tok += present.sum().item<double>();
        }
        at::Tensor prox_mb = prox.defined() ? rows.Take(prox, mi, T) : (decoupled ? logp.detach() : at::Tensor());
        at::Tensor ref_mb = ref.defined() ? rows.Take(ref, mi, T) : at::Tensor();
        rl::GrpoLossTerms terms = rl::GrpoLoss(logp, rows.Take(rows.old_logp, mi, T), ref_mb,
                                               rows.Pick(rows.adv, mi), mask, lc, prox_mb);
        terms.loss.backward();
        loss_sum += terms.loss.item<double>();
        pg_sum += terms.pg_loss;
        kl_tok += terms.kl_mean * terms.n_tokens;
        clip_tok += terms.clip_fraction * terms.n_tokens;
        ratio_tok += terms.ratio_mean * terms.n_tokens;
        iw_tok += terms.importance_weight_mean * terms.n_tokens;
        if (e == 0) tok += terms.n_tokens;
      }
      AllReduceGradients();
      std::vector<at::Tensor> params = policy_->parameters();
      if (opts_.grad_clip > 0) {
        grad_norm = torch::nn::utils::clip_grad_norm_(params, opts_.grad_clip);
      } else {
        double sq = 0;
        for (auto& p : params) {
          if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
        }
        grad_norm = std::sqrt(sq);
      }
      optimizer_->step();
      ++st.optimizer_steps;
    }
  }

  std::vector<at::Tensor> sums{torch::tensor({loss_sum, pg_sum, kl_tok, clip_tok, ratio_tok, iw_tok, tok, ent_sum,
                                              ent_tok}, torch::kFloat64)};
  AllReduceSum(sums);
  auto v = sums[0].accessor<double, 1>();
  const double steps = static_cast<double>(std::max<int64_t>(1, st.optimizer_steps));
  const double passes_tok = std::max(1.0, v[6] * static_cast<double>(E));  // tokens seen over all passes
  st.loss = v[0] / steps;
  st.pg_loss = v[1] / steps;
  st.kl = v[2] / passes_tok;
  st.clip_fraction = v[3] / passes_tok;
  st.ratio_mean = v[4] / passes_tok;
  st.importance_weight_mean = v[6] > 0 ? v[5] / passes_tok : 1.0;
  st.entropy = v[7] / std::max(1.0, v[8]);
  st.loss_tokens = static_cast<int64_t>(v[6]);
  st.grad_norm = grad_norm;
  return st;
}

}  // namespace grpo

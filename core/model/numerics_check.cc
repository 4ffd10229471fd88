#include "core/model/numerics_check.h"

#include <torch/torch.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/model/sampler.h"
#include "core/model/transformer.h"

namespace grpo::model {
namespace {

// max |a - b| / max |b|, both read as float64.
double RelMaxErr(const torch::Tensor& a, const torch::Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-30);
  return (a.to(torch::kDouble) - b).abs().max().item<double>() / scale;
}

}  // namespace

absl::Status CheckFloat32Kernels(const ModelConfig& config, const KernelCheckOptions& options) {
  torch::NoGradGuard ng;
  // float32 sums over a few thousand terms stay within ~1e-5 of float64 relative to the
  // largest output; a miscomputing kernel is off by O(1).
  constexpr double kTolerance = 2e-3;
  at::Generator gen = at::detail::createCPUGenerator(20261206);
  auto randn = [&](std::vector<int64_t> shape) {
    return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat));
  };
  // Large vocabularies are cut to 4096 columns and rows to 128: the kernels picked are the
  // same, and the float64 products stay fast at start-up.
  const int64_t C = config.hidden_size, F = config.intermediate_size, V = std::min<int64_t>(config.vocab_size, 4096);
  const int64_t H = config.num_attention_heads, D = config.head_dim();
  const int64_t R = std::clamp<int64_t>(options.rows, 2, 128);
  const LinearFn& linear = options.linear;
  auto fail = [&](const std::string& op, double err) {
    return absl::InternalError(absl::StrCat(
        "float32 kernel check: ", op, " differs from float64 by ", err, " (relative to its largest value; float32 ",
        "rounding explains at most ", kTolerance, "). This machine's BLAS or LibTorch kernels miscompute, and a model ",
        "trained or sampled with them learns less with no other error. Try OPENBLAS_CORETYPE=Haswell (OpenBLAS's AVX2 ",
        "kernels) or another BLAS build; the check is model::CheckFloat32Kernels."));
  };
  // Linear layers, as the model calls them (model::Linear): x (rows, in) W^T + b, for
  // every (in, out) pair a block has, one row (decoding: a matrix-vector product) and many.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{C, C}, {C, F}, {F, C}, {C, V}};
  for (const auto& [in, out] : shapes) {
    torch::Tensor w = randn({out, in}), b = randn({out});
    for (int64_t n : {int64_t{1}, int64_t{3}, R}) {
      torch::Tensor x = randn({n, 1, in});
      torch::Tensor y = linear ? linear(x, w, b) : Linear(x, w, b);  // (n, 1, out)
      torch::Tensor want = torch::nn::functional::linear(x.to(torch::kDouble), w.to(torch::kDouble), b.to(torch::kDouble));
      const double err = RelMaxErr(y, want);
      if (!(err <= kTolerance)) return fail(absl::StrCat("a linear layer ", in, " -> ", out, " over ", n, " row(s)"), err);
    }
  }
  // A linear layer's backward products at a training micro-batch's size: the input
  // gradient dy W and the weight gradient dy^T x, whose inner dimension is the
  // micro-batch's token count. BLAS libraries pick these kernels by size and
  // transposition (OpenBLAS's small-matrix kernels, for one), so the forward products
  // above do not vouch for them, nor does the one-block gradient check below with its
  // few dozen tokens. Features are cut to 512 and tokens so that a float64 product
  // stays under ~70 MFLOP.
  if (options.train_rows > 0) {
    auto mm = [&](const torch::Tensor& a, const torch::Tensor& b) { return options.mm ? options.mm(a, b) : torch::mm(a, b); };
    for (const auto& [in_full, out_full] : shapes) {
      const int64_t in = std::min<int64_t>(in_full, 512), out = std::min<int64_t>(out_full, 512);
      const int64_t budget = std::max<int64_t>(64, (int64_t{1} << 25) / (in * out));
      for (int64_t n : {std::min<int64_t>(options.train_rows, 64), std::min(options.train_rows, budget)}) {
        torch::Tensor x = randn({n, in}), w = randn({out, in}), dy = randn({n, out});
        const double err_dx = RelMaxErr(mm(dy, w), torch::mm(dy.to(torch::kDouble), w.to(torch::kDouble)));
        if (!(err_dx <= kTolerance)) {
          return fail(absl::StrCat("the input gradient of a linear layer ", in, " -> ", out, " over ", n, " tokens"),
                      err_dx);
        }
        const double err_dw =
            RelMaxErr(mm(dy.t(), x), torch::mm(dy.to(torch::kDouble).t(), x.to(torch::kDouble)));
        if (!(err_dw <= kTolerance)) {
          return fail(absl::StrCat("the weight gradient of a linear layer ", in, " -> ", out, " over ", n, " tokens"),
                      err_dw);
        }
      }
    }
  }
  // Attention's products: (B, H, T, D) x (B, H, D, T) and back.
  {
    const int64_t T = std::min<int64_t>(64, std::max<int64_t>(8, R / 4));
    torch::Tensor q = randn({2, H, T, D}), k = randn({2, H, T, D});
    torch::Tensor s = torch::matmul(q, k.transpose(-1, -2));
    const double err = RelMaxErr(s, torch::matmul(q.to(torch::kDouble), k.to(torch::kDouble).transpose(-1, -2)));
    if (!(err <= kTolerance)) return fail(absl::StrCat("attention's q k^T over ", H, " heads of ", D), err);
    torch::Tensor p = torch::softmax(s, -1);
    torch::Tensor v = randn({2, H, T, D});
    const double err2 = RelMaxErr(torch::matmul(p, v), torch::matmul(p.to(torch::kDouble), v.to(torch::kDouble)));
    if (!(err2 <= kTolerance)) return fail("attention's probabilities times values", err2);
  }
  // Log-probabilities over the vocabulary.
  {
    torch::Tensor logits = randn({R, V}) * 4;
    const double err = RelMaxErr(torch::log_softmax(logits, -1), torch::log_softmax(logits.to(torch::kDouble), -1));
    if (!(err <= kTolerance)) return fail(absl::StrCat("log_softmax over ", V, " logits"), err);
  }
  return CheckTrainingGradients(config);
}

absl::Status CheckTrainingGradients(const ModelConfig& config) {
  // One block of the model's shape (vocabulary cut to 4096) in float32 and in float64,
  // the same weights, the training loss (weighted next-token log-probabilities of a
  // right-padded batch); every parameter's gradient must agree. This goes through the
  // backward kernels (embedding, norms, rotary, attention, SiLU, log-softmax, gather)
  // that LibTorch picks for this CPU, which the forward products above do not reach.
  ModelConfig small = config;
  small.num_hidden_layers = 1;
  small.vocab_size = std::min<int64_t>(config.vocab_size, 4096);
  if (!small.Validate().ok()) return absl::OkStatus();  // nothing this check can build
  // The models draw their initial weights from the default generator: keep its state.
  at::Generator global = at::detail::getDefaultCPUGenerator();
  at::Tensor saved;
  {
    std::lock_guard<std::mutex> lock(global.mutex());
    saved = global.get_state();
  }
  Transformer m32(small), m64(small);
  {
    std::lock_guard<std::mutex> lock(global.mutex());
    global.set_state(saved);
  }
  at::Generator gen = at::detail::createCPUGenerator(1206);
  {
    torch::NoGradGuard ng;
    auto p64 = m64->named_parameters();
    for (auto& p : m32->named_parameters()) {
      const bool norm = p.key().find("norm") != std::string::npos;
      torch::Tensor v = torch::randn(p.value().sizes(), gen, torch::TensorOptions().dtype(torch::kFloat));
      p.value().copy_(norm ? 1.0 + 0.3 * v : (p.key().find("bias") != std::string::npos ? 0.2 * v : 0.06 * v));
      p64[p.key()].set_data(p.value().detach().to(torch::kDouble));
    }
  }
  const int64_t B = 3, L = 24;
  torch::Tensor tokens = torch::randint(small.vocab_size, {B, L}, gen, torch::TensorOptions().dtype(torch::kInt64));
  torch::Tensor weights = torch::randn({B, L - 1}, gen, torch::TensorOptions().dtype(torch::kFloat));
  weights.slice(1, 0, 4).zero_();  // the prompt's positions
  weights[1].slice(0, 15).zero_();  // a shorter row: padding after it
  torch::Tensor input = tokens.slice(1, 0, L - 1), target = tokens.slice(1, 1, L);
  auto loss_of = [&](Transformer& m) {
    m->train();
    torch::Tensor logits = m->forward(input).to(m->model->embed_tokens->weight.scalar_type()) / 0.7;
    torch::Tensor logp = torch::log_softmax(logits, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1);
    return (logp * weights.to(logp.scalar_type())).sum();
  };
  torch::AutoGradMode grad(true);
  loss_of(m32).backward();
  loss_of(m64).backward();
  auto p64 = m64->named_parameters();
  for (const auto& p : m32->named_parameters()) {
    const torch::Tensor& g32 = p.value().grad();
    const torch::Tensor& g64 = p64[p.key()].grad();
    if (!g32.defined() || !g64.defined()) continue;
    const double scale = std::max(g64.norm().item<double>(), 1e-30);
    const double err = (g32.to(torch::kDouble) - g64).norm().item<double>() / scale;
    if (!(err <= 1e-3)) {
      return absl::InternalError(absl::StrCat(
          "float32 kernel check: the training gradient of ", p.key(), " differs from float64 by ", err,
          " (relative; float32 rounding explains at most 1e-3). This machine's LibTorch or BLAS kernels miscompute "
          "the backward pass, and training with them learns less with no other error. Try OPENBLAS_CORETYPE=Haswell "
          "or ATEN_CPU_CAPABILITY=avx2; the check is model::CheckTrainingGradients."));
    }
  }
  return absl::OkStatus();
}

}  // namespace grpo::model

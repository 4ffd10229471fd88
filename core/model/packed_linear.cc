#include "core/model/packed_linear.h"

#include <algorithm>
#include <map>
#include <type_traits>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "core/model/cpu_kernels.h"
#include "core/model/transformer.h"

#ifdef GRPO_HAVE_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace grpo::model {
namespace {
thread_local const PackedLinears* current_packed = nullptr;
}  // namespace

PackedLinearScope::PackedLinearScope(const PackedLinears* packed) : previous_(current_packed) {
  current_packed = packed;
}
PackedLinearScope::~PackedLinearScope() { current_packed = previous_; }
const PackedLinears* PackedLinearScope::Current() { return current_packed; }

#ifdef GRPO_HAVE_DNNL

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Executions on the CPU engine run on the calling thread; one stream per thread.
dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

memory::data_type DataType(torch::ScalarType t) {
  return t == torch::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// A weight's version counter; -1 for an inference tensor, which has none (then
// it is packed again on every Refresh).
int64_t Version(const torch::Tensor& t) { return t.is_inference() ? -1 : static_cast<int64_t>(t._version()); }

// A few rows (a decode step of one to four sequences) are bound by reading the
// weights, and oneDNN's matrix-vector path reads them at about 0.6 of this
// machine's copy bandwidth. The weights in blocks of 16 output rows,
// (out / 16, in, 16), read as one sequential stream with one 16-wide FMA per
// cache line, reach about 1.1 of it (a memory copy both reads and writes).
// target_clones compiles the loop for AVX-512, AVX2 and the baseline and picks
// one at load time.
constexpr int64_t kBlock = 16;
constexpr int64_t kSmallRows = 4;

template <typename T, int M>
inline __attribute__((always_inline)) void SmallRowsBody(const T* w, const float* x, const float* bias, T* y,
                                                         int64_t in, int64_t out, int64_t y_stride) {
  for (int64_t b = 0; b < out; b += kBlock) {
    float acc[M][kBlock] = {};
    const T* wb = w + b * in;
    for (int64_t i = 0; i < in; ++i) {
      const T* wi = wb + i * kBlock;
      for (int m = 0; m < M; ++m) {
        const float xi = x[m * in + i];
#pragma omp simd
        for (int j = 0; j < kBlock; ++j) acc[m][j] += xi * static_cast<float>(wi[j]);
      }
    }
    const int64_t n = std::min(kBlock, out - b);
    for (int m = 0; m < M; ++m) {
      for (int64_t j = 0; j < n; ++j) y[m * y_stride + b + j] = static_cast<T>(acc[m][j] + (bias ? bias[b + j] : 0.0f));
    }
  }
}

#define GRPO_SMALL_ROWS(T, NAME, M)                                                                              \
  __attribute__((target_clones("avx512f", "avx2", "default"))) void NAME(const T* w, const float* x,            \
                                                                         const float* bias, T* y, int64_t in,   \
                                                                         int64_t out, int64_t y_stride) {       \
    SmallRowsBody<T, M>(w, x, bias, y, in, out, y_stride);                                                      \
  }
GRPO_SMALL_ROWS(float, SmallRowsF32x1, 1)
GRPO_SMALL_ROWS(float, SmallRowsF32x2, 2)
GRPO_SMALL_ROWS(float, SmallRowsF32x4, 4)
GRPO_SMALL_ROWS(c10::BFloat16, SmallRowsBf16x1, 1)
GRPO_SMALL_ROWS(c10::BFloat16, SmallRowsBf16x2, 2)
GRPO_SMALL_ROWS(c10::BFloat16, SmallRowsBf16x4, 4)
#undef GRPO_SMALL_ROWS

template <typename T>
void SmallRows(const T* w, const float* x, const float* bias, T* y, int64_t rows, int64_t in, int64_t out) {
  // Output blocks split across LibTorch's threads; each thread streams its own
  // part of the weights.
  const int64_t blocks = (out + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 8, [&](int64_t first, int64_t last) {
    const int64_t o0 = first * kBlock, n = std::min(last * kBlock, out) - o0;
    const T* wb = w + o0 * in;
    const float* bb = bias ? bias + o0 : nullptr;
    for (int64_t r = 0; r < rows;) {
      const int64_t m = rows - r >= 4 ? 4 : rows - r >= 2 ? 2 : 1;
      if constexpr (std::is_same_v<T, float>) {
        (m == 4 ? SmallRowsF32x4 : m == 2 ? SmallRowsF32x2 : SmallRowsF32x1)(wb, x + r * in, bb, y + r * out + o0, in, n,
                                                                            out);
      } else {
        (m == 4 ? SmallRowsBf16x4 : m == 2 ? SmallRowsBf16x2 : SmallRowsBf16x1)(wb, x + r * in, bb, y + r * out + o0, in,
                                                                                n, out);
      }
      r += m;
    }
  });
}

// The rows the packing primitive is made for; oneDNN 2.6 picks the same blocked
// weight layout for 1 to 64 rows on this CPU, and Apply checks it per row count.
constexpr int64_t kPackRows = 64;
// Most rows sent to oneDNN, and most primitives kept (a few per weight shape and
// decode batch size); beyond either, torch computes.
constexpr int64_t kMaxPackedRows = 256;
constexpr size_t kMaxPrimitives = 1024;

}  // namespace

struct PackedLinears::State {
  // One packed matrix: a linear layer's weight, or several layers' weights
  // that read the same input stacked (q/k/v, gate/up), with their biases.
  struct Entry {
    int64_t in = 0, out = 0;
    torch::ScalarType dtype = torch::kFloat;
    std::vector<torch::Tensor> members;  // weights, then defined biases, as packed
    std::vector<const void*> data;       // each member's storage when packed
    std::vector<int64_t> versions;       // and its version counter
    std::vector<c10::Storage> storages;  // held, so a replaced storage's address is not reused unseen
    torch::Tensor bias;                  // stacked biases of a group (undefined: none)
    memory packed;
    size_t n_weights = 0;                // members that are weights
    mutable torch::Tensor blocked;       // (out / 16, in, 16): made at the first call of few rows
  };
  std::unordered_map<const c10::TensorImpl*, Entry> entries;  // by (first) weight
  // Primitives by (in, out, rows, dtype, bias dtype or -1); a null primitive
  // marks a shape whose layout differs from the packed one (fallback).
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int, int>, std::unique_ptr<dnnl::matmul>> primitives;
  int64_t packs = 0;

  static bool Current(const Entry& e) {
    for (size_t i = 0; i < e.members.size(); ++i) {
      const torch::Tensor& t = e.members[i];
      if (t.data_ptr() != e.data[i] || Version(t) != e.versions[i] || e.versions[i] < 0 || !t.device().is_cpu() ||
          t.scalar_type() != e.dtype) {
        return false;
      }
    }
    return true;
  }

  // Packs weights (out_i, in) stacked along out; `biases` (each undefined or
  // (out_i)) are stacked for a group of more than one.
  void Pack(const std::vector<torch::Tensor>& weights, const std::vector<torch::Tensor>& biases) {
    Entry& e = entries[weights[0].unsafeGetTensorImpl()];
    torch::Tensor stacked = weights.size() == 1 ? weights[0].contiguous() : torch::cat(weights, 0);  // (out, in)
    e.out = stacked.size(0);
    e.in = stacked.size(1);
    e.dtype = stacked.scalar_type();
    e.members = weights;
    e.bias = torch::Tensor();
    if (weights.size() > 1 && biases[0].defined()) {
      e.bias = torch::cat(biases, 0);  // (out)
      e.members.insert(e.members.end(), biases.begin(), biases.end());
    }
    e.n_weights = weights.size();
    e.blocked = torch::Tensor();
    e.data.clear();
    e.versions.clear();
    e.storages.clear();
    for (const torch::Tensor& t : e.members) {
      e.data.push_back(t.data_ptr());
      e.versions.push_back(Version(t));
      e.storages.push_back(t.storage());
    }
    const memory::data_type dt = DataType(e.dtype);
    memory::desc src({kPackRows, e.in}, dt, Tag::ab), dst({kPackRows, e.out}, dt, Tag::ab);
    memory::desc any({e.in, e.out}, dt, Tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, any, dst), Engine());
    // (out, in) row-major is (in, out) in column-major order: tag ba.
    memory plain({{e.in, e.out}, dt, Tag::ba}, Engine(), stacked.data_ptr());
    if (!e.packed || e.packed.get_desc() != pd.weights_desc()) e.packed = memory(pd.weights_desc(), Engine());
    dnnl::reorder(plain, e.packed).execute(Stream(), plain, e.packed);
    Stream().wait();
    ++packs;
  }

  // A few rows: the blocked weights, one sequential read.
  torch::Tensor RunSmall(const Entry& e, const torch::Tensor& x, const torch::Tensor& bias, int64_t rows) const {
    if (!e.blocked.defined()) {
      const int64_t padded = (e.out + kBlock - 1) / kBlock * kBlock;
      torch::Tensor w = e.n_weights == 1
                            ? e.members[0].contiguous()
                            : torch::cat(std::vector<torch::Tensor>(e.members.begin(), e.members.begin() + e.n_weights), 0);
      if (padded != e.out) w = torch::cat({w, torch::zeros({padded - e.out, e.in}, w.options())}, 0);
      e.blocked = w.view({padded / kBlock, kBlock, e.in}).transpose(1, 2).contiguous();  // (out/16, in, 16)
    }
    // Float inputs as they are when contiguous (no op calls: this runs a few
    // hundred times per decoded token).
    torch::Tensor xf = x.scalar_type() == torch::kFloat && x.is_contiguous() ? x : x.to(torch::kFloat).contiguous();
    torch::Tensor bf = !bias.defined() || (bias.scalar_type() == torch::kFloat && bias.is_contiguous())
                           ? bias
                           : bias.to(torch::kFloat).contiguous();
    torch::Tensor y = torch::empty({rows, e.out}, x.options());
    const float* bp = bf.defined() ? bf.data_ptr<float>() : nullptr;
    if (e.dtype == torch::kFloat) {
      SmallRows<float>(e.blocked.data_ptr<float>(), xf.data_ptr<float>(), bp, y.data_ptr<float>(), rows, e.in, e.out);
    } else {
      SmallRows<c10::BFloat16>(e.blocked.data_ptr<c10::BFloat16>(), xf.data_ptr<float>(), bp,
                               y.data_ptr<c10::BFloat16>(), rows, e.in, e.out);
    }
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = e.out;
    return y.view(shape);
  }

  // y = x W^T + bias through entry e; undefined when no primitive suits.
  torch::Tensor Run(const Entry& e, const torch::Tensor& x, const torch::Tensor& bias) const {
    const int64_t rows = x.numel() / e.in;
    if (rows == 0) return {};
    if (rows <= kSmallRows) return RunSmall(e, x, bias, rows);
    // Larger row counts (prefill chunks) vary widely; each would JIT a primitive.
    // They are compute-bound, where torch's own product does nearly as well.
    if (rows > kMaxPackedRows) return {};
    const int bias_type = bias.defined() ? static_cast<int>(bias.scalar_type()) : -1;
    const memory::data_type dt = DataType(e.dtype);
    auto key = std::make_tuple(e.in, e.out, rows, static_cast<int>(e.dtype), bias_type);
    auto found = primitives.find(key);
    if (found == primitives.end()) {
      if (primitives.size() >= kMaxPrimitives) return {};
      memory::desc src({rows, e.in}, dt, Tag::ab), dst({rows, e.out}, dt, Tag::ab);
      memory::desc any({e.in, e.out}, dt, Tag::any);
      std::unique_ptr<dnnl::matmul> primitive;
      try {
        auto desc = bias.defined()
                        ? dnnl::matmul::desc(src, any, memory::desc({1, e.out}, DataType(bias.scalar_type()), Tag::ab), dst)
                        : dnnl::matmul::desc(src, any, dst);
        dnnl::matmul::primitive_desc pd(desc, Engine());
        if (pd.weights_desc() == e.packed.get_desc()) primitive = std::make_unique<dnnl::matmul>(pd);
      } catch (const dnnl::error&) {
        // Not supported for this shape: torch computes it.
      }
      found = primitives.emplace(key, std::move(primitive)).first;
    }
    if (!found->second) return {};
    // oneDNN's OpenMP regions take this thread's setting; keep it at LibTorch's.
    if (omp_get_max_threads() != at::get_num_threads()) omp_set_num_threads(at::get_num_threads());
    torch::Tensor in = x.reshape({rows, e.in}).contiguous();
    torch::Tensor y = torch::empty({rows, e.out}, x.options());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, memory({{rows, e.in}, dt, Tag::ab}, Engine(), in.data_ptr())},
        {DNNL_ARG_WEIGHTS, e.packed},
        {DNNL_ARG_DST, memory({{rows, e.out}, dt, Tag::ab}, Engine(), y.data_ptr())}};
    torch::Tensor b;
    if (bias.defined()) {
      b = bias.contiguous();
      args.emplace(DNNL_ARG_BIAS, memory({{1, e.out}, DataType(b.scalar_type()), Tag::ab}, Engine(), b.data_ptr()));
    }
    found->second->execute(Stream(), args);
    Stream().wait();
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = e.out;
    return y.view(shape);
  }
};

namespace {

// Whether oneDNN has a bf16 matmul for this CPU: it needs AVX-512 (or AMX); on an AVX2
// machine creating the primitive throws, and bf16 layers stay with LibTorch.
bool Bf16MatmulSupported() {
  static const bool supported = [] {
    try {
      memory::desc src({kPackRows, 16}, memory::data_type::bf16, Tag::ab);
      memory::desc w({16, 16}, memory::data_type::bf16, Tag::any);
      memory::desc dst({kPackRows, 16}, memory::data_type::bf16, Tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, w, dst), Engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return supported;
}

bool Packable(const torch::Tensor& t) {
  return t.device().is_cpu() &&
         (t.scalar_type() == torch::kFloat || (t.scalar_type() == torch::kBFloat16 && Bf16MatmulSupported()));
}

// The matrices a forward pass multiplies by, grouped as packed: q/k/v and
// gate/up of each block stacked, o/down alone, and the output projection (the
// embedding when tied). Each: weights and their biases.
std::vector<std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>>> Groups(TransformerImpl& model) {
  std::vector<std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>>> groups;
  auto add = [&](std::initializer_list<const torch::nn::Linear*> layers) {
    std::vector<torch::Tensor> w, b;
    for (const auto* l : layers) {
      w.push_back((*l)->weight);
      b.push_back((*l)->bias);
    }
    groups.emplace_back(std::move(w), std::move(b));
  };
  for (const auto& layer : *model.model->layers) {
    auto* block = layer->as<Block>();
    const auto& a = block->self_attn;
    const auto& m = block->mlp;
    add({&a->q_proj, &a->k_proj, &a->v_proj});
    add({&a->o_proj});
    add({&m->gate_proj, &m->up_proj});
    add({&m->down_proj});
  }
  if (model.config().tie_word_embeddings) {
    groups.push_back({{model.model->embed_tokens->weight}, {torch::Tensor()}});
  } else {
    add({&model.lm_head});
  }
  return groups;
}

}  // namespace

PackedLinears::PackedLinears() : state_(std::make_unique<State>()) {}
PackedLinears::~PackedLinears() = default;

std::unique_ptr<PackedLinears> PackedLinears::Pack(TransformerImpl& model) {
  if (!Packable(model.model->embed_tokens->weight)) return nullptr;
  std::unique_ptr<PackedLinears> packed(new PackedLinears());
  packed->Refresh(model);
  return packed;
}

int64_t PackedLinears::Refresh(TransformerImpl& model) {
  torch::NoGradGuard no_grad;
  int64_t n = 0;
  for (const auto& [weights, biases] : Groups(model)) {
    const c10::TensorImpl* key = weights[0].unsafeGetTensorImpl();
    auto it = state_->entries.find(key);
    if (it != state_->entries.end() && State::Current(it->second)) continue;
    bool ok = true;
    for (const torch::Tensor& w : weights) ok = ok && Packable(w) && w.scalar_type() == weights[0].scalar_type();
    // A group's biases are stacked: all or none, of the weights' dtype.
    for (const torch::Tensor& b : biases) {
      ok = ok && b.defined() == biases[0].defined() && (!b.defined() || b.scalar_type() == weights[0].scalar_type());
    }
    if (!ok) {
      state_->entries.erase(key);
      continue;
    }
    state_->Pack(weights, biases);
    ++n;
  }
  return n;
}

namespace {
bool Suits(const torch::Tensor& x, const PackedLinears::State& state, const c10::TensorImpl* key,
           const PackedLinears::State::Entry** entry) {
  auto it = state.entries.find(key);
  if (it == state.entries.end()) return false;
  const auto& e = it->second;
  if (!x.device().is_cpu() || x.scalar_type() != e.dtype || x.size(-1) != e.in || AutocastOnCpu() ||
      (torch::GradMode::is_enabled() && x.requires_grad())) {
    return false;
  }
  // Gradients must reach the parameters: only without autograd recording.
  if (torch::GradMode::is_enabled() && e.members[0].requires_grad()) return false;
  *entry = &e;
  return true;
}
}  // namespace

at::Tensor PackedLinears::Apply(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const {
  const State::Entry* e = nullptr;
  if (!Suits(x, *state_, weight.unsafeGetTensorImpl(), &e) || e->members.size() != 1 || !State::Current(*e) ||
      (bias.defined() && (bias.dim() != 1 || bias.numel() != e->out ||
                          (bias.scalar_type() != torch::kFloat && bias.scalar_type() != torch::kBFloat16)))) {
    return {};
  }
  return state_->Run(*e, x, bias);
}

at::Tensor PackedLinears::ApplyGroup(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                                     const std::vector<at::Tensor>& biases) const {
  const State::Entry* e = nullptr;
  if (!Suits(x, *state_, weights[0].unsafeGetTensorImpl(), &e)) return {};
  if (weights.size() != e->n_weights || !State::Current(*e)) return {};
  for (size_t i = 0; i < weights.size(); ++i) {
    if (e->members[i].unsafeGetTensorImpl() != weights[i].unsafeGetTensorImpl()) return {};
  }
  for (size_t i = 0; i < biases.size(); ++i) {  // the biases it stacked, unchanged
    const size_t m = e->n_weights + i;
    if (biases[i].defined() != (m < e->members.size()) ||
        (biases[i].defined() && e->members[m].unsafeGetTensorImpl() != biases[i].unsafeGetTensorImpl())) {
      return {};
    }
  }
  return state_->Run(*e, x, e->bias);
}

int64_t PackedLinears::packs() const { return state_->packs; }

#else  // no oneDNN: nothing is packed.

struct PackedLinears::State {};
PackedLinears::PackedLinears() = default;
PackedLinears::~PackedLinears() = default;
std::unique_ptr<PackedLinears> PackedLinears::Pack(TransformerImpl&) { return nullptr; }
int64_t PackedLinears::Refresh(TransformerImpl&) { return 0; }
at::Tensor PackedLinears::Apply(const at::Tensor&, const at::Tensor&, const at::Tensor&) const { return {}; }
at::Tensor PackedLinears::ApplyGroup(const at::Tensor&, const std::vector<at::Tensor>&,
                                     const std::vector<at::Tensor>&) const {
  return {};
}
int64_t PackedLinears::packs() const { return 0; }

#endif

}  // namespace grpo::model

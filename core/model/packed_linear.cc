#include "core/model/packed_linear.h"

#include <map>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

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

bool AutocastOnCpu() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

memory::data_type DataType(torch::ScalarType t) {
  return t == torch::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// A weight's version counter; -1 for an inference tensor, which has none (then
// it is packed again on every Refresh).
int64_t Version(const torch::Tensor& t) { return t.is_inference() ? -1 : static_cast<int64_t>(t._version()); }

// The rows the packing primitive is made for; oneDNN 2.6 picks the same blocked
// weight layout for 1 to 64 rows on this CPU, and Apply checks it per row count.
constexpr int64_t kPackRows = 64;

}  // namespace

struct PackedLinears::State {
  struct Entry {
    int64_t in = 0, out = 0;
    torch::ScalarType dtype = torch::kFloat;
    const void* data = nullptr;  // the weight's storage when packed
    int64_t version = 0;         // and its version counter
    memory packed;
  };
  std::unordered_map<const c10::TensorImpl*, Entry> entries;
  // Primitives by (in, out, rows, dtype, bias dtype or -1); a null primitive
  // marks a shape whose layout differs from the packed one (fallback).
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int, int>, std::unique_ptr<dnnl::matmul>> primitives;
  int64_t packs = 0;

  void PackOne(const torch::Tensor& weight) {
    Entry& e = entries[weight.unsafeGetTensorImpl()];
    e.out = weight.size(0);
    e.in = weight.size(1);
    e.dtype = weight.scalar_type();
    const memory::data_type dt = DataType(e.dtype);
    memory::desc src({kPackRows, e.in}, dt, Tag::ab), dst({kPackRows, e.out}, dt, Tag::ab);
    memory::desc any({e.in, e.out}, dt, Tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, any, dst), Engine());
    torch::Tensor contiguous = weight.contiguous();
    // (out, in) row-major is (in, out) in column-major order: tag ba.
    memory plain({{e.in, e.out}, dt, Tag::ba}, Engine(), contiguous.data_ptr());
    if (!e.packed || e.packed.get_desc() != pd.weights_desc()) e.packed = memory(pd.weights_desc(), Engine());
    dnnl::stream stream(Engine());
    dnnl::reorder(plain, e.packed).execute(stream, plain, e.packed);
    stream.wait();
    e.data = weight.data_ptr();
    e.version = Version(weight);
    ++packs;
  }
};

namespace {

// The weights a forward pass multiplies by (2-D parameters; the embedding only
// when it doubles as the output projection).
std::vector<torch::Tensor> LinearWeights(TransformerImpl& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model.named_parameters()) {
    if (p.value().dim() != 2) continue;
    if (p.key() == "model.embed_tokens.weight" && !model.config().tie_word_embeddings) continue;
    out.push_back(p.value());
  }
  return out;
}

}  // namespace

PackedLinears::PackedLinears() : state_(std::make_unique<State>()) {}
PackedLinears::~PackedLinears() = default;

std::unique_ptr<PackedLinears> PackedLinears::Pack(TransformerImpl& model) {
  const torch::Tensor& w = model.model->embed_tokens->weight;
  if (!w.device().is_cpu() || (w.scalar_type() != torch::kFloat && w.scalar_type() != torch::kBFloat16)) return nullptr;
  std::unique_ptr<PackedLinears> packed(new PackedLinears());
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& weight : LinearWeights(model)) packed->state_->PackOne(weight);
  return packed;
}

int64_t PackedLinears::Refresh(TransformerImpl& model) {
  torch::NoGradGuard no_grad;
  int64_t n = 0;
  for (const torch::Tensor& weight : LinearWeights(model)) {
    auto it = state_->entries.find(weight.unsafeGetTensorImpl());
    if (it != state_->entries.end() && it->second.data == weight.data_ptr() &&
        it->second.version == Version(weight) && it->second.version >= 0 && it->second.dtype == weight.scalar_type() &&
        weight.device().is_cpu()) {
      continue;
    }
    if (!weight.device().is_cpu() || (weight.scalar_type() != torch::kFloat && weight.scalar_type() != torch::kBFloat16)) {
      state_->entries.erase(weight.unsafeGetTensorImpl());
      continue;
    }
    state_->PackOne(weight);
    ++n;
  }
  return n;
}

at::Tensor PackedLinears::Apply(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const {
  auto it = state_->entries.find(weight.unsafeGetTensorImpl());
  if (it == state_->entries.end()) return {};
  const State::Entry& e = it->second;
  if (!x.device().is_cpu() || x.scalar_type() != e.dtype || x.size(-1) != e.in || e.data != weight.data_ptr() ||
      (torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad())) ||
      AutocastOnCpu() || (bias.defined() && (bias.dim() != 1 || bias.requires_grad()))) {
    return {};
  }
  const int64_t rows = x.numel() / e.in;
  if (rows == 0) return {};
  const int bias_type = bias.defined() ? static_cast<int>(bias.scalar_type()) : -1;
  const memory::data_type dt = DataType(e.dtype);
  auto key = std::make_tuple(e.in, e.out, rows, static_cast<int>(e.dtype), bias_type);
  auto found = state_->primitives.find(key);
  if (found == state_->primitives.end()) {
    memory::desc src({rows, e.in}, dt, Tag::ab), dst({rows, e.out}, dt, Tag::ab);
    memory::desc any({e.in, e.out}, dt, Tag::any);
    std::unique_ptr<dnnl::matmul> primitive;
    try {
      auto desc = bias.defined() ? dnnl::matmul::desc(src, any, memory::desc({1, e.out}, DataType(bias.scalar_type()), Tag::ab), dst)
                                 : dnnl::matmul::desc(src, any, dst);
      dnnl::matmul::primitive_desc pd(desc, Engine());
      if (pd.weights_desc() == e.packed.get_desc()) primitive = std::make_unique<dnnl::matmul>(pd);
    } catch (const dnnl::error&) {
      // Not supported for this shape: torch computes it.
    }
    found = state_->primitives.emplace(key, std::move(primitive)).first;
  }
  if (!found->second) return {};
  // oneDNN's OpenMP regions take this thread's setting; keep it at LibTorch's.
  if (omp_get_max_threads() != at::get_num_threads()) omp_set_num_threads(at::get_num_threads());
  torch::Tensor in = x.reshape({rows, e.in}).contiguous();
  torch::Tensor y = torch::empty({rows, e.out}, x.options());
  memory src({{rows, e.in}, dt, Tag::ab}, Engine(), in.data_ptr());
  memory dst({{rows, e.out}, dt, Tag::ab}, Engine(), y.data_ptr());
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, e.packed}, {DNNL_ARG_DST, dst}};
  torch::Tensor b;
  if (bias.defined()) {
    b = bias.contiguous();
    args.emplace(DNNL_ARG_BIAS, memory({{1, e.out}, DataType(b.scalar_type()), Tag::ab}, Engine(), b.data_ptr()));
  }
  dnnl::stream stream(Engine());
  found->second->execute(stream, args);
  stream.wait();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = e.out;
  return y.view(shape);
}

int64_t PackedLinears::packed_bytes() const {
  int64_t n = 0;
  for (const auto& [impl, e] : state_->entries) n += static_cast<int64_t>(e.packed.get_desc().get_size());
  return n;
}

int64_t PackedLinears::packs() const { return state_->packs; }

#else  // no oneDNN: nothing is packed.

struct PackedLinears::State {};
PackedLinears::PackedLinears() = default;
PackedLinears::~PackedLinears() = default;
std::unique_ptr<PackedLinears> PackedLinears::Pack(TransformerImpl&) { return nullptr; }
int64_t PackedLinears::Refresh(TransformerImpl&) { return 0; }
at::Tensor PackedLinears::Apply(const at::Tensor&, const at::Tensor&, const at::Tensor&) const { return {}; }
int64_t PackedLinears::packed_bytes() const { return 0; }
int64_t PackedLinears::packs() const { return 0; }

#endif

}  // namespace grpo::model

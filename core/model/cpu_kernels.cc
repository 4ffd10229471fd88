#include "core/model/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>
#include <c10/util/BFloat16.h>
#include <torch/torch.h>

#include "core/model/transformer.h"

namespace grpo::model {
namespace {

thread_local bool fused_decode = false;


// A value as the dtype T stores it, back in float: the rounding each op of the
// op-by-op path applies to its result.
template <typename T>
inline __attribute__((always_inline)) float R(float x) {
  return static_cast<float>(static_cast<T>(x));
}
template <>
inline __attribute__((always_inline)) float R<float>(float x) {
  return x;
}

template <typename T>
inline __attribute__((always_inline)) float Dot(const float* a, const T* b, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * static_cast<float>(b[i]);
  return s;
}

// out[d] = x[d] * cos[d] + rotate_half(x)[d] * sin[d], each product and the sum
// rounded as the tensors of dtype T are.
template <typename T>
inline __attribute__((always_inline)) void Rotate(const T* x, const T* cos, const T* sin, int64_t D, float* out) {
  const int64_t half = D / 2;
  for (int64_t d = 0; d < D; ++d) {
    const float rot = d < half ? -static_cast<float>(x[d + half]) : static_cast<float>(x[d - half]);
    out[d] = R<T>(R<T>(static_cast<float>(x[d]) * static_cast<float>(cos[d])) + R<T>(rot * static_cast<float>(sin[d])));
  }
}

// Raw views of one decode step's attention, for the kernel below.
template <typename T>
struct AttentionArgs {
  const T *q, *k, *v;              // (B, *) rows with strides qs, ks, vs
  int64_t qs, ks, vs;
  const T *cos, *sin;              // (B or 1, D), row stride cs (0: one row for all)
  int64_t cs;
  T *kc, *vc;                      // own cache (rows, K, L, D)
  int64_t L;
  const T *pk, *pv;                // prefix slots (slots, K, P, D), or null
  int64_t P;
  const int64_t *own, *slot, *plen;  // per row: own position; prefix slot and length
  int64_t K, G, D;
  float scale;
  T* out;                          // (B, K * G * D)
};

// Rows-and-heads items [begin, end) (item i: row i / K, key/value head i % K).
template <typename T>
inline __attribute__((always_inline)) void AttendRange(const AttentionArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t K = a.K, G = a.G, D = a.D, H = K * G;
  std::vector<float> qr(G * D), kr(D), scores, acc(D), acc_prefix(D);
  for (int64_t i = begin; i < end; ++i) {
    const int64_t b = i / K, h = i % K;
    const int64_t own = a.own[b];
    const T* cb = a.cos + b * a.cs;
    const T* sb = a.sin + b * a.cs;
    // The new key (rotated) and value into the row's own cache position.
    T* kdst = a.kc + ((b * K + h) * a.L + own) * D;
    T* vdst = a.vc + ((b * K + h) * a.L + own) * D;
    Rotate<T>(a.k + b * a.ks + h * D, cb, sb, D, kr.data());
    for (int64_t d = 0; d < D; ++d) kdst[d] = static_cast<T>(kr[d]);
    std::copy(a.v + b * a.vs + h * D, a.v + b * a.vs + h * D + D, vdst);
    for (int64_t g = 0; g < G; ++g) Rotate<T>(a.q + b * a.qs + (h * G + g) * D, cb, sb, D, qr.data() + g * D);

    const bool prefix = a.pk != nullptr;
    const int64_t np = prefix ? a.plen[b] : 0, no = own + 1;
    const T* pkb = prefix ? a.pk + (a.slot[b] * K + h) * a.P * D : nullptr;
    const T* pvb = prefix ? a.pv + (a.slot[b] * K + h) * a.P * D : nullptr;
    const T* okb = a.kc + (b * K + h) * a.L * D;
    const T* ovb = a.vc + (b * K + h) * a.L * D;
    scores.resize(np + no);
    for (int64_t g = 0; g < G; ++g) {
      const float* qg = qr.data() + g * D;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < np; ++j) {
        scores[j] = R<T>(R<T>(Dot(qg, pkb + j * D, D)) * a.scale);
        m = std::max(m, scores[j]);
      }
      for (int64_t j = 0; j < no; ++j) {
        scores[np + j] = R<T>(R<T>(Dot(qg, okb + j * D, D)) * a.scale);
        m = std::max(m, scores[np + j]);
      }
      float sum = 0;
      for (int64_t j = 0; j < np + no; ++j) {
        scores[j] = std::exp(scores[j] - m);
        sum += scores[j];
      }
      for (int64_t j = 0; j < np + no; ++j) scores[j] = R<T>(scores[j] / sum);
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(acc_prefix.begin(), acc_prefix.end(), 0.0f);
      for (int64_t j = 0; j < np; ++j) {
        const float p = scores[j];
        const T* vj = pvb + j * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) acc_prefix[d] += p * static_cast<float>(vj[d]);
      }
      for (int64_t j = 0; j < no; ++j) {
        const float p = scores[np + j];
        const T* vj = ovb + j * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) acc[d] += p * static_cast<float>(vj[d]);
      }
      T* o = a.out + b * H * D + (h * G + g) * D;
      for (int64_t d = 0; d < D; ++d) {
        o[d] = static_cast<T>(prefix ? R<T>(R<T>(acc[d]) + R<T>(acc_prefix[d])) : acc[d]);
      }
    }
  }
}

// The loops compiled for AVX-512, AVX2 and the baseline, picked at load time
// (this file is built for the baseline x86-64 otherwise).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GRPO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GRPO_CLONES
#endif
GRPO_CLONES void AttendRangeF32(const AttentionArgs<float>& a, int64_t begin, int64_t end) { AttendRange(a, begin, end); }
GRPO_CLONES void AttendRangeBf16(const AttentionArgs<c10::BFloat16>& a, int64_t begin, int64_t end) {
  AttendRange(a, begin, end);
}

template <typename T>
void DecodeAttentionKernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const ForwardPlan& plan,
                           KVCache& cache, int64_t layer, int64_t H, int64_t K, int64_t D, at::Tensor& out) {
  const int64_t B = q.size(0);
  at::Tensor cos = plan.cos.contiguous(), sin = plan.sin.contiguous();  // (B or 1, 1, 1, D)
  const bool prefix = plan.prefix_keys > 0;
  const RowLayout& rows = plan.rows;
  // The plan and cache are checked here, as narrow and index_select check them
  // on the op-by-op path: the loops below trust them.
  const at::Tensor& kc = cache.k[layer];
  TORCH_CHECK(kc.dim() == 4 && B <= kc.size(0) && kc.size(1) == K && kc.size(3) == D && kc.is_contiguous() &&
                  cache.v[layer].sizes() == kc.sizes() && cache.v[layer].is_contiguous(),
              "FusedDecodeAttention: ", B, " rows against an own cache of ", kc.sizes());
  TORCH_CHECK(cos.numel() == D || cos.numel() == B * D, "FusedDecodeAttention: rotary tables ", cos.sizes());
  TORCH_CHECK(k.size(1) == K * D && v.size(1) == K * D && q.size(1) == H * D, "FusedDecodeAttention: projection widths");
  std::vector<int64_t> own(B);
  for (int64_t b = 0; b < B; ++b) {
    own[b] = plan.write_index.defined() ? rows.own_start.at(b) : plan.write_start;
    TORCH_CHECK(own[b] >= 0 && own[b] < kc.size(2), "FusedDecodeAttention: row ", b, " writes own position ", own[b],
                " of ", kc.size(2));
  }
  if (prefix) {
    TORCH_CHECK(layer < static_cast<int64_t>(cache.prefix_k.size()), "FusedDecodeAttention: the cache has no prefix slots");
    const at::Tensor& pk = cache.prefix_k[layer];
    TORCH_CHECK(pk.dim() == 4 && pk.size(1) == K && pk.size(3) == D && pk.is_contiguous() &&
                    cache.prefix_v[layer].sizes() == pk.sizes() && cache.prefix_v[layer].is_contiguous(),
                "FusedDecodeAttention: prefix slots ", pk.sizes());
    TORCH_CHECK(rows.prefix_slot.size() == static_cast<size_t>(B) && rows.prefix_len.size() == static_cast<size_t>(B),
                "FusedDecodeAttention: one prefix slot and length per row");
    for (int64_t b = 0; b < B; ++b) {
      TORCH_CHECK(rows.prefix_slot[b] >= 0 && rows.prefix_slot[b] < pk.size(0) && rows.prefix_len[b] >= 0 &&
                      rows.prefix_len[b] <= pk.size(2),
                  "FusedDecodeAttention: row ", b, " reads slot ", rows.prefix_slot[b], " (", rows.prefix_len[b],
                  " keys) of ", pk.sizes());
    }
  }
  AttentionArgs<T> a;
  a.q = q.data_ptr<T>();
  a.k = k.data_ptr<T>();
  a.v = v.data_ptr<T>();
  a.qs = q.stride(0);
  a.ks = k.stride(0);
  a.vs = v.stride(0);
  a.cos = cos.data_ptr<T>();
  a.sin = sin.data_ptr<T>();
  a.cs = cos.size(0) == 1 ? 0 : D;
  a.kc = cache.k[layer].data_ptr<T>();
  a.vc = cache.v[layer].data_ptr<T>();
  a.L = cache.k[layer].size(2);
  a.pk = prefix ? cache.prefix_k[layer].data_ptr<T>() : nullptr;
  a.pv = prefix ? cache.prefix_v[layer].data_ptr<T>() : nullptr;
  a.P = prefix ? cache.prefix_k[layer].size(2) : 0;
  a.own = own.data();
  a.slot = prefix ? rows.prefix_slot.data() : nullptr;
  a.plen = prefix ? rows.prefix_len.data() : nullptr;
  a.K = K;
  a.G = H / K;
  a.D = D;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  a.out = out.data_ptr<T>();
  at::parallel_for(0, B * K, 1, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<T, float>) {
      AttendRangeF32(a, begin, end);
    } else {
      AttendRangeBf16(a, begin, end);
    }
  });
}

template <typename T>
void RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& out) {
  const int64_t C = x.size(-1), N = x.numel() / C;
  const T* xp = x.data_ptr<T>();
  const T* wp = weight.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const T* row = xp + n * C;
      float ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t c = 0; c < C; ++c) ss += static_cast<float>(row[c]) * static_cast<float>(row[c]);
      const float r = 1.0f / std::sqrt(ss / static_cast<float>(C) + static_cast<float>(eps));
      T* o = op + n * C;
      for (int64_t c = 0; c < C; ++c) o[c] = static_cast<T>(static_cast<float>(wp[c]) * R<T>(static_cast<float>(row[c]) * r));
    }
  });
}

template <typename T>
void SwiGlu(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out) {
  const int64_t N = gate.size(0), F = gate.size(1);
  const T* gp = gate.data_ptr<T>();
  const T* up_ = up.data_ptr<T>();
  T* op = out.data_ptr<T>();
  const int64_t gs = gate.stride(0), us = up.stride(0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t f = 0; f < F; ++f) {
      const float g = static_cast<float>(gp[n * gs + f]);
      op[n * F + f] = static_cast<T>(R<T>(g / (1.0f + std::exp(-g))) * static_cast<float>(up_[n * us + f]));
    }
  }
}

}  // namespace

bool AutocastOnCpu() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

FusedDecodeScope::FusedDecodeScope(bool enabled) : previous_(fused_decode) { fused_decode = enabled; }
FusedDecodeScope::~FusedDecodeScope() { fused_decode = previous_; }

bool FusedDecodeApplies(const at::Tensor& x) {
  return fused_decode && x.device().is_cpu() && !AutocastOnCpu() &&
         (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16) &&
         !(torch::GradMode::is_enabled() && x.requires_grad());
}

at::Tensor FusedRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor in = x.contiguous();
  at::Tensor out = torch::empty_like(in);
  if (x.scalar_type() == torch::kFloat) {
    RmsNorm<float>(in, weight.contiguous(), eps, out);
  } else {
    RmsNorm<c10::BFloat16>(in, weight.contiguous(), eps, out);
  }
  return out;
}

at::Tensor FusedSwiGlu(const at::Tensor& gate, const at::Tensor& up) {
  const int64_t F = gate.size(-1);
  at::Tensor g = gate.reshape({-1, F}), u = up.reshape({-1, F});
  if (g.stride(1) != 1) g = g.contiguous();
  if (u.stride(1) != 1) u = u.contiguous();
  std::vector<int64_t> shape = gate.sizes().vec();
  // Beyond a few rows LibTorch's vectorised silu and product are faster than
  // this loop's scalar exp (same rounding: silu, then the product).
  if (g.size(0) > 4) return (torch::silu(g) * u).view(shape);
  at::Tensor out = torch::empty({g.size(0), F}, gate.options());
  if (gate.scalar_type() == torch::kFloat) {
    SwiGlu<float>(g, u, out);
  } else {
    SwiGlu<c10::BFloat16>(g, u, out);
  }
  return out.view(shape);
}

at::Tensor FusedDecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const ForwardPlan& plan, KVCache& cache, int64_t layer, int64_t n_heads,
                                int64_t n_kv_heads, int64_t head_dim) {
  auto rows_of = [](const at::Tensor& t) {  // (B, n) with unit column stride
    at::Tensor r = t.reshape({t.size(0), -1});
    return r.stride(1) == 1 ? r : r.contiguous();
  };
  at::Tensor q2 = rows_of(q), k2 = rows_of(k), v2 = rows_of(v);
  at::Tensor out = torch::empty({q2.size(0), n_heads * head_dim}, q.options());
  if (q.scalar_type() == torch::kFloat) {
    DecodeAttentionKernel<float>(q2, k2, v2, plan, cache, layer, n_heads, n_kv_heads, head_dim, out);
  } else {
    DecodeAttentionKernel<c10::BFloat16>(q2, k2, v2, plan, cache, layer, n_heads, n_kv_heads, head_dim, out);
  }
  return out;
}

}  // namespace grpo::model

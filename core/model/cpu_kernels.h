// Fused CPU kernels for decode steps (one new token per row), float32 or
// bfloat16, used by the model's one forward path (AttentionImpl, RMSNormImpl,
// FeedForwardImpl) inside a FusedDecodeScope (the Generator opens one on the
// CPU) and without autograd.
//
// Why hand-written: a one-token decode step through LibTorch ops costs about
// 130 operator calls per layer (rotary halves, cache writes, the grouped
// attention's reshapes, four small batched matmuls, masks, softmax, norms), at
// a few microseconds each: a third of a batch-1 step on this machine. Each
// kernel here replaces one such chain by one loop over raw memory. LibTorch
// 1.13 has no fused CPU attention or RMSNorm to call instead.
//
// Each kernel rounds where the op-by-op path rounds (to the model's dtype after
// every op, softmax in float32), so bf16 results match it to the ulp and f32 up
// to summation order.
#ifndef GRPO_CORE_MODEL_CPU_KERNELS_H_
#define GRPO_CORE_MODEL_CPU_KERNELS_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace grpo::model {

struct KVCache;
struct ForwardPlan;

// While alive, the model's decode steps on this thread use the kernels below
// where they apply. Scopes nest.
class FusedDecodeScope {
 public:
  explicit FusedDecodeScope(bool enabled);
  ~FusedDecodeScope();
  FusedDecodeScope(const FusedDecodeScope&) = delete;
  FusedDecodeScope& operator=(const FusedDecodeScope&) = delete;

 private:
  bool previous_;
};

// Whether CPU autocast is on for this thread (LibTorch 1.13 and 2.x spellings).
bool AutocastOnCpu();

// Whether the kernels take tensors like `x` now: a FusedDecodeScope is open,
// x is on the CPU in float32 or bfloat16, and no gradient is being recorded.
bool FusedDecodeApplies(const at::Tensor& x);

// weight * normalized x over the last dimension, as RMSNormImpl::forward.
// x (..., C) with contiguous rows, weight (C) of x's dtype.
at::Tensor FusedRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// silu(gate) * up, as FeedForwardImpl: gate, up (N, F) with unit column stride.
at::Tensor FusedSwiGlu(const at::Tensor& gate, const at::Tensor& up);

// The attention of one decode step (T == 1, with a cache): rotary positions
// applied to q (B, H*D) and k (B, K*D), k and v (B, K*D) written to the cache
// at each row's own position, then each query head attends to its row's shared
// prefix and own keys. Rows of q, k, v may be strided (views of one fused
// projection); their columns are contiguous. Returns (B, H*D).
at::Tensor FusedDecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const ForwardPlan& plan, KVCache& cache, int64_t layer, int64_t n_heads,
                                int64_t n_kv_heads, int64_t head_dim);

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_CPU_KERNELS_H_

// Linear layers of a CPU model through oneDNN, with each weight matrix packed
// into oneDNN's blocked layout once per weights version, for inference.
//
// Why not torch's own linear: OpenBLAS's sgemm copies ("packs") the weight
// matrix into its blocked layout on every call. In a decode step each weight is
// used once, so the copy is paid every step: 21% of a 64-row decode step here
// (perf: sgemm_incopy). oneDNN's matmul accepts weights already in its layout
// (format_tag::any, reordered once), and its one-row kernel streams them faster
// than OpenBLAS's gemv. Measured on this machine's EPYC, one thread, the small
// preset's linear layers in a chain: 64 rows 106 against 77 GFLOP/s; one row
// 15.3 against 14.3 GB/s of weights read in float32 and 20 against 8.3 in
// bfloat16. Debian's LibTorch is itself linked against this oneDNN (libdnnl2);
// LibTorch 1.13 exposes no packed-weight linear of its own.
//
// Memory: the packed copies double the linear weights' bytes while they live
// (a Generator keeps them between Generate calls); a third copy, in blocks of
// 16 output rows for steps of one to four rows (read at memory speed, where
// oneDNN's matrix-vector path reaches about 0.6 of it), is made the first
// time such a step comes.
//
// Builds without oneDNN (GRPO_HAVE_DNNL undefined, as against a pip LibTorch):
// Pack() returns null and everything runs through torch.
#ifndef GRPO_CORE_MODEL_PACKED_LINEAR_H_
#define GRPO_CORE_MODEL_PACKED_LINEAR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

namespace grpo::model {

class TransformerImpl;

// Threads: Apply and ApplyGroup fill caches (primitives, the 16-row blocks), so
// one thread at a time per PackedLinears (a Generator runs one call at a time).
class PackedLinears {
 public:
  // Packs the linear weights of `model` (attention and MLP projections and the
  // output projection, the tied embedding included; each block's q/k/v and
  // gate/up as one matrix each) when it is on the CPU in float32 or bfloat16
  // and this build has oneDNN; null otherwise.
  static std::unique_ptr<PackedLinears> Pack(TransformerImpl& model);
  ~PackedLinears();

  // Packs again each weight changed since it was packed (written in place,
  // which bumps its version counter, or replaced). Returns how many.
  int64_t Refresh(TransformerImpl& model);

  // x (..., in) times `weight` (out, in) transposed plus `bias`, through the
  // packed copy of `weight`; an undefined tensor when `weight` is not packed
  // here or x does not suit (device, dtype, autograd), so the caller falls back.
  at::Tensor Apply(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const;

  // x times several layers' weights at once, when they were packed as one
  // group (q/k/v, gate/up of a block): (..., sum of outs), the layers' outputs
  // side by side, biases added; undefined otherwise.
  // `biases` are the layers' (undefined where none): they must be those packed.
  at::Tensor ApplyGroup(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                        const std::vector<at::Tensor>& biases) const;

  int64_t packs() const;  // weights packed so far, first packing and refreshes

  struct State;

 private:
  PackedLinears();
  std::unique_ptr<State> state_;
};

// While alive, model::Linear() on this thread uses `packed` for the weights it
// holds (null: no change). Scopes nest.
class PackedLinearScope {
 public:
  explicit PackedLinearScope(const PackedLinears* packed);
  ~PackedLinearScope();
  PackedLinearScope(const PackedLinearScope&) = delete;
  PackedLinearScope& operator=(const PackedLinearScope&) = delete;

  static const PackedLinears* Current();

 private:
  const PackedLinears* previous_;
};

}  // namespace grpo::model

#endif  // GRPO_CORE_MODEL_PACKED_LINEAR_H_

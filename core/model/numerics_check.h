// A start-up check of this machine's float32 kernels against float64 (issue #21).
//
// The demo once learned half as well on one machine as on others, from the same code,
// seed and data, with every unit test green; BLAS libraries pick their kernels by CPU
// at run time (OpenBLAS's DYNAMIC_ARCH), and some releases have shipped AVX-512
// kernels that miscompute. A policy trained or sampled through such a kernel is
// silently worse. This check runs the products a model of `config` makes (linear
// layers over many rows, the one-row matrix-vector path of decoding, attention's
// batched products, the softmax over the vocabulary, and the backward products of a
// linear layer at a training micro-batch's size) on random inputs of those shapes,
// in float32 and in float64, and fails when they disagree by more than float32
// rounding can explain. Wrong kernels are off by orders of magnitude more than that.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "core/model/model_config.h"

namespace at {
class Tensor;
}

namespace grpo::model {

// What the check covers, and hooks for tests.
using LinearFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b)>;
using MatmulFn = std::function<at::Tensor(const at::Tensor& a, const at::Tensor& b)>;
struct KernelCheckOptions {
  // The most rows a linear layer sees at once in a forward pass (batch x tokens).
  int64_t rows = 256;
  // The most tokens a training micro-batch holds: the inner dimension of the weight
  // gradients (dy^T x), whose kernels BLAS picks by size; 0 for a process that does not
  // train (an actor). Capped so the float64 products stay fast.
  int64_t train_rows = 0;
  // Replace model::Linear and torch::mm, for tests that need a kernel that miscomputes.
  LinearFn linear;
  MatmulFn mm;
};

// OK, or an InternalError naming the operation, its shape, the error found and what to
// try (OPENBLAS_CORETYPE=Haswell selects OpenBLAS's AVX2 kernels). Runs on the CPU in
// well under a second for models up to a few hundred million parameters' layer shapes.
absl::Status CheckFloat32Kernels(const ModelConfig& config, const KernelCheckOptions& options = {});

// The backward half, also run by CheckFloat32Kernels: the gradients of the training
// loss through one block of `config`'s shape, float32 against float64.
absl::Status CheckTrainingGradients(const ModelConfig& config);

}  // namespace grpo::model

// A start-up check of this machine's float32 kernels against float64 (issue #21).
//
// The demo once learned half as well on one machine as on others, from the same code,
// seed and data, with every unit test green; BLAS libraries pick their kernels by CPU
// at run time (OpenBLAS's DYNAMIC_ARCH), and some releases have shipped AVX-512
// kernels that miscompute. A policy trained or sampled through such a kernel is
// silently worse. This check runs the products a model of `config` makes (linear
// layers over many rows, the one-row matrix-vector path of decoding, attention's
// batched products, the softmax over the vocabulary) on random inputs of those shapes,
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

// OK, or an InternalError naming the operation, its shape, the error found and what to
// try (OPENBLAS_CORETYPE=Haswell selects OpenBLAS's AVX2 kernels). `rows`: the
// most rows a linear layer sees at once (batch x tokens). Runs on the CPU in well
// under a second for models up to a few hundred million parameters' layer shapes.
// `linear` replaces model::Linear, for tests that need a kernel that miscomputes.
using LinearFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b)>;
absl::Status CheckFloat32Kernels(const ModelConfig& config, int64_t rows = 256, const LinearFn& linear = nullptr);

// The backward half, also run by CheckFloat32Kernels: the gradients of the training
// loss through one block of `config`'s shape, float32 against float64.
absl::Status CheckTrainingGradients(const ModelConfig& config);

}  // namespace grpo::model

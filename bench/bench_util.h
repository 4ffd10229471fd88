// Timing helpers shared by the benchmarks.
#pragma once

#include <chrono>
#include <cstdint>

#include <torch/torch.h>

namespace grpo::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Waits for queued device work (CUDA); a no-op on CPU.
inline void Sync(const torch::Device& device) {
  if (device.is_cuda()) torch::zeros({1}, torch::TensorOptions().device(device)).cpu();
}

// torch::mm FLOP/s on n x n matrices of `options`: one warm-up, then at least 3 reps
// and `min_seconds`. The baseline every benchmark reports its figures against.
inline double MatmulFlops(int64_t n, torch::TensorOptions options, double min_seconds) {
  torch::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  torch::mm(a, b);  // warm-up
  Sync(options.device());
  int iters = 0;
  auto t0 = Clock::now();
  while (iters < 3 || Seconds(t0) < min_seconds) {
    torch::mm(a, b);
    Sync(options.device());
    ++iters;
  }
  return 2.0 * static_cast<double>(n) * n * n * iters / Seconds(t0);
}

}  // namespace grpo::bench

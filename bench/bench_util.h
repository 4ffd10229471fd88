// Timing helpers shared by the benchmarks.
#pragma once

#include <chrono>
#include <cstdint>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/grpo/trainer.h"

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

// Random scored groups (tokens 1..vocab-1, sampling log-probs near a fresh model's,
// rewards mixed so every step has gradient), as grpo-bench-train and grpo-bench-weights train on.
inline std::vector<grpo::TrainGroup> MakeGroups(int64_t n, int64_t G, int64_t prompt_len, int64_t completion_len,
                                         int64_t vocab, uint64_t seed = 5) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_int_distribution<int64_t> tok(1, vocab - 1);  // 0 is the pad id
  // Sampling log-probs near what the fresh model assigns a random token (log 1/V), so
  // ratios are near 1 and the clipped objective has gradient on every token, as in a
  // real on-policy step.
  const float base = -std::log(static_cast<float>(vocab));
  std::normal_distribution<float> lp(base, 0.05f);
  std::vector<grpo::TrainGroup> out;
  for (int64_t i = 0; i < n; ++i) {
    grpo::TrainGroup g;
    g.temperature = 1.0f;
    for (int64_t j = 0; j < prompt_len; ++j) g.prompt_token_ids.push_back(tok(rng));
    for (int64_t k = 0; k < G; ++k) {
      grpo::TrainCompletion c;
      for (int64_t j = 0; j < completion_len; ++j) {
        c.token_ids.push_back(tok(rng));
        c.logprobs.push_back(std::min(lp(rng), -0.01f));
      }
      c.reward = (k + i) % 2 == 0 ? 1.0 : 0.0;  // mixed, so advantages are nonzero
      g.completions.push_back(std::move(c));
    }
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace grpo::bench

// Generation throughput of the sampler, reported against torch::mm measured in the same
// run at the same thread count and dtype (a report, not a test).
//
//   build/bin/grpo-bench-generate [--threads N]
//
// For each model size: tokens/s when sampling G completions of one prompt (prefix
// shared), and the achieved FLOP/s (2 x parameters x tokens / time, attention ignored)
// as a share of the matmul FLOP/s.
#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/model/sampler.h"
#include "core/model/transformer.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double MatmulFlops(int64_t n) {
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);  // warm-up
  int iters = 0;
  auto t0 = Clock::now();
  while (Seconds(t0) < 1.0) {
    torch::mm(a, b);
    ++iters;
  }
  return 2.0 * n * n * n * iters / Seconds(t0);
}

struct Case {
  const char* name;
  int64_t hidden, layers, heads, kv_heads, ff, vocab;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  }
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  double mm = MatmulFlops(1024);
  std::printf("threads %d, fp32 torch::mm 1024^3: %.1f GFLOP/s\n", threads, mm / 1e9);
  std::printf("%-8s %10s %6s %6s %12s %12s %10s\n", "model", "params", "G", "new", "tokens/s", "GFLOP/s", "of mm");
  for (const Case& c : {Case{"demo", 64, 2, 4, 2, 176, 29}, Case{"small", 512, 8, 8, 4, 1408, 32000}}) {
    grpo::model::ModelConfig mc;
    mc.vocab_size = c.vocab;
    mc.hidden_size = c.hidden;
    mc.intermediate_size = c.ff;
    mc.num_hidden_layers = c.layers;
    mc.num_attention_heads = c.heads;
    mc.num_key_value_heads = c.kv_heads;
    mc.max_position_embeddings = 512;
    grpo::model::Transformer model(mc);
    model->eval();
    int64_t params = 0;
    for (const auto& p : model->parameters()) params += p.numel();
    for (int64_t g : {1, 16, 64}) {
      std::vector<int64_t> prompt(32, 5);
      grpo::model::SamplingParams sp;
      sp.max_new_tokens = 64;
      at::Generator gen = at::detail::createCPUGenerator(1);
      grpo::model::SampleGroup(model, prompt, g, sp, gen);  // warm-up
      int64_t tokens = 0;
      auto t0 = Clock::now();
      int reps = 0;
      while (Seconds(t0) < 2.0 || reps == 0) {
        for (const auto& s : grpo::model::SampleGroup(model, prompt, g, sp, gen)) tokens += s.token_ids.size();
        ++reps;
      }
      double secs = Seconds(t0);
      double flops = 2.0 * params * tokens / secs;
      std::printf("%-8s %10lld %6lld %6lld %12.0f %12.2f %9.1f%%\n", c.name, static_cast<long long>(params),
                  static_cast<long long>(g), static_cast<long long>(sp.max_new_tokens), tokens / secs, flops / 1e9,
                  100.0 * flops / mm);
    }
  }
  return 0;
}

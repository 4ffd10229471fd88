// GRPO training throughput of the GrpoTrainer (a report, not a test).
//
//   build/bin/grpo-bench-train [--threads N] [--dtype f32|bf16|both] [--preset small]
//                              [--vocab V] [--groups N] [--group-size G] [--prompt-len P]
//                              [--completion-len C] [--steps S] [--micro-batch M]
//                              [--checkpointing 0|1] [--mm-size n]
//
// Defaults: --threads 1 --dtype both --preset small --vocab 4096 --groups 2
// --group-size 8 --prompt-len 64 --completion-len 192 --steps 3 --micro-batch 8
// --checkpointing 0 --mm-size 2048 (about a minute at one thread; the
// 512-token rows of a larger run: --groups 4 --completion-len 448, about 5 minutes).
//
// One step = GrpoTrainer::Step on a synthetic batch of `groups` scored groups of G
// completions each (random tokens, sampling log-probs around -1, rewards 0 or 1),
// every row P prompt + C completion tokens; AdamW, one epoch, one minibatch,
// gradient accumulation over micro-batches of M rows, no reference model (beta 0).
// Each dtype trains a fresh model: one warm-up step, then S timed steps.
//
// Tokens = rows x (P + C) per step (the forward runs on the first P + C - 1 of each).
// Model FLOPs per token = 6 x parameters (forward 2N + backward 4N), N = every model
// parameter once: the small preset ties its embeddings, so the single embedding
// matrix is counted once and stands for the output projection's matmul (the input
// lookup does no FLOPs). Attention's score/value FLOPs and the step's extra entropy
// pass are not counted (the usual 6ND). MFU = achieved 6ND FLOP/s divided by torch::mm
// FLOP/s measured in the same run, at the same thread count and dtype (the higher of
// a measurement before and one after training).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/model/presets.h"
#include "core/model/transformer.h"
#include "bench/bench_util.h"
#include "core/grpo/trainer.h"

namespace {

using grpo::bench::Clock;
using grpo::bench::MakeGroups;
using grpo::bench::Seconds;

// torch::mm FLOP/s on n x n matrices: one warm-up, then at least 3 reps and 1 second.
double MatmulFlops(int64_t n, torch::ScalarType dtype, const torch::Device& device) {
  return grpo::bench::MatmulFlops(n, torch::TensorOptions().dtype(dtype).device(device), 1.0);
}


struct Result {
  double step_seconds = 0;  // mean over the timed steps
  double loss = 0;          // of the last step
};

Result Train(const grpo::model::ModelConfig& config, bool bf16, int64_t micro_batch, bool checkpointing, int steps,
             const std::vector<const grpo::TrainGroup*>& groups, const torch::Device& device) {
  torch::manual_seed(0);
  grpo::model::Transformer model(config);
  model->to(device);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-5).weight_decay(0.01));
  grpo::TrainerOptions options;
  options.bf16 = bf16;
  options.micro_batch_size = micro_batch;
  options.activation_checkpointing = checkpointing;
  options.device = device;
  grpo::GrpoTrainer trainer(model, grpo::model::Transformer(nullptr), &optimizer, options, /*pad_id=*/0);
  (void)trainer.Step(groups, 0);  // warm-up
  grpo::bench::Sync(device);
  Result r;
  auto t0 = Clock::now();
  for (int s = 1; s <= steps; ++s) r.loss = trainer.Step(groups, static_cast<uint64_t>(s)).loss;
  grpo::bench::Sync(device);
  r.step_seconds = Seconds(t0) / steps;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, steps = 3;
  std::string dtype_name = "both", preset = "small", device_name = "cpu", json_path;
  int64_t vocab = 4096, groups = 2, group_size = 8, prompt_len = 64, completion_len = 192, micro_batch = 8,
          mm_size = 2048;
  bool checkpointing = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--dtype") dtype_name = argv[i + 1];
    else if (flag == "--preset") preset = argv[i + 1];
    else if (flag == "--vocab") vocab = std::atoll(argv[i + 1]);
    else if (flag == "--groups") groups = std::atoll(argv[i + 1]);
    else if (flag == "--group-size") group_size = std::atoll(argv[i + 1]);
    else if (flag == "--prompt-len") prompt_len = std::atoll(argv[i + 1]);
    else if (flag == "--completion-len") completion_len = std::atoll(argv[i + 1]);
    else if (flag == "--steps") steps = std::atoi(argv[i + 1]);
    else if (flag == "--micro-batch") micro_batch = std::atoll(argv[i + 1]);
    else if (flag == "--checkpointing") checkpointing = std::atoi(argv[i + 1]) != 0;
    else if (flag == "--mm-size") mm_size = std::atoll(argv[i + 1]);
    else if (flag == "--device") device_name = argv[i + 1];
    else if (flag == "--json") json_path = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "flag %s needs a value\n", argv[argc - 1]);
    return 2;
  }
  if (dtype_name != "f32" && dtype_name != "bf16" && dtype_name != "both") {
    std::fprintf(stderr, "--dtype must be f32, bf16 or both\n");
    return 2;
  }
  if (steps < 1 || groups < 1 || group_size < 1 || prompt_len < 1 || completion_len < 1 || micro_batch < 0) {
    std::fprintf(stderr, "--steps, --groups, --group-size, --prompt-len and --completion-len must be >= 1\n");
    return 2;
  }
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  const torch::Device device(device_name);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "--device %s: this LibTorch has no CUDA or the machine no GPU\n", device_name.c_str());
    return 2;
  }

  auto config = grpo::model::PresetConfig("qwen2", preset, vocab);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  int64_t params = 0, embedding = 0;
  {
    grpo::model::Transformer probe(*config);
    for (const auto& p : probe->named_parameters()) {
      params += p.value().numel();
      if (p.key() == "model.embed_tokens.weight" || p.key() == "lm_head.weight") embedding += p.value().numel();
    }
  }

  const bool run_f32 = dtype_name != "bf16", run_bf16 = dtype_name != "f32";
  // The fp32 peak is always measured: the bf16 run is also set against it. torch::mm is
  // measured before and again after training and the higher figure used, so a machine
  // busy with something else for a moment does not lower the peak (and raise the MFU).
  double mm_f32 = MatmulFlops(mm_size, torch::kFloat, device);
  double mm_bf16 = run_bf16 ? MatmulFlops(mm_size, torch::kBFloat16, device) : 0;
  std::printf("device %s, threads %d: torch::mm %lldx%lld fp32 %.1f GFLOP/s", device_name.c_str(), threads,
              static_cast<long long>(mm_size), static_cast<long long>(mm_size), mm_f32 / 1e9);
  if (run_bf16) std::printf(", bf16 %.1f GFLOP/s", mm_bf16 / 1e9);
  std::printf("\n");
  std::printf("model qwen2 %s: %.2fM parameters incl. embeddings (tied, counted once: %.2fM; non-embedding %.2fM)\n",
              preset.c_str(), params / 1e6, embedding / 1e6, (params - embedding) / 1e6);
  std::printf("  vocab %lld, hidden %lld, %lld layers\n", static_cast<long long>(vocab),
              static_cast<long long>(config->hidden_size), static_cast<long long>(config->num_hidden_layers));
  const int64_t rows = groups * group_size, tokens = rows * (prompt_len + completion_len);
  std::printf("batch: %lld groups x G=%lld = %lld rows of %lld prompt + %lld completion tokens = %lld tokens/step\n",
              static_cast<long long>(groups), static_cast<long long>(group_size), static_cast<long long>(rows),
              static_cast<long long>(prompt_len), static_cast<long long>(completion_len),
              static_cast<long long>(tokens));
  std::printf("trainer: AdamW, micro-batch %lld, activation checkpointing %s, 1 warm-up + %d timed steps\n",
              static_cast<long long>(micro_batch), checkpointing ? "on" : "off", steps);
  std::fflush(stdout);

  const auto scored = MakeGroups(groups, group_size, prompt_len, completion_len, vocab);
  std::vector<const grpo::TrainGroup*> ptrs;
  for (const auto& g : scored) ptrs.push_back(&g);
  Result f32, bf16;
  if (run_f32) f32 = Train(*config, false, micro_batch, checkpointing, steps, ptrs, device);
  if (run_bf16) bf16 = Train(*config, true, micro_batch, checkpointing, steps, ptrs, device);

  const double mm_f32_after = MatmulFlops(mm_size, torch::kFloat, device);
  const double mm_bf16_after = run_bf16 ? MatmulFlops(mm_size, torch::kBFloat16, device) : 0;
  std::printf("torch::mm after training: fp32 %.1f GFLOP/s", mm_f32_after / 1e9);
  if (run_bf16) std::printf(", bf16 %.1f GFLOP/s", mm_bf16_after / 1e9);
  mm_f32 = std::max(mm_f32, mm_f32_after);
  mm_bf16 = std::max(mm_bf16, mm_bf16_after);
  std::printf("; peak used: fp32 %.1f", mm_f32 / 1e9);
  if (run_bf16) std::printf(", bf16 %.1f", mm_bf16 / 1e9);
  std::printf(" GFLOP/s\n");
  std::printf("MFU = 6 x %.2fM parameters x tokens / step time / torch::mm FLOP/s of the dtype\n\n", params / 1e6);

  std::printf("%-6s %10s %12s %10s %9s %13s %9s\n", "dtype", "step s", "tokens/s", "GFLOP/s", "MFU", "MFU vs fp32",
              "loss");
  bool over = false;
  auto report = [&](const char* name, const Result& r, double mm) {
    const double tps = tokens / r.step_seconds, flops = 6.0 * params * tps;
    over = over || flops > mm;
    std::printf("%-6s %10.3f %12.1f %10.2f %8.1f%% %12.1f%% %9.4f\n", name, r.step_seconds, tps, flops / 1e9,
                100.0 * flops / mm, 100.0 * flops / mm_f32, r.loss);
  };
  if (run_f32) report("fp32", f32, mm_f32);
  if (run_bf16) report("bf16", bf16, mm_bf16);
  if (over) std::printf("\nMFU over 100%%: the machine was likely busy with other work while torch::mm ran\n");
  if (!json_path.empty()) {
    // One object for scripts (scripts/gpu-check.sh): figures per dtype run.
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fprintf(f, "{\"device\": \"%s\", \"preset\": \"%s\", \"parameters\": %lld, \"tokens_per_step\": %lld, "
                    "\"mm_flops\": {\"fp32\": %.6g, \"bf16\": %.6g}, \"runs\": {",
                 device_name.c_str(), preset.c_str(), static_cast<long long>(params), static_cast<long long>(tokens),
                 mm_f32, mm_bf16);
    bool first = true;
    auto emit = [&](const char* name, const Result& r, double mm) {
      const double flops = 6.0 * params * tokens / r.step_seconds;
      std::fprintf(f, "%s\"%s\": {\"step_seconds\": %.6g, \"tokens_per_second\": %.6g, \"flops\": %.6g, "
                      "\"mfu\": %.4f, \"loss\": %.6g}",
                   first ? "" : ", ", name, r.step_seconds, tokens / r.step_seconds, flops, flops / mm, r.loss);
      first = false;
    };
    if (run_f32) emit("fp32", f32, mm_f32);
    if (run_bf16) emit("bf16", bf16, mm_bf16);
    std::fprintf(f, "}}\n");
    std::fclose(f);
  }
  return 0;
}

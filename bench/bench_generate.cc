// Generation throughput of the Generator (a report, not a test).
//
//   build/bin/grpo-bench-generate [--threads N] [--dtype f32|bf16] [--preset small|0.5b]
//                                 [--vocab V] [--new-tokens N] [--device cpu|cuda]
//                                 [--batches 1,16,64] [--shared 1|0] [--json FILE]
//
// Every figure is set against torch::mm measured in the same run, at the same
// thread count, dtype and device: achieved FLOP/s divided by matmul FLOP/s. And
// against a memory copy on the same device measured in the same run: a decode step
// reads every weight once (the output projection included, the embedding lookup's few
// rows not), so weight bytes read per second = decode steps x weight bytes / time,
// divided by the memory traffic per second (bytes read + bytes written) of the fastest
// of three copies made just before that run, median over the runs --
// the bound of a memory-bound batch-1 decode.
// FLOPs per token = 2 x (non-embedding parameters + the output projection)
// + the attention's 4 x layers x heads x head_dim x attended positions;
// prompt (prefill) tokens count as well as generated ones.
//
// Cases: decode batches of 1, 16 and 64 distinct 32-token prompts; and one
// 256-token prompt with G = 16 completions, once prefilled once and shared
// (one request, 16 samples) and once prefilled for each completion (16
// requests of the same prompt): the ratio of their times is the gain of
// prefix sharing.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/model/generator.h"
#include "core/model/presets.h"
#include "core/model/transformer.h"

namespace {

using grpo::bench::Clock;
using grpo::bench::Seconds;
using grpo::bench::Sync;
using grpo::model::GenerationRequest;

double MatmulFlops(int64_t n, torch::TensorOptions options) { return grpo::bench::MatmulFlops(n, options, 1.5); }

struct Result {
  double seconds = 0;
  int64_t generated = 0;
  double flops = 0;
  double decode_steps = 0;
  // Weight bytes read per second over the copy bandwidth measured just before, per
  // run: the median. This machine's memory bandwidth moves by about 20% within a
  // minute, so each run is set against the copy of its own moment.
  double weight_read_of_copy = 0;
};

// Memory traffic per second (read + write) of copying a large tensor on `device`:
// the fastest of the copies made in `seconds` (at least three), the machine's limit
// rather than its average. Buffers are kept, so later probes fault in no pages.
class CopyProbe {
 public:
  explicit CopyProbe(const torch::Device& device)
      : device_(device), bytes_(device.is_cuda() ? (int64_t{1} << 30) : (int64_t{256} << 20)) {
    auto options = torch::TensorOptions().dtype(torch::kUInt8).device(device);
    src_ = torch::ones({bytes_}, options);
    dst_ = torch::empty({bytes_}, options);
    dst_.copy_(src_);  // warm-up, pages touched
    Sync(device_);
  }
  double Measure(double seconds) {
    int iters = 0;
    double best = 0;
    auto t0 = Clock::now();
    while (iters < 3 || Seconds(t0) < seconds) {
      auto t1 = Clock::now();
      dst_.copy_(src_);
      Sync(device_);
      best = std::max(best, 2.0 * static_cast<double>(bytes_) / Seconds(t1));
      ++iters;
    }
    return best;
  }

 private:
  torch::Device device_;
  int64_t bytes_;
  torch::Tensor src_, dst_;
};

// Runs Generate repeatedly for at least `min_seconds`, returns per-run means.
Result Measure(grpo::model::Transformer& model, const std::vector<GenerationRequest>& requests,
               const grpo::model::SamplingParams& params, int64_t max_batch, double min_seconds, CopyProbe& copy,
               double weight_bytes) {
  const auto& c = model->config();
  int64_t non_embedding = 0;
  for (const auto& p : model->named_parameters()) {
    if (p.key() != "model.embed_tokens.weight" && p.key() != "lm_head.weight") non_embedding += p.value().numel();
  }
  const double per_token = 2.0 * (non_embedding + c.vocab_size * c.hidden_size);
  const double per_position = 4.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim();

  grpo::model::GeneratorOptions options;
  options.max_batch = max_batch;
  grpo::model::Generator gen(model, options);
  torch::Device device = model->model->embed_tokens->weight.device();
  (void)gen.Generate(requests, params, 0);  // warm-up
  Result total;
  int runs = 0;
  double timed = 0;
  std::vector<double> of_copy;
  while (runs == 0 || timed < min_seconds) {
    const double bandwidth = copy.Measure(0);
    auto t0 = Clock::now();
    auto out = gen.Generate(requests, params, runs + 1);
    Sync(device);
    const double seconds = Seconds(t0);
    timed += seconds;
    of_copy.push_back(gen.last_stats().decode_steps * weight_bytes / seconds / bandwidth);
    if (!out.ok()) {
      std::fprintf(stderr, "generate failed: %s\n", std::string(out.status().message()).c_str());
      std::exit(1);
    }
    for (size_t r = 0; r < requests.size(); ++r) {
      const double P = requests[r].prompt_ids.size();
      for (const auto& s : (*out)[r]) {
        const double N = s.token_ids.size();
        total.generated += s.token_ids.size();
        // Decode: each fed token attends to everything before it.
        total.flops += N * per_token + per_position * (N * P + N * (N - 1) / 2);
      }
    }
    // Prefill: the prompt tokens actually run (every case here uses prompts of
    // one length P, so prefill_tokens / P prompts), with causal attention.
    const auto& st = gen.last_stats();
    total.decode_steps += st.decode_steps;
    const double P = requests[0].prompt_ids.size();
    total.flops += st.prefill_tokens * per_token + (st.prefill_tokens / P) * per_position * P * (P + 1) / 2;
    ++runs;
  }
  total.seconds = timed / runs;
  std::sort(of_copy.begin(), of_copy.end());
  total.weight_read_of_copy = of_copy[of_copy.size() / 2];
  total.generated /= runs;
  total.flops /= runs;
  total.decode_steps /= runs;
  return total;
}

std::vector<int64_t> Prompt(int64_t length, int64_t salt, int64_t vocab) {
  std::vector<int64_t> ids(length);
  for (int64_t i = 0; i < length; ++i) ids[i] = (i * 131 + salt * 977 + 7) % vocab;
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  std::string dtype_name = "f32", preset = "small", device_name = "cpu", batches_arg = "1,16,64", json_path;
  int64_t vocab = 4096, new_tokens = 128;
  bool shared_cases = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--dtype") dtype_name = argv[i + 1];
    else if (flag == "--preset") preset = argv[i + 1];
    else if (flag == "--vocab") vocab = std::atoll(argv[i + 1]);
    else if (flag == "--new-tokens") new_tokens = std::atoll(argv[i + 1]);
    else if (flag == "--device") device_name = argv[i + 1];
    else if (flag == "--batches") batches_arg = argv[i + 1];
    else if (flag == "--json") json_path = argv[i + 1];
    else if (flag == "--shared") shared_cases = std::string(argv[i + 1]) != "0";
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  const torch::ScalarType dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat;
  const torch::Device device(device_name);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "--device %s: this LibTorch has no CUDA or the machine no GPU\n", device_name.c_str());
    return 2;
  }
  std::vector<int64_t> batches;
  for (size_t at = 0; at < batches_arg.size();) {
    size_t comma = batches_arg.find(',', at);
    if (comma == std::string::npos) comma = batches_arg.size();
    batches.push_back(std::atoll(batches_arg.substr(at, comma - at).c_str()));
    if (batches.back() < 1) {
      std::fprintf(stderr, "--batches: a list of positive sizes, got %s\n", batches_arg.c_str());
      return 2;
    }
    at = comma + 1;
  }
  const auto options = torch::TensorOptions().dtype(dtype).device(device);

  auto config = grpo::model::PresetConfig("qwen2", preset, vocab);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  grpo::model::Transformer model(*config);
  model->to(device, dtype);
  model->eval();
  int64_t params = 0, read_per_step = 0;
  for (const auto& p : model->named_parameters()) {
    params += p.value().numel();
    // The embedding is read as the output projection when tied; as a lookup of a few rows otherwise.
    if (p.key() != "model.embed_tokens.weight" || config->tie_word_embeddings) read_per_step += p.value().numel();
  }
  const double weight_bytes = static_cast<double>(read_per_step) * torch::elementSize(dtype);
  CopyProbe copy(device);
  const double copy_bw = copy.Measure(1.0);

  const double mm = MatmulFlops(device.is_cuda() ? 8192 : 1024, options);
  std::printf("device %s, threads %d, dtype %s: torch::mm %.1f GFLOP/s\n", device_name.c_str(), threads,
              dtype_name.c_str(), mm / 1e9);
  std::printf("memory copy on %s: %.1f GB/s of traffic (read + write)\n", device_name.c_str(), copy_bw / 1e9);
  std::printf("model qwen2 %s: %.1fM parameters (vocab %lld, hidden %lld, %lld layers), temperature 1\n\n",
              preset.c_str(), params / 1e6, static_cast<long long>(vocab),
              static_cast<long long>(config->hidden_size), static_cast<long long>(config->num_hidden_layers));

  grpo::model::SamplingParams sp;
  sp.temperature = 1.0;
  sp.max_new_tokens = new_tokens;

  std::printf("%-34s %10s %12s %10s %8s %12s %8s\n", "case", "seconds", "tokens/s", "GFLOP/s", "of mm", "weights GB/s",
              "of copy");
  std::string json = "{\"device\": \"" + device_name + "\", \"dtype\": \"" + dtype_name + "\", \"preset\": \"" + preset +
                     "\", \"parameters\": " + std::to_string(params) + ", \"mm_flops\": " + std::to_string(mm) +
                     ", \"copy_bytes_per_second\": " + std::to_string(copy_bw) + ", \"cases\": [";
  bool first = true;
  auto report = [&](const std::string& name, const Result& r) {
    const double wbs = r.decode_steps * weight_bytes / r.seconds;
    std::printf("%-34s %10.3f %12.1f %10.2f %7.1f%% %12.2f %7.1f%%\n", name.c_str(), r.seconds, r.generated / r.seconds,
                r.flops / r.seconds / 1e9, 100.0 * r.flops / r.seconds / mm, wbs / 1e9, 100.0 * r.weight_read_of_copy);
    std::fflush(stdout);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%s{\"case\": \"%s\", \"seconds\": %.6g, \"tokens_per_second\": %.6g, \"flops_of_mm\": %.4f, "
                  "\"weight_bytes_per_second\": %.6g, \"weight_read_of_copy\": %.4f}",
                  first ? "" : ", ", name.c_str(), r.seconds, r.generated / r.seconds, r.flops / r.seconds / mm, wbs,
                  r.weight_read_of_copy);
    json += buf;
    first = false;
  };
  const int64_t max_batch = *std::max_element(batches.begin(), batches.end());
  for (int64_t batch : batches) {
    std::vector<GenerationRequest> requests;
    for (int64_t b = 0; b < batch; ++b) requests.push_back({Prompt(32, b, vocab), 1});
    report("batch " + std::to_string(batch) + " (32-token prompts)",
           Measure(model, requests, sp, std::max<int64_t>(64, max_batch), 3.0, copy, weight_bytes));
  }
  double sharing_speedup = 0;
  if (shared_cases) {
    grpo::model::SamplingParams shared_sp = sp;
    shared_sp.max_new_tokens = 64;
    const std::vector<int64_t> long_prompt = Prompt(256, 1, vocab);
    Result shared = Measure(model, {{long_prompt, 16}}, shared_sp, 64, 3.0, copy, weight_bytes);
    Result each = Measure(model, std::vector<GenerationRequest>(16, {long_prompt, 1}), shared_sp, 64, 3.0, copy, weight_bytes);
    report("G=16, 256-token prompt, shared", shared);
    report("G=16, 256-token prompt, each", each);
    sharing_speedup = each.seconds / shared.seconds;
    std::printf("\nprefix sharing: %.2fx faster than prefilling each completion (64 new tokens each)\n",
                sharing_speedup);
  }
  if (!json_path.empty()) {
    json += "], \"prefix_sharing_speedup\": " + std::to_string(sharing_speedup) + "}\n";
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr || std::fputs(json.c_str(), f) < 0) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fclose(f);
  }
  return 0;
}

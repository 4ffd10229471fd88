// The model, generator and trainer on the test device, in fp32 and bf16: the device is
// GRPO_TEST_DEVICE ("cpu", "cuda", "cuda:N"), by default CUDA when LibTorch sees a GPU
// and the CPU otherwise. Every figure is set against the same computation in fp32 on
// the CPU. On a CUDA build (torch-only/, GRPO_TORCH_HAS_CUDA) a decode step is also
// checked to wait for the GPU at most once.
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#ifdef GRPO_TORCH_HAS_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/util/Exception.h>
#endif

#include "core/grpo/trainer.h"
#include "core/model/device.h"
#include "core/model/generator.h"
#include "core/model/presets.h"
#include "core/model/sampler.h"
#include "core/model/transformer.h"

namespace grpo {
namespace {

using model::Transformer;

c10::Device TestDevice() {
  const char* env = std::getenv("GRPO_TEST_DEVICE");
  const std::string name = env != nullptr && *env != '\0' ? env : (torch::cuda::is_available() ? "cuda" : "cpu");
  absl::StatusOr<c10::Device> d = model::ResolveDevice(name, "GRPO_TEST_DEVICE");
  TORCH_CHECK(d.ok(), std::string(d.status().message()));
  return *d;
}

struct Case {
  torch::ScalarType dtype;
  const char* name;
};
class OnDevice : public ::testing::TestWithParam<Case> {};

constexpr int64_t kVocab = 256;

Transformer MakeModel(const std::string& arch = "qwen2") {
  torch::manual_seed(3);
  auto cfg = model::PresetConfig(arch, "tiny", kVocab);
  EXPECT_TRUE(cfg.ok());
  Transformer m(*cfg);
  torch::NoGradGuard ng;
  for (auto& p : m->named_parameters()) {
    // Larger than the init's 0.02 so logits spread and argmaxes are clear.
    if (p.key().find("norm") == std::string::npos) p.value().mul_(4);
  }
  m->eval();
  return m;
}

// A copy of `m` on `device` in `dtype`.
Transformer Copy(Transformer& m, c10::Device device, torch::ScalarType dtype) {
  Transformer c = MakeModel(m->config().model_type);
  torch::NoGradGuard ng;
  auto src = m->named_parameters();
  for (auto& p : c->named_parameters()) p.value().copy_(src[p.key()]);
  c->to(device, dtype);
  c->eval();
  return c;
}

std::vector<std::vector<int64_t>> Prompts(int n, int len) {
  std::vector<std::vector<int64_t>> out;
  for (int i = 0; i < n; ++i) {
    std::vector<int64_t> p;
    for (int j = 0; j < len + i; ++j) p.push_back((j * 37 + i * 11 + 5) % kVocab);
    out.push_back(p);
  }
  return out;
}

// Relative error of `got` against `want`: max |got - want| / std(want).
double RelErr(const torch::Tensor& got, const torch::Tensor& want) {
  torch::Tensor w = want.to(torch::kCPU, torch::kFloat), g = got.to(torch::kCPU, torch::kFloat);
  return ((g - w).abs().max() / w.std()).item<double>();
}

// "cuda" names the current GPU, which tensors report as "cuda:0".
bool OnTestDevice(const torch::Tensor& t, const c10::Device& device) {
  return t.device().type() == device.type() && (!device.has_index() || t.device().index() == device.index());
}

double Tolerance(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? 0.08 : 1e-4; }

TEST_P(OnDevice, ForwardMatchesTheCpuInFp32) {
  const c10::Device device = TestDevice();
  Transformer cpu = MakeModel();
  Transformer dev = Copy(cpu, device, GetParam().dtype);
  torch::NoGradGuard ng;
  torch::Tensor ids = torch::tensor(Prompts(1, 40)[0], torch::kInt64).view({1, -1});
  torch::Tensor want = cpu->forward(ids);
  torch::Tensor got = dev->forward(ids.to(device));
  EXPECT_TRUE(OnTestDevice(got, device)) << got.device();
  EXPECT_LT(RelErr(got, want), Tolerance(GetParam().dtype));
}

TEST_P(OnDevice, GreedyDecodingPicksTheForwardPassArgmaxAtEveryStep) {
  // Each greedy token is the argmax of a full forward pass over everything before it,
  // on the same device and dtype (up to a near-tie: within the dtype's rounding).
  const c10::Device device = TestDevice();
  const torch::ScalarType dtype = GetParam().dtype;
  Transformer cpu = MakeModel("qwen3");
  Transformer dev = Copy(cpu, device, dtype);
  model::GeneratorOptions go;
  go.max_batch = 8;
  model::Generator gen(dev, go);
  model::SamplingParams sp;
  sp.temperature = 0;
  sp.max_new_tokens = 12;
  std::vector<model::GenerationRequest> reqs;
  for (const auto& p : Prompts(3, 6)) reqs.push_back({p, 2});
  auto out = gen.Generate(reqs, sp, 0);
  ASSERT_TRUE(out.ok()) << out.status();
  torch::NoGradGuard ng;
  const double slack = dtype == torch::kBFloat16 ? 0.1 : 1e-4;
  for (size_t r = 0; r < reqs.size(); ++r) {
    for (const auto& s : (*out)[r]) {
      ASSERT_EQ(s.token_ids.size(), 12u);
      EXPECT_EQ(s.token_ids, (*out)[r][0].token_ids);  // greedy: the G copies agree
      std::vector<int64_t> ctx = reqs[r].prompt_ids;
      for (int64_t tok : s.token_ids) {
        torch::Tensor logits = dev->forward(torch::tensor(ctx, torch::kInt64).view({1, -1}).to(device))
                                   .select(1, static_cast<int64_t>(ctx.size()) - 1)
                                   .view({-1})
                                   .to(torch::kCPU, torch::kFloat);
        const double best = logits.max().item<double>();
        EXPECT_GE(logits[tok].item<double>(), best - slack * (1 + std::abs(best))) << "token " << tok;
        ctx.push_back(tok);
      }
    }
  }
}

TEST_P(OnDevice, SampledLogprobsAreWhatTheTrainerRecomputes) {
  const c10::Device device = TestDevice();
  const torch::ScalarType dtype = GetParam().dtype;
  Transformer cpu = MakeModel("llama");
  Transformer dev = Copy(cpu, device, dtype);
  model::GeneratorOptions go;
  go.max_batch = 16;
  model::Generator gen(dev, go);
  model::SamplingParams sp;
  sp.temperature = 0.9;
  sp.max_new_tokens = 10;
  const auto prompt = Prompts(1, 9)[0];
  auto out = gen.Generate({{prompt, 4}}, sp, 7);
  ASSERT_TRUE(out.ok()) << out.status();
  // The same seed gives the same samples.
  auto again = gen.Generate({{prompt, 4}}, sp, 7);
  ASSERT_TRUE(again.ok());
  torch::NoGradGuard ng;
  double worst = 0;
  for (size_t s = 0; s < 4; ++s) {
    EXPECT_EQ((*out)[0][s].token_ids, (*again)[0][s].token_ids);
    std::vector<int64_t> row = prompt;
    row.insert(row.end(), (*out)[0][s].token_ids.begin(), (*out)[0][s].token_ids.end());
    torch::Tensor ids = torch::tensor(row, torch::kInt64).view({1, -1});
    // fp32 CPU recompute, as a learner on another machine would.
    torch::Tensor logits = cpu->forward(ids.slice(1, 0, -1));
    torch::Tensor lp = model::TokenLogprobs(logits, ids.slice(1, 1), sp.temperature)
                           .slice(1, static_cast<int64_t>(prompt.size()) - 1)
                           .view({-1});
    torch::Tensor got = torch::tensor((*out)[0][s].logprobs);
    worst = std::max(worst, (got - lp).abs().max().item<double>());
  }
  EXPECT_LT(worst, dtype == torch::kBFloat16 ? 0.25 : 1e-3);
}

std::vector<TrainGroup> Groups() {
  std::vector<TrainGroup> out;
  for (int g = 0; g < 3; ++g) {
    TrainGroup t;
    t.prompt_token_ids = Prompts(1, 5 + g)[0];
    for (int k = 0; k < 4; ++k) {
      TrainCompletion c;
      for (int j = 0; j < 6 + k; ++j) {
        c.token_ids.push_back((g * 31 + k * 7 + j * 13 + 1) % kVocab);
        c.logprobs.push_back(-std::log(static_cast<float>(kVocab)));
      }
      c.reward = (k + g) % 2;
      t.completions.push_back(c);
    }
    out.push_back(t);
  }
  return out;
}

TEST_P(OnDevice, TrainerStepMatchesTheCpuUpdate) {
  // bf16 here is the trainer's autocast (weights and optimizer stay fp32).
  const c10::Device device = TestDevice();
  const bool bf16 = GetParam().dtype == torch::kBFloat16;
  auto groups = Groups();
  std::vector<const TrainGroup*> ptrs;
  for (const auto& g : groups) ptrs.push_back(&g);
  auto step = [&](Transformer m, c10::Device d, bool autocast) {
    m->train();
    torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.1));
    TrainerOptions o;
    o.device = d;
    o.bf16 = autocast;
    GrpoTrainer trainer(m, Transformer(nullptr), &opt, o, 0);
    return trainer.Step(ptrs, 1);
  };
  Transformer start = MakeModel();
  Transformer cpu = Copy(start, c10::Device(c10::kCPU), torch::kFloat);
  Transformer dev = Copy(start, device, torch::kFloat);
  TrainStats want = step(cpu, c10::Device(c10::kCPU), false);
  TrainStats got = step(dev, device, bf16);
  EXPECT_NEAR(got.loss, want.loss, bf16 ? 2e-2 : 1e-4);
  EXPECT_NEAR(got.entropy, want.entropy, bf16 ? 5e-2 : 1e-4);
  EXPECT_EQ(got.loss_tokens, want.loss_tokens);
  // The updates (new - start) point the same way.
  std::vector<torch::Tensor> a, b;
  auto ps = start->named_parameters(), pc = cpu->named_parameters();
  for (auto& p : dev->named_parameters()) {
    EXPECT_TRUE(OnTestDevice(p.value(), device)) << p.key() << " on " << p.value().device();
    EXPECT_EQ(p.value().scalar_type(), torch::kFloat);
    a.push_back((pc[p.key()] - ps[p.key()]).reshape({-1}));
    b.push_back((p.value().to(torch::kCPU) - ps[p.key()]).reshape({-1}));
  }
  torch::Tensor da = torch::cat(a), db = torch::cat(b);
  const double cos = (torch::dot(da, db) / (da.norm() * db.norm())).item<double>();
  EXPECT_GT(cos, bf16 ? 0.98 : 0.99999);
}

#ifdef GRPO_TORCH_HAS_CUDA
// Counts CUDA's "synchronizing operation" warnings (sync debug mode) on this thread.
class SyncCounter : public c10::WarningHandler {
 public:
  void process(const c10::Warning& w) override {
    if (w.msg().find("synchroniz") != std::string::npos) ++syncs;
  }
  int64_t syncs = 0;
};

TEST_P(OnDevice, ADecodeStepWaitsForTheGpuAtMostOnce) {
  const c10::Device device = TestDevice();
  if (!device.is_cuda()) GTEST_SKIP() << "the test device is the CPU";
  Transformer cpu = MakeModel();
  Transformer dev = Copy(cpu, device, GetParam().dtype);
  model::GeneratorOptions go;
  go.max_batch = 16;
  model::Generator gen(dev, go);
  model::SamplingParams sp;
  sp.temperature = 1.0;
  sp.top_p = 0.9;
  sp.top_k = 50;
  sp.max_new_tokens = 24;
  std::vector<model::GenerationRequest> reqs;
  for (const auto& p : Prompts(4, 8)) reqs.push_back({p, 4});  // 16 rows: one prefill, one join
  ASSERT_TRUE(gen.Generate(reqs, sp, 1).ok());               // warm-up (allocator, kernels)
  SyncCounter counter;
  {
    c10::WarningUtils::WarningHandlerGuard guard(&counter);
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_WARN);
    auto out = gen.Generate(reqs, sp, 2);
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    ASSERT_TRUE(out.ok()) << out.status();
  }
  const auto& st = gen.last_stats();
  RecordProperty("decode_steps", static_cast<int>(st.decode_steps));
  RecordProperty("syncs", static_cast<int>(counter.syncs));
  EXPECT_GT(st.decode_steps, 0);
  // One per decode step, plus the first tokens sampled from the prefill's logits.
  EXPECT_LE(counter.syncs, st.decode_steps + st.prefill_forwards) << "decode steps " << st.decode_steps;
}
#endif

INSTANTIATE_TEST_SUITE_P(Dtypes, OnDevice,
                         ::testing::Values(Case{torch::kFloat, "fp32"}, Case{torch::kBFloat16, "bf16"}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(DeviceNames, AreCheckedAgainstThisLibTorchAndMachine) {
  EXPECT_TRUE(model::ResolveDevice("cpu", "x").ok());
  auto bad = model::ResolveDevice("gpu", "actor.device");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("actor.device"));
  auto far = model::ResolveDevice("cuda:99", "actor.device");
  ASSERT_FALSE(far.ok());
  EXPECT_EQ(far.status().code(), absl::StatusCode::kFailedPrecondition);
  if (!torch::cuda::is_available()) {
    auto cuda = model::ResolveDevice("cuda", "--device");
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(cuda.status().message()), ::testing::HasSubstr("no CUDA"));
  } else {
    EXPECT_THAT(std::string(far.status().message()), ::testing::HasSubstr("GPU(s) are visible"));
    EXPECT_TRUE(model::ResolveDevice("cuda:0", "x").ok());
  }
}

}  // namespace
}  // namespace grpo

// GrpoTrainer: gradient accumulation, inner epochs and minibatches, bf16 autocast,
// activation checkpointing, and data parallelism over a real Gloo process group on
// loopback (two ranks in two threads of this process).
#include "core/grpo/trainer.h"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>
#include <torch/version.h>

// LibTorch 2 made ProcessGroupGloo a c10d::Backend behind a ProcessGroup; the two-rank
// tests build the 1.x group (Debian's LibTorch, where CI runs them).
#if TORCH_VERSION_MAJOR < 2
#define GRPO_TWO_RANK_TESTS 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "core/model/presets.h"
#include "core/grpo/collectives.h"

namespace grpo {
namespace {

constexpr int64_t kVocab = 64;

model::Transformer MakeModel() {
  torch::manual_seed(11);
  auto cfg = model::PresetConfig("qwen2", "tiny", kVocab);
  EXPECT_TRUE(cfg.ok());
  return model::Transformer(*cfg);
}

// n groups of G completions with uneven prompt and completion lengths.
std::vector<TrainGroup> MakeGroups(int n, int G, uint32_t seed = 5) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> tok(1, kVocab - 1), plen(2, 6), clen(1, 12), rew(0, 2);
  std::uniform_real_distribution<float> lp(-3.0f, -0.2f);
  std::vector<TrainGroup> out;
  for (int i = 0; i < n; ++i) {
    TrainGroup g;
    g.temperature = i % 2 ? 1.0f : 0.8f;
    for (int j = plen(rng); j > 0; --j) g.prompt_token_ids.push_back(tok(rng));
    for (int k = 0; k < G; ++k) {
      TrainCompletion c;
      for (int j = clen(rng); j > 0; --j) {
        c.token_ids.push_back(tok(rng));
        c.logprobs.push_back(lp(rng));
      }
      c.truncated = k == 0 && i == 1;
      c.reward = 0.5 * rew(rng);
      g.completions.push_back(std::move(c));
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<const TrainGroup*> Ptrs(const std::vector<TrainGroup>& gs, size_t from = 0, size_t to = SIZE_MAX) {
  std::vector<const TrainGroup*> out;
  for (size_t i = from; i < std::min(to, gs.size()); ++i) out.push_back(&gs[i]);
  return out;
}

double MaxDiff(model::Transformer& a, model::Transformer& b) {
  double d = 0;
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) {
    d = std::max(d, (p.value() - pb[p.key()]).abs().max().item<double>());
  }
  return d;
}

double MaxDelta(model::Transformer& a, model::Transformer& b) { return MaxDiff(a, b); }

enum class Opt { kSgd, kAdamW };

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(model::Transformer& m, Opt o) {
  if (o == Opt::kSgd) return std::make_unique<torch::optim::SGD>(m->parameters(), torch::optim::SGDOptions(0.5));
  return std::make_unique<torch::optim::AdamW>(m->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
}

// Trains a fresh model on `groups` for `steps` steps and returns it.
struct Trained {
  model::Transformer model{nullptr};
  std::vector<TrainStats> stats;
};

Trained Train(const TrainerOptions& opts, const std::vector<TrainGroup>& groups, Opt o = Opt::kSgd, int steps = 1) {
  Trained t;
  t.model = MakeModel();
  auto opt = MakeOptimizer(t.model, o);
  GrpoTrainer trainer(t.model, model::Transformer(nullptr), opt.get(), opts, /*pad_id=*/0);
  for (int s = 1; s <= steps; ++s) t.stats.push_back(trainer.Step(Ptrs(groups), static_cast<uint64_t>(s)));
  return t;
}

TrainerOptions Options(rl::LossAggregation agg = rl::LossAggregation::kSeqMeanTokenMean) {
  TrainerOptions o;
  o.loss.aggregation = agg;
  o.loss.norm_length = 16;
  o.mask_truncated = true;
  o.grad_clip = 0;  // compare raw updates
  return o;
}

const rl::LossAggregation kAggs[] = {rl::LossAggregation::kSeqMeanTokenMean, rl::LossAggregation::kTokenMean,
                                     rl::LossAggregation::kSeqMeanTokenSumNorm};

TEST(TrainerTest, MicroBatchesAccumulateToTheWholeBatchUpdate) {
  auto groups = MakeGroups(4, 4);
  model::Transformer init = MakeModel();
  for (auto agg : kAggs) {
    SCOPED_TRACE(static_cast<int>(agg));
    Trained whole = Train(Options(agg), groups);
    for (int64_t mbs : {1, 3, 5}) {
      TrainerOptions o = Options(agg);
      o.micro_batch_size = mbs;
      Trained parts = Train(o, groups);
      EXPECT_GT(MaxDelta(whole.model, init), 1e-3);  // the step did move the weights
      EXPECT_LT(MaxDiff(whole.model, parts.model), 2e-6) << "micro_batch_size " << mbs;
      EXPECT_NEAR(whole.stats[0].loss, parts.stats[0].loss, 1e-6);
      EXPECT_NEAR(whole.stats[0].entropy, parts.stats[0].entropy, 1e-5);
    }
  }
}

TEST(TrainerTest, EpochsRepeatTheBatchWithUpdatedWeights) {
  auto groups = MakeGroups(3, 4);
  TrainerOptions two = Options();
  two.epochs = 2;
  Trained a = Train(two, groups);
  EXPECT_EQ(a.stats[0].optimizer_steps, 2);
  // Two epochs on one batch == two one-epoch steps on the same batch (the sampling
  // log-probs and advantages are fixed; only the weights move).
  Trained b = Train(Options(), groups, Opt::kSgd, /*steps=*/2);
  EXPECT_LT(MaxDiff(a.model, b.model), 2e-6);
  Trained one = Train(Options(), groups);
  EXPECT_GT(MaxDiff(a.model, one.model), 1e-4);
}

TEST(TrainerTest, MinibatchesTakeOneOptimizerStepEachAndShuffleBySeed) {
  auto groups = MakeGroups(4, 4);
  TrainerOptions o = Options();
  o.epochs = 2;
  o.minibatches = 3;
  o.seed = 1;
  Trained a = Train(o, groups, Opt::kAdamW);
  Trained b = Train(o, groups, Opt::kAdamW);
  EXPECT_EQ(a.stats[0].optimizer_steps, 6);
  EXPECT_EQ(MaxDiff(a.model, b.model), 0.0);  // deterministic
  o.seed = 2;
  Trained c = Train(o, groups, Opt::kAdamW);
  EXPECT_GT(MaxDiff(a.model, c.model), 1e-6);  // another shuffle, another trajectory
  Trained whole = Train(Options(), groups, Opt::kAdamW);
  EXPECT_GT(MaxDiff(a.model, whole.model), 1e-4);
}

TEST(TrainerTest, ImportanceCapWithSeveralStepsRatiosAgainstTheStepStart) {
  auto groups = MakeGroups(3, 4);
  TrainerOptions o = Options();
  o.loss.importance_cap = 2.0;
  o.epochs = 2;
  Trained t = Train(o, groups);
  // Epoch 1 is on the starting weights: ratio exactly 1 there; epoch 2 moved away.
  EXPECT_NE(t.stats[0].ratio_mean, 1.0);
  EXPECT_NEAR(t.stats[0].ratio_mean, 1.0, 0.5);
  EXPECT_GT(t.stats[0].importance_weight_mean, 0.0);
  EXPECT_LE(t.stats[0].importance_weight_mean, 2.0);
}

TEST(TrainerTest, ActivationCheckpointingGivesTheSameUpdate) {
  auto groups = MakeGroups(3, 4);
  for (bool bf16 : {false, true}) {
    TrainerOptions o = Options();
    o.bf16 = bf16;
    Trained plain = Train(o, groups);
    o.activation_checkpointing = true;
    Trained ckpt = Train(o, groups);
    EXPECT_LT(MaxDiff(plain.model, ckpt.model), bf16 ? 1e-5 : 2e-6) << "bf16 " << bf16;
    EXPECT_NEAR(plain.stats[0].loss, ckpt.stats[0].loss, 1e-6);
  }
}

TEST(TrainerTest, Bf16AutocastKeepsFp32WeightsAndTracksTheFp32Update) {
  auto groups = MakeGroups(3, 4);
  model::Transformer init = MakeModel();
  Trained f32 = Train(Options(), groups);
  TrainerOptions o = Options();
  o.bf16 = true;
  Trained b16 = Train(o, groups);
  for (const auto& p : b16.model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(f32.stats[0].loss, b16.stats[0].loss, 2e-2);
  EXPECT_NEAR(f32.stats[0].entropy, b16.stats[0].entropy, 2e-2);
  // The bf16 update points the same way as the fp32 one.
  torch::Tensor d32, d16;
  {
    std::vector<torch::Tensor> a, b;
    auto pi = init->named_parameters(), p16 = b16.model->named_parameters();
    for (const auto& p : f32.model->named_parameters()) {
      a.push_back((p.value() - pi[p.key()]).reshape({-1}));
      b.push_back((p16[p.key()] - pi[p.key()]).reshape({-1}));
    }
    d32 = torch::cat(a);
    d16 = torch::cat(b);
  }
  double cos = (torch::dot(d32, d16) / (d32.norm() * d16.norm())).item<double>();
  EXPECT_GT(cos, 0.98);
}

// Two ranks, two threads, one real Gloo group on loopback (sharing one in-process store).
#ifdef GRPO_TWO_RANK_TESTS
constexpr bool kTwoRanks = true;
void RunTwoRanks(const std::function<void(int rank, c10::intrusive_ptr<c10d::ProcessGroup>)>& body) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      auto opts = c10d::ProcessGroupGloo::Options::create();
      opts->timeout = std::chrono::milliseconds(60000);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      body(r, c10::make_intrusive<c10d::ProcessGroupGloo>(store, r, 2, opts));
    });
  }
  for (auto& t : ranks) t.join();
}
#else
constexpr bool kTwoRanks = false;
void RunTwoRanks(const std::function<void(int rank, c10::intrusive_ptr<c10d::ProcessGroup>)>&) {
  FAIL() << "two-rank tests need LibTorch 1.x's ProcessGroupGloo";
}
#endif
#define SKIP_WITHOUT_TWO_RANKS() \
  if (!kTwoRanks) GTEST_SKIP() << "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << ": two-rank Gloo tests run on LibTorch 1.x"

TEST(TrainerTest, TwoRanksOnHalfBatchesEndWithTheWeightsOfOneRankOnTheWholeBatch) {
  SKIP_WITHOUT_TWO_RANKS();
  // Five groups: the halves are uneven (2 and 3 groups) and so are their token counts.
  auto groups = MakeGroups(5, 4, /*seed=*/9);
  for (auto agg : kAggs) {
    for (Opt o : {Opt::kSgd, Opt::kAdamW}) {
      SCOPED_TRACE(absl::StrCat("aggregation ", static_cast<int>(agg), o == Opt::kSgd ? " sgd" : " adamw"));
      TrainerOptions opts = Options(agg);
      opts.grad_clip = 1.0;  // the clip must see the all-reduced norm
      Trained single = Train(opts, groups, o, /*steps=*/2);
      // Built here: torch's global generator is not for two threads at once.
      model::Transformer rank_models[2] = {MakeModel(), MakeModel()};
      {
        torch::NoGradGuard ng;  // rank 1 starts elsewhere: the broadcast must align it
        for (auto& p : rank_models[1]->parameters()) p.add_(0.1);
      }
      std::vector<TrainStats> rank_stats[2];
      RunTwoRanks([&](int r, c10::intrusive_ptr<c10d::ProcessGroup> pg) {
        model::Transformer m = rank_models[r];
        auto opt = MakeOptimizer(m, o);
        TrainerOptions ro = opts;
        ro.micro_batch_size = r == 0 ? 3 : 0;  // accumulation on one rank, not the other
        GrpoTrainer trainer(m, model::Transformer(nullptr), opt.get(), ro, 0, pg);
        trainer.BroadcastParameters(0);
        auto shard = r == 0 ? Ptrs(groups, 0, 2) : Ptrs(groups, 2);
        for (int s = 1; s <= 2; ++s) rank_stats[r].push_back(trainer.Step(shard, static_cast<uint64_t>(s)));
      });
      EXPECT_LT(MaxDiff(rank_models[0], rank_models[1]), 1e-7);
      EXPECT_LT(MaxDiff(single.model, rank_models[0]), o == Opt::kSgd ? 2e-6 : 1e-5);
      for (int s = 0; s < 2; ++s) {
        EXPECT_NEAR(single.stats[s].loss, rank_stats[0][s].loss, 1e-6);
        EXPECT_NEAR(single.stats[s].grad_norm, rank_stats[1][s].grad_norm, 1e-5);
        EXPECT_NEAR(single.stats[s].entropy, rank_stats[1][s].entropy, 1e-5);
        EXPECT_EQ(single.stats[s].loss_tokens, rank_stats[0][s].loss_tokens);
      }
    }
  }
}

TEST(TrainerTest, ARankWithNoGroupsStillTakesPartInTheStep) {
  SKIP_WITHOUT_TWO_RANKS();
  auto groups = MakeGroups(2, 4);
  Trained single = Train(Options(), groups);
  model::Transformer rank_models[2] = {MakeModel(), MakeModel()};
  RunTwoRanks([&](int r, c10::intrusive_ptr<c10d::ProcessGroup> pg) {
    model::Transformer m = rank_models[r];
    auto opt = MakeOptimizer(m, Opt::kSgd);
    GrpoTrainer trainer(m, model::Transformer(nullptr), opt.get(), Options(), 0, pg);
    trainer.Step(r == 0 ? Ptrs(groups) : Ptrs(groups, 0, 0), 1);
  });
  EXPECT_LT(MaxDiff(single.model, rank_models[1]), 2e-6);
}

// ---- Supervised steps (grpo sft) on the same trainer.

std::vector<SupervisedExample> MakeExamples(int n, uint32_t seed = 3) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> tok(1, kVocab - 1), len(3, 14);
  std::vector<SupervisedExample> out;
  for (int i = 0; i < n; ++i) {
    SupervisedExample e;
    for (int j = len(rng); j > 0; --j) e.tokens.push_back(tok(rng));
    // Odd examples are prompt + completion; even ones plain text (loss on every token).
    e.loss_from = i % 2 ? static_cast<int64_t>(e.tokens.size()) / 2 : 1;
    out.push_back(e);
  }
  return out;
}

std::vector<const SupervisedExample*> ExPtrs(const std::vector<SupervisedExample>& es, size_t from = 0,
                                             size_t to = SIZE_MAX) {
  std::vector<const SupervisedExample*> out;
  for (size_t i = from; i < std::min(to, es.size()); ++i) out.push_back(&es[i]);
  return out;
}

// The mean NLL of the loss targets, one example at a time with a plain forward.
double ManualNll(model::Transformer& m, const std::vector<SupervisedExample>& es, int64_t* tokens) {
  torch::NoGradGuard ng;
  double sum = 0;
  *tokens = 0;
  for (const auto& e : es) {
    at::Tensor ids = torch::tensor(e.tokens, torch::kInt64).view({1, -1});  // (1, L)
    at::Tensor lsm = torch::log_softmax(m->forward(ids.slice(1, 0, -1)), -1);  // (1, L-1, V)
    for (int64_t j = std::max<int64_t>(1, e.loss_from); j < static_cast<int64_t>(e.tokens.size()); ++j) {
      sum -= lsm[0][j - 1][e.tokens[static_cast<size_t>(j)]].item<double>();
      ++*tokens;
    }
  }
  return sum / static_cast<double>(*tokens);
}

TEST(SupervisedTest, LossIsTheMeanNllOfCompletionTokensOnly) {
  auto examples = MakeExamples(6);
  model::Transformer m = MakeModel();
  int64_t tokens = 0;
  const double expected = ManualNll(m, examples, &tokens);
  // Counting the prompt targets too gives a different number: the check can fail.
  std::vector<SupervisedExample> all_tokens = examples;
  for (auto& e : all_tokens) e.loss_from = 1;
  int64_t all_count = 0;
  const double with_prompts = ManualNll(m, all_tokens, &all_count);
  ASSERT_GT(all_count, tokens);
  ASSERT_GT(std::abs(with_prompts - expected), 1e-4);

  auto opt = std::make_unique<torch::optim::SGD>(m->parameters(), torch::optim::SGDOptions(0.0));
  GrpoTrainer trainer(m, model::Transformer(nullptr), opt.get(), Options(), 0);
  TrainStats st = trainer.SupervisedStep(ExPtrs(examples), 1);
  EXPECT_NEAR(st.loss, expected, 1e-5);
  EXPECT_EQ(st.loss_tokens, tokens);
  EXPECT_EQ(st.optimizer_steps, 1);
}

TEST(SupervisedTest, PromptTokensGetNoGradient) {
  // The prompt still conditions the completion (attention), so "no gradient" means:
  // the gradient is exactly that of the loss over completion targets alone.
  auto examples = MakeExamples(4, 8);
  model::Transformer a = MakeModel(), b = MakeModel();
  auto opt = std::make_unique<torch::optim::SGD>(a->parameters(), torch::optim::SGDOptions(0.0));
  GrpoTrainer trainer(a, model::Transformer(nullptr), opt.get(), Options(), 0);
  trainer.SupervisedStep(ExPtrs(examples), 1);  // lr 0: gradients stay in .grad
  // Hand-written: -sum(logp of completion targets) / count, on b.
  double count = 0;
  std::vector<at::Tensor> terms;
  for (const auto& e : examples) {
    at::Tensor ids = torch::tensor(e.tokens, torch::kInt64).view({1, -1});
    at::Tensor lsm = torch::log_softmax(b->forward(ids.slice(1, 0, -1)), -1);
    for (int64_t j = std::max<int64_t>(1, e.loss_from); j < static_cast<int64_t>(e.tokens.size()); ++j) {
      terms.push_back(-lsm[0][j - 1][e.tokens[static_cast<size_t>(j)]]);
      ++count;
    }
  }
  (torch::stack(terms).sum() / count).backward();
  auto gb = b->named_parameters();
  double max_diff = 0, max_grad = 0;
  for (const auto& p : a->named_parameters()) {
    max_diff = std::max(max_diff, (p.value().grad() - gb[p.key()].grad()).abs().max().item<double>());
    max_grad = std::max(max_grad, p.value().grad().abs().max().item<double>());
  }
  EXPECT_GT(max_grad, 1e-4);
  EXPECT_LT(max_diff, 1e-6);
}

TEST(SupervisedTest, MicroBatchesAndTwoRanksEqualOneWholeBatch) {
  auto examples = MakeExamples(7, 5);
  TrainerOptions opts = Options();
  opts.grad_clip = 1.0;
  auto train_single = [&](int64_t micro) {
    model::Transformer m = MakeModel();
    auto opt = MakeOptimizer(m, Opt::kAdamW);
    TrainerOptions o = opts;
    o.micro_batch_size = micro;
    GrpoTrainer trainer(m, model::Transformer(nullptr), opt.get(), o, 0);
    std::vector<TrainStats> st;
    for (int s = 1; s <= 3; ++s) st.push_back(trainer.SupervisedStep(ExPtrs(examples), s));
    return std::make_pair(m, st);
  };
  auto [whole, whole_stats] = train_single(0);
  auto [micro, micro_stats] = train_single(2);
  // Three AdamW steps: float sums in another order move weights by ~1e-5 at most
  // (Adam divides by tiny second moments early on).
  EXPECT_LT(MaxDiff(whole, micro), 5e-5);
  SKIP_WITHOUT_TWO_RANKS();
  model::Transformer rank_models[2] = {MakeModel(), MakeModel()};
  std::vector<TrainStats> rank_stats[2];
  RunTwoRanks([&](int r, c10::intrusive_ptr<c10d::ProcessGroup> pg) {
    model::Transformer m = rank_models[r];
    auto opt = MakeOptimizer(m, Opt::kAdamW);
    GrpoTrainer trainer(m, model::Transformer(nullptr), opt.get(), opts, 0, pg);
    auto shard = r == 0 ? ExPtrs(examples, 0, 3) : ExPtrs(examples, 3);
    for (int s = 1; s <= 3; ++s) rank_stats[r].push_back(trainer.SupervisedStep(shard, s));
  });
  EXPECT_LT(MaxDiff(rank_models[0], rank_models[1]), 1e-7);
  EXPECT_LT(MaxDiff(whole, rank_models[0]), 5e-5);
  for (int s = 0; s < 3; ++s) {
    EXPECT_NEAR(whole_stats[s].loss, rank_stats[1][s].loss, 1e-5);
    EXPECT_EQ(whole_stats[s].loss_tokens, rank_stats[0][s].loss_tokens);
  }
  EXPECT_LT(whole_stats[2].loss, whole_stats[0].loss);
}

TEST(DeviceTest, NcclNeedsAGpuAndSaysSo) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  auto comm = MakeNcclCollectives(*store, 0, 1, 0, std::chrono::milliseconds(60000));
  if (!HaveNccl()) {
    EXPECT_EQ(comm.status().code(), absl::StatusCode::kUnimplemented);
  } else if (!torch::cuda::is_available()) {
    // NCCL is compiled in, but this machine has no GPU (or LibTorch no CUDA).
    ASSERT_FALSE(comm.ok());
    EXPECT_THAT(std::string(comm.status().message()), ::testing::HasSubstr("CUDA device 0"));
  } else {
    // One rank on a GPU: a sum over one rank, and a broadcast from itself, change nothing.
    ASSERT_TRUE(comm.ok()) << comm.status();
    at::Tensor t = torch::arange(8, torch::kFloat32).to(torch::kCUDA);
    (*comm)->AllReduceSum(t);
    (*comm)->Broadcast(t, 0);
    EXPECT_TRUE(torch::equal(t.cpu(), torch::arange(8, torch::kFloat32)));
  }
}

TEST(DeviceTest, TrainerRunsOnTheConfiguredDevice) {
  // On this build the model is on CPU; on a CUDA build the same step runs on the GPU and
  // matches the CPU update.
  auto groups = MakeGroups(2, 4);
  Trained cpu = Train(Options(), groups);
  if (!torch::cuda::is_available()) {
    EXPECT_GT(cpu.stats[0].loss_tokens, 0);
    return;
  }
  Trained gpu;
  gpu.model = MakeModel();
  gpu.model->to(torch::kCUDA);
  auto opt = MakeOptimizer(gpu.model, Opt::kSgd);
  TrainerOptions o = Options();
  o.device = c10::Device(c10::kCUDA);
  GrpoTrainer trainer(gpu.model, model::Transformer(nullptr), opt.get(), o, 0);
  gpu.stats.push_back(trainer.Step(Ptrs(groups), 1));
  gpu.model->to(torch::kCPU);
  EXPECT_LT(MaxDiff(cpu.model, gpu.model), 1e-4);
}

}  // namespace
}  // namespace grpo

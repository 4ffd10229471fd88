// The supervised, evaluation and rejection-sampling commands of the real `grpo` binary:
// `grpo sft` (loss falls, bad lines refused by file:line, kill -9 resume is
// bit-identical, two ranks equal one), `grpo eval` (its JSON recomputes from its
// samples file) and `grpo generate --data --verify` (keeps exactly the correct samples).
#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "core/common/subprocess.h"
#include "core/eval/metrics.h"
#include "core/model/hf_model.h"
#include "tests/cli_util.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::CliResult;
using testing::JsonLines;

fs::path FreshDir(const std::string& name) { return testing::FreshTestDir("grpo-r1-cli-", name); }
CliResult Grpo(const std::vector<std::string>& args, const fs::path& scratch) { return testing::RunGrpo(args, scratch); }

// Every test uses the same settings: a plain "{prompt}=" template, one thread.
std::vector<std::string> Common() {
  return {"--set", "model.prompt_template={prompt}=", "--set", "learner.threads=1"};
}

std::vector<std::string> Args(std::vector<std::string> a, const std::vector<std::string>& more = {}) {
  for (const auto& s : Common()) a.push_back(s);
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

const fs::path& TinyModel() {
  static const fs::path dir = [] {
    fs::path d = FreshDir("tiny");
    CliResult r = Grpo({"init-model", "--arch", "qwen2", "--preset", "tiny", "--out", (d / "model").string(), "--seed",
                        "5"},
                       d);
    EXPECT_EQ(r.status, 0) << r.err;
    return d / "model";
  }();
  return dir;
}

// Sums as pretraining text and as prompt/completion pairs.
fs::path WriteCorpus(const fs::path& dir, int text_lines, int pairs) {
  fs::path p = dir / "corpus.jsonl";
  std::ofstream out(p);
  for (int i = 0; i < text_lines; ++i) {
    int a = (i * 7) % 10, b = (i * 3) % 10;
    out << nlohmann::json{{"text", absl::StrCat(a, "+", b, "=", a + b)}}.dump() << "\n";
  }
  for (int i = 0; i < pairs; ++i) {
    int a = i % 5, b = (i * 2) % 5;
    out << nlohmann::json{{"prompt", absl::StrCat(a, "+", b)}, {"completion", absl::StrCat("<answer>", a + b, "</answer>")}}
               .dump()
        << "\n";
  }
  return p;
}

std::map<std::string, torch::Tensor> Weights(const fs::path& dir) {
  auto m = model::LoadPretrained(dir.string());
  EXPECT_TRUE(m.ok()) << m.status();
  std::map<std::string, torch::Tensor> out;
  if (!m.ok()) return out;
  for (const auto& p : (*m)->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

double MaxWeightDiff(const fs::path& a, const fs::path& b) {
  auto wa = Weights(a), wb = Weights(b);
  EXPECT_EQ(wa.size(), wb.size());
  double d = 0;
  for (auto& [k, v] : wa) d = std::max(d, (v - wb.at(k)).abs().max().item<double>());
  return d;
}

TEST(Sft, LossFallsAndTheOutputIsAModelTheOtherCommandsLoad) {
  fs::path dir = FreshDir("falls");
  fs::path data = WriteCorpus(dir, 48, 16);
  CliResult r = Grpo(Args({"sft", "--model", TinyModel().string(), "--data", data.string(), "--out",
                           (dir / "out").string(), "--no-progress"},
                          {"--set", "sft.batch_size=16", "--set", "sft.epochs=8", "--set", "learner.lr=0.01"}),
                     dir);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<nlohmann::json> m = JsonLines(*ReadFile((dir / "out" / "metrics.jsonl").string()));
  ASSERT_EQ(m.size(), 32u);  // 64 lines / 16 per step x 8 passes
  for (const char* k : {"step", "loss", "tokens", "tokens_per_s", "lr", "grad_norm"}) EXPECT_TRUE(m[0].contains(k)) << k;
  const double first = (m[0]["loss"].get<double>() + m[1]["loss"].get<double>()) / 2;
  const double last = (m[30]["loss"].get<double>() + m[31]["loss"].get<double>()) / 2;
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"}) {
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  }
  CliResult g = Grpo({"generate", "--model", (dir / "out").string(), "--prompt", "3+4=", "--temperature", "0",
                      "--max-new-tokens", "8"},
                     dir);
  EXPECT_EQ(g.status, 0) << g.err;
}

TEST(Sft, ABadLineIsReportedByFileAndLineAndNothingTrains) {
  fs::path dir = FreshDir("bad");
  fs::path data = dir / "data.jsonl";
  std::ofstream(data) << "{\"text\": \"1+1=2\"}\n{\"text\": \"2+2=4\"}\n{\"prompt\": \"3+3\"}\n";
  CliResult r = Grpo(Args({"sft", "--model", TinyModel().string(), "--data", data.string(), "--out",
                           (dir / "out").string(), "--no-progress"}),
                     dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr(data.string() + ":3: missing field 'completion'"));
  EXPECT_FALSE(fs::exists(dir / "out" / "metrics.jsonl"));
  EXPECT_FALSE(fs::exists(dir / "out" / "model.safetensors"));
  // Too long for the context is refused the same way, before any step.
  std::ofstream(data) << "{\"text\": \"1+1=2\"}\n{\"text\": \"" << std::string(3000, '7') << "\"}\n";
  r = Grpo(Args({"sft", "--model", TinyModel().string(), "--data", data.string(), "--out", (dir / "out").string(),
                 "--no-progress"}),
           dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr(data.string() + ":2: "));
  EXPECT_THAT(r.err, HasSubstr("longer than the limit"));
}

TEST(Sft, KilledAndResumedContinuesBitIdentically) {
  fs::path dir = FreshDir("resume");
  fs::path data = WriteCorpus(dir, 200, 40);
  auto args = [&](const fs::path& out) {
    return Args({"sft", "--model", TinyModel().string(), "--data", data.string(), "--out", out.string(), "--no-progress"},
                {"--set", "sft.batch_size=8", "--set", "sft.epochs=2", "--set", "learner.checkpoint_every=7",
                 "--set", "learner.lr=0.003", "--set", "learner.warmup_steps=5", "--set", "learner.lr_schedule=cosine",
                 "--set", "learner.micro_batch_size=3"});
  };
  CliResult whole = Grpo(args(dir / "whole"), dir);
  ASSERT_EQ(whole.status, 0) << whole.err;
  const size_t steps = JsonLines(*ReadFile((dir / "whole" / "metrics.jsonl").string())).size();
  ASSERT_EQ(steps, 60u);

  // The same run, killed with SIGKILL once it is past its second checkpoint.
  ProcessSpec spec;
  spec.argv = args(dir / "killed");
  spec.argv.insert(spec.argv.begin(), testing::GrpoBin());
  spec.log_path = (dir / "killed.log").string();
  auto child = ChildProcess::Spawn(spec);
  ASSERT_TRUE(child.ok()) << child.status();
  const fs::path metrics = dir / "killed" / "metrics.jsonl";
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  size_t seen = 0;
  while (absl::Now() < deadline && !child->Poll()) {
    auto text = ReadFile(metrics.string());
    seen = text.ok() ? JsonLines(*text).size() : 0;
    if (seen >= 17) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_FALSE(child->Poll().has_value()) << "the run ended before it could be killed";
  child->Signal(SIGKILL);
  child->WaitFor(absl::Seconds(30));
  ASSERT_FALSE(fs::exists(dir / "killed" / "model.safetensors"));

  CliResult resumed = Grpo(args(dir / "killed"), dir);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  std::vector<nlohmann::json> m = JsonLines(*ReadFile(metrics.string()));
  EXPECT_GT(m.size(), steps) << "steps after the last checkpoint ran again";
  EXPECT_EQ(m.back()["step"], 60);
  EXPECT_EQ(*ReadFile((dir / "whole" / "model.safetensors").string()),
            *ReadFile((dir / "killed" / "model.safetensors").string()))
      << "the resumed run's weights differ from the uninterrupted run's";
}

TEST(Sft, TwoRanksEqualOne) {
  fs::path dir = FreshDir("ranks");
  fs::path data = WriteCorpus(dir, 40, 10);
  auto run = [&](const std::string& name, int world) {
    return Grpo(Args({"sft", "--model", TinyModel().string(), "--data", data.string(), "--out", (dir / name).string(),
                      "--no-progress"},
                     {"--set", "sft.batch_size=10", "--set", "sft.epochs=2", "--set", "learner.lr=0.003", "--set",
                      absl::StrCat("learner.world_size=", world), "--set", "learner.prompts_per_step=8"}),
                dir);
  };
  CliResult one = run("one", 1);
  ASSERT_EQ(one.status, 0) << one.err;
  CliResult two = run("two", 2);
  ASSERT_EQ(two.status, 0) << two.err;
  EXPECT_TRUE(fs::exists(dir / "two" / "sft-rank-1.log"));
  // Ten AdamW steps: float sums in another order differ by ~1e-5, a thousandth of
  // how far training moved the weights.
  EXPECT_GT(MaxWeightDiff(TinyModel(), dir / "one"), 1e-2);
  EXPECT_LT(MaxWeightDiff(dir / "one", dir / "two"), 1e-4);
  auto m1 = JsonLines(*ReadFile((dir / "one" / "metrics.jsonl").string()));
  auto m2 = JsonLines(*ReadFile((dir / "two" / "metrics.jsonl").string()));
  ASSERT_EQ(m1.size(), m2.size());
  EXPECT_EQ(m2.back()["world_size"], 2);
  EXPECT_NEAR(m1.back()["loss"].get<double>(), m2.back()["loss"].get<double>(), 1e-5);
}

fs::path WriteTasks(const fs::path& dir, int n) {
  fs::path p = dir / "tasks.jsonl";
  std::ofstream out(p);
  for (int i = 0; i < n; ++i) {
    int a = i % 5, b = (i * 2) % 5;
    out << nlohmann::json{{"id", absl::StrCat("t", i)}, {"prompt", absl::StrCat(a, "+", b)}, {"answer", std::to_string(a + b)}}
               .dump()
        << "\n";
  }
  return p;
}

// A model that has memorised "<answer>a+b</answer>" for small sums, so samples are
// often, not always, correct.
const fs::path& TaughtModel() {
  static const fs::path dir = [] {
    fs::path d = FreshDir("taught");
    fs::path data = WriteCorpus(d, 0, 25);
    CliResult r = Grpo(Args({"sft", "--model", TinyModel().string(), "--data", data.string(), "--out",
                             (d / "model").string(), "--no-progress"},
                            {"--set", "sft.batch_size=25", "--set", "sft.epochs=60", "--set", "learner.lr=0.01"}),
                       d);
    EXPECT_EQ(r.status, 0) << r.err;
    return d / "model";
  }();
  return dir;
}

TEST(Eval, JsonRecomputesFromTheSamplesFile) {
  fs::path dir = FreshDir("eval");
  fs::path tasks = WriteTasks(dir, 10);
  CliResult r = Grpo(Args({"eval", "--model", TaughtModel().string(), "--data", tasks.string(), "-k", "6",
                           "--temperature", "1.0", "--max-new-tokens", "12", "--samples-out",
                           (dir / "samples.jsonl").string(), "--json", (dir / "eval.json").string()}),
                     dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("pass@1"));
  EXPECT_THAT(r.out, HasSubstr("maj@6"));
  nlohmann::json j = nlohmann::json::parse(*ReadFile((dir / "eval.json").string()));
  for (const char* k : {"pass@1", "pass@k", "maj@k", "k", "format", "response_len_mean", "n"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_EQ(j["k"], 6);
  EXPECT_EQ(j["n"], 10);
  EXPECT_GT(j["pass@1"].get<double>(), 0.2) << "the taught model answers some sums";
  std::vector<eval::EvalSample> samples;
  for (const auto& l : JsonLines(*ReadFile((dir / "samples.jsonl").string()))) {
    for (const char* k : {"id", "sample", "answer", "correct", "format", "length"}) EXPECT_TRUE(l.contains(k)) << k;
    samples.push_back(eval::SampleFromJson(l));
  }
  ASSERT_EQ(samples.size(), 60u);
  eval::EvalReport back = eval::Summarize(samples);
  EXPECT_NEAR(back.overall.passk, j["pass@k"].get<double>(), 1e-9);
  EXPECT_NEAR(back.overall.majk, j["maj@k"].get<double>(), 1e-9);
  EXPECT_NEAR(back.overall.pass1, j["pass@1"].get<double>(), 1e-9);

  // Greedy: one sample per task, and the same answers every time.
  CliResult g1 = Grpo(Args({"eval", "--model", TaughtModel().string(), "--data", tasks.string(), "-k", "6",
                            "--temperature", "0", "--json", (dir / "g1.json").string()}),
                      dir);
  ASSERT_EQ(g1.status, 0) << g1.err;
  nlohmann::json gj = nlohmann::json::parse(*ReadFile((dir / "g1.json").string()));
  EXPECT_EQ(gj["k"], 1);
  EXPECT_DOUBLE_EQ(gj["pass@1"].get<double>(), gj["maj@k"].get<double>());

  CliResult bad = Grpo(Args({"eval", "--model", TaughtModel().string(), "--data", (dir / "missing.jsonl").string()}), dir);
  EXPECT_EQ(bad.status, 1);
  EXPECT_THAT(bad.err, HasSubstr("missing.jsonl"));
}

TEST(GenerateVerify, KeepsExactlyTheSamplesTheTrainingScorerAccepts) {
  fs::path dir = FreshDir("verify");
  fs::path tasks = WriteTasks(dir, 10);
  auto gen = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = {"generate", "--model", TaughtModel().string(), "--data", tasks.string(), "-n", "4",
                                  "--temperature", "1.0", "--max-new-tokens", "12", "--seed", "9", "--out",
                                  (dir / out).string()};
    a.insert(a.end(), extra.begin(), extra.end());
    return Grpo(Args(a), dir);
  };
  CliResult all = gen("all.jsonl", {});
  ASSERT_EQ(all.status, 0) << all.err;
  CliResult verified = gen("ok.jsonl", {"--verify", "--all-correct"});
  ASSERT_EQ(verified.status, 0) << verified.err;
  CliResult first = gen("first.jsonl", {"--verify"});
  ASSERT_EQ(first.status, 0) << first.err;
  std::vector<nlohmann::json> a = JsonLines(*ReadFile((dir / "all.jsonl").string()));
  std::vector<nlohmann::json> ok = JsonLines(*ReadFile((dir / "ok.jsonl").string()));
  std::vector<nlohmann::json> one = JsonLines(*ReadFile((dir / "first.jsonl").string()));
  ASSERT_EQ(a.size(), 40u);
  std::vector<std::string> expected;
  std::set<std::string> tasks_ok;
  for (const auto& l : a) {
    if (l["correct"].get<bool>()) {
      expected.push_back(l["completion"]);
      tasks_ok.insert(l["id"]);
    }
  }
  ASSERT_FALSE(expected.empty()) << "the taught model should get some sums right";
  ASSERT_LT(expected.size(), a.size()) << "and some wrong, or the filter is not tested";
  ASSERT_EQ(ok.size(), expected.size());
  for (size_t i = 0; i < ok.size(); ++i) {
    EXPECT_EQ(ok[i]["completion"], expected[i]);
    EXPECT_TRUE(ok[i].contains("prompt"));
  }
  EXPECT_EQ(one.size(), tasks_ok.size()) << "one per task without --all-correct";
  // Readable only (R1's rejection sampling): correct and in the format.
  CliResult readable = gen("readable.jsonl", {"--verify", "--all-correct", "--require-format"});
  ASSERT_EQ(readable.status, 0) << readable.err;
  size_t correct_and_formatted = 0;
  for (const auto& l : a) correct_and_formatted += l["correct"].get<bool>() && l["format"].get<bool>();
  EXPECT_EQ(JsonLines(*ReadFile((dir / "readable.jsonl").string())).size(), correct_and_formatted);
  EXPECT_THAT(readable.err, HasSubstr("dropped as unreadable"));
  // Tasks asking for number words: --min-language keeps exactly the samples at or over
  // the bar. (The taught model answers without a chain of thought, which is neutral,
  // consistency 1, so here all are kept; the scoring itself is tested in reward_test
  // and dataset_test.)
  {
    std::ofstream out(dir / "words.jsonl");
    for (int i = 0; i < 10; ++i) {
      const int x = i % 5, y = (i * 2) % 5;
      out << nlohmann::json{{"id", absl::StrCat("w", i)}, {"prompt", absl::StrCat(x, "+", y)},
                            {"answer", std::to_string(x + y)}, {"language", "words"}}
                 .dump()
          << "\n";
    }
  }
  auto gen_words = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", "--model", TaughtModel().string(), "--data", (dir / "words.jsonl").string(),
                                     "-n", "4", "--temperature", "1.0", "--max-new-tokens", "12", "--seed", "9",
                                     "--out", (dir / out).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Grpo(Args(args), dir);
  };
  ASSERT_EQ(gen_words("w-all.jsonl", {}).status, 0);
  size_t consistent = 0;
  for (const auto& l : JsonLines(*ReadFile((dir / "w-all.jsonl").string()))) {
    consistent += l["language_consistency"].get<double>() >= 0.5;
  }
  ASSERT_EQ(gen_words("w-kept.jsonl", {"--min-language", "0.5"}).status, 0);
  EXPECT_EQ(JsonLines(*ReadFile((dir / "w-kept.jsonl").string())).size(), consistent);
  EXPECT_EQ(gen_words("x.jsonl", {"--min-language", "2"}).status, 2) << "out of range";
  // The kept lines are SFT data as they are.
  CliResult sft = Grpo(Args({"sft", "--model", TinyModel().string(), "--data", (dir / "ok.jsonl").string(), "--out",
                             (dir / "student").string(), "--no-progress"}),
                       dir);
  EXPECT_EQ(sft.status, 0) << sft.err;
}

}  // namespace
}  // namespace grpo

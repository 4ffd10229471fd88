// The model commands of the real `grpo` binary: init-model writes a Hugging Face
// model directory that our loaders read back; generate samples from it (text and
// --json, seeds, greedy against a naive reference, stop strings, errors); and a GRPO
// run trains a model loaded from such a directory.
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/checksum.h"
#include "core/common/service_process.h"
#include "core/common/subprocess.h"
#include "core/model/hf_model.h"
#include "core/model/safetensors.h"
#include <torch/torch.h>
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/chat_template.h"
#include "tests/cli_util.h"
#include "tests/test_configs.h"
#include "tests/reference_model.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing::JsonLines;
using Result = testing::CliResult;

std::string Bin() { return testing::GrpoBin(); }
fs::path FreshDir(const std::string& name) { return testing::FreshTestDir("grpo-model-cli-", name); }
Result Grpo(const std::vector<std::string>& args, const fs::path& scratch) { return testing::RunGrpo(args, scratch); }

// One tiny model per test binary run, shared by the tests below.
const fs::path& TinyModel() {
  static const fs::path dir = [] {
    fs::path d = FreshDir("tiny");
    Result r = Grpo({"init-model", "--arch", "qwen2", "--preset", "tiny", "--out", (d / "model").string(), "--seed",
                     "3"},
                    d);
    EXPECT_EQ(r.status, 0) << r.err;
    return d / "model";
  }();
  return dir;
}

TEST(InitModel, WritesAHuggingFaceDirectoryOurLoadersRead) {
  for (const std::string arch : {"qwen2", "qwen3", "llama"}) {
    fs::path dir = FreshDir("init-" + arch);
    Result r = Grpo({"init-model", "--arch", arch, "--preset", "tiny", "--out", (dir / "m").string()}, dir);
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                          "tokenizer_config.json"}) {
      EXPECT_TRUE(fs::exists(dir / "m" / f)) << arch << " " << f;
    }
    auto config = nlohmann::json::parse(*ReadFile((dir / "m" / "config.json").string()));
    EXPECT_EQ(config["model_type"], arch);
    auto model = model::LoadPretrained((dir / "m").string());
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->config().hidden_size, 64);
    auto tok = tokenizer::BpeTokenizer::FromFile((dir / "m").string());
    ASSERT_TRUE(tok.ok()) << tok.status();
    EXPECT_EQ((*model)->config().vocab_size, tok->vocab_size());
    const std::string text = "What is 12 + 7? <think>12+7=19</think> <answer>19</answer> héllo 🙂";
    EXPECT_EQ(tok->Decode(tok->Encode(text)), text);
    EXPECT_TRUE(tok->TokenToId("<think>").has_value());
    // The R1 tags survive decoding with special tokens skipped (the reward reads the
    // text the actor decodes that way); the chat format's end token does not.
    const std::string end = arch == "llama" ? "<|eot_id|>" : "<|im_end|>";
    EXPECT_EQ(tok->Decode(tok->Encode("<think>1+1=2</think><answer>2</answer>" + end), true),
              "<think>1+1=2</think><answer>2</answer>");
    auto tc = nlohmann::json::parse(*ReadFile((dir / "m" / "tokenizer_config.json").string()));
    for (auto& [id, entry] : tc["added_tokens_decoder"].items()) {
      EXPECT_EQ(entry["special"].get<bool>(), tok->IsSpecial(std::stoll(id))) << entry["content"];
    }
    // Same seed, same weights.
    Result again = Grpo({"init-model", "--arch", arch, "--preset", "tiny", "--out", (dir / "m2").string()}, dir);
    ASSERT_EQ(again.status, 0) << again.err;
    EXPECT_EQ(*ReadFile((dir / "m" / "model.safetensors").string()),
              *ReadFile((dir / "m2" / "model.safetensors").string()));
    fs::remove_all(dir);
  }
}

TEST(InitModel, UnknownPresetOrArchIsNamed) {
  fs::path dir = FreshDir("init-bad");
  Result r = Grpo({"init-model", "--arch", "gpt9", "--out", (dir / "m").string()}, dir);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("gpt9"));
  r = Grpo({"init-model", "--preset", "huge", "--out", (dir / "m").string()}, dir);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("huge"));
  fs::remove_all(dir);
}

TEST(Generate, JsonGivesIdsLogprobsAndTextAndSeedsRepeat) {
  const fs::path& m = TinyModel();
  fs::path dir = FreshDir("gen-json");
  std::vector<std::string> args = {"generate", "--model", m.string(), "--prompt", "What is 2+3?", "--template",
                                   "chatml", "-n", "3", "--seed", "7", "--json", "--max-new-tokens", "20"};
  Result a = Grpo(args, dir);
  ASSERT_EQ(a.status, 0) << a.err;
  Result b = Grpo(args, dir);
  EXPECT_EQ(a.out, b.out);
  args[10] = "8";  // another seed
  Result c = Grpo(args, dir);
  EXPECT_NE(a.out, c.out);

  auto tok = tokenizer::BpeTokenizer::FromFile(m.string());
  ASSERT_TRUE(tok.ok());
  const std::vector<int64_t> prompt =
      tok->Encode(tokenizer::ApplyChatTemplate(tokenizer::ChatTemplate::kChatML, "What is 2+3?", "{prompt}"));
  std::vector<nlohmann::json> lines = JsonLines(a.out);
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& j = lines[i];
    EXPECT_EQ(j["index"], i);
    EXPECT_EQ(j["prompt_ids"].get<std::vector<int64_t>>(), prompt);
    auto ids = j["completion_ids"].get<std::vector<int64_t>>();
    auto lps = j["logprobs"].get<std::vector<float>>();
    ASSERT_FALSE(ids.empty());
    EXPECT_LE(ids.size(), 20u);
    EXPECT_EQ(lps.size(), ids.size());
    for (float lp : lps) EXPECT_LE(lp, 0.0f);
    EXPECT_EQ(j["text"], tok->Decode(ids));
    EXPECT_THAT(std::string(j["finish_reason"]), ::testing::AnyOf("stop", "length"));
  }
  fs::remove_all(dir);
}

TEST(Generate, GreedyFromPromptIdsMatchesTheNaiveReference) {
  const fs::path& m = TinyModel();
  fs::path dir = FreshDir("gen-greedy");
  const std::vector<int64_t> prompt = {5, 17, 99, 3, 42};
  Result r = Grpo({"generate", "--model", m.string(), "--prompt-ids", "5,17,99,3,42", "--temperature", "0", "--json",
                   "--max-new-tokens", "24"},
                  dir);
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = JsonLines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  auto got = lines[0]["completion_ids"].get<std::vector<int64_t>>();

  auto model = model::LoadPretrained(m.string());
  ASSERT_TRUE(model.ok());
  auto ref = model::testing::ReferenceModel::FromStateDict((*model)->config(), model::StateDict(**model));
  std::vector<int64_t> expected = ref.Greedy(prompt, 24);
  ASSERT_FALSE(got.empty());
  // The CLI stops at the model's end tokens; the reference does not.
  ASSERT_LE(got.size(), expected.size());
  EXPECT_EQ(got, std::vector<int64_t>(expected.begin(), expected.begin() + got.size()));
  if (got.size() < expected.size()) {
    EXPECT_EQ(lines[0]["finish_reason"], "stop");
  }
  fs::remove_all(dir);
}

TEST(Generate, TextOutputStreamsTheSameCompletionAndStopStringsCut) {
  const fs::path& m = TinyModel();
  fs::path dir = FreshDir("gen-text");
  std::vector<std::string> base = {"generate", "--model", m.string(), "--prompt", "12+7=", "--seed", "3",
                                   "--max-new-tokens", "40", "--temperature", "0.8"};
  std::vector<std::string> json_args = base;
  json_args.push_back("--json");
  Result j = Grpo(json_args, dir);
  ASSERT_EQ(j.status, 0) << j.err;
  const std::string text = JsonLines(j.out)[0]["text"];
  Result t = Grpo(base, dir);
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_EQ(t.out, text + "\n");

  // Stop at a piece of the text from its middle: the completion ends there.
  ASSERT_GE(text.size(), 6u) << text;
  const std::string stop = text.substr(text.size() / 2, 2);
  json_args.push_back("--stop");
  json_args.push_back(stop);
  Result s = Grpo(json_args, dir);
  ASSERT_EQ(s.status, 0) << s.err;
  auto line = JsonLines(s.out)[0];
  const std::string cut = line["text"];
  EXPECT_EQ(line["finish_reason"], "stop_string");
  EXPECT_NE(cut.find(stop), std::string::npos);
  EXPECT_LE(cut.size(), text.size());
  EXPECT_EQ(text.substr(0, cut.size()), cut);
  fs::remove_all(dir);
}

TEST(Generate, BadArgumentsAreNamed) {
  const fs::path& m = TinyModel();
  fs::path dir = FreshDir("gen-bad");
  Result r = Grpo({"generate", "--model", (dir / "nothing").string(), "--prompt", "x"}, dir);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("nothing"));
  r = Grpo({"generate", "--model", m.string(), "--prompt-ids", "1,999999"}, dir);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("999999"));
  r = Grpo({"generate", "--model", m.string(), "--prompt-ids", "1,x"}, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("\"x\""));
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--temperature", "-1"}, {"--top-p", "0"}, {"--max-new-tokens", "-3"}, {"--dtype", "f16"}}) {
    r = Grpo({"generate", "--model", m.string(), "--prompt", "x", flag, value}, dir);
    EXPECT_EQ(r.status, 2) << flag;
    EXPECT_THAT(r.err, HasSubstr(flag));
  }
  r = Grpo({"generate", "--model", m.string()}, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("--prompt"));
  fs::remove_all(dir);
}

// GRPO on a model directory: the actor samples with its chat template and the
// learner trains and publishes, step after step.
TEST(HfModelRun, GrpoRunTrainsAModelLoadedFromADirectory) {
  const fs::path& m = TinyModel();
  fs::path dir = FreshDir("hf-run");
  ProcessSpec spec;
  spec.argv = {Bin(), "run", "--run-dir", (dir / "run").string(), "--no-progress", "--max-steps", "2"};
  for (const std::string& set : testing::ClassicRunOverrides()) spec.argv.insert(spec.argv.end(), {"--set", set});
  for (const std::string& set :
       {absl::StrCat("model.path=", m.string()), std::string("model.chat_template=chatml"),
        std::string("data.num_tasks=16"), std::string("actor.group_size=4"), std::string("actor.max_new_tokens=16"),
        std::string("learner.prompts_per_step=2"), std::string("actor.prompts_per_request=2")}) {
    spec.argv.push_back("--set");
    spec.argv.push_back(set);
  }
  spec.log_path = (dir / "launcher.out").string();
  auto p = ChildProcess::Spawn(spec);
  ASSERT_TRUE(p.ok()) << p.status();
  std::optional<int> st = p->WaitFor(absl::Seconds(180));
  ASSERT_TRUE(st.has_value()) << "grpo run did not finish";
  std::string out = TailOfFile((dir / "launcher.out").string(), 40);
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeWaitStatus(*st) << "\n" << out;
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  std::string line;
  int steps = 0;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    ++steps;
    EXPECT_EQ(j["step"], steps);
    EXPECT_GT(j["completion_tokens"].get<double>(), 0) << line;
  }
  EXPECT_EQ(steps, 2);

  // The learner checkpointed on stop; `grpo export` turns the newest checkpoint into a
  // Hugging Face directory holding the weights the coordinator last published.
  Result e = Grpo({"export", "--checkpoint", (dir / "run").string(), "--out", (dir / "exported").string()}, dir);
  ASSERT_EQ(e.status, 0) << e.err;
  auto exported = model::LoadPretrained((dir / "exported").string());
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_TRUE(fs::exists(dir / "exported" / "tokenizer.json"));
  auto published = model::ReadSafetensorsFile((dir / "run" / "coordinator" / "weights.safetensors").string());
  ASSERT_TRUE(published.ok()) << published.status();
  for (const auto& [name, t] : model::StateDict(**exported)) {
    ASSERT_TRUE(published->count(name)) << name;
    EXPECT_TRUE(torch::equal(t, published->at(name).to(t.scalar_type()))) << name;
  }
  Result g = Grpo({"generate", "--model", (dir / "exported").string(), "--prompt", "1+2", "--max-new-tokens", "4",
                   "--json"},
                  dir);
  EXPECT_EQ(g.status, 0) << g.err;
  fs::remove_all(dir);
}

// Prompts that fill the model's context are skipped by the actor (logged), not
// cut; the learner completes their leases and the run goes on with the rest.
TEST(HfModelRun, PromptsThatFillTheContextAreSkippedNotCut) {
  fs::path dir = FreshDir("long-prompts");
  ProcessSpec spec;
  spec.argv = {Bin(), "run", "--run-dir", (dir / "run").string(), "--no-progress", "--max-steps", "2"};
  for (const std::string& set : testing::ClassicRunOverrides()) spec.argv.insert(spec.argv.end(), {"--set", set});
  // "12345+678=" is 11 tokens with <bos>; with a 13-position context most
  // 5-digit sums (13+ tokens) do not fit, shorter ones do.
  for (const std::string set : {"model.max_position_embeddings=13", "actor.max_new_tokens=5", "data.max_operand=99999",
                                "data.num_tasks=64", "actor.group_size=4", "learner.prompts_per_step=2",
                                "actor.prompts_per_request=4", "model.hidden_size=32", "model.intermediate_size=64",
                                "model.num_layers=1"}) {
    spec.argv.push_back("--set");
    spec.argv.push_back(set);
  }
  spec.log_path = (dir / "launcher.out").string();
  auto p = ChildProcess::Spawn(spec);
  ASSERT_TRUE(p.ok()) << p.status();
  std::optional<int> st = p->WaitFor(absl::Seconds(180));
  ASSERT_TRUE(st.has_value()) << "grpo run did not finish";
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
      << DescribeWaitStatus(*st) << "\n" << TailOfFile((dir / "launcher.out").string(), 40);
  auto actor_log = ReadFile((dir / "run" / "logs" / "actor.log").string());
  ASSERT_TRUE(actor_log.ok());
  EXPECT_THAT(*actor_log, HasSubstr("the model's context is 13: skipped"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace grpo

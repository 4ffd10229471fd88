// grpo init-model: write a randomly initialised model with a tokenizer, in the
// Hugging Face layout, for tests, benchmarks and the demo.
//
//   grpo init-model --arch llama|qwen2|qwen3 --preset tiny|small --out DIR
//                   [--seed S] [--dtype f32|bf16] [--merges N] [--corpus FILE.jsonl]
//                   [--hidden-size N --intermediate-size N --layers N --heads N
//                    --kv-heads N --context N]
//
// DIR receives config.json, generation_config.json, model.safetensors,
// tokenizer.json and tokenizer_config.json. The tokenizer is a byte-level BPE
// (the Qwen2 kind) trained on a built-in corpus of arithmetic, the R1 prompt
// template and English prose, so it encodes any text; its special tokens are
// those of the architecture's chat format (ChatML for Qwen, Llama-3's header
// tokens for Llama); <think>, </think>, <answer> and </answer> are single tokens
// too, but not special, so decoded completions keep them for the reward.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/sft_data.h"
#include "core/model/hf_model.h"
#include "core/model/presets.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/bpe_trainer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct InitOptions {
  std::string arch = "qwen2";
  std::string preset = "tiny";
  std::string out;
  uint64_t seed = 0;
  std::string dtype = "f32";
  int merges = -1;  // -1: 200 for tiny, 3800 for small
  // Tokenizer corpus: a `grpo sft` JSONL file instead of the built-in text.
  std::string corpus;
  std::string numbers = "digits";  // digits: one token per digit (Qwen2); whole: digit runs merge
  // Shape overrides on top of the preset (0: the preset's).
  int64_t hidden_size = 0, intermediate_size = 0, layers = 0, heads = 0, kv_heads = 0, context = 0;
};

constexpr const char* kProse =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively. What is the sum of the numbers? Let me think step by step. First, we add the ones digits, "
    "then the tens digits, and carry when the sum is ten or more. The answer is the number we get. "
    "Reinforcement learning from verifiable rewards trains a language model by sampling a group of answers to "
    "each question, scoring every answer with a rule, and making the better answers more likely than the worse "
    "ones in the same group. The quick brown fox jumps over the lazy dog. def solve(a, b):\n    return a + b\n";

std::vector<std::string> Corpus() {
  std::vector<std::string> corpus;
  for (int i = 0; i < 20; ++i) corpus.push_back(kProse);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 4000; ++i) {
    const int a = static_cast<int>(rng() % 1000), b = static_cast<int>(rng() % 1000);
    const char op = "+-*"[rng() % 3];
    const long r = op == '+' ? a + b : op == '-' ? a - b : static_cast<long>(a) * b;
    corpus.push_back(absl::StrCat("What is ", a, " ", std::string(1, op), " ", b, "? <think> ", a,
                                  std::string(1, op), b, "=", r, " </think> <answer>", r, "</answer>"));
  }
  return corpus;
}

// Control tokens of the architecture's chat format (special: dropped when decoding
// completions for the reward).
std::vector<std::string> SpecialTokens(const std::string& arch) {
  if (arch == "llama") {
    return {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  }
  return {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
}

// The R1 tags: single tokens, but text the reward reads, so not special (as Qwen3's
// own tokenizer has <think> and </think>).
const std::vector<std::string> kTagTokens = {"<think>", "</think>", "<answer>", "</answer>"};

// tokenizer_config.json as transformers writes it for a fast tokenizer.
nlohmann::json TokenizerConfig(const std::string& arch, const tokenizer::BpeTokenizer& tok, int64_t max_len) {
  nlohmann::json added = nlohmann::json::object();
  std::vector<std::string> all = SpecialTokens(arch);
  all.insert(all.end(), kTagTokens.begin(), kTagTokens.end());
  for (const std::string& s : all) {
    auto id = tok.TokenToId(s);
    if (!id) continue;
    added[std::to_string(*id)] = {{"content", s},           {"lstrip", false}, {"normalized", false},
                                  {"rstrip", false},        {"single_word", false},
                                  {"special", tok.IsSpecial(*id)}};
  }
  nlohmann::json j;
  j["added_tokens_decoder"] = added;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  j["model_max_length"] = max_len;
  j["clean_up_tokenization_spaces"] = false;
  if (arch == "llama") {
    j["bos_token"] = "<|begin_of_text|>";
    j["eos_token"] = "<|eot_id|>";
    j["chat_template"] =
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
        "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
  } else {
    j["bos_token"] = nullptr;
    j["eos_token"] = "<|im_end|>";
    j["pad_token"] = "<|endoftext|>";
    j["chat_template"] =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  }
  return j;
}

int RunInit(const InitOptions& o) {
  auto fail = [](const std::string& msg, int code = 1) {
    std::cerr << "grpo init-model: " << msg << "\n";
    return code;
  };
  if (o.dtype != "f32" && o.dtype != "bf16") return fail("--dtype must be f32 or bf16", 2);
  // Check the shape before spending a second on tokenizer training.
  if (auto c = model::PresetConfig(o.arch, o.preset, 512); !c.ok()) return fail(std::string(c.status().message()), 2);
  const int merges = o.merges >= 0 ? o.merges : (o.preset == "small" ? 3800 : 200);
  std::vector<std::string> corpus;
  if (o.corpus.empty()) {
    corpus = Corpus();
  } else {
    // The task's own text (and the prompt template) shape the merges.
    absl::StatusOr<std::vector<SftRecord>> records = LoadSftData(o.corpus);
    if (!records.ok()) return fail(std::string(records.status().message()), 2);
    for (const SftRecord& r : *records) corpus.push_back(r.is_text ? r.text : r.prompt + " " + r.completion);
    for (int i = 0; i < 20; ++i) corpus.push_back(kProse);
  }
  if (o.numbers != "digits" && o.numbers != "whole") return fail("--numbers must be digits or whole", 2);
  auto tok_json = tokenizer::TrainByteLevelBpe(
      corpus, merges, SpecialTokens(o.arch), kTagTokens,
      o.numbers == "whole" ? tokenizer::kQwen2WholeNumbersPattern : tokenizer::kQwen2Pattern);
  if (!tok_json.ok()) return fail(std::string(tok_json.status().message()));
  auto tok = tokenizer::BpeTokenizer::FromJson(*tok_json, "trained tokenizer");
  if (!tok.ok()) return fail(std::string(tok.status().message()));

  auto config = model::PresetConfig(o.arch, o.preset, tok->vocab_size());
  if (!config.ok()) return fail(std::string(config.status().message()), 2);
  if (o.hidden_size > 0) config->hidden_size = o.hidden_size;
  if (o.intermediate_size > 0) config->intermediate_size = o.intermediate_size;
  if (o.layers > 0) config->num_hidden_layers = o.layers;
  if (o.heads > 0) config->num_attention_heads = o.heads;
  if (o.kv_heads > 0) config->num_key_value_heads = o.kv_heads;
  if (o.context > 0) config->max_position_embeddings = o.context;
  if (absl::Status s = config->Validate(); !s.ok()) return fail(absl::StrCat("model shape: ", s.message()), 2);
  if (o.arch == "llama") {
    config->bos_token_id = *tok->TokenToId("<|begin_of_text|>");
    config->eos_token_id = {*tok->TokenToId("<|end_of_text|>"), *tok->TokenToId("<|eot_id|>")};
  } else {
    config->bos_token_id = *tok->TokenToId("<|endoftext|>");
    config->eos_token_id = {*tok->TokenToId("<|im_end|>"), *tok->TokenToId("<|endoftext|>")};
  }

  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) return fail(absl::StrCat("cannot create ", o.out, ": ", ec.message()));
  torch::manual_seed(o.seed);
  model::Transformer model(*config);
  model::SaveOptions save;
  save.dtype = o.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
  if (absl::Status s = model::SavePretrained(model, o.out, save); !s.ok()) return fail(std::string(s.message()));
  if (absl::Status s = WriteFileAtomic(o.out + "/tokenizer.json", *tok_json); !s.ok()) {
    return fail(std::string(s.message()));
  }
  const std::string tc = TokenizerConfig(o.arch, *tok, config->max_position_embeddings).dump(2);
  if (absl::Status s = WriteFileAtomic(o.out + "/tokenizer_config.json", tc); !s.ok()) {
    return fail(std::string(s.message()));
  }
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::cerr << "wrote " << o.arch << " " << o.preset << " (" << params << " parameters, vocab " << tok->vocab_size()
            << ") to " << o.out << "\n";
  return 0;
}

}  // namespace

Subcommand AddInitModelCommand(CLI::App& app) {
  auto o = std::make_shared<InitOptions>();
  CLI::App* cmd = app.add_subcommand("init-model", "write a randomly initialised model and tokenizer (HF layout)");
  cmd->add_option("--arch", o->arch, "llama, qwen2 or qwen3");
  cmd->add_option("--preset", o->preset, "tiny or small");
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->add_option("--seed", o->seed, "weight initialisation seed");
  cmd->add_option("--dtype", o->dtype, "dtype on disk: f32 or bf16");
  cmd->add_option("--merges", o->merges, "BPE merges to learn (default 200 tiny, 3800 small)");
  cmd->add_option("--corpus", o->corpus, "train the tokenizer on this JSONL ({\"text\"} or prompt/completion lines)");
  cmd->add_option("--numbers", o->numbers, "digits (one token per digit, Qwen2) or whole (digit runs can merge into one token)");
  cmd->add_option("--hidden-size", o->hidden_size, "model width (default: the preset's)");
  cmd->add_option("--intermediate-size", o->intermediate_size, "SwiGLU width (default: the preset's)");
  cmd->add_option("--layers", o->layers, "transformer blocks (default: the preset's)");
  cmd->add_option("--heads", o->heads, "attention heads (default: the preset's)");
  cmd->add_option("--kv-heads", o->kv_heads, "key/value heads (default: the preset's)");
  cmd->add_option("--context", o->context, "max_position_embeddings (default: the preset's)");
  return {cmd, [o] { return RunInit(*o); }};
}

}  // namespace grpo

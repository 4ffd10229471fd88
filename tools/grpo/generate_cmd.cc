// grpo generate: sample completions from a Hugging Face model directory.
//
//   grpo generate --model DIR --prompt TEXT [--template plain|chatml|llama3] [--system S]
//                 [--temperature T] [--top-p P] [--top-k K] [--max-new-tokens N]
//                 [--seed S] [-n G] [--stop STR]... [--json] [--prompt-ids 1,2,3]
//                 [--dtype f32|bf16] [--device cpu|cuda|cuda:N] [--threads N]
//
// Without --json the completion text is printed (streamed as it is generated
// when n = 1; with n > 1 each completion follows a "=== completion i ===" line).
// With --json each completion is one JSON line:
//   {"index": i, "prompt_ids": [...], "completion_ids": [...], "logprobs": [...],
//    "text": "...", "finish_reason": "stop" | "stop_string" | "length"}
// Generation stops at the model's end tokens (generation_config.json /
// config.json eos_token_id, and the chat template's end-of-turn token) and at
// any --stop string. Temperature 0 is greedy; the same seed gives the same output.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>

#include <torch/torch.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/model/generator.h"
#include "core/model/device.h"
#include "core/model/hf_model.h"
#include "core/policy/policy.h"
#include "core/tokenizer/bpe_tokenizer.h"
#include "core/tokenizer/chat_template.h"
#include "nlohmann/json.hpp"
#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"
#include "core/common/config.h"
#include "core/common/dataset.h"
#include "core/policy/evaluate.h"
#include "services/reward/scorer.h"
#include "tools/grpo/judge.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct GenerateOptions {
  std::string model_dir;
  std::string prompt;
  std::string prompt_ids;
  std::string template_name = "plain";
  std::string plain_template = "{prompt}";
  std::string system;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  int64_t max_new_tokens = 256;
  uint64_t seed = 0;
  int64_t n = 1;
  std::vector<std::string> stops;
  bool json = false;
  std::string dtype = "f32";
  std::string device = "cpu";
  int threads = 0;
  // Rejection sampling (--data): -n samples per task, the verified ones kept.
  std::string data;
  bool verify = false;
  std::string out;
  bool keep_all = false;
  // Readable samples only (R1's rejection sampling keeps correct and readable ones).
  bool require_format = false;
  double min_language = 0;
  std::string config;
  std::vector<std::string> sets;
  bool template_given = false, plain_template_given = false, system_given = false;
};

// grpo generate --data FILE -n K [--verify] --out FILE: K completions per task of a
// dataset, scored by the same Scorer as training; with --verify only the correct ones
// are written (the first per task, or all with --all-correct) as {"id", "prompt",
// "completion"} lines that `grpo sft` trains on (R1's rejection sampling); with
// --require-format and --min-language X only those that are also in the format and
// whose chain of thought is at least X in the asked language (readable ones).
int RunGenerateData(const GenerateOptions& o) {
  auto fail = [](const std::string& msg, int code) {
    std::cerr << "grpo generate: " << msg << "\n";
    return code;
  };
  if (o.out.empty()) return fail("--data needs --out FILE.jsonl", 2);
  if (o.n < 1) return fail("-n must be >= 1", 2);
  if (!(o.min_language >= 0 && o.min_language <= 1)) return fail("--min-language must be in [0, 1]", 2);
  std::vector<std::string> sets = o.sets;
  sets.insert(sets.begin(), absl::StrCat("model.path=", o.model_dir));
  if (o.template_given) sets.push_back("model.chat_template=" + o.template_name);
  if (o.plain_template_given) sets.push_back("model.prompt_template=" + o.plain_template);
  if (o.system_given) sets.push_back("model.system_prompt=" + o.system);
  absl::StatusOr<RunConfig> cfg = LoadConfigWithOverrides(o.config, sets);
  if (!cfg.ok()) return fail(std::string(cfg.status().message()), 2);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  absl::StatusOr<std::vector<Task>> tasks = LoadDataset(o.data);
  if (!tasks.ok()) return fail(std::string(tasks.status().message()), 1);
  absl::StatusOr<c10::Device> device = model::ResolveDevice(o.device, "--device");
  if (!device.ok()) return fail(std::string(device.status().message()), 2);
  if (o.dtype != "bf16" && o.dtype != "f32") return fail("--dtype must be f32 or bf16", 2);
  absl::StatusOr<std::unique_ptr<Policy>> policy = BuildPolicy(*cfg, 0);
  if (!policy.ok()) return fail(std::string(policy.status().message()), 1);
  (*policy)->model->to(*device, o.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat);
  absl::StatusOr<std::unique_ptr<reward::Scorer>> scorer = reward::Scorer::Create(*cfg);
  if (!scorer.ok()) return fail(std::string(scorer.status().message()), 1);
  EvalSettings settings;
  settings.k = o.n;
  settings.temperature = o.temperature;
  settings.top_p = o.top_p;
  settings.max_new_tokens = o.max_new_tokens;
  settings.seed = o.seed;
  absl::StatusOr<EvalOutput> out = EvaluatePolicy(**policy, *tasks, settings, ScorerJudge(**scorer, ""));
  if (!out.ok()) return fail(std::string(out.status().message()), 1);
  std::string lines;
  int64_t kept = 0, tasks_kept = 0, unreadable = 0;
  size_t i = 0;
  for (size_t t = 0; t < out->texts.size(); ++t) {
    bool any = false;
    for (size_t s = 0; s < out->texts[t].size(); ++s, ++i) {
      const eval::EvalSample& e = out->samples[i];
      if (o.verify && (!e.correct || (any && !o.keep_all))) continue;
      if ((o.require_format && !e.format) || e.language_consistency < o.min_language) {
        ++unreadable;
        continue;
      }
      nlohmann::ordered_json j;
      j["id"] = e.id;
      j["prompt"] = (*tasks)[t].prompt;
      j["completion"] = out->texts[t][s];
      if (!o.verify) {
        j["sample"] = e.sample;
        j["correct"] = e.correct;
        j["format"] = e.format;
        j["language_consistency"] = e.language_consistency;
      }
      absl::StrAppend(&lines, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "\n");
      ++kept;
      any = true;
    }
    tasks_kept += any;
  }
  if (absl::Status s = WriteFileAtomic(o.out, lines); !s.ok()) return fail(std::string(s.message()), 1);
  std::cerr << "grpo generate: " << out->samples.size() << " samples of " << out->texts.size() << " tasks, "
            << "pass@1 " << out->report.overall.pass1 << ", language consistency "
            << out->report.overall.language_consistency << "; wrote " << kept << " line(s) covering " << tasks_kept
            << " task(s) to " << o.out;
  if (o.require_format || o.min_language > 0) std::cerr << " (" << unreadable << " dropped as unreadable)";
  std::cerr << "\n";
  return 0;
}

int RunGenerate(const GenerateOptions& o) {
  if (!o.data.empty()) return RunGenerateData(o);
  if (o.verify || !o.out.empty() || o.require_format || o.min_language > 0) {
    std::cerr << "grpo generate: --verify, --require-format, --min-language and --out go with --data\n";
    return 2;
  }
  auto fail = [](const std::string& msg) {
    std::cerr << "grpo generate: " << msg << "\n";
    return 1;
  };
  if (o.prompt.empty() == o.prompt_ids.empty()) return fail("give exactly one of --prompt and --prompt-ids"), 2;
  if (o.n < 1) return fail("-n must be >= 1"), 2;
  if (!(o.temperature >= 0)) return fail("--temperature must be >= 0"), 2;
  if (!(o.top_p > 0 && o.top_p <= 1)) return fail("--top-p must lie in (0, 1]"), 2;
  if (o.top_k < 0) return fail("--top-k must be >= 0"), 2;
  if (o.max_new_tokens < 0) return fail("--max-new-tokens must be >= 0"), 2;
  if (o.dtype != "bf16" && o.dtype != "f32") return fail("--dtype must be f32 or bf16"), 2;
  absl::StatusOr<c10::Device> device = model::ResolveDevice(o.device, "--device");
  if (!device.ok()) return fail(std::string(device.status().message())), 2;
  for (const std::string& s : o.stops) {
    if (s.empty()) return fail("--stop must not be empty"), 2;
  }
  if (o.threads > 0) torch::set_num_threads(o.threads);
  auto tmpl = tokenizer::ParseChatTemplate(o.template_name);
  if (!tmpl.ok()) return fail(std::string(tmpl.status().message())), 2;

  auto tok = tokenizer::BpeTokenizer::FromFile(o.model_dir);
  if (!tok.ok()) return fail(std::string(tok.status().message()));
  model::LoadOptions load;
  load.dtype = o.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
  load.device = *device;
  auto model = model::LoadPretrained(o.model_dir, load);
  if (!model.ok()) return fail(std::string(model.status().message()));
  (*model)->eval();

  std::vector<int64_t> prompt_ids;
  if (!o.prompt_ids.empty()) {
    for (absl::string_view part : absl::StrSplit(o.prompt_ids, ',')) {
      int64_t id = 0;
      if (!absl::SimpleAtoi(part, &id)) return fail("--prompt-ids: \"" + std::string(part) + "\" is not an integer"), 2;
      prompt_ids.push_back(id);
    }
  } else {
    prompt_ids = EncodeHfPrompt(*tok, *tmpl, o.prompt, o.plain_template, o.system);
  }

  model::SamplingParams params;
  params.temperature = o.temperature;
  params.top_p = o.top_p;
  params.top_k = o.top_k;
  params.max_new_tokens = o.max_new_tokens;
  params.stop_strings = o.stops;
  params.stop_token_ids = HfStopTokenIds(o.model_dir, (*model)->config(), *tok, *tmpl);

  model::GeneratorOptions gopts;
  gopts.max_batch = std::min<int64_t>(o.n, 64);
  if (!o.stops.empty()) {
    for (int64_t id = 0; id < (*model)->config().vocab_size; ++id) gopts.token_bytes.push_back(tok->TokenBytes(id));
  }
  model::Generator gen(*model, gopts);

  // n = 1 and text output: print tokens as they come.
  const bool stream = !o.json && o.n == 1;
  std::unique_ptr<tokenizer::StreamDecoder> decoder;
  if (stream) decoder = std::make_unique<tokenizer::StreamDecoder>(*tok);
  auto on_token = [&](int64_t, int64_t, int64_t token) {
    std::cout << decoder->Push(token) << std::flush;
  };
  auto result = gen.Generate({{prompt_ids, o.n}}, params, o.seed,
                             stream ? std::function<void(int64_t, int64_t, int64_t)>(on_token) : nullptr);
  if (!result.ok()) return fail(std::string(result.status().message()));
  if (stream) {
    std::cout << decoder->Finish() << "\n";
    return 0;
  }
  const auto& seqs = (*result)[0];
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::string text = tok->Decode(seqs[i].token_ids);
    if (o.json) {
      nlohmann::ordered_json j;
      j["index"] = i;
      j["prompt_ids"] = prompt_ids;
      j["completion_ids"] = seqs[i].token_ids;
      j["logprobs"] = seqs[i].logprobs;
      j["text"] = text;
      j["finish_reason"] = model::FinishReasonName(seqs[i].finish_reason);
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << "=== completion " << i << " ===\n" << text << "\n";
    }
  }
  return 0;
}

}  // namespace

Subcommand AddGenerateCommand(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "sample completions from a Hugging Face model directory");
  cmd->add_option("--model", o->model_dir, "model directory (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_option("--prompt", o->prompt, "prompt text (the template is applied to it)");
  cmd->add_option("--prompt-ids", o->prompt_ids, "prompt as comma-separated token ids (no template)");
  cmd->add_option("--template", o->template_name, "prompt format: plain, chatml or llama3");
  cmd->add_option("--plain-template", o->plain_template, "the plain template, with {prompt}");
  cmd->add_option("--system", o->system, "system message (chatml, llama3)");
  cmd->add_option("--temperature", o->temperature, "sampling temperature; 0 is greedy");
  cmd->add_option("--top-p", o->top_p, "nucleus sampling mass (1 = off)");
  cmd->add_option("--top-k", o->top_k, "keep the k most likely tokens (0 = off)");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "most tokens per completion");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->add_option("-n", o->n, "completions to draw (G)");
  cmd->add_option("--stop", o->stops, "stop string (repeatable)");
  cmd->add_flag("--json", o->json, "one JSON line per completion: ids, logprobs, text");
  cmd->add_option("--dtype", o->dtype, "compute dtype: f32 or bf16");
  cmd->add_option("--device", o->device, "where the model runs: cpu, cuda or cuda:N (weights, KV cache and sampling)");
  cmd->add_option("--threads", o->threads, "LibTorch threads (0: LibTorch's default)");
  cmd->add_option("--data", o->data, "dataset JSONL: sample -n completions of every task (rejection sampling)");
  cmd->add_flag("--verify", o->verify, "with --data: keep only completions the training scorer judges correct");
  cmd->add_option("--out", o->out, "with --data: JSONL of {id, prompt, completion} lines");
  cmd->add_flag("--all-correct", o->keep_all, "with --verify: keep every correct completion, not only the first per task");
  cmd->add_flag("--require-format", o->require_format, "with --data: keep only completions in the format (<think> then <answer>)");
  cmd->add_option("--min-language", o->min_language,
                  "with --data: keep only completions whose chain of thought is at least this share in the asked "
                  "language (0-1; the reward's language component)");
  cmd->add_option("--config", o->config, "with --data: run config (templates, reward.*; default: the demo's)");
  cmd->add_option("--set", o->sets, "with --data: override a config field (repeatable)");
  return {cmd, [o, cmd] {
            GenerateOptions opts = *o;
            opts.template_given = cmd->count("--template") > 0;
            opts.plain_template_given = cmd->count("--plain-template") > 0;
            opts.system_given = cmd->count("--system") > 0;
            return RunGenerate(opts);
          }};
}

}  // namespace grpo

#include "tools/grpo/stages.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/common/checksum.h"
#include "core/common/dataset.h"
#include "core/common/r1_tasks.h"
#include "tools/grpo/progress.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;

void Say(const std::string& msg) { std::fprintf(stderr, "%s\n", msg.c_str()); }

fs::path StageDir(const PipelineContext& ctx, const std::string& name) { return ctx.run_dir / "stages" / name; }
bool StageDone(const PipelineContext& ctx, const std::string& name) {
  return fs::exists(StageDir(ctx, name) / "done.json");
}

absl::Status WriteLines(const fs::path& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& l : lines) absl::StrAppend(&text, l, "\n");
  return WriteFileAtomic(path.string(), text);
}

// `grpo sft` from `model` on `data` into <dir>/model (metrics and checkpoints in
// <dir>/sft), with the stage's own optimiser settings; the run's learner.* stay for RL.
std::vector<std::string> SftArgs(const RunConfig& cfg, const PipelineContext& ctx, const std::string& model,
                                 const fs::path& data, const fs::path& dir, double lr, int64_t epochs) {
  std::vector<std::string> args = {"sft",       "--model", model, "--data", data.string(), "--out",
                                   (dir / "model").string(), "--run-dir", (dir / "sft").string(), "--config",
                                   (ctx.run_dir / "config.yaml").string(), "--no-progress"};
  std::vector<std::string> sets = SftSets(lr, 3, cfg.pipeline.base_threads);
  sets.insert(sets.end(), {absl::StrCat("sft.epochs=", epochs), "sft.max_steps=0"});
  for (const std::string& kv : sets) args.insert(args.end(), {"--set", kv});
  return args;
}

absl::Status ColdStart(const RunConfig& cfg, const PipelineContext& ctx, const std::string& model, const fs::path& dir) {
  absl::StatusOr<std::vector<Task>> train = LoadDataset(cfg.data.path);
  if (!train.ok()) return train.status();
  const fs::path data = dir / "data.jsonl";
  std::vector<std::string> lines = ColdStartExamples(*train, cfg.pipeline.cold_start_tasks);
  if (absl::Status s = WriteLines(data, lines); !s.ok()) return s;
  return RunStage("cold_start-sft",
                  absl::StrCat("cold_start: fine-tuning the base model on ", lines.size(),
                               " worked chains of thought in the asked notation"),
                  SftArgs(cfg, ctx, model, data, dir, cfg.pipeline.cold_start_lr, cfg.pipeline.cold_start_epochs), ctx);
}

// A stage's GRPO: a `grpo run` of its own in `dir` from `model`, its steps shown here.
absl::Status Reinforce(const RunConfig& cfg, const std::string& name, int64_t steps, const std::string& model,
                       const fs::path& dir, const PipelineContext& ctx, const StageOptions& opts) {
  std::vector<std::string> args = {"run", "--run-dir", dir.string(), "--config", (ctx.run_dir / "config.yaml").string(),
                                   "--no-progress", "--max-steps", absl::StrCat(steps)};
  if (opts.secure) args.push_back("--secure");
  for (const std::string& kv : {std::string("pipeline.stages="), std::string("pipeline.tasks="),
                                std::string("pipeline.base_docs=0"), std::string("pipeline.eval_before_after=false"),
                                std::string("pipeline.report=false"), absl::StrCat("model.path=", model),
                                absl::StrCat("run.name=", name)}) {
    args.push_back("--set");
    args.push_back(kv);
  }
  if (cfg.pipeline.rl_lr > 0) args.insert(args.end(), {"--set", absl::StrCat("learner.lr=", cfg.pipeline.rl_lr)});
  MetricsTail tail((dir / "metrics.jsonl").string());
  tail.SkipExisting();
  const bool tty = opts.progress && ::isatty(STDERR_FILENO);
  bool drew = false;
  auto show = [&] {
    for (const nlohmann::json& m : tail.Poll()) {
      if (!m.contains("reward_mean")) continue;  // validation-only lines
      const std::string line = absl::StrCat(name, ": ", ProgressLine(m, steps, tty));
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        drew = true;
      } else {
        Say(line);
      }
    }
  };
  // The child stops its services on SIGTERM, each with 10 s of grace: give it time.
  absl::Status s = RunStage(absl::StrCat(name, "-grpo"), absl::StrCat(name, ": ", steps, " GRPO steps (run directory ", dir.string(), ")"),
                            args, ctx, show, absl::Seconds(60));
  show();
  if (drew) std::fprintf(stderr, "\n");
  if (!s.ok()) return s;
  return RunStage(absl::StrCat(name, "-export"), absl::StrCat(name, ": exporting the policy"),
                  {"export", "--checkpoint", dir.string(), "--out", (dir / "model").string()}, ctx);
}

absl::Status RejectionSft(const RunConfig& cfg, const PipelineContext& ctx, const std::string& model,
                          const std::string& base, const fs::path& dir) {
  const PipelineConfig& p = cfg.pipeline;
  absl::StatusOr<std::vector<Task>> train = LoadDataset(cfg.data.path);
  if (!train.ok()) return train.status();
  if (static_cast<int64_t>(train->size()) > p.rejection_tasks) train->resize(static_cast<size_t>(p.rejection_tasks));
  const fs::path tasks = dir / "tasks.jsonl", samples = dir / "samples.jsonl", data = dir / "data.jsonl";
  if (!fs::exists(samples)) {
    if (absl::Status s = WriteDataset(tasks.string(), *train); !s.ok()) return s;
    std::vector<std::string> gen = {"generate", "--model", model, "--data", tasks.string(), "-n",
                                    absl::StrCat(p.rejection_samples), "--verify", "--require-format",
                                    "--min-language", absl::StrCat(p.rejection_min_language), "--out", samples.string(),
                                    "--config", (ctx.run_dir / "config.yaml").string(), "--temperature",
                                    absl::StrCat(cfg.actor.temperature), "--max-new-tokens",
                                    absl::StrCat(cfg.actor.max_new_tokens), "--seed", absl::StrCat(cfg.run.seed),
                                    "--threads", absl::StrCat(p.base_threads)};
    if (absl::Status s = RunStage("rejection_sft-sample",
                                  absl::StrCat("rejection_sft: sampling ", p.rejection_samples, " completions of ",
                                               train->size(), " training tasks, keeping the correct and readable"),
                                  gen, ctx);
        !s.ok()) {
      return s;
    }
  }
  // The kept samples, and every k-th pretraining document as the non-reasoning data.
  std::vector<std::string> lines;
  {
    std::ifstream in(samples);
    for (std::string l; std::getline(in, l);) {
      if (!l.empty()) lines.push_back(l);
    }
  }
  const size_t kept = lines.size();
  if (kept == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rejection_sft: no sample of ", model, " was correct, formatted and consistent enough (pipeline.rejection_min_language ",
        p.rejection_min_language, "); see ", (ctx.run_dir / "logs" / "rejection_sft-sample.log").string()));
  }
  if (p.rejection_other_docs > 0) {
    // Documents that name a notation are left out: the corpus follows the notation a
    // problem names only base_instruction_kept of the time, and fine-tuning on those that
    // do not taught the model to ignore the instruction (seed 2: language consistency
    // 0.94 in the samples' model, 0.49 after rejection_sft with them).
    std::vector<std::string> docs;
    std::ifstream in(ctx.run_dir / "data" / "pretrain.jsonl");
    for (std::string l; std::getline(in, l);) {
      if (!l.empty() && NotationOf(l).empty()) docs.push_back(l);
    }
    const size_t want = std::min(docs.size(), static_cast<size_t>(p.rejection_other_docs));
    for (size_t i = 0; i < want; ++i) lines.push_back(docs[i * docs.size() / want]);
  }
  if (absl::Status s = WriteLines(data, lines); !s.ok()) return s;
  return RunStage("rejection_sft-sft",
                  absl::StrCat("rejection_sft: fine-tuning the base model on ", kept, " kept samples and ",
                               lines.size() - kept, " pretraining documents"),
                  SftArgs(cfg, ctx, base, data, dir, p.rejection_lr, p.rejection_epochs), ctx);
}

std::string IsoNow() { return absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()); }

}  // namespace

absl::Status RunR1Stages(const RunConfig& cfg, const PipelineContext& ctx, const StageOptions& opts) {
  absl::StatusOr<std::vector<std::string>> stages = PipelineStages(cfg.pipeline);
  if (!stages.ok()) return stages.status();
  if (!opts.only.empty() && std::find(stages->begin(), stages->end(), opts.only) == stages->end()) {
    return absl::InvalidArgumentError(absl::StrCat("--stage ", opts.only, ": this run's stages are ",
                                                   absl::StrJoin(*stages, ", "), " (pipeline.stages)"));
  }
  const std::string base = cfg.model.path;
  std::string model = base;  // the model the next stage starts from
  for (const std::string& name : *stages) {
    const fs::path dir = StageDir(ctx, name);
    const bool rerun = opts.only == name;
    if (!rerun && StageDone(ctx, name)) {
      if (opts.only.empty()) Say(absl::StrCat("grpo: ", name, " done (", (dir / "done.json").string(), ")"));
      model = (dir / "model").string();
      continue;
    }
    if (!opts.only.empty() && !rerun) {
      // Running one stage alone: the stages before it must be done, those after it wait.
      const auto at = [&](const std::string& n) { return std::find(stages->begin(), stages->end(), n); };
      if (at(name) < at(opts.only)) {
        return absl::FailedPreconditionError(absl::StrCat("--stage ", opts.only, " starts from ", name, "'s model, and ",
                                                          name, " is not done: run the pipeline first (grpo run --run-dir ",
                                                          ctx.run_dir.string(), ")"));
      }
      continue;
    }
    if (rerun) {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
      for (const char* suffix : {".json", "_samples.jsonl"}) fs::remove(ctx.run_dir / "eval" / (name + suffix), ignored);
    }
    const bool resumed = fs::exists(dir);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!ec) fs::create_directories(ctx.run_dir / "eval", ec);
    if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
    const absl::Time t0 = absl::Now();
    const std::string started = IsoNow();
    absl::Status s;
    if (name == "cold_start") {
      s = ColdStart(cfg, ctx, model, dir);
    } else if (name == "reasoning_rl") {
      s = Reinforce(cfg, name, cfg.pipeline.rl_steps, model, dir, ctx, opts);
    } else if (name == "rejection_sft") {
      s = RejectionSft(cfg, ctx, model, base, dir);
    } else {
      s = Reinforce(cfg, name, cfg.pipeline.final_rl_steps, model, dir, ctx, opts);
    }
    if (!s.ok()) return s;
    const std::string out = (dir / "model").string();
    if (absl::Status e = RunStage(absl::StrCat("eval-", name), absl::StrCat(name, ": evaluating its model on the held-out set"),
                                  EvalArgs(cfg, ctx, out, name), ctx);
        !e.ok()) {
      return e;
    }
    nlohmann::json done = {{"stage", name},
                           {"model", out},
                           {"from_model", name == "rejection_sft" ? base : model},
                           {"started", started},
                           {"finished", IsoNow()},
                           {"seconds", absl::ToDoubleSeconds(absl::Now() - t0)},
                           {"resumed", resumed}};
    if (name == "rejection_sft") done["sampled_from"] = model;
    if (absl::Status w = WriteFileAtomic((dir / "done.json").string(), done.dump(1)); !w.ok()) return w;
    Say(absl::StrCat("grpo: ", name, " done in ", absl::FormatDuration(absl::Trunc(absl::Now() - t0, absl::Seconds(1))),
                     " (held-out: ", (ctx.run_dir / "eval" / (name + ".json")).string(), ")"));
    if (rerun) {
      auto at = std::find(stages->begin(), stages->end(), name);
      std::vector<std::string> later(at + 1, stages->end());
      std::vector<std::string> stale;
      for (const std::string& l : later) {
        if (StageDone(ctx, l)) stale.push_back(l);
      }
      if (!stale.empty()) {
        Say(absl::StrCat("grpo: ", absl::StrJoin(stale, ", "), " were made from the earlier ", name,
                         "; run them again with --stage to follow this one"));
      }
    }
    model = out;
  }
  // The last stage's model and evaluation are the run's result.
  const std::string last = stages->back();
  if (StageDone(ctx, last) && (opts.only.empty() || opts.only == last)) {
    std::error_code ec;
    const fs::path final_model = ctx.run_dir / "final_model";
    fs::remove_all(final_model, ec);
    fs::copy(StageDir(ctx, last) / "model", final_model, fs::copy_options::recursive, ec);
    if (ec) return absl::InternalError(absl::StrCat("copying ", last, "'s model to ", final_model.string(), ": ", ec.message()));
    for (const char* suffix : {".json", "_samples.jsonl"}) {
      fs::copy_file(ctx.run_dir / "eval" / (last + suffix), ctx.run_dir / "eval" / (std::string("after") + suffix),
                    fs::copy_options::overwrite_existing, ec);
      if (ec) return absl::InternalError(absl::StrCat("copying ", last, "'s evaluation to eval/after: ", ec.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace grpo

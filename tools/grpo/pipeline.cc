#include "tools/grpo/pipeline.h"

#include <sys/wait.h>

#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/common/checksum.h"
#include "core/common/dataset.h"
#include "core/common/program_tasks.h"
#include "core/common/r1_tasks.h"
#include "core/common/service_process.h"
#include "core/common/subprocess.h"
#include "tools/grpo/report.h"

namespace grpo {
namespace {

namespace fs = std::filesystem;

void Say(const std::string& msg) { std::fprintf(stderr, "%s\n", msg.c_str()); }

absl::Status WriteConfig(const RunConfig& cfg, const PipelineContext& ctx) {
  return WriteFileAtomic((ctx.run_dir / "config.yaml").string(), ConfigToYaml(cfg));
}

}  // namespace

absl::Status RunStage(const std::string& name, const std::string& what, const std::vector<std::string>& args,
                      const PipelineContext& ctx, const std::function<void()>& on_poll, absl::Duration grace) {
  ProcessSpec spec;
  spec.argv = {(ctx.bin_dir / "grpo").string()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.log_path = (ctx.run_dir / "logs" / (name + ".log")).string();
  const absl::Time t0 = absl::Now();
  Say(absl::StrCat("grpo: ", what, " (log: ", spec.log_path, ")"));
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(spec);
  if (!child.ok()) return child.status();
  for (;;) {
    if (std::optional<int> st = child->Poll()) {
      if (WIFEXITED(*st) && WEXITSTATUS(*st) == 0) {
        Say(absl::StrCat("grpo: ", name, " done in ", absl::FormatDuration(absl::Trunc(absl::Now() - t0, absl::Seconds(1)))));
        return absl::OkStatus();
      }
      return absl::InternalError(absl::StrCat(name, " ", DescribeWaitStatus(*st), ". Last lines of ", spec.log_path,
                                              ":\n", TailOfFile(spec.log_path, 15)));
    }
    if (on_poll) on_poll();
    if (ctx.shutdown->Requested()) {
      child->Stop(grace);
      return absl::CancelledError(absl::StrCat(name, " interrupted"));
    }
    ctx.shutdown->WaitFor(absl::Milliseconds(200));
  }
}

std::vector<std::string> EvalArgs(const RunConfig& cfg, const PipelineContext& ctx, const std::string& model,
                                  const std::string& which) {
  return {"eval", "--model", model, "--data", cfg.eval.data, "--config", (ctx.run_dir / "config.yaml").string(),
          "--json", (ctx.run_dir / "eval" / (which + ".json")).string(), "--samples-out",
          (ctx.run_dir / "eval" / (which + "_samples.jsonl")).string(), "--threads",
          std::to_string(cfg.pipeline.base_threads)};
}

std::vector<std::string> SftSets(double lr, int64_t warmup, int64_t threads) {
  return {absl::StrCat("learner.lr=", lr), absl::StrCat("learner.warmup_steps=", warmup),
          "learner.lr_schedule=cosine", "learner.min_lr_ratio=0.1", "learner.weight_decay=0",
          "learner.micro_batch_size=16", absl::StrCat("learner.threads=", threads), "learner.world_size=1",
          "learner.rank=0", "learner.checkpoint_every=200", "learner.checkpoint_dir=", "learner.metrics_path=",
          "learner.dtype=fp32"};
}

absl::Status RunStagesBefore(RunConfig& cfg, const PipelineContext& ctx) {
  const PipelineConfig& p = cfg.pipeline;
  const fs::path data = ctx.run_dir / "data";
  // A generated task family: its train and held-out sets in data/ and, for a base model,
  // the corpus (data/pretrain.jsonl); written once (a resumed run keeps them).
  auto write_data = [&](const std::vector<Task>& train, const std::vector<Task>& test,
                        const std::function<std::vector<std::string>()>& corpus,
                        const std::string& what) -> absl::Status {
    fs::create_directories(data);
    if (absl::Status s = WriteDataset((data / "train.jsonl").string(), train); !s.ok()) return s;
    if (absl::Status s = WriteDataset((data / "test.jsonl").string(), test); !s.ok()) return s;
    Say(absl::StrCat("grpo: ", train.size(), " training and ", test.size(), " held-out ", what, " in ", data.string()));
    if (p.base_docs <= 0) return absl::OkStatus();
    std::string text;
    for (const std::string& d : corpus()) absl::StrAppend(&text, d, "\n");
    return WriteFileAtomic((data / "pretrain.jsonl").string(), text);
  };
  const bool have_data = fs::exists(data / "train.jsonl") && fs::exists(data / "test.jsonl");
  if (p.tasks == "chains" && !have_data) {
    ChainOptions o;
    o.train_tasks = cfg.data.num_tasks;
    o.test_tasks = p.test_tasks;
    o.min_operands = p.min_operands;
    o.max_operands = p.max_operands;
    o.max_operand = cfg.data.max_operand;
    o.operators = cfg.data.operators.find('*') == std::string::npos ? cfg.data.operators : "+-";
    o.seed = static_cast<uint64_t>(cfg.run.seed);
    o.words_share = p.words_share;
    ChainTasks t = GenerateChainTasks(o);
    CorpusOptions c;
    c.documents = p.base_docs;
    c.worked_share = p.base_worked_share;
    c.dialog_worked_share = p.base_dialog_worked_share;
    c.wrong_share = p.base_wrong_share;
    c.tagged_share = p.base_tagged_share;
    c.restated_share = p.base_restated_share;
    c.facts_share = p.base_facts_share;
    c.words_share = p.base_words_share;
    c.mixed_share = p.base_mixed_share;
    c.instruction_share = p.base_instruction_share;
    c.instruction_kept = p.base_instruction_kept;
    c.seed = static_cast<uint64_t>(cfg.run.seed);
    if (absl::Status s = write_data(t.train, t.test, [&] { return GeneratePretrainCorpus(o, c, t.test); },
                                    "tasks (disjoint)");
        !s.ok()) {
      return s;
    }
  } else if (p.tasks == "programs" && !have_data) {
    ProgramOptions o;
    o.train_tasks = cfg.data.num_tasks;
    o.test_tasks = p.test_tasks;
    o.tests_per_task = p.code_tests;
    o.max_constant = cfg.data.max_operand;
    o.seed = static_cast<uint64_t>(cfg.run.seed);
    ProgramTasks t = GenerateProgramTasks(o);
    ProgramCorpusOptions c;
    c.documents = p.base_docs;
    c.wrong_share = p.base_wrong_share;
    c.tagged_share = p.base_tagged_share;
    c.seed = static_cast<uint64_t>(cfg.run.seed);
    if (absl::Status s = write_data(t.train, t.test, [&] { return GenerateProgramCorpus(o, c, t.test); },
                                    "program tasks (disjoint, hidden tests)");
        !s.ok()) {
      return s;
    }
  }
  if (!p.tasks.empty()) {
    cfg.data.path = (data / "train.jsonl").string();
    if (cfg.eval.data.empty()) cfg.eval.data = (data / "test.jsonl").string();
    if (absl::Status s = WriteConfig(cfg, ctx); !s.ok()) return s;
  }
  if (p.base_docs > 0) {
    const fs::path base = ctx.run_dir / "base";
    if (!fs::exists(base / "model" / "model.safetensors")) {
      std::vector<std::string> init = {"init-model", "--arch", p.base_arch, "--preset", "tiny", "--out",
                                       (base / "init").string(), "--seed", std::to_string(cfg.run.seed),
                                       "--corpus", (data / "pretrain.jsonl").string(), "--merges",
                                       std::to_string(p.base_merges), "--numbers", p.base_numbers,
                                       "--hidden-size", std::to_string(p.base_hidden_size), "--intermediate-size",
                                       std::to_string(p.base_intermediate_size), "--layers",
                                       std::to_string(p.base_layers), "--heads", std::to_string(p.base_heads),
                                       "--kv-heads", std::to_string(p.base_kv_heads), "--context",
                                       std::to_string(p.base_context)};
      if (absl::Status s = RunStage("base-init", "a random base model and a tokenizer for the task's text", init, ctx);
          !s.ok()) {
        return s;
      }
      // Pretraining has its own optimiser settings; the GRPO learner's stay in config.yaml.
      std::vector<std::string> sft = {"sft", "--model", (base / "init").string(), "--data",
                                      (data / "pretrain.jsonl").string(), "--out", (base / "model").string(),
                                      "--run-dir", (base / "sft").string(), "--config",
                                      (ctx.run_dir / "config.yaml").string(), "--no-progress"};
      for (const std::string& kv : SftSets(p.base_lr, 20, p.base_threads)) sft.insert(sft.end(), {"--set", kv});
      if (absl::Status s = RunStage("base-pretrain",
                                    absl::StrCat("pretraining the base model on ", p.base_docs, " documents"), sft, ctx);
          !s.ok()) {
        return s;
      }
    }
    cfg.model.path = (base / "model").string();
    if (absl::Status s = WriteConfig(cfg, ctx); !s.ok()) return s;
  }
  if (p.eval_before_after && !cfg.model.path.empty() && !cfg.eval.data.empty() &&
      !fs::exists(ctx.run_dir / "eval" / "before.json")) {
    fs::create_directories(ctx.run_dir / "eval");
    if (absl::Status s = RunStage("eval-before", "evaluating the starting model on the held-out set",
                                  EvalArgs(cfg, ctx, cfg.model.path, "before"), ctx);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status RunStagesAfter(const RunConfig& cfg, const PipelineContext& ctx) {
  const PipelineConfig& p = cfg.pipeline;
  if (p.eval_before_after && !cfg.eval.data.empty() && !cfg.model.path.empty()) {
    const fs::path final_model = ctx.run_dir / "final_model";
    if (absl::Status s = RunStage("export", "exporting the trained policy",
                                  {"export", "--checkpoint", ctx.run_dir.string(), "--out", final_model.string()}, ctx);
        !s.ok()) {
      return s;
    }
    fs::create_directories(ctx.run_dir / "eval");
    if (absl::Status s = RunStage("eval-after", "evaluating the trained policy on the held-out set",
                                  EvalArgs(cfg, ctx, final_model.string(), "after"), ctx);
        !s.ok()) {
      return s;
    }
  }
  if (p.report) {
    absl::Status s = WriteRunReport(ctx.run_dir.string());
    if (!s.ok()) return s;
    Say(absl::StrCat("grpo: report ", (ctx.run_dir / "report.html").string()));
  }
  return absl::OkStatus();
}

}  // namespace grpo

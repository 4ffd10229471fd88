// grpo: the command-line entry point.
//   grpo run [--config FILE] [--set k=v]... [--max-steps N] [--run-dir DIR]
//   grpo gen-data --out FILE [--num-tasks N] [--max-operand M] [--operators +-*] [--seed S]
//   grpo config [--config FILE] [--set k=v]...   prints the resolved config
//   grpo tokenize --tokenizer PATH [--decode]     text <-> token ids (stdin to stdout)
//   grpo generate --model DIR --prompt TEXT [...]  sample completions (see generate_cmd.cc)
//   grpo init-model --arch A --preset P --out DIR  a random model + tokenizer in the HF layout
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <iostream>

#include <CLI/CLI.hpp>

#include "core/common/config.h"
#include "core/common/checksum.h"
#include "core/common/dataset.h"
#include "core/common/program_tasks.h"
#include "core/common/r1_tasks.h"
#include "tools/grpo/launcher.h"
#include "tools/grpo/report.h"
#include "tools/grpo/subcommands.h"

namespace {
std::string SelfDir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"grpo: train reasoning models with GRPO and rule-based rewards"};
  app.require_subcommand(0, 1);

  grpo::LaunchOptions run;
  auto* run_cmd = app.add_subcommand("run", "run coordinator, reward, learner and actor on this machine");
  run_cmd->add_option("--config", run.config_path, "run config YAML (default: the embedded demo)");
  run_cmd->add_option("--set", run.overrides, "override a config field: section.key=value (repeatable)");
  run_cmd->add_option("--max-steps", run.max_steps, "stop after N learner steps");
  run_cmd->add_option("--run-dir", run.run_dir, "run directory (default runs/<name>-<time>)");
  bool no_progress = false;
  run_cmd->add_flag("--no-progress", no_progress, "print one line per step instead of a progress bar");
  run_cmd->add_flag("--secure", run.secure,
                    "mutual TLS and a bearer token between the services (a development CA made in <run-dir>/tls)");
  run_cmd->add_flag("--prometheus", run.prometheus,
                    "start a Prometheus scraping the run's services, with the alert rules (needs the prometheus binary)");
  run_cmd->add_option("--prometheus-port", run.prometheus_port, "its port on 127.0.0.1 (default: a free one)");
  run_cmd->add_option("--stage", run.stage,
                      "a staged run (pipeline.stages, configs/r1.yaml): run this stage again alone, from the model of "
                      "the stage before it (with --run-dir)")
      ->check(CLI::IsMember(grpo::R1StageNames()));

  std::string out;
  grpo::ArithmeticOptions gen;
  auto* gen_cmd = app.add_subcommand("gen-data", "write an arithmetic dataset as JSONL");
  gen_cmd->add_option("--out", out, "output JSONL path")->required();
  gen_cmd->add_option("--num-tasks", gen.num_tasks, "number of tasks");
  gen_cmd->add_option("--max-operand", gen.max_operand, "operands are drawn from [0, M]");
  gen_cmd->add_option("--operators", gen.operators, "operators to use, from +-*");
  gen_cmd->add_option("--seed", gen.seed, "random seed");
  // The R1-Zero demo's chains ("14+7-9+18"): disjoint train and test sets and a corpus.
  std::string generator = "arithmetic", test_out, corpus_out;
  grpo::ChainOptions chains;
  grpo::CorpusOptions corpus;
  gen_cmd->add_option("--generator", generator,
                      "arithmetic (a op b), chains (R1-Zero demo: a+b-c+d) or programs (Python programs with hidden tests)");
  int64_t code_tests = 4;
  gen_cmd->add_option("--code-tests", code_tests, "programs: hidden test cases per task")->check(CLI::Range(1, 64));
  gen_cmd->add_option("--test-out", test_out, "chains, programs: held-out test set JSONL (disjoint from --out)");
  gen_cmd->add_option("--test-tasks", chains.test_tasks, "chains, programs: held-out tasks");
  gen_cmd->add_option("--min-operands", chains.min_operands, "chains: fewest numbers in a chain");
  gen_cmd->add_option("--max-operands", chains.max_operands, "chains: most numbers in a chain");
  gen_cmd->add_option("--corpus-out", corpus_out, "chains, programs: pretraining corpus JSONL ({\"text\"} lines for grpo sft)");
  gen_cmd->add_option("--corpus-docs", corpus.documents, "chains, programs: documents in the corpus");
  gen_cmd->add_option("--worked-share", corpus.worked_share, "chains: share of exercise answers worked step by step");
  gen_cmd->add_option("--dialog-worked-share", corpus.dialog_worked_share, "chains: share of transcript answers worked step by step");
  gen_cmd->add_option("--facts-share", corpus.facts_share, "chains: share of arithmetic-fact documents");
  gen_cmd->add_option("--wrong-share", corpus.wrong_share, "chains: share of direct corpus answers that are wrong; programs: of programs");
  gen_cmd->add_option("--tagged-share", corpus.tagged_share, "chains, programs: share of corpus documents with <think>/<answer> tags");
  gen_cmd->add_option("--restated-share", corpus.restated_share, "chains: share of worked solutions that end by restating the result")
      ->check(CLI::Range(0.0, 1.0));
  // Notations (issue #25): digits or number words for the chain of thought.
  gen_cmd->add_option("--words-share", chains.words_share,
                      "chains: share of tasks asking for the chain of thought in number words (> 0: every prompt names digits or words)");
  gen_cmd->add_option("--corpus-words-share", corpus.words_share, "chains: share of worked solutions and fact tables in number words");
  gen_cmd->add_option("--corpus-mixed-share", corpus.mixed_share, "chains: share of worked solutions switching notation part way");
  gen_cmd->add_option("--corpus-instruction-share", corpus.instruction_share, "chains: share of worked problems naming a notation");

  std::string report_dir;
  auto* report_cmd = app.add_subcommand("report", "write report.html for a run directory");
  report_cmd->add_option("--run-dir", report_dir, "the run directory")->required();

  std::string cfg_path;
  std::vector<std::string> cfg_sets;
  auto* cfg_cmd = app.add_subcommand("config", "print the resolved config (every field, with help)");
  cfg_cmd->add_option("--config", cfg_path, "run config YAML");
  cfg_cmd->add_option("--set", cfg_sets, "override: section.key=value");

  std::vector<grpo::Subcommand> subcommands;
  // Subcommands defined in their own files (tools/grpo/*_cmd.cc) register here.
  subcommands.push_back(grpo::AddTokenizeCommand(app));
  subcommands.push_back(grpo::AddGenerateCommand(app));
  subcommands.push_back(grpo::AddInitModelCommand(app));
  subcommands.push_back(grpo::AddSandboxCommand(app));
  subcommands.push_back(grpo::AddScoreCommand(app));
  subcommands.push_back(grpo::AddExportCommand(app));
  subcommands.push_back(grpo::AddSftCommand(app));
  subcommands.push_back(grpo::AddEvalCommand(app));
  subcommands.push_back(grpo::AddStatusCommand(app));

  CLI11_PARSE(app, argc, argv);

  for (const grpo::Subcommand& sub : subcommands) {
    if (!*sub.cmd) continue;
    try {
      return sub.run();
    } catch (const std::exception& e) {  // e.g. c10::Error: out of memory
      std::cerr << "grpo " << sub.cmd->get_name() << ": " << e.what() << "\n";
      return 1;
    }
  }

  // A generated task family: --out, --test-out and --corpus-out where given.
  auto write_generated = [&](const std::vector<grpo::Task>& train, const std::vector<grpo::Task>& test,
                             const std::function<std::vector<std::string>()>& make_corpus, int64_t docs,
                             const std::string& what) {
    absl::Status s = grpo::WriteDataset(out, train);
    if (s.ok() && !test_out.empty()) s = grpo::WriteDataset(test_out, test);
    if (s.ok() && !corpus_out.empty()) {
      std::string text;
      for (const std::string& d : make_corpus()) text += d + "\n";
      s = grpo::WriteFileAtomic(corpus_out, text);
    }
    if (!s.ok()) {
      std::cerr << "grpo gen-data: " << s.message() << "\n";
      return 1;
    }
    std::cerr << "wrote " << train.size() << " " << what << " to " << out
              << (test_out.empty() ? "" : ", " + std::to_string(test.size()) + " test tasks to " + test_out)
              << (corpus_out.empty() ? "" : ", " + std::to_string(docs) + " documents to " + corpus_out) << "\n";
    return 0;
  };
  if (*gen_cmd && generator == "chains") {
    chains.train_tasks = gen.num_tasks;
    chains.max_operand = gen.max_operand;
    chains.operators = gen.operators.find('*') == std::string::npos ? gen.operators : "+-";
    chains.seed = gen.seed;
    corpus.seed = gen.seed;
    grpo::ChainTasks t = grpo::GenerateChainTasks(chains);
    return write_generated(t.train, t.test, [&] { return grpo::GeneratePretrainCorpus(chains, corpus, t.test); },
                           corpus.documents, "train tasks");
  }
  if (*gen_cmd && generator == "programs") {
    grpo::ProgramOptions po;
    po.train_tasks = gen.num_tasks;
    po.test_tasks = chains.test_tasks;
    po.tests_per_task = code_tests;
    po.max_constant = gen.max_operand;
    po.seed = gen.seed;
    grpo::ProgramCorpusOptions pc;
    pc.documents = corpus.documents;
    if (gen_cmd->count("--wrong-share")) pc.wrong_share = corpus.wrong_share;
    if (gen_cmd->count("--tagged-share")) pc.tagged_share = corpus.tagged_share;
    pc.seed = gen.seed;
    grpo::ProgramTasks t = grpo::GenerateProgramTasks(po);
    return write_generated(t.train, t.test, [&] { return grpo::GenerateProgramCorpus(po, pc, t.test); },
                           pc.documents, "program tasks");
  }
  if (*gen_cmd) {
    if (generator != "arithmetic") {
      std::cerr << "grpo gen-data: --generator must be arithmetic, chains or programs\n";
      return 2;
    }
    if (gen.operators.empty() || gen.operators.find_first_not_of("+-*") != std::string::npos || gen.max_operand < 1 ||
        gen.num_tasks < 1) {
      std::cerr << "grpo gen-data: --operators must be a subset of +-*, --max-operand >= 1, --num-tasks >= 1\n";
      return 2;
    }
    absl::Status s = grpo::WriteDataset(out, grpo::GenerateArithmetic(gen));
    if (!s.ok()) {
      std::cerr << "grpo gen-data: " << s.message() << "\n";
      return 1;
    }
    std::cerr << "wrote " << gen.num_tasks << " tasks to " << out << "\n";
    return 0;
  }
  if (*report_cmd) {
    absl::Status s = grpo::WriteRunReport(report_dir);
    if (!s.ok()) {
      std::cerr << "grpo report: " << s.message() << "\n";
      return 1;
    }
    std::cerr << "wrote " << report_dir << "/report.html\n";
    return 0;
  }
  if (*cfg_cmd) {
    absl::StatusOr<grpo::RunConfig> cfg = grpo::LoadConfigWithOverrides(cfg_path, cfg_sets);
    if (!cfg.ok()) {
      std::cerr << "grpo config: " << cfg.status().message() << "\n";
      return 2;
    }
    std::cout << grpo::ConfigToYaml(*cfg);
    return 0;
  }
  // `grpo` alone and `grpo run` both run the demo.
  run.bin_dir = SelfDir();
  run.progress = !no_progress;
  return grpo::RunLocal(run);
}

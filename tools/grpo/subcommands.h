// Subcommands of the `grpo` tool that live in their own files. Each Add*Command registers
// its options on `app` and returns the subcommand plus the action main() runs when the
// user picked it (the action's return value is the process exit status).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace grpo {

struct Subcommand {
  CLI::App* cmd = nullptr;
  std::function<int()> run;
};

// grpo tokenize --tokenizer PATH [--decode]
Subcommand AddTokenizeCommand(CLI::App& app);
// grpo generate --model DIR --prompt TEXT ...
Subcommand AddGenerateCommand(CLI::App& app);
// grpo init-model --arch A --preset P --out DIR
Subcommand AddInitModelCommand(CLI::App& app);
// grpo sandbox --language python|cpp --file PROG [--stdin FILE] ...
Subcommand AddSandboxCommand(CLI::App& app);
// grpo score --input FILE.jsonl [--config FILE] [--output FILE]
Subcommand AddScoreCommand(CLI::App& app);
// grpo export --checkpoint DIR --out HFDIR
Subcommand AddExportCommand(CLI::App& app);
// grpo sft --model DIR --data FILE.jsonl --out DIR
Subcommand AddSftCommand(CLI::App& app);
// grpo eval --model DIR --data FILE.jsonl -k K ...
Subcommand AddEvalCommand(CLI::App& app);
// grpo status [--run-dir DIR | --coordinator ADDR] [--json]
Subcommand AddStatusCommand(CLI::App& app);

}  // namespace grpo

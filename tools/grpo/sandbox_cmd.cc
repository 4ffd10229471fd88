// grpo sandbox: run one program in the code sandbox and print the result JSON.
//   grpo sandbox --language python|cpp --file PROG [--stdin FILE] [--expected FILE]
//                [--comparison exact|whitespace|float] [--time-limit-ms N] [--memory-mb N]
//                [--scratch-root DIR] [--allow-no-cgroups]
// Without --expected the status is ok when the program exits 0; with it, the program's
// stdout is compared (one test case). Exit status: 0 when the run happened, whatever its
// status; 2 for usage errors (options are parsed here, so bad values also give 2); 1 when
// the sandbox itself could not run (e.g. no cgroups: needs root, or --allow-no-cgroups).
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "core/sandbox/sandbox.h"
#include "tools/grpo/subcommands.h"

namespace grpo {
namespace {

struct SandboxCmdOptions {
  std::string language, file, stdin_file, expected_file, comparison = "whitespace";
  std::string time_limit_ms = "2000", memory_mb = "256", scratch_root = "/tmp";
  bool allow_no_cgroups = false;
};

int Usage(const std::string& msg) {
  std::cerr << "grpo sandbox: " << msg << "\n";
  return 2;
}

bool ReadAll(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

int RunSandboxCmd(const SandboxCmdOptions& opt, const std::vector<std::string>& extras) {
  if (!extras.empty()) return Usage("unexpected argument '" + extras.front() + "' (see grpo sandbox --help)");
  if (opt.language.empty() || opt.file.empty()) return Usage("--language and --file are required");
  absl::StatusOr<sandbox::Language> language = sandbox::ParseLanguage(opt.language);
  if (!language.ok()) return Usage(std::string(language.status().message()));
  absl::StatusOr<sandbox::Comparison::Mode> mode = sandbox::ParseComparisonMode(opt.comparison);
  if (!mode.ok()) return Usage(std::string(mode.status().message()));
  sandbox::Limits limits;
  if (!absl::SimpleAtoi(opt.time_limit_ms, &limits.time_limit_ms) || limits.time_limit_ms < 1)
    return Usage("--time-limit-ms must be a positive integer, got '" + opt.time_limit_ms + "'");
  if (!absl::SimpleAtoi(opt.memory_mb, &limits.memory_mb) || limits.memory_mb < 8)
    return Usage("--memory-mb must be an integer >= 8, got '" + opt.memory_mb + "'");
  sandbox::Program program;
  program.language = *language;
  if (!ReadAll(opt.file, &program.source)) return Usage("cannot read --file " + opt.file);
  std::string input, expected;
  if (!opt.stdin_file.empty() && !ReadAll(opt.stdin_file, &input)) return Usage("cannot read --stdin " + opt.stdin_file);
  if (!opt.expected_file.empty() && !ReadAll(opt.expected_file, &expected))
    return Usage("cannot read --expected " + opt.expected_file);

  sandbox::SandboxOptions so;
  so.scratch_root = opt.scratch_root;
  so.allow_without_cgroups = opt.allow_no_cgroups;
  absl::StatusOr<std::unique_ptr<sandbox::Sandbox>> box = sandbox::Sandbox::Create(so);
  if (!box.ok()) {
    std::cerr << "grpo sandbox: " << box.status().message() << "\n";
    return 1;
  }
  sandbox::RunResult result;
  if (opt.expected_file.empty()) {
    result = (*box)->Execute(program, input, limits);
  } else {
    sandbox::RunRequest req;
    req.program = program;
    req.tests = {{input, expected}};
    req.limits = limits;
    req.comparison.mode = *mode;
    result = (*box)->Run(req);
  }
  // ToJson repairs program output to valid UTF-8; replacing here too keeps any other
  // string from ending the command with a JSON exception.
  std::cout << result.ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace

Subcommand AddSandboxCommand(CLI::App& app) {
  auto opt = std::make_shared<SandboxCmdOptions>();
  CLI::App* cmd = app.add_subcommand("sandbox", "run one program in the code sandbox, print the result JSON");
  // Values are taken as strings and checked in RunSandboxCmd so every usage error exits 2.
  cmd->allow_extras();
  cmd->add_option("--language", opt->language, "python or cpp");
  cmd->add_option("--file", opt->file, "the program's source file");
  cmd->add_option("--stdin", opt->stdin_file, "file fed to the program's stdin");
  cmd->add_option("--expected", opt->expected_file, "expected stdout: compare and report wrong_answer");
  cmd->add_option("--comparison", opt->comparison, "exact, whitespace (default) or float");
  cmd->add_option("--time-limit-ms", opt->time_limit_ms, "CPU time limit (wall limit is 2x + 1 s)");
  cmd->add_option("--memory-mb", opt->memory_mb, "memory limit of the run");
  cmd->add_option("--scratch-root", opt->scratch_root, "where per-run scratch directories are made");
  cmd->add_flag("--allow-no-cgroups", opt->allow_no_cgroups, "run with rlimits only when cgroups are unusable");
  return {cmd, [opt, cmd] { return RunSandboxCmd(*opt, cmd->remaining()); }};
}

}  // namespace grpo

// Reward throughput (a report, not a test).
//
//   build/bin/grpo-bench-reward [--seconds S] [--threads N] [--sandbox-workers W]
//
// Math: checks per second of MathChecker on a mixed set (numbers, fractions, LaTeX,
// sets, intervals, symbolic equivalence, wrong answers), single-threaded and with N
// threads, against the same run's speed of a plain string comparison of the same pairs.
// Sandbox: runs per second of a trivial Python program through Sandbox::Execute, forked
// from a zygote (the default) and with an interpreter started per run (python_zygote
// off, the sandbox before zygotes), and the per-run time against two baselines measured
// in the same run: a bare `bwrap --unshare-all --ro-bind / / /bin/true` and a plain
// `python3 -c pass`, both started with posix_spawn and waited for. Then throughput: W
// (default 4) sandboxed runs at once against W bare interpreter starts at once; the last
// line (the default sandbox's) is
//   sandbox: python R runs/s (bare interpreter B runs/s)
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/math/math_checker.h"
#include "core/sandbox/sandbox.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const std::vector<std::pair<std::string, std::string>> kMixed = {
    {"7", "7"},
    {"1,000", "1000"},
    {"0.50", "\\frac{1}{2}"},
    {"3\\frac{1}{2}", "\\frac{7}{2}"},
    {"\\dfrac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"},
    {"2x+2", "2(x+1)"},
    {"x^2-1", "(x-1)(x+1)"},
    {"\\{1,2,3\\}", "\\{3,2,1\\}"},
    {"[1,2)", "[1,2]"},
    {"(1,2)", "(2,1)"},
    {"x = 3", "3"},
    {"1.5\\times10^{3}", "1500"},
    {"50\\%", "50"},
    {"\\pi/2", "\\frac{\\pi}{2}"},
    {"12", "13"},
    {"\\sqrt{8}", "2\\sqrt{2}"},
    {"(-\\infty, 3]", "(-\\infty,3]"},
    {"10^{10^{10^{10}}}", "1"},
    {"\\text{Paris}", "Paris"},
    {"5 \\text{ cm}", "5"},
};

// Runs argv with posix_spawn and waits; returns the seconds it took.
double SpawnAndWait(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  auto t0 = Clock::now();
  pid_t pid;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int st;
  waitpid(pid, &st, 0);
  return Seconds(t0);
}

// Calls `once` from `workers` threads for `seconds`; returns calls per second (all
// threads together) and counts calls that returned false in *failed.
double RateOver(double seconds, int workers, const std::function<bool()>& once, int64_t* failed) {
  std::atomic<int64_t> done{0}, bad{0};
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int w = 0; w < workers; ++w) {
    ts.emplace_back([&] {
      while (Seconds(t0) < seconds) {
        if (!once()) ++bad;
        ++done;
      }
    });
  }
  for (auto& t : ts) t.join();
  if (failed) *failed = bad.load();
  return static_cast<double>(done.load()) / Seconds(t0);
}

double MeanOver(double seconds, const std::function<double()>& once) {
  double total = 0;
  int n = 0;
  auto t0 = Clock::now();
  while (n == 0 || Seconds(t0) < seconds) {
    total += once();
    ++n;
  }
  return total / n;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int threads = 2;
  int sandbox_workers = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--seconds") seconds = std::atof(argv[i + 1]);
    if (f == "--threads") threads = std::atoi(argv[i + 1]);
    if (f == "--sandbox-workers") sandbox_workers = std::atoi(argv[i + 1]);
  }

  // --- Math -------------------------------------------------------------------------
  grpo::math::CheckOptions mo;
  mo.max_workers = threads;
  grpo::math::MathChecker checker(mo);
  for (const auto& [p, g] : kMixed) checker.Check(p, g);  // start workers
  auto t0 = Clock::now();
  int64_t string_checks = 0;
  volatile bool sink = false;
  while (Seconds(t0) < 0.5) {
    for (const auto& [p, g] : kMixed) sink = sink ^ (p == g);
    string_checks += kMixed.size();
  }
  const double string_rate = string_checks / Seconds(t0);
  auto math_rate = [&](int n_threads) {
    std::atomic<int64_t> done{0};
    std::atomic<int64_t> errors{0};
    auto start = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < n_threads; ++t) {
      ts.emplace_back([&] {
        while (Seconds(start) < seconds) {
          for (const auto& [p, g] : kMixed) {
            if (!checker.Check(p, g).error.empty()) ++errors;
          }
          done += kMixed.size();
        }
      });
    }
    for (auto& t : ts) t.join();
    return std::make_pair(done / Seconds(start), errors.load());
  };
  auto [one, err1] = math_rate(1);
  auto [many, errn] = math_rate(threads);
  std::printf("math checker, %zu mixed pairs (%lld undecidable by design, e.g. a tower of powers)\n", kMixed.size(),
              static_cast<long long>(err1 / std::max<int64_t>(1, static_cast<int64_t>(one * seconds / kMixed.size()))));
  std::printf("  1 thread    %10.0f checks/s  (%.5f of a plain string compare, %.0f/s)\n", one, one / string_rate,
              string_rate);
  std::printf("  %d threads   %10.0f checks/s\n", threads, many);
  (void)errn;

  // --- Sandbox ----------------------------------------------------------------------
  auto sb = grpo::sandbox::Sandbox::Create(grpo::sandbox::SandboxOptions{});
  grpo::sandbox::SandboxOptions per_run_options;
  per_run_options.python_zygote = false;
  auto sb_per_run = grpo::sandbox::Sandbox::Create(per_run_options);
  if (!sb.ok() || !sb_per_run.ok()) {
    std::printf("sandbox unavailable: %s\n", std::string((sb.ok() ? sb_per_run : sb).status().message()).c_str());
    return 0;
  }
  grpo::sandbox::Program prog{grpo::sandbox::Language::kPython, "pass\n"};
  grpo::sandbox::Limits limits;
  const double bwrap_s = MeanOver(seconds, [] {
    return SpawnAndWait({"/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "/bin/true"});
  });
  const double python_s = MeanOver(seconds, [] { return SpawnAndWait({"/usr/bin/python3", "-c", "pass"}); });
  int bad = 0;
  auto mean_run = [&](const grpo::sandbox::Sandbox& box) {
    return MeanOver(seconds, [&] {
      auto t = Clock::now();
      auto r = box.Execute(prog, "", limits);
      if (r.status != grpo::sandbox::RunStatus::kOk) ++bad;
      return Seconds(t);
    });
  };
  const double per_run_s = mean_run(**sb_per_run);
  const double sandbox_s = mean_run(**sb);
  std::printf("\nsandbox, trivial Python program (cgroups: %s)\n", (*sb)->CgroupMode().c_str());
  std::printf("  bare bwrap /bin/true   %8.1f ms/run\n", bwrap_s * 1e3);
  std::printf("  plain python3 -c pass  %8.1f ms/run\n", python_s * 1e3);
  std::printf("  interpreter per run    %8.1f ms/run  = %.1f runs/s; %.2fx bwrap+python, overhead %.1f ms\n",
              per_run_s * 1e3, 1 / per_run_s, per_run_s / (bwrap_s + python_s), (per_run_s - bwrap_s - python_s) * 1e3);
  std::printf("  zygote (default)       %8.1f ms/run  = %.1f runs/s; %.2fx bwrap+python, %.2fx interpreter per run%s\n",
              sandbox_s * 1e3, 1 / sandbox_s, sandbox_s / (bwrap_s + python_s), sandbox_s / per_run_s,
              bad ? " (some runs failed!)" : "");

  // Throughput: `sandbox_workers` runs at once (the reward service's reward.sandbox_workers),
  // against bare interpreter starts (`python3 -c pass`, posix_spawn and wait) at the same
  // concurrency in the same run: what the cores allow a Python program without a sandbox.
  int64_t bare_failed = 0, boxed_failed = 0;
  const double bare_rate = RateOver(seconds, sandbox_workers, [] {
    return SpawnAndWait({"/usr/bin/python3", "-c", "pass"}) >= 0;
  }, &bare_failed);
  const double per_run_rate = RateOver(seconds, sandbox_workers, [&] {
    return (*sb_per_run)->Execute(prog, "", limits).status == grpo::sandbox::RunStatus::kOk;
  }, &boxed_failed);
  std::mutex failure_mu;
  std::string first_failure;  // the first failed run's result, for the report
  const double boxed_rate = RateOver(seconds, sandbox_workers, [&] {
    grpo::sandbox::RunResult r = (*sb)->Execute(prog, "", limits);
    if (r.status == grpo::sandbox::RunStatus::kOk) return true;
    std::lock_guard<std::mutex> lock(failure_mu);
    if (first_failure.empty()) first_failure = r.ToJson(400).dump();
    return false;
  }, &boxed_failed);
  std::printf("\nsandbox throughput, %d runs at once on %u cores\n", sandbox_workers, std::thread::hardware_concurrency());
  std::printf("  bare interpreter       %8.1f runs/s\n", bare_rate);
  std::printf("  interpreter per run    %8.1f runs/s  = %.2fx a bare interpreter start\n", per_run_rate,
              per_run_rate / bare_rate);
  std::printf("  zygote (default)       %8.1f runs/s  = %.2fx a bare interpreter start, %.2fx interpreter per run%s\n",
              boxed_rate, boxed_rate / bare_rate, boxed_rate / per_run_rate, boxed_failed ? " (some runs failed!)" : "");
  if (boxed_failed) std::printf("  %lld runs failed; the first: %s\n", static_cast<long long>(boxed_failed), first_failure.c_str());
  // The last line: what scripts read.
  std::printf("sandbox: python %.1f runs/s (bare interpreter %.1f runs/s)\n", boxed_rate, bare_rate);
  return boxed_failed || bare_failed ? 1 : 0;
}

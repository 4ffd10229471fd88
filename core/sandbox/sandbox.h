// The code sandbox: runs untrusted Python 3 and C++17 programs (the C++ compiled with g++
// inside the sandbox too) against stdin/stdout test cases and reports a status per test.
//
// Threat model. The program is hostile: it may fork-bomb, allocate without bound, spin,
// sleep, flood output, try to read or write host files, open network connections, kill
// its parent, daemonise to outlive the run, raise its limits, ptrace, mount, unshare, or
// leave files for a later run. It must get a status, never an escape, and the host (this
// process, other runs, the machine) must be unaffected. We trust the kernel, bubblewrap,
// and the read-only system image (/usr) the program runs against.
//
// Layers, each a backstop for the others (one execution = one process tree):
//   1. Credentials: the child drops to an unprivileged uid/gid (default 65534) with no
//      supplementary groups *before* exec'ing bwrap, so the user namespace bwrap makes maps
//      the sandbox uid to host uid 65534, never host root; /proc/sys and every root-owned
//      host file are out of reach even where a bind would expose them.
//   2. bubblewrap: --unshare-all (user, pid, net, ipc, uts, cgroup, mount namespaces),
//      --die-with-parent, --new-session, --cap-drop ALL; a root of tmpfs with /usr
//      read-only (and /bin, /lib* as the host has them), a few /etc files, a fresh /proc of
//      the new pid namespace (host pids invisible), a minimal /dev, the program read-only
//      at /box/prog and a fresh scratch read-write at /box/work (cwd) and /tmp: one tmpfs
//      per run, capped in bytes and inodes (Limits::scratch_mb, scratch_inodes), mounted
//      by this process on a mkdtemp dir under SandboxOptions::scratch_root and removed
//      afterwards (without CAP_SYS_ADMIN, bwrap's tmpfs capped in bytes only).
//      No network interface but loopback in a new net namespace.
//   3. seccomp (seccomp_filter.h): dangerous syscalls kill the process with SIGSYS; file
//      locks and inotify fail with an errno, since the read-only system files are shared
//      with concurrent runs and either would let runs signal to each other.
//   4. cgroups (cgroup.h): one group per execution with memory and pids limits and CPU
//      accounting; at the end every process in it is killed (v1 freeze+kill, v2
//      cgroup.kill) and it is removed. Create sweeps groups and scratch dirs left by a
//      crashed host process.
//   5. rlimits: CPU, FSIZE, NOFILE, CORE=0, NPROC (per-uid backstop; AS only when running
//      without cgroups).
//   6. The parent: a wall-clock deadline, stdout/stderr read concurrently through pipes
//      with a cap each (excess => output_limit and the run is killed), stdin written
//      through a pipe without blocking.
// Cgroups need root (or a delegated subtree). Without them Sandbox::Create fails, unless
// SandboxOptions::allow_without_cgroups is set; then every result says so in `notes`.
//
// Process-wide effect: Create sets SIGPIPE to SIG_IGN (a program that closes its stdin
// must not kill the host while we write to it); the child resets all signals to default.
//
// Python through zygotes (zygote.h, the default where cgroups are usable): an interpreter
// started once per concurrent run forks each program into fresh namespaces, scratch,
// limits and filter; a run then costs a fork and a few mounts.
//
// Cost: one execution of a trivial Python program takes ~45 ms wall here with an
// interpreter per run, against ~18 ms for the same bwrap + python3 without cgroups and ~10
// ms for bare python3. Most of the difference is cgroup v1 migration (each write to a
// cgroup.procs waits for an RCU grace period, ~8-12 ms per hierarchy on this kernel;
// memory, pids, freezer, cpuacct); a zygote joins its group once, and forks (see
// grpo-bench-reward for both).
//
// Thread safety: a Sandbox is immutable after Create and Run/Execute may be called from
// any number of threads at once (see SandboxPool for a bounded way to do that).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpo::sandbox {

class CgroupDriver;
namespace internal {
class PythonZygote;
}

enum class Language { kPython, kCpp };
// "python" / "python3" / "cpp" / "c++".
absl::StatusOr<Language> ParseLanguage(std::string_view name);
std::string_view LanguageName(Language language);

enum class RunStatus {
  kOk,
  kWrongAnswer,
  kTimeLimit,
  kMemoryLimit,
  kOutputLimit,
  kRuntimeError,
  kCompileError,
  kDenied,  // killed by seccomp (SIGSYS)
  kInternalError,
};
// The JSON spelling: "ok", "wrong_answer", ...
std::string_view RunStatusName(RunStatus status);

// How a program's stdout is compared with the expected output.
struct Comparison {
  enum class Mode {
    kExact,       // byte for byte
    kWhitespace,  // same tokens, any whitespace between them (trailing newline, CRLF, ...)
    kFloat,       // tokens equal, or both numbers within abs_tol or rel_tol
  };
  Mode mode = Mode::kWhitespace;
  double abs_tol = 1e-6;
  double rel_tol = 1e-6;
};
absl::StatusOr<Comparison::Mode> ParseComparisonMode(std::string_view name);  // exact|whitespace|float
bool OutputsMatch(std::string_view expected, std::string_view actual, const Comparison& comparison);

struct TestCase {
  std::string input;
  std::string expected_output;
};

struct Limits {
  int64_t time_limit_ms = 2000;     // CPU time of the whole run (all its processes)
  int64_t wall_limit_ms = 0;        // 0: 2 * time_limit_ms + 1000
  int64_t memory_mb = 256;          // cgroup memory limit (RSS + page cache + tmpfs)
  int64_t max_processes = 64;       // processes and threads of the run: its pids cgroup and its
                                    // RLIMIT_NPROC (the sandbox's own 2 processes added)
  int64_t output_limit_bytes = 1 << 20;  // stdout and stderr each
  int64_t file_size_mb = 16;        // RLIMIT_FSIZE
  int64_t open_files = 128;         // RLIMIT_NOFILE
  // The run's writable space, /box/work and /tmp together: one tmpfs capped in bytes and
  // in files (inodes), so a run cannot fill the host's disk or its inode table.
  int64_t scratch_mb = 64;
  int64_t scratch_inodes = 4096;
};

// One execution of the program (one test case, or the compile step).
struct ExecResult {
  RunStatus status = RunStatus::kInternalError;
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that killed the program, 0 if it exited
  std::string stdout_text;
  std::string stderr_text;
  int64_t wall_ms = 0;
  int64_t cpu_ms = 0;
  int64_t max_rss_kb = 0;
  std::string error;  // for internal_error: what failed
};

struct RunResult {
  // ok when every test passed; otherwise the status of the first failing test
  // (compile_error when compiling failed, internal_error when the sandbox failed).
  RunStatus status = RunStatus::kInternalError;
  // The first failing execution (or the last one when all passed): exit_code, signal,
  // stdout, stderr, wall_ms, cpu_ms, max_rss_kb of the result JSON come from it.
  ExecResult main;
  std::vector<ExecResult> tests;  // one per test case, in order (not for Execute)
  std::vector<bool> passed;       // per test
  int tests_passed = 0;
  std::vector<std::string> notes;  // degraded isolation, skipped tests, ...

  // {"status", "exit_code", "signal", "stdout", "stderr", "wall_ms", "cpu_ms",
  //  "max_rss_kb", "tests": [{"status", "passed", "wall_ms", ...}], "tests_passed",
  //  "notes"}; stdout/stderr truncated to max_text bytes (a "..." marker is appended).
  nlohmann::json ToJson(size_t max_text = 4096) const;
};

enum class RewardMode { kFractionPassed, kAllOrNothing };
// Share of tests passed (0 when there are none or compiling failed), or 1/0.
double Reward(const RunResult& result, RewardMode mode);

struct Program {
  Language language = Language::kPython;
  std::string source;
};

struct RunRequest {
  Program program;
  std::vector<TestCase> tests;
  Limits limits;
  Comparison comparison;
  bool stop_on_first_failure = false;  // skip the rest once a test fails (reward all-or-nothing)
};

struct SandboxOptions {
  std::string scratch_root = "/tmp";       // per-run scratch dirs are mkdtemp'd here
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "grpo-sandbox";  // groups are <root>[/<controller>]/<parent>/<id>
  bool allow_without_cgroups = false;     // degrade to rlimits only (reported in notes)
  // Each run's scratch is a tmpfs this process mounts (size and inode caps; needs
  // CAP_SYS_ADMIN). Without the permission, or with false, bwrap's own tmpfs is used: its
  // size is capped, its files only by the memory limit they are charged to (reported in notes).
  bool mount_scratch = true;
  uid_t uid = 65534;                       // host uid/gid the program runs as (never 0)
  gid_t gid = 65534;
  std::string bwrap = "/usr/bin/bwrap";
  std::string python = "/usr/bin/python3";  // must live under /usr (the only system tree bound)
  std::string cxx = "/usr/bin/g++";
  std::string prlimit = "/usr/bin/prlimit";  // util-linux: sets the run's RLIMIT_NPROC inside
  std::vector<std::string> cxx_flags = {"-std=c++17", "-O2", "-pipe"};
  // Python programs fork from an interpreter started once per concurrent run (zygote.h):
  // fresh namespaces, scratch, limits and filter per program, without an interpreter start
  // per program. Needs cgroups; where a zygote cannot start, runs fall back to bwrap and an
  // interpreter per program (and say so in their notes). false: always the latter.
  bool python_zygote = true;
  Limits compile_limits = {/*time_limit_ms=*/20000, /*wall_limit_ms=*/40000, /*memory_mb=*/1024,
                           /*max_processes=*/32, /*output_limit_bytes=*/1 << 20,
                           /*file_size_mb=*/64, /*open_files=*/256};
};

class Sandbox {
 public:
  // Checks bwrap and the interpreters exist, builds the seccomp filter, sets up cgroups.
  // Fails with a message naming what is missing (e.g. cgroups without root) unless
  // allow_without_cgroups.
  static absl::StatusOr<std::unique_ptr<Sandbox>> Create(SandboxOptions options);
  ~Sandbox();

  // Compiles (C++) and runs the program once per test, comparing stdout.
  RunResult Run(const RunRequest& request) const;
  // Compiles (C++) and runs the program once on `stdin_data`; status ok if it exits 0.
  RunResult Execute(const Program& program, const std::string& stdin_data, const Limits& limits) const;

  // "v1", "v2" or "none".
  std::string CgroupMode() const;
  const SandboxOptions& options() const { return options_; }

 private:
  struct Prepared;
  Sandbox(SandboxOptions options, std::string bpf, std::unique_ptr<CgroupDriver> cgroups,
          std::string scratch_note);
  // Writes the source into a fresh program dir and compiles it; on failure fills `out`.
  bool Prepare(const Program& program, Prepared& prepared, RunResult& out) const;
  // One execution of argv inside the sandbox with `prog_dir` read-only at /box/prog and a
  // fresh scratch dir at /box/work.
  // Runs with a fresh /proc of the run's pid namespace; where the runtime refuses that
  // mount (a container whose /proc is partly masked), from then on without any /proc.
  ExecResult ExecuteOnce(const std::vector<std::string>& argv, const std::string& prog_dir,
                         const std::string& stdin_data, const Limits& limits, bool prog_dir_writable) const;
  ExecResult ExecuteProcOrNot(const std::vector<std::string>& argv, const std::string& prog_dir,
                              const std::string& stdin_data, const Limits& limits, bool prog_dir_writable) const;
  ExecResult ExecuteWith(const std::vector<std::string>& argv, const std::string& prog_dir,
                         const std::string& stdin_data, const Limits& limits, bool prog_dir_writable,
                         bool fresh_proc) const;
  // Notes, on a result, that programs ran without /proc.
  void AddProcNote(RunResult& out) const;
  // One execution of a prepared program (Python through `zygote` when given); sets
  // compile_error for Python the interpreter refused. Prepares the program when the
  // zygote cannot run it (and turns zygotes off for later runs).
  ExecResult ExecuteProgram(const Program& program, Prepared& prepared, internal::PythonZygote* zygote,
                            const std::string& stdin_data, const Limits& limits, bool& compile_error,
                            RunResult& out) const;
  // An idle zygote, or a new one; null when Python does not run through zygotes.
  std::unique_ptr<internal::PythonZygote> TakeZygote(const Program& program) const;
  void ReturnZygote(std::unique_ptr<internal::PythonZygote> zygote) const;

  SandboxOptions options_;
  std::string bpf_;
  std::unique_ptr<CgroupDriver> cgroups_;  // null: running without cgroups
  // Empty when run scratch is a tmpfs this process mounts; else why not (a result note).
  std::string scratch_note_;
  // Set once a fresh proc mount was refused (the runtime cannot change under a process).
  mutable std::atomic<bool> no_fresh_proc_{false};
  // Linux >= 5.14: RLIMIT_NPROC counts processes per user namespace (a per-run bound).
  bool per_namespace_nproc_ = true;
  // Idle Python zygotes, at most kIdleZygotes; unused without cgroups, with
  // options_.python_zygote off, or once one could not run a program (zygote_off_, and
  // zygote_note_ says why, guarded by zygote_mu_).
  static constexpr size_t kIdleZygotes = 16;
  mutable std::mutex zygote_mu_;
  mutable std::vector<std::unique_ptr<internal::PythonZygote>> idle_zygotes_;
  mutable std::atomic<bool> zygote_off_{false};
  mutable std::atomic<int> zygote_failures_{0};  // in a row
  mutable std::string zygote_note_;
};

}  // namespace grpo::sandbox

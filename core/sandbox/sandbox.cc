// The sandbox's process plumbing: fork, drop credentials, join the cgroup, exec bwrap with
// the seccomp filter, feed stdin and read stdout/stderr under caps and a deadline, kill the
// whole group, classify. See sandbox.h for the design and the threat model.
#include "core/sandbox/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/sandbox/cgroup.h"
#include "core/sandbox/process.h"
#include "core/sandbox/zygote.h"
#include "core/sandbox/seccomp_filter.h"

namespace grpo::sandbox {
namespace {

using internal::AddSystemDirs;
using internal::ChildExec;
using internal::ChildPlan;
using internal::Classify;
using internal::Drain;
using internal::Ending;
using internal::Fd;
using internal::Io;
using internal::MakePipe;
using internal::NowMs;
using internal::Pump;

// Processes the sandbox itself adds to a run: the outer bwrap and its pid-1 init.
constexpr int64_t kSandboxOwnProcesses = 2;
// Fixed fds in the child: 0-2 stdio, 3 the seccomp BPF, 4 bwrap's JSON status.
constexpr int kSeccompFd = 3;
constexpr int kStatusFd = 4;

std::atomic<uint64_t> g_run_counter{0};


void RemoveTree(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // never follows symlinks the program left
}

// Scratch and program dirs are "<root>/grpo-sbx-{work,prog}-<pid>-XXXXXX", so a restarted
// host can sweep what a crashed one left (RemoveStaleScratch).
constexpr const char* kScratchPrefixes[] = {"grpo-sbx-work-", "grpo-sbx-prog-"};

// mkdtemp under `root`, owned by uid:gid, mode 0700.
absl::StatusOr<std::string> MakeScratch(const std::string& root, const char* prefix, uid_t uid, gid_t gid) {
  std::string tmpl = absl::StrCat(root, "/", prefix, ::getpid(), "-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr)
    return absl::InternalError(absl::StrCat("mkdtemp ", tmpl, ": ", std::strerror(errno)));
  if (::chown(tmpl.c_str(), uid, gid) != 0) {
    int e = errno;
    RemoveTree(tmpl);
    return absl::InternalError(absl::StrCat("chown ", tmpl, ": ", std::strerror(e)));
  }
  return tmpl;
}

void RemoveStaleScratch(const std::string& root) {
  DIR* d = ::opendir(root.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    for (const char* prefix : kScratchPrefixes)
      if (name.rfind(prefix, 0) == 0 && IsStaleRunId(name.substr(std::strlen(prefix)))) stale.push_back(name);
  }
  ::closedir(d);
  for (const std::string& name : stale) {
    (void)::umount2((root + "/" + name).c_str(), MNT_DETACH);  // a run's scratch tmpfs
    RemoveTree(root + "/" + name);
  }
}

// Mounts a tmpfs capped at `limits` on `dir` (made by MakeScratch) with two directories
// for the run, work/ (bound at /box/work) and tmp/ (at /tmp), owned by uid:gid.
absl::Status MountScratch(const std::string& dir, const Limits& limits, uid_t uid, gid_t gid) {
  // The root and the two directories are inodes too.
  const std::string opts = absl::StrCat("size=", std::max<int64_t>(limits.scratch_mb, 1), "m,nr_inodes=",
                                        std::max<int64_t>(limits.scratch_inodes, 0) + 3, ",mode=0700,uid=", uid,
                                        ",gid=", gid);
  if (::mount("grpo-sbx", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
    return absl::PermissionDeniedError(absl::StrCat("mount tmpfs on ", dir, ": ", std::strerror(errno)));
  for (const char* sub : {"/work", "/tmp"}) {
    const std::string path = dir + sub;
    if (::mkdir(path.c_str(), 0700) != 0 || ::chown(path.c_str(), uid, gid) != 0) {
      const int e = errno;
      (void)::umount2(dir.c_str(), MNT_DETACH);
      return absl::InternalError(absl::StrCat("scratch ", path, ": ", std::strerror(e)));
    }
  }
  return absl::OkStatus();
}

// Unmounts (when mounted) and removes a run's scratch directory.
void RemoveScratch(const std::string& dir, bool mounted) {
  if (dir.empty()) return;
  if (mounted) (void)::umount2(dir.c_str(), MNT_DETACH);
  RemoveTree(dir);
}

// Empty when this process can mount run scratch tmpfs under `root`; else the reason.
std::string ProbeScratchMount(const SandboxOptions& options) {
  if (!options.mount_scratch) return "scratch mounts turned off";
  absl::StatusOr<std::string> dir = MakeScratch(options.scratch_root, "grpo-sbx-work-", options.uid, options.gid);
  if (!dir.ok()) return std::string(dir.status().message());
  Limits probe;
  probe.scratch_mb = 1;
  probe.scratch_inodes = 1;
  absl::Status s = MountScratch(*dir, probe, options.uid, options.gid);
  RemoveScratch(*dir, s.ok());
  return s.ok() ? "" : std::string(s.message());
}

// CPU time used so far by live processes: their own (all threads) plus that of children
// they reaped. Processes we are about to kill are never reaped by their parents, so the
// rusage wait4 returns misses them; this snapshot, taken just before the kill, does not.
int64_t LiveCpuMs(const std::vector<pid_t>& pids) {
  static const long ticks = ::sysconf(_SC_CLK_TCK);
  int64_t total_ticks = 0;
  for (pid_t pid : pids) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t close = text.rfind(')');  // the command name may contain spaces and parens
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(text.substr(close + 2), ' ');
    // After the name: state is field 3; utime, stime, cutime, cstime are fields 14-17.
    int64_t v;
    for (size_t i = 11; i <= 14 && i < fields.size(); ++i)
      if (absl::SimpleAtoi(fields[i], &v)) total_ticks += v;
  }
  return ticks > 0 ? total_ticks * 1000 / ticks : 0;
}

// Parses bwrap's --json-status-fd stream: {"child-pid": N, ...} then {"exit-code": N}.
struct BwrapStatus {
  bool started = false;
  bool has_exit = false;
  int exit_code = -1;
};
BwrapStatus ParseBwrapStatus(const std::string& text) {
  BwrapStatus s;
  s.started = text.find("\"child-pid\"") != std::string::npos;
  size_t at = text.find("\"exit-code\"");
  if (at != std::string::npos) {
    at = text.find(':', at);
    if (at != std::string::npos) {
      size_t end = text.find_first_of("}\n", at);
      std::string num(text.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1));
      int v;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(num), &v)) {
        s.has_exit = true;
        s.exit_code = v;
      }
    }
  }
  return s;
}

}  // namespace

// A program written out (and compiled) in its own directory, removed with this.
struct Sandbox::Prepared {
  std::string dir;
  std::vector<std::string> argv;
  ~Prepared() { RemoveTree(dir); }
};

Sandbox::Sandbox(SandboxOptions options, std::string bpf, std::unique_ptr<CgroupDriver> cgroups,
                 std::string scratch_note)
    : options_(std::move(options)),
      bpf_(std::move(bpf)),
      cgroups_(std::move(cgroups)),
      scratch_note_(std::move(scratch_note)) {
  // RLIMIT_NPROC has been counted per user namespace (ucounts) since Linux 5.14.
  struct utsname u;
  int major = 0, minor = 0;
  if (::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2)
    per_namespace_nproc_ = major > 5 || (major == 5 && minor >= 14);
}

Sandbox::~Sandbox() = default;

absl::StatusOr<std::unique_ptr<Sandbox>> Sandbox::Create(SandboxOptions options) {
  // A host process that is not root (a container's user with every capability dropped)
  // cannot change its ids: programs run as its own uid and gid, which are not root's.
  if (::geteuid() != 0) {
    const SandboxOptions defaults;
    if ((options.uid != defaults.uid && options.uid != ::geteuid()) ||
        (options.gid != defaults.gid && options.gid != ::getegid()))
      return absl::InvalidArgumentError(absl::StrCat("the sandbox runs as uid ", ::geteuid(),
                                                     " and cannot switch its programs to uid ", options.uid,
                                                     " gid ", options.gid, " (that needs root)"));
    options.uid = ::geteuid();
    options.gid = ::getegid();
  }
  if (options.uid == 0 || options.gid == 0)
    return absl::InvalidArgumentError("the sandbox must run programs as an unprivileged uid/gid, not 0");
  for (const std::string* tool : {&options.bwrap, &options.python, &options.cxx, &options.prlimit}) {
    if (::access(tool->c_str(), X_OK) != 0)
      return absl::FailedPreconditionError(absl::StrCat(*tool, " is not executable: ", std::strerror(errno)));
  }
  for (const std::string* tool : {&options.python, &options.cxx, &options.prlimit}) {
    if (tool->rfind("/usr/", 0) != 0)
      return absl::InvalidArgumentError(absl::StrCat(*tool, " is outside /usr, which is all the sandbox binds"));
  }
  struct stat st;
  if (::stat(options.scratch_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return absl::FailedPreconditionError(absl::StrCat("scratch root ", options.scratch_root, " is not a directory"));
  absl::StatusOr<std::string> bpf = BuildSeccompBpf();
  if (!bpf.ok()) return bpf.status();
  if (bpf->size() > 60000) return absl::InternalError("seccomp BPF does not fit a pipe buffer");

  std::unique_ptr<CgroupDriver> cgroups;
  absl::StatusOr<std::unique_ptr<CgroupDriver>> driver = DetectCgroupDriver(options.cgroup_root, options.cgroup_parent);
  if (driver.ok()) {
    cgroups = std::move(*driver);
    cgroups->RemoveStale();  // left by a sandbox host that crashed mid-run
  } else if (!options.allow_without_cgroups) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox cannot use cgroups (", driver.status().message(),
        "); run as root or with a delegated cgroup subtree, or allow running without cgroups "
        "(rlimits only: no memory limit for the run as a whole, no run-wide kill)"));
  }
  RemoveStaleScratch(options.scratch_root);
  std::string scratch_note;
  if (std::string why = ProbeScratchMount(options); !why.empty()) {
    scratch_note = absl::StrCat("scratch capped in bytes only, its files by the memory limit (", why, ")");
  }
  // Writing stdin to a program that closed it must not kill this process.
  ::signal(SIGPIPE, SIG_IGN);
  return std::unique_ptr<Sandbox>(
      new Sandbox(std::move(options), std::move(*bpf), std::move(cgroups), std::move(scratch_note)));
}

std::string Sandbox::CgroupMode() const { return cgroups_ ? cgroups_->Name() : "none"; }

ExecResult Sandbox::ExecuteOnce(const std::vector<std::string>& argv, const std::string& prog_dir,
                                const std::string& stdin_data, const Limits& limits, bool compile) const {
  return ExecuteProcOrNot(argv, prog_dir, stdin_data, limits, compile);
}

ExecResult Sandbox::ExecuteProcOrNot(const std::vector<std::string>& argv, const std::string& prog_dir,
                                     const std::string& stdin_data, const Limits& limits, bool compile) const {
  if (!no_fresh_proc_.load(std::memory_order_relaxed)) {
    ExecResult r = ExecuteWith(argv, prog_dir, stdin_data, limits, compile, /*fresh_proc=*/true);
    // A container runtime that masks parts of its /proc (Docker's default masked and
    // read-only paths, Kubernetes' procMount: Default) makes the kernel refuse a new proc
    // mount in the sandbox's user namespace: bwrap's child says so and exits 1 before the
    // program starts, so running it again without /proc repeats nothing. (A program that
    // prints the same line only turns /proc off for later runs, which is no loosening.)
    static constexpr std::string_view kRefused = "bwrap: Can't mount proc on /newroot/proc:";
    if (r.exit_code != 1 || r.signal != 0 || r.stderr_text.compare(0, kRefused.size(), kRefused) != 0) return r;
    no_fresh_proc_.store(true, std::memory_order_relaxed);
  }
  return ExecuteWith(argv, prog_dir, stdin_data, limits, compile, /*fresh_proc=*/false);
}

ExecResult Sandbox::ExecuteWith(const std::vector<std::string>& argv, const std::string& prog_dir,
                                const std::string& stdin_data, const Limits& limits, bool compile,
                                bool fresh_proc) const {
  ExecResult r;
  const int64_t start = NowMs();
  auto internal = [&](std::string what) {
    r.status = RunStatus::kInternalError;
    r.error = std::move(what);
    r.wall_ms = NowMs() - start;
    return r;
  };

  // A fresh capped scratch (a tmpfs we mount, else bwrap's), unless compiling: then the
  // program dir is the work dir and /tmp is bwrap's tmpfs.
  const bool mounted_scratch = !compile && scratch_note_.empty();
  std::string scratch_dir;
  if (mounted_scratch) {
    absl::StatusOr<std::string> made = MakeScratch(options_.scratch_root, "grpo-sbx-work-", options_.uid, options_.gid);
    if (!made.ok()) return internal(std::string(made.status().message()));
    if (absl::Status s = MountScratch(*made, limits, options_.uid, options_.gid); !s.ok()) {
      RemoveTree(*made);
      return internal(std::string(s.message()));
    }
    scratch_dir = *made;
  }
  struct ScratchGuard {
    std::string dir;
    ~ScratchGuard() { RemoveScratch(dir, true); }
  } scratch_guard{scratch_dir};

  std::unique_ptr<RunCgroup> cgroup;
  if (cgroups_) {
    CgroupLimits cl;
    cl.memory_bytes = limits.memory_mb << 20;
    cl.max_pids = limits.max_processes + kSandboxOwnProcesses;
    absl::StatusOr<std::unique_ptr<RunCgroup>> made =
        cgroups_->CreateRun(absl::StrCat(::getpid(), "-", g_run_counter.fetch_add(1)), cl);
    if (!made.ok()) return internal(std::string(made.status().message()));
    cgroup = std::move(*made);
  }

  Fd stdin_r, stdin_w, stdout_r, stdout_w, stderr_r, stderr_w, sec_r, sec_w, status_r, status_w;
  if (!MakePipe(stdin_r, stdin_w) || !MakePipe(stdout_r, stdout_w) || !MakePipe(stderr_r, stderr_w) ||
      !MakePipe(sec_r, sec_w) || !MakePipe(status_r, status_w))
    return internal(absl::StrCat("pipe: ", std::strerror(errno)));
  if (::write(sec_w.get(), bpf_.data(), bpf_.size()) != static_cast<ssize_t>(bpf_.size()))
    return internal("cannot write the seccomp filter to its pipe");
  sec_w.reset();

  const int64_t wall_limit_ms = limits.wall_limit_ms > 0 ? limits.wall_limit_ms : 2 * limits.time_limit_ms + 1000;

  ChildPlan plan;
  std::vector<std::string>& a = plan.argv_storage;
  a = {options_.bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
       "--uid", std::to_string(options_.uid), "--gid", std::to_string(options_.gid), "--hostname", "sandbox"};
  AddSystemDirs(a);
  const std::string scratch_bytes = std::to_string(std::max<int64_t>(limits.scratch_mb, 1) << 20);
  if (fresh_proc) a.insert(a.end(), {"--proc", "/proc"});
  a.insert(a.end(), {"--dev", "/dev"});
  if (compile) {
    a.insert(a.end(), {"--size", scratch_bytes, "--tmpfs", "/tmp", "--bind", prog_dir, "/box/work"});
  } else if (mounted_scratch) {
    a.insert(a.end(), {"--bind", scratch_dir + "/tmp", "/tmp", "--ro-bind", prog_dir, "/box/prog", "--bind",
                       scratch_dir + "/work", "/box/work"});
  } else {
    // Two tmpfs: half the cap each.
    const std::string half = std::to_string(std::max<int64_t>(limits.scratch_mb, 2) << 19);
    a.insert(a.end(), {"--size", half, "--tmpfs", "/tmp", "--ro-bind", prog_dir, "/box/prog", "--size", half,
                       "--tmpfs", "/box/work"});
  }
  a.insert(a.end(), {"--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/box/work", "--cap-drop", "ALL", "--seccomp",
                     std::to_string(kSeccompFd), "--json-status-fd", std::to_string(kStatusFd), "--"});
  // RLIMIT_NPROC is set inside the sandbox, by prlimit exec'ing the program, not before
  // bwrap: since Linux 5.14 the kernel counts a process against the limit in its own user
  // namespace (bwrap makes one per run), so set there it bounds this run's processes and
  // threads alone. Set before bwrap it would count every process of the host uid: in a
  // container whose server runs as the programs' uid (issue #23's reward image), the
  // server's threads, the other replica's runs and a fork bomb in any of them would make
  // bwrap's own clone fail with EAGAIN. Older kernels count per uid only: there the limit
  // stays a backstop well above one run's share.
  const int64_t nproc = internal::RunProcessLimit(limits, kSandboxOwnProcesses, per_namespace_nproc_);
  a.insert(a.end(), {options_.prlimit, absl::StrCat("--nproc=", nproc, ":", nproc), "--"});
  a.insert(a.end(), argv.begin(), argv.end());
  plan.env_storage = internal::ProgramEnvironment();
  plan.Finish();
  if (cgroup) plan.procs_files = cgroup->ProcsFiles();
  plan.fds[0] = stdin_r.get();
  plan.fds[1] = stdout_w.get();
  plan.fds[2] = stderr_w.get();
  plan.fds[kSeccompFd] = sec_r.get();
  plan.fds[kStatusFd] = status_w.get();
  plan.uid = options_.uid;
  plan.drop_groups = ::geteuid() == 0;
  plan.gid = options_.gid;
  plan.parent = ::getpid();
  const rlim_t cpu_s = internal::CpuLimitSeconds(limits);
  auto rl = [](rlim_t soft, rlim_t hard) { return rlimit{soft, hard}; };
  plan.rlimits = {{RLIMIT_CPU, rl(cpu_s, cpu_s + 1)},
                  {RLIMIT_FSIZE, rl(static_cast<rlim_t>(limits.file_size_mb) << 20, static_cast<rlim_t>(limits.file_size_mb) << 20)},
                  {RLIMIT_NOFILE, rl(limits.open_files, limits.open_files)},
                  {RLIMIT_CORE, rl(0, 0)},
                  {RLIMIT_MEMLOCK, rl(0, 0)},
                  {RLIMIT_MSGQUEUE, rl(0, 0)}};
  if (!cgroup) {
    // Without a memory cgroup the address space is the only memory bound we have; leave
    // headroom for the interpreter's and allocator's reservations.
    rlim_t as = static_cast<rlim_t>(limits.memory_mb + 512) << 20;
    plan.rlimits.push_back({RLIMIT_AS, rl(as, as)});
  }

  pid_t pid = ::fork();
  if (pid < 0) return internal(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) ChildExec(plan);

  stdin_r.reset();
  stdout_w.reset();
  stderr_w.reset();
  sec_r.reset();
  status_w.reset();
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  Io io;
  io.stdin_w = std::move(stdin_w);
  io.stdout_r = std::move(stdout_r);
  io.stderr_r = std::move(stderr_r);
  std::string status_text;
  const size_t cap = static_cast<size_t>(limits.output_limit_bytes);
  // Without a pidfd, the end of both outputs ends the run.
  Pump(io, stdin_data, cap, &status_r, &status_text, pidfd.get(),
       [&] { return pidfd.get() < 0 && io.stdout_r.get() < 0 && io.stderr_r.get() < 0; }, start + wall_limit_ms);

  // End of the run, however it ended: nothing of it survives.
  Ending ending;
  ending.error = io.error;
  int64_t live_cpu_ms = 0;
  if (cgroup) {
    absl::StatusOr<std::vector<pid_t>> live = cgroup->Procs();
    if (live.ok()) live_cpu_ms = LiveCpuMs(*live);
    absl::Status st = cgroup->KillAll();
    if (!st.ok() && ending.error.empty()) ending.error = "could not kill every process of the run: " + std::string(st.message());
  } else {
    ::kill(pid, SIGKILL);  // bwrap's --die-with-parent and the pid namespace take the rest
  }
  Drain(io, cap, &status_r, &status_text);
  r.stdout_text = std::move(io.stdout_text);
  r.stderr_text = std::move(io.stderr_text);

  int wstatus = 0;
  struct rusage ru {};
  while (::wait4(pid, &wstatus, 0, &ru) < 0 && errno == EINTR) {
  }
  r.wall_ms = NowMs() - start;
  r.cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
  r.cpu_ms = std::max(r.cpu_ms, live_cpu_ms);
  // ru_maxrss of a forked child starts at the parent's RSS (kept across exec), so with a
  // cgroup the run's own peak is the better number (it includes page cache it caused).
  r.max_rss_kb = ru.ru_maxrss;
  if (cgroup) {
    ending.stats = cgroup->Stats();
    if (ending.stats.peak_memory_bytes >= 0) r.max_rss_kb = ending.stats.peak_memory_bytes / 1024;
    if (ending.stats.cpu_usage_us >= 0) r.cpu_ms = std::max(r.cpu_ms, ending.stats.cpu_usage_us / 1000);
    absl::Status st = cgroup->Remove();
    if (!st.ok() && ending.error.empty()) ending.error = "could not kill every process of the run: " + std::string(st.message());
  }

  // What happened to the program (bwrap reports 128+N when the program died of signal N).
  BwrapStatus bs = ParseBwrapStatus(status_text);
  if (bs.has_exit) {
    if (bs.exit_code > 128 && bs.exit_code < 128 + NSIG) {
      r.signal = bs.exit_code - 128;
    } else {
      r.exit_code = bs.exit_code;
    }
  } else if (WIFSIGNALED(wstatus)) {
    r.signal = WTERMSIG(wstatus);  // killed by us (or bwrap died) before it could report
  } else if (WIFEXITED(wstatus)) {
    r.exit_code = WEXITSTATUS(wstatus);
  }
  ending.started = bs.started;
  ending.not_started = "bwrap failed before starting the program: " + r.stderr_text;
  ending.output_exceeded = io.output_exceeded;
  ending.timed_out = io.timed_out;
  ending.time_limit_ms = limits.time_limit_ms;
  Classify(ending, r);
  return r;
}

bool Sandbox::Prepare(const Program& program, Prepared& prepared, RunResult& out) const {
  auto fail = [&](RunStatus status, ExecResult e, std::string error) {
    out.status = status;
    if (!error.empty()) e.error = std::move(error);
    e.status = status;
    out.main = std::move(e);
    return false;
  };
  absl::StatusOr<std::string> dir = MakeScratch(options_.scratch_root, "grpo-sbx-prog-", options_.uid, options_.gid);
  if (!dir.ok()) return fail(RunStatus::kInternalError, {}, std::string(dir.status().message()));
  prepared.dir = *dir;
  ::chmod(prepared.dir.c_str(), 0755);
  const char* name = program.language == Language::kPython ? "main.py" : "main.cc";
  {
    std::ofstream f(prepared.dir + "/" + name, std::ios::binary);
    f << program.source;
    if (!f) return fail(RunStatus::kInternalError, {}, "cannot write the program source");
  }
  if (program.language == Language::kPython) {
    prepared.argv = {options_.python, "-I", "-B", "/box/prog/main.py"};
    return true;
  }
  std::vector<std::string> cc = {options_.cxx};
  cc.insert(cc.end(), options_.cxx_flags.begin(), options_.cxx_flags.end());
  cc.insert(cc.end(), {"-o", "prog", "main.cc"});
  ExecResult compiled = ExecuteOnce(cc, prepared.dir, "", options_.compile_limits, /*compile=*/true);
  if (compiled.status == RunStatus::kInternalError) return fail(RunStatus::kInternalError, std::move(compiled), "");
  if (compiled.status != RunStatus::kOk) {
    std::string why = compiled.status == RunStatus::kTimeLimit     ? "compiling took too long"
                      : compiled.status == RunStatus::kMemoryLimit ? "compiling ran out of memory"
                                                                   : "";
    return fail(RunStatus::kCompileError, std::move(compiled), why);
  }
  // The compiled program is bound read-only later; make it root's so it stays as built.
  for (const char* f : {"", "/prog", "/main.cc"}) (void)!::chown((prepared.dir + f).c_str(), 0, 0);
  prepared.argv = {"/box/prog/prog"};
  return true;
}

namespace {

// Python reports a program it cannot compile (SyntaxError, IndentationError, TabError)
// before running any of it: exit status 1, no traceback, the error's name opening the
// last line of stderr. Such a run is a compile error, as a C++ program that g++ refuses.
// A program can print the same and exit 1 itself, but only to fail in another class.
bool PythonCompileError(const ExecResult& e) {
  if (e.status != RunStatus::kRuntimeError || e.exit_code != 1) return false;
  if (e.stderr_text.find("Traceback (most recent call last)") != std::string::npos) return false;
  std::string_view err = e.stderr_text;
  while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.remove_suffix(1);
  const size_t nl = err.rfind('\n');
  const std::string_view last = nl == std::string_view::npos ? err : err.substr(nl + 1);
  for (std::string_view name : {"SyntaxError:", "IndentationError:", "TabError:"}) {
    if (last.substr(0, name.size()) == name) return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<internal::PythonZygote> Sandbox::TakeZygote(const Program& program) const {
  if (program.language != Language::kPython || !options_.python_zygote || !cgroups_ ||
      zygote_off_.load(std::memory_order_relaxed))
    return nullptr;
  {
    std::lock_guard<std::mutex> lock(zygote_mu_);
    if (!idle_zygotes_.empty()) {
      std::unique_ptr<internal::PythonZygote> z = std::move(idle_zygotes_.back());
      idle_zygotes_.pop_back();
      return z;
    }
  }
  internal::ZygoteConfig config;
  config.options = &options_;
  config.bpf = &bpf_;
  config.cgroups = cgroups_.get();
  config.fresh_proc = !no_fresh_proc_.load(std::memory_order_relaxed);
  config.per_namespace_nproc = per_namespace_nproc_;
  return std::make_unique<internal::PythonZygote>(config);
}

void Sandbox::ReturnZygote(std::unique_ptr<internal::PythonZygote> zygote) const {
  if (!zygote || !zygote->running() || zygote_off_.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(zygote_mu_);
  if (idle_zygotes_.size() < kIdleZygotes) idle_zygotes_.push_back(std::move(zygote));
}

ExecResult Sandbox::ExecuteProgram(const Program& program, Prepared& prepared, internal::PythonZygote* zygote,
                                   const std::string& stdin_data, const Limits& limits, bool& compile_error,
                                   RunResult& out) const {
  compile_error = false;
  // A zygote's run holds its source in its scratch: one that would not fit half of it
  // runs the other way (not a zygote's failure).
  const bool fits = static_cast<int64_t>(program.source.size()) <= (std::max<int64_t>(limits.scratch_mb, 1) << 19);
  if (zygote != nullptr && fits && !zygote_off_.load(std::memory_order_relaxed)) {
    absl::StatusOr<internal::ZygoteRun> z = zygote->Run(program.source, stdin_data, limits);
    // Where the runtime masks parts of /proc, bwrap cannot mount one for the zygote
    // either: it starts again without (as ExecuteProcOrNot does for a run).
    if (!z.ok() && absl::StrContains(z.status().message(), "Can't mount proc") &&
        !no_fresh_proc_.exchange(true, std::memory_order_relaxed)) {
      zygote->set_fresh_proc(false);
      z = zygote->Run(program.source, stdin_data, limits);
    }
    if (z.ok()) {
      zygote_failures_.store(0, std::memory_order_relaxed);
      if (z->no_proc) no_fresh_proc_.store(true, std::memory_order_relaxed);
      compile_error = z->compile_error;
      return std::move(z->result);
    }
    // Nothing of the program ran: run it the other way. Three failures in a row turn
    // zygotes off for good (a kernel without nested user namespaces, say).
    if (zygote_failures_.fetch_add(1, std::memory_order_relaxed) + 1 >= 3) {
      std::lock_guard<std::mutex> lock(zygote_mu_);
      zygote_note_ = absl::StrCat("python programs start an interpreter each (", z.status().message(), ")");
      zygote_off_.store(true, std::memory_order_relaxed);
      idle_zygotes_.clear();
    }
  }
  if (prepared.argv.empty() && !Prepare(program, prepared, out)) return out.main;
  ExecResult e = ExecuteOnce(prepared.argv, prepared.dir, stdin_data, limits, false);
  compile_error = program.language == Language::kPython && PythonCompileError(e);
  if (compile_error) e.status = RunStatus::kCompileError;
  return e;
}

RunResult Sandbox::Run(const RunRequest& request) const {
  RunResult out;
  out.passed.assign(request.tests.size(), false);
  if (!cgroups_) out.notes.push_back("no cgroups: rlimits only (per-process memory/CPU, no run-wide kill)");
  if (!scratch_note_.empty()) out.notes.push_back(scratch_note_);
  std::unique_ptr<internal::PythonZygote> zygote = TakeZygote(request.program);
  Prepared prepared;
  if (!zygote && !Prepare(request.program, prepared, out)) {
    AddProcNote(out);
    return out;
  }
  out.status = RunStatus::kOk;
  bool have_failure = false;
  for (size_t i = 0; i < request.tests.size(); ++i) {
    if (have_failure && request.stop_on_first_failure) {
      out.notes.push_back(absl::StrCat("stopped after the first failure: ", request.tests.size() - i, " tests not run"));
      break;
    }
    bool compile_error = false;
    ExecResult e = ExecuteProgram(request.program, prepared, zygote.get(), request.tests[i].input, request.limits,
                                  compile_error, out);
    if (e.status == RunStatus::kOk && !OutputsMatch(request.tests[i].expected_output, e.stdout_text, request.comparison))
      e.status = RunStatus::kWrongAnswer;
    out.passed[i] = e.status == RunStatus::kOk;
    if (out.passed[i]) ++out.tests_passed;
    if (!out.passed[i] && !have_failure) {
      have_failure = true;
      out.status = e.status;
      out.main = e;
    }
    out.tests.push_back(std::move(e));
    if (compile_error && i + 1 < request.tests.size()) {  // every test would fail the same way
      out.notes.push_back(absl::StrCat("the program does not compile: ", request.tests.size() - i - 1,
                                       " tests not run"));
      break;
    }
  }
  ReturnZygote(std::move(zygote));
  if (!have_failure && !out.tests.empty()) out.main = out.tests.back();
  if (!have_failure && out.tests.empty()) out.main.status = RunStatus::kOk;
  AddProcNote(out);
  return out;
}

RunResult Sandbox::Execute(const Program& program, const std::string& stdin_data, const Limits& limits) const {
  RunResult out;
  if (!cgroups_) out.notes.push_back("no cgroups: rlimits only (per-process memory/CPU, no run-wide kill)");
  if (!scratch_note_.empty()) out.notes.push_back(scratch_note_);
  std::unique_ptr<internal::PythonZygote> zygote = TakeZygote(program);
  Prepared prepared;
  if (!zygote && !Prepare(program, prepared, out)) {
    AddProcNote(out);
    return out;
  }
  bool compile_error = false;
  out.main = ExecuteProgram(program, prepared, zygote.get(), stdin_data, limits, compile_error, out);
  ReturnZygote(std::move(zygote));
  out.status = out.main.status;
  AddProcNote(out);
  return out;
}

void Sandbox::AddProcNote(RunResult& out) const {
  if (zygote_off_.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(zygote_mu_);
    out.notes.push_back(zygote_note_);
  }
  if (no_fresh_proc_.load(std::memory_order_relaxed))
    out.notes.push_back(
        "no /proc in the sandbox: the container runtime masks parts of /proc, so the kernel refuses a fresh "
        "proc mount (Docker: security_opt systempaths=unconfined; Kubernetes: procMount: Unmasked gives "
        "programs a /proc of their own pid namespace again)");
}

}  // namespace grpo::sandbox

// The sandbox's process plumbing, shared by one-bwrap-per-run executions (sandbox.cc) and
// the Python zygote (zygote.cc): fds, the forked child that joins a cgroup, drops its
// credentials and execs bwrap, the loop that feeds stdin and reads capped output under a
// deadline, and the status rules. Internal to core/sandbox.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/sandbox/cgroup.h"
#include "core/sandbox/sandbox.h"

namespace grpo::sandbox::internal {

// After a run is over or killed, how long we keep draining its pipes (they close as soon
// as the last writer dies, so this only bounds a broken kernel or a no-cgroup run).
constexpr int kDrainTimeoutMs = 2000;

int64_t NowMs();

// An fd closed on scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

bool MakePipe(Fd& read_end, Fd& write_end);
void SetNonBlocking(int fd);

// Everything the forked child needs, built before fork: after fork only async-signal-safe
// calls are allowed (other threads may hold malloc's locks).
struct ChildPlan {
  std::vector<std::string> argv_storage, env_storage;
  std::vector<char*> argv, envp;
  std::vector<std::string> procs_files;
  int fds[5] = {-1, -1, -1, -1, -1};  // become 0..4
  uid_t uid = 65534;
  gid_t gid = 65534;
  bool drop_groups = true;  // false when this process is not root (it cannot)
  pid_t parent = 0;
  // SIGKILL when the forking thread ends (PR_SET_PDEATHSIG is per thread). A zygote, which
  // any thread may use after the one that started it is gone, ends instead when the host
  // closes its socket (or the host process dies).
  bool die_with_thread = true;
  struct Limit {
    int resource;
    struct rlimit value;
  };
  std::vector<Limit> rlimits;  // set before dropping credentials (RLIMIT_NPROC is set inside)

  void Finish() {
    for (std::string& s : argv_storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (std::string& s : env_storage) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

// In the forked child: signals to default, fds 0-4 from plan.fds, join the cgroups, set
// the rlimits, drop to the plan's uid/gid, die with the parent, exec argv.
[[noreturn]] void ChildExec(const ChildPlan& p);

// The environment every program gets.
std::vector<std::string> ProgramEnvironment();
// RLIMIT_CPU's soft limit, in seconds, for a run's CPU time limit (the hard one is 1 s more).
rlim_t CpuLimitSeconds(const Limits& limits);
// RLIMIT_NPROC for a run whose sandbox adds `own` processes: where Linux (>= 5.14) counts
// it per user namespace, the run's bound; elsewhere it counts every process of the uid, so
// only a backstop well above one run's share.
int64_t RunProcessLimit(const Limits& limits, int64_t own, bool per_namespace);

// bwrap arguments binding the host's /usr, /bin, /sbin, /lib* (symlinks kept) and the few
// /etc files python and g++ use, read-only.
void AddSystemDirs(std::vector<std::string>& a);

// The host's ends of one execution's stdio, and what came out of them.
struct Io {
  Fd stdin_w, stdout_r, stderr_r;
  std::string stdout_text, stderr_text;
  bool timed_out = false;
  bool output_exceeded = false;  // stdout or stderr went past the cap (the rest is dropped)
  std::string error;             // poll failed
};

// Feeds `stdin_data` (closing stdin after it) and reads stdout and stderr, each capped at
// `cap` bytes, and `side` (uncapped, into side_text, when given) until `done()` holds,
// `end_fd` (a pidfd, or -1) becomes readable, the output goes past the cap, or `deadline`
// (NowMs) passes. `side` is reset at its EOF.
void Pump(Io& io, const std::string& stdin_data, size_t cap, Fd* side, std::string* side_text, int end_fd,
          const std::function<bool()>& done, int64_t deadline);
// What the ended (or killed) run left in stdout, stderr and `side`, for at most
// kDrainTimeoutMs; each is reset at its EOF.
void Drain(Io& io, size_t cap, Fd* side, std::string* side_text);

// How an execution ended, for the status rules (sandbox/README.md).
struct Ending {
  std::string error;       // set: internal_error with this error
  bool started = true;     // false: the program never started (internal_error)
  std::string not_started; // why, when it did not start
  bool output_exceeded = false;
  bool timed_out = false;
  CgroupStats stats;       // oom_killed and hit_memory_limit of this run
  int64_t time_limit_ms = 0;
};
// Sets r.status (and r.error) from the ending and r.signal, r.exit_code, r.cpu_ms.
void Classify(const Ending& ending, ExecResult& r);

}  // namespace grpo::sandbox::internal

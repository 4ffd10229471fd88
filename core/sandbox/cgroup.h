// Per-run control groups for the sandbox: one cgroup per program execution, holding every
// process the run starts (bwrap, its init, the program, anything the program forks or
// daemonises), with a memory limit and a process-count limit. At the end of the run the
// whole group is killed and removed, which is how daemons that escaped their parent (double
// fork, setsid) are still caught.
//
// Two implementations behind one interface, picked at runtime by DetectCgroupDriver():
//   - CgroupV1: the legacy hierarchies memory/, pids/ and (if mounted) freezer/ and cpuacct/
//     under the cgroup root. Kill = freeze, SIGKILL every pid in cgroup.procs, thaw, repeat
//     until empty. cpuacct gives the CPU time of the whole tree, including processes whose
//     parents never reaped them (wait4's rusage misses those).
//   - CgroupV2: the unified hierarchy (cgroup.controllers at the root). Limits are
//     memory.max / memory.swap.max / pids.max; kill = write "1" to cgroup.kill.
// Both take the cgroup root as a path so tests can point them at a fake directory.
//
// Thread safety: a RunCgroup belongs to one run (one thread). CgroupDriver is immutable
// after creation and safe to share.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpo::sandbox {

// What a run's cgroup saw, read after the run.
struct CgroupStats {
  bool oom_killed = false;      // the kernel OOM killer fired inside the group
  bool hit_memory_limit = false;  // an allocation failed against the limit (failcnt / events max)
  int64_t peak_memory_bytes = -1;  // -1 when the kernel does not report it
  int64_t cpu_usage_us = -1;       // CPU of every process that ran in it (v1 cpuacct.usage,
                                   // v2 cpu.stat usage_usec); -1 if unknown
  // The counters behind the two flags, for a group that outlives one run (a zygote's):
  // its runs read the difference. -1 when the kernel does not report them.
  int64_t oom_kills = -1;
  int64_t limit_hits = -1;
};

class RunCgroup {
 public:
  virtual ~RunCgroup() = default;
  // Files the child writes its own pid into (before exec) to join the group.
  virtual const std::vector<std::string>& ProcsFiles() const = 0;
  // Kills every process in the group and waits (bounded) until it is empty.
  virtual absl::Status KillAll() = 0;
  // Number of processes still in the group (for tests and checks), or an error.
  virtual absl::StatusOr<int> CountProcs() const = 0;
  // The processes (thread-group ids, host pid namespace) in the group now.
  virtual absl::StatusOr<std::vector<pid_t>> Procs() const = 0;
  virtual CgroupStats Stats() const = 0;
  // Starts peak_memory_bytes again from the present usage (v1 memory.max_usage_in_bytes);
  // an error where the kernel cannot (v2 before Linux 6.12 keeps one peak per group).
  virtual absl::Status ResetPeak() = 0;
  // Removes the group's directories; KillAll() first. Idempotent.
  virtual absl::Status Remove() = 0;
};

struct CgroupLimits {
  int64_t memory_bytes = 256ll << 20;
  int64_t max_pids = 64;
};

// Creates per-run cgroups below <root>/<parent> (v2) or <root>/<controller>/<parent> (v1).
class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;
  virtual std::string Name() const = 0;  // "v1" or "v2"
  // Run ids must be "<pid of the creating process>-<anything>", so that RemoveStale can
  // tell the groups of a crashed sandbox host from those of live ones.
  virtual absl::StatusOr<std::unique_ptr<RunCgroup>> CreateRun(const std::string& id,
                                                               const CgroupLimits& limits) const = 0;
  // Kills and removes run groups whose creating process no longer exists; returns how many.
  virtual int RemoveStale() const = 0;
};

// True when `id` starts with "<pid>-" and that pid is not a live process.
bool IsStaleRunId(const std::string& id);

// cgroup v1: memory + pids controllers required, freezer and cpuacct used when present.
class CgroupV1Driver : public CgroupDriver {
 public:
  // Checks the hierarchies exist and creates the parent groups.
  static absl::StatusOr<std::unique_ptr<CgroupV1Driver>> Create(const std::string& root, const std::string& parent);
  std::string Name() const override { return "v1"; }
  absl::StatusOr<std::unique_ptr<RunCgroup>> CreateRun(const std::string& id, const CgroupLimits& limits) const override;
  int RemoveStale() const override;

 private:
  CgroupV1Driver(std::string memory, std::string pids, std::string freezer, std::string cpuacct)
      : memory_parent_(std::move(memory)),
        pids_parent_(std::move(pids)),
        freezer_parent_(std::move(freezer)),
        cpuacct_parent_(std::move(cpuacct)) {}
  // freezer_parent_ and cpuacct_parent_ are empty where the hierarchy is not mounted.
  std::string memory_parent_, pids_parent_, freezer_parent_, cpuacct_parent_;
};

// cgroup v2: memory + pids must be available; enables them in the parent's subtree_control.
class CgroupV2Driver : public CgroupDriver {
 public:
  static absl::StatusOr<std::unique_ptr<CgroupV2Driver>> Create(const std::string& root, const std::string& parent);
  std::string Name() const override { return "v2"; }
  absl::StatusOr<std::unique_ptr<RunCgroup>> CreateRun(const std::string& id, const CgroupLimits& limits) const override;
  int RemoveStale() const override;

 private:
  explicit CgroupV2Driver(std::string parent) : parent_(std::move(parent)) {}
  std::string parent_;
};

// Looks at `root` (normally /sys/fs/cgroup): unified hierarchy -> v2, memory/ and pids/
// hierarchies -> v1, else an error saying what is missing.
absl::StatusOr<std::unique_ptr<CgroupDriver>> DetectCgroupDriver(const std::string& root, const std::string& parent);

}  // namespace grpo::sandbox

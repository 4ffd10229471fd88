// A sandbox worker's Python zygote: an interpreter started once, inside bubblewrap as the
// unprivileged sandbox uid and in a cgroup of its own, that forks every program into new
// user, mount, pid, IPC and UTS namespaces with fresh scratch, limits, no capabilities and
// the sandbox's seccomp filter (zygote.py says how). A run then costs a fork and a few
// mounts instead of bwrap and an interpreter start: the interpreter's start-up, a third to
// half of a sandboxed Python run, is paid once per zygote.
//
// What a zygote's runs share, and why it is safe: the zygote's network namespace (loopback
// only; a run's sockets close with its processes, and the runs of one zygote never overlap)
// and its cgroup (memory, process and CPU accounting are read as differences over the run;
// the memory peak is reset per run where the kernel can, cgroup v1). Nothing a program
// writes survives it: its files are on its own tmpfs, its processes die with its pid
// namespace, its System V IPC with its IPC namespace, its interpreter state with its forked
// copy.
//
// A run that ends by the wall deadline or the output cap kills the zygote's whole group;
// the next run starts a new zygote.
//
// Thread safety: one thread at a time (Sandbox hands each idle zygote to one run).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/sandbox/cgroup.h"
#include "core/sandbox/process.h"
#include "core/sandbox/sandbox.h"

namespace grpo::sandbox::internal {

// What every zygote of a sandbox is made with.
struct ZygoteConfig {
  const SandboxOptions* options = nullptr;
  const std::string* bpf = nullptr;      // the seccomp filter
  const CgroupDriver* cgroups = nullptr;  // never null: zygotes need a group to live in
  bool fresh_proc = true;                 // bwrap mounts a /proc for the zygote
  bool per_namespace_nproc = true;        // as Sandbox: RLIMIT_NPROC counts per user namespace
};

// How a zygote run went, beyond the ExecResult.
struct ZygoteRun {
  ExecResult result;
  bool compile_error = false;  // the source did not compile (known before any of it ran)
  bool no_proc = false;        // the kernel refused the program a /proc of its own
};

class PythonZygote {
 public:
  explicit PythonZygote(const ZygoteConfig& config);
  ~PythonZygote();
  PythonZygote(const PythonZygote&) = delete;
  PythonZygote& operator=(const PythonZygote&) = delete;

  // Runs `source` once on `stdin_data`, starting the zygote first when there is none (or
  // when `limits` need another group). An error status: the zygote could not run it (it
  // did not start, or could not set a run up); nothing of the program ran, and the caller
  // can run it another way.
  absl::StatusOr<ZygoteRun> Run(const std::string& source, const std::string& stdin_data, const Limits& limits);

  // The zygote process tree lives.
  bool running() const { return pid_ > 0; }
  // Whether bwrap mounts a /proc for the zygote, from its next start on.
  void set_fresh_proc(bool fresh) { config_.fresh_proc = fresh; }

 private:
  absl::Status Start(const Limits& limits);
  // Kills the zygote's group, reaps bwrap, removes the group.
  void Stop();

  ZygoteConfig config_;
  std::unique_ptr<RunCgroup> cgroup_;
  pid_t pid_ = -1;  // the bwrap that runs the zygote
  Fd sock_;         // to the zygote (zygote.py's fd 3)
  int64_t memory_mb_ = -1;
  int64_t max_processes_ = -1;
  bool peak_resets_ = true;  // cleared once the kernel cannot reset the memory peak
};

}  // namespace grpo::sandbox::internal

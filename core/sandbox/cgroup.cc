// cgroup v1 and v2 drivers for per-run sandbox groups; see cgroup.h.
#include "core/sandbox/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace grpo::sandbox {
namespace {

// How long KillAll waits for a group to empty or to freeze. Bounded polling of the kernel's
// own state (there is no event to wait on portably for v1); each poll is 1 ms.
constexpr int kKillPollMs = 1;
constexpr int kKillTimeoutMs = 5000;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::out | std::ios::trunc);
  if (!f) return absl::InternalError(absl::StrCat("cannot open ", path, " for writing: ", std::strerror(errno)));
  f << content;
  f.flush();
  if (!f) return absl::InternalError(absl::StrCat("cannot write '", content, "' to ", path, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return absl::OkStatus();
  // One left by a root process exists but is not this (unprivileged) process's to use.
  if (errno == EEXIST) {
    if (::access(path.c_str(), W_OK | X_OK) == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("cannot write cgroup ", path, ": ", std::strerror(errno),
                                            " (the sandbox needs root or a delegated cgroup subtree)"));
  }
  return absl::InternalError(absl::StrCat("cannot create cgroup ", path, ": ", std::strerror(errno),
                                          " (the sandbox needs root or a delegated cgroup subtree)"));
}

void SleepMs(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  ::nanosleep(&ts, nullptr);
}

// Reads "key value" lines (memory.events, memory.oom_control) into the value of `key`.
int64_t KeyedValue(const std::string& path, const std::string& key) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t v;
    if (kv.size() == 2 && kv[0] == key && absl::SimpleAtoi(kv[1], &v)) return v;
  }
  return -1;
}

int64_t SingleValue(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  int64_t v;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &v)) return -1;
  return v;
}

absl::StatusOr<std::vector<pid_t>> ReadProcs(const std::string& procs_file) {
  absl::StatusOr<std::string> text = ReadFile(procs_file);
  if (!text.ok()) return text.status();
  std::vector<pid_t> pids;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    int pid;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) pids.push_back(pid);
  }
  return pids;
}

// SIGKILLs what is in `procs_file` until it reads empty or the timeout passes. `freeze`
// and `thaw` (may be empty) bracket each kill round so a fork bomb cannot outrun it.
absl::Status KillLoop(const std::string& procs_file, const std::function<void()>& freeze,
                      const std::function<void()>& thaw) {
  for (int waited = 0; waited < kKillTimeoutMs; waited += kKillPollMs) {
    absl::StatusOr<std::vector<pid_t>> pids = ReadProcs(procs_file);
    if (!pids.ok()) return pids.status();
    if (pids->empty()) return absl::OkStatus();
    if (freeze) freeze();
    pids = ReadProcs(procs_file);
    if (pids.ok())
      for (pid_t pid : *pids) ::kill(pid, SIGKILL);
    if (thaw) thaw();
    SleepMs(kKillPollMs);
  }
  return absl::DeadlineExceededError(absl::StrCat("processes survive in ", procs_file, " after SIGKILL"));
}

// Names of the subdirectories of `dir` (none if it cannot be read).
std::vector<std::string> SubDirs(const std::string& dir) {
  std::vector<std::string> out;
  if (dir.empty()) return out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != ".." && e->d_type == DT_DIR) out.push_back(name);
  }
  ::closedir(d);
  return out;
}

absl::Status RemoveDir(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  // A just-killed group may briefly still count dying tasks: retry rmdir (bounded).
  for (int waited = 0; waited < kKillTimeoutMs; waited += kKillPollMs) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
    if (errno != EBUSY) break;
    SleepMs(kKillPollMs);
  }
  return absl::InternalError(absl::StrCat("cannot remove cgroup ", dir, ": ", std::strerror(errno)));
}

// ---- v1 ----

class RunCgroupV1 : public RunCgroup {
 public:
  RunCgroupV1(std::string memory, std::string pids, std::string freezer, std::string cpuacct)
      : memory_(std::move(memory)), pids_(std::move(pids)), freezer_(std::move(freezer)), cpuacct_(std::move(cpuacct)) {
    procs_files_ = {memory_ + "/cgroup.procs", pids_ + "/cgroup.procs"};
    if (!freezer_.empty()) procs_files_.push_back(freezer_ + "/cgroup.procs");
    if (!cpuacct_.empty()) procs_files_.push_back(cpuacct_ + "/cgroup.procs");
  }
  ~RunCgroupV1() override { (void)Remove(); }

  const std::vector<std::string>& ProcsFiles() const override { return procs_files_; }

  absl::Status KillAll() override {
    std::function<void()> freeze, thaw;
    if (!freezer_.empty()) {
      freeze = [this] {
        (void)WriteFile(freezer_ + "/freezer.state", "FROZEN");
        for (int waited = 0; waited < 500; waited += kKillPollMs) {
          absl::StatusOr<std::string> s = ReadFile(freezer_ + "/freezer.state");
          if (!s.ok() || absl::StripAsciiWhitespace(*s) == "FROZEN") return;
          SleepMs(kKillPollMs);
        }
      };
      thaw = [this] { (void)WriteFile(freezer_ + "/freezer.state", "THAWED"); };
    }
    return KillLoop(pids_ + "/cgroup.procs", freeze, thaw);
  }

  absl::StatusOr<std::vector<pid_t>> Procs() const override { return ReadProcs(pids_ + "/cgroup.procs"); }

  absl::StatusOr<int> CountProcs() const override {
    absl::StatusOr<std::vector<pid_t>> pids = ReadProcs(pids_ + "/cgroup.procs");
    if (!pids.ok()) return pids.status();
    return static_cast<int>(pids->size());
  }

  CgroupStats Stats() const override {
    CgroupStats s;
    s.limit_hits = SingleValue(memory_ + "/memory.failcnt");
    s.oom_kills = KeyedValue(memory_ + "/memory.oom_control", "oom_kill");
    s.hit_memory_limit = s.limit_hits > 0;
    s.oom_killed = s.oom_kills > 0;
    s.peak_memory_bytes = SingleValue(memory_ + "/memory.max_usage_in_bytes");
    if (!cpuacct_.empty()) {
      int64_t ns = SingleValue(cpuacct_ + "/cpuacct.usage");
      if (ns >= 0) s.cpu_usage_us = ns / 1000;
    }
    return s;
  }

  absl::Status ResetPeak() override { return WriteFile(memory_ + "/memory.max_usage_in_bytes", "0"); }

  absl::Status Remove() override {
    if (removed_) return absl::OkStatus();
    (void)KillAll();
    absl::Status st = RemoveDir(memory_);
    absl::Status st2 = RemoveDir(pids_);
    absl::Status st3 = RemoveDir(freezer_);
    (void)RemoveDir(cpuacct_);
    removed_ = true;
    if (!st.ok()) return st;
    if (!st2.ok()) return st2;
    return st3;
  }

 private:
  std::string memory_, pids_, freezer_, cpuacct_;  // freezer_, cpuacct_ empty if not mounted
  std::vector<std::string> procs_files_;
  bool removed_ = false;
};

// ---- v2 ----

class RunCgroupV2 : public RunCgroup {
 public:
  explicit RunCgroupV2(std::string dir) : dir_(std::move(dir)) { procs_files_ = {dir_ + "/cgroup.procs"}; }
  ~RunCgroupV2() override { (void)Remove(); }

  const std::vector<std::string>& ProcsFiles() const override { return procs_files_; }

  absl::Status KillAll() override {
    // cgroup.kill (Linux 5.14+) kills the whole subtree atomically; older v2 kernels get the
    // kill loop (v2 has cgroup.freeze too, but cgroup.kill makes it unnecessary).
    if (Exists(dir_ + "/cgroup.kill")) {
      absl::Status st = WriteFile(dir_ + "/cgroup.kill", "1");
      if (!st.ok()) return st;
      for (int waited = 0; waited < kKillTimeoutMs; waited += kKillPollMs) {
        if (KeyedValue(dir_ + "/cgroup.events", "populated") == 0) return absl::OkStatus();
        SleepMs(kKillPollMs);
      }
      return absl::DeadlineExceededError(absl::StrCat("cgroup ", dir_, " still populated after cgroup.kill"));
    }
    return KillLoop(dir_ + "/cgroup.procs", nullptr, nullptr);
  }

  absl::StatusOr<std::vector<pid_t>> Procs() const override { return ReadProcs(dir_ + "/cgroup.procs"); }

  absl::StatusOr<int> CountProcs() const override {
    absl::StatusOr<std::vector<pid_t>> pids = ReadProcs(dir_ + "/cgroup.procs");
    if (!pids.ok()) return pids.status();
    return static_cast<int>(pids->size());
  }

  CgroupStats Stats() const override {
    CgroupStats s;
    s.limit_hits = KeyedValue(dir_ + "/memory.events", "max");
    s.oom_kills = KeyedValue(dir_ + "/memory.events", "oom_kill");
    s.hit_memory_limit = s.limit_hits > 0;
    s.oom_killed = s.oom_kills > 0;
    s.peak_memory_bytes = SingleValue(dir_ + "/memory.peak");
    s.cpu_usage_us = KeyedValue(dir_ + "/cpu.stat", "usage_usec");
    return s;
  }

  // Linux 6.12+ resets memory.peak by a write, but only as read through the same open
  // file; one group's peak is all older kernels keep.
  absl::Status ResetPeak() override {
    return absl::UnimplementedError("cgroup v2 keeps one memory peak per group");
  }

  absl::Status Remove() override {
    if (removed_) return absl::OkStatus();
    (void)KillAll();
    removed_ = true;
    return RemoveDir(dir_);
  }

 private:
  std::string dir_;
  std::vector<std::string> procs_files_;
  bool removed_ = false;
};

}  // namespace

bool IsStaleRunId(const std::string& id) {
  size_t dash = id.find('-');
  int pid;
  if (dash == std::string::npos || !absl::SimpleAtoi(id.substr(0, dash), &pid) || pid <= 0) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

int CgroupV1Driver::RemoveStale() const {
  std::vector<std::string> ids;
  for (const std::string& parent : {memory_parent_, pids_parent_, freezer_parent_, cpuacct_parent_})
    for (std::string& id : SubDirs(parent))
      if (std::find(ids.begin(), ids.end(), id) == ids.end() && IsStaleRunId(id)) ids.push_back(std::move(id));
  for (const std::string& id : ids) {
    RunCgroupV1 stale(memory_parent_ + "/" + id, pids_parent_ + "/" + id,
                      freezer_parent_.empty() ? "" : freezer_parent_ + "/" + id,
                      cpuacct_parent_.empty() ? "" : cpuacct_parent_ + "/" + id);
    (void)stale.Remove();
  }
  return static_cast<int>(ids.size());
}

int CgroupV2Driver::RemoveStale() const {
  int n = 0;
  for (const std::string& id : SubDirs(parent_)) {
    if (!IsStaleRunId(id)) continue;
    RunCgroupV2 stale(parent_ + "/" + id);
    (void)stale.Remove();
    ++n;
  }
  return n;
}

absl::StatusOr<std::unique_ptr<CgroupV1Driver>> CgroupV1Driver::Create(const std::string& root,
                                                                     const std::string& parent) {
  for (const char* controller : {"memory", "pids"}) {
    if (!Exists(absl::StrCat(root, "/", controller, "/cgroup.procs")))
      return absl::FailedPreconditionError(
          absl::StrCat("cgroup v1 controller '", controller, "' is not mounted at ", root, "/", controller));
  }
  std::string memory = absl::StrCat(root, "/memory/", parent);
  std::string pids = absl::StrCat(root, "/pids/", parent);
  std::string freezer, cpuacct;
  if (Exists(root + "/freezer/cgroup.procs")) freezer = absl::StrCat(root, "/freezer/", parent);
  if (Exists(root + "/cpuacct/cpuacct.usage")) cpuacct = absl::StrCat(root, "/cpuacct/", parent);
  for (const std::string& dir : {memory, pids, freezer, cpuacct}) {
    if (dir.empty()) continue;
    absl::Status st = MakeDir(dir);
    if (!st.ok()) return st;
  }
  return std::unique_ptr<CgroupV1Driver>(new CgroupV1Driver(memory, pids, freezer, cpuacct));
}

absl::StatusOr<std::unique_ptr<RunCgroup>> CgroupV1Driver::CreateRun(const std::string& id,
                                                                   const CgroupLimits& limits) const {
  std::string memory = memory_parent_ + "/" + id;
  std::string pids = pids_parent_ + "/" + id;
  std::string freezer = freezer_parent_.empty() ? "" : freezer_parent_ + "/" + id;
  std::string cpuacct = cpuacct_parent_.empty() ? "" : cpuacct_parent_ + "/" + id;
  // Made before the directories so a failure below removes what was created.
  auto run = std::make_unique<RunCgroupV1>(memory, pids, freezer, cpuacct);
  for (const std::string& dir : {memory, pids, freezer, cpuacct}) {
    if (dir.empty()) continue;
    absl::Status st = MakeDir(dir);
    if (!st.ok()) return st;
  }
  absl::Status st = WriteFile(memory + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes));
  if (!st.ok()) return st;
  // No swap beyond the limit where the kernel accounts swap (memsw may be absent).
  if (Exists(memory + "/memory.memsw.limit_in_bytes"))
    (void)WriteFile(memory + "/memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes));
  st = WriteFile(pids + "/pids.max", std::to_string(limits.max_pids));
  if (!st.ok()) return st;
  return std::unique_ptr<RunCgroup>(std::move(run));
}

absl::StatusOr<std::unique_ptr<CgroupV2Driver>> CgroupV2Driver::Create(const std::string& root,
                                                                     const std::string& parent) {
  absl::StatusOr<std::string> controllers = ReadFile(root + "/cgroup.controllers");
  if (!controllers.ok()) return absl::FailedPreconditionError(absl::StrCat("no cgroup v2 hierarchy at ", root));
  for (const char* c : {"memory", "pids"}) {
    std::vector<absl::string_view> have = absl::StrSplit(absl::StripAsciiWhitespace(*controllers), ' ');
    if (std::find(have.begin(), have.end(), c) == have.end())
      return absl::FailedPreconditionError(absl::StrCat("cgroup v2 controller '", c, "' is not available at ", root));
  }
  // Controllers must be enabled on every level from the root down to the run groups.
  (void)WriteFile(root + "/cgroup.subtree_control", "+memory +pids");
  std::string dir = root + "/" + parent;
  absl::Status st = MakeDir(dir);
  if (!st.ok()) return st;
  st = WriteFile(dir + "/cgroup.subtree_control", "+memory +pids");
  if (!st.ok()) return st;
  return std::unique_ptr<CgroupV2Driver>(new CgroupV2Driver(dir));
}

absl::StatusOr<std::unique_ptr<RunCgroup>> CgroupV2Driver::CreateRun(const std::string& id,
                                                                   const CgroupLimits& limits) const {
  std::string dir = parent_ + "/" + id;
  auto run = std::make_unique<RunCgroupV2>(dir);
  absl::Status st = MakeDir(dir);
  if (!st.ok()) return st;
  st = WriteFile(dir + "/memory.max", std::to_string(limits.memory_bytes));
  if (!st.ok()) return st;
  if (Exists(dir + "/memory.swap.max")) (void)WriteFile(dir + "/memory.swap.max", "0");
  st = WriteFile(dir + "/pids.max", std::to_string(limits.max_pids));
  if (!st.ok()) return st;
  return std::unique_ptr<RunCgroup>(std::move(run));
}

absl::StatusOr<std::unique_ptr<CgroupDriver>> DetectCgroupDriver(const std::string& root, const std::string& parent) {
  if (Exists(root + "/cgroup.controllers")) {
    absl::StatusOr<std::unique_ptr<CgroupV2Driver>> v2 = CgroupV2Driver::Create(root, parent);
    if (!v2.ok()) return v2.status();
    return std::unique_ptr<CgroupDriver>(std::move(*v2));
  }
  if (Exists(root + "/memory") || Exists(root + "/pids")) {
    absl::StatusOr<std::unique_ptr<CgroupV1Driver>> v1 = CgroupV1Driver::Create(root, parent);
    if (!v1.ok()) return v1.status();
    return std::unique_ptr<CgroupDriver>(std::move(*v1));
  }
  return absl::FailedPreconditionError(absl::StrCat("no cgroup hierarchy (v1 memory/pids or v2 unified) at ", root));
}

}  // namespace grpo::sandbox

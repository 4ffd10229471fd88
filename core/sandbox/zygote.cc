// The host's side of a Python zygote; see zygote.h and zygote.py.
#include "core/sandbox/zygote.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/sandbox/zygote_source.h"

namespace grpo::sandbox::internal {
namespace {

// Processes of a zygote's group besides the program's: bwrap, bwrap's pid-1 init, the
// zygote, the run's runner and the run's init.
constexpr int64_t kZygoteOwnProcesses = 5;
// The runner, the run's init and the program itself count in the run's user namespace.
constexpr int64_t kRunOwnProcesses = 3;
// How long a zygote may take to start (bwrap, an interpreter, a few imports).
constexpr int64_t kStartTimeoutMs = 10000;

std::atomic<uint64_t> g_zygote_counter{0};

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(const std::string& in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[static_cast<size_t>(i)]);
  return v;
}

// Writes all of `data` on a socket that may be non-blocking; `fds` ride on the first byte.
absl::Status SendAll(int sock, const std::string& data, const std::vector<int>& fds, int64_t deadline) {
  size_t off = 0;
  bool fds_sent = fds.empty();
  while (off < data.size()) {
    struct iovec iov = {const_cast<char*>(data.data() + off), data.size() - off};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    if (!fds_sent) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      fds_sent = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      const int64_t left = deadline - NowMs();
      struct pollfd p = {sock, POLLOUT, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) < 0)
        return absl::DeadlineExceededError("the python zygote takes no request");
      continue;
    }
    return absl::UnavailableError(absl::StrCat("sending to the python zygote: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

PythonZygote::PythonZygote(const ZygoteConfig& config) : config_(config) {}

PythonZygote::~PythonZygote() { Stop(); }

void PythonZygote::Stop() {
  sock_.reset();
  if (cgroup_) {
    (void)cgroup_->KillAll();
  } else if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
  }
  if (pid_ > 0) {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  if (cgroup_) (void)cgroup_->Remove();
  cgroup_.reset();
}

absl::Status PythonZygote::Start(const Limits& limits) {
  Stop();
  const SandboxOptions& o = *config_.options;
  CgroupLimits cl;
  cl.memory_bytes = limits.memory_mb << 20;
  cl.max_pids = limits.max_processes + kZygoteOwnProcesses;
  absl::StatusOr<std::unique_ptr<RunCgroup>> group =
      config_.cgroups->CreateRun(absl::StrCat(::getpid(), "-z", g_zygote_counter.fetch_add(1)), cl);
  if (!group.ok()) return group.status();
  cgroup_ = std::move(*group);
  memory_mb_ = limits.memory_mb;
  max_processes_ = limits.max_processes;

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return absl::InternalError(absl::StrCat("socketpair: ", std::strerror(errno)));
  Fd mine(sv[0]), theirs(sv[1]);
  Fd bpf_r, bpf_w, err_r, err_w;
  if (!MakePipe(bpf_r, bpf_w) || !MakePipe(err_r, err_w))
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  if (::write(bpf_w.get(), config_.bpf->data(), config_.bpf->size()) != static_cast<ssize_t>(config_.bpf->size()))
    return absl::InternalError("cannot write the seccomp filter to its pipe");
  bpf_w.reset();
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (null.get() < 0) return absl::InternalError(absl::StrCat("/dev/null: ", std::strerror(errno)));

  ChildPlan plan;
  std::vector<std::string>& a = plan.argv_storage;
  // No --die-with-parent (nor PR_SET_PDEATHSIG, below): both act on the death of the
  // forking thread, and any thread may use the zygote after that one has gone. The
  // zygote ends when this process closes its socket, or dies (the socket closes with it).
  a = {o.bwrap, "--unshare-all", "--unshare-user", "--new-session", "--uid",
       std::to_string(o.uid), "--gid", std::to_string(o.gid), "--hostname", "sandbox"};
  AddSystemDirs(a);
  if (config_.fresh_proc) a.insert(a.end(), {"--proc", "/proc"});
  a.insert(a.end(), {"--dev", "/dev", "--dir", "/box/work", "--dir", "/box/prog", "--dir", "/box/s", "--dir", "/tmp",
                     "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/box/work", "--cap-drop", "ALL", "--",
                     o.python, "-I", "-B", "-c", std::string(kZygoteSource)});
  plan.env_storage = ProgramEnvironment();
  plan.Finish();
  plan.procs_files = cgroup_->ProcsFiles();
  plan.fds[0] = null.get();
  plan.fds[1] = null.get();
  plan.fds[2] = err_w.get();
  plan.fds[3] = theirs.get();
  plan.fds[4] = bpf_r.get();
  plan.uid = o.uid;
  plan.gid = o.gid;
  plan.drop_groups = ::geteuid() == 0;
  plan.parent = ::getpid();
  plan.rlimits = {{RLIMIT_CORE, {0, 0}}};
  plan.die_with_thread = false;  // see above
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) ChildExec(plan);
  pid_ = pid;
  theirs.reset();
  bpf_r.reset();
  err_w.reset();

  // "R" when ready; "E" + length + text, or the end of the socket, when not.
  SetNonBlocking(mine.get());
  SetNonBlocking(err_r.get());
  std::string hello, errors;
  const int64_t deadline = NowMs() + kStartTimeoutMs;
  bool closed = false;
  while (!closed && (hello.empty() || (hello[0] == 'E' && (hello.size() < 5 || hello.size() < 5 + GetU32(hello.substr(1)))))) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) break;
    struct pollfd p[2] = {{mine.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    if (::poll(p, err_r.get() >= 0 ? 2 : 1, static_cast<int>(left)) < 0 && errno != EINTR) break;
    char buf[4096];
    if (p[0].revents) {
      const ssize_t n = ::read(mine.get(), buf, sizeof(buf));
      if (n > 0) hello.append(buf, static_cast<size_t>(n));
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) closed = true;
    }
    if (err_r.get() >= 0 && p[1].revents) {
      const ssize_t n = ::read(err_r.get(), buf, sizeof(buf));
      if (n > 0 && errors.size() < 65536) errors.append(buf, static_cast<size_t>(n));
      if (n == 0) err_r.reset();
    }
  }
  if (hello == "R") {
    sock_ = std::move(mine);
    return absl::OkStatus();
  }
  std::string why = hello.empty()                      ? (closed ? "it ended before it was ready" : "it was not ready in time")
                    : hello[0] == 'E' && hello.size() > 5 ? hello.substr(5)
                                                          : "it sent " + hello.substr(0, 64);
  Stop();
  return absl::UnavailableError(absl::StrCat("the python zygote did not start: ", why,
                                             errors.empty() ? "" : absl::StrCat(" (", errors, ")")));
}

absl::StatusOr<ZygoteRun> PythonZygote::Run(const std::string& source, const std::string& stdin_data,
                                             const Limits& limits) {
  const int64_t start = NowMs();
  bool fresh = false;
  if (pid_ <= 0 || limits.memory_mb != memory_mb_ || limits.max_processes != max_processes_) {
    if (absl::Status s = Start(limits); !s.ok()) return s;
    fresh = true;
  }
  ZygoteRun out;
  ExecResult& r = out.result;
  // CPU and memory events over the run are differences of the group's counters.
  CgroupStats before;
  auto begin_accounting = [&] {
    before = cgroup_->Stats();
    if (peak_resets_ && !cgroup_->ResetPeak().ok()) peak_resets_ = false;
  };
  begin_accounting();

  Fd stdin_r, stdout_w, stderr_w;
  Io io;
  if (!MakePipe(stdin_r, io.stdin_w) || !MakePipe(io.stdout_r, stdout_w) || !MakePipe(io.stderr_r, stderr_w))
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  const nlohmann::json request = {
      {"limits",
       {{"cpu_s", CpuLimitSeconds(limits)},
        {"fsize", limits.file_size_mb << 20},
        {"nofile", limits.open_files},
        {"nproc", RunProcessLimit(limits, kRunOwnProcesses, config_.per_namespace_nproc)},
        {"scratch_mb", limits.scratch_mb},
        {"scratch_inodes", limits.scratch_inodes}}}};
  const std::string body = request.dump();
  std::string message;
  PutU32(message, static_cast<uint32_t>(body.size()));
  message += body;
  PutU32(message, static_cast<uint32_t>(source.size()));
  message += source;
  const int64_t wall_limit_ms = limits.wall_limit_ms > 0 ? limits.wall_limit_ms : 2 * limits.time_limit_ms + 1000;
  const int64_t deadline = start + wall_limit_ms;
  // The fds ride on the first 4 bytes, alone, so that the zygote's recvmsg of those 4
  // bytes takes them.
  auto send = [&] {
    absl::Status sent =
        SendAll(sock_.get(), message.substr(0, 4), {stdin_r.get(), stdout_w.get(), stderr_w.get()}, deadline);
    return sent.ok() ? SendAll(sock_.get(), message.substr(4), {}, deadline) : sent;
  };
  // "A": the zygote has the request. Before it, the socket's end means the zygote was
  // gone (killed while idle, from outside): no program ran.
  auto await_accept = [&]() -> absl::Status {
    for (;;) {
      const int64_t left = deadline - NowMs();
      struct pollfd p = {sock_.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) == 0)
        return absl::DeadlineExceededError("the python zygote did not take the request");
      char c = 0;
      const ssize_t n = ::read(sock_.get(), &c, 1);
      if (n == 1 && c == 'A') return absl::OkStatus();
      if (n == 1) return absl::InternalError("the python zygote sent something other than its acceptance");
      if (n == 0 || (errno != EAGAIN && errno != EINTR))
        return absl::UnavailableError("the python zygote ended before it took the request");
    }
  };
  absl::Status sent = send();
  if (sent.ok()) sent = await_accept();
  // A zygote gone while idle: start another, once.
  if (!sent.ok() && !fresh && Start(limits).ok()) {
    begin_accounting();
    sent = send();
    if (sent.ok()) sent = await_accept();
  }
  if (!sent.ok()) {
    Stop();
    return sent;
  }
  stdin_r.reset();
  stdout_w.reset();
  stderr_w.reset();

  std::string reply;
  auto reply_done = [&] { return reply.size() >= 4 && reply.size() >= 4 + static_cast<size_t>(GetU32(reply)); };
  const size_t cap = static_cast<size_t>(limits.output_limit_bytes);
  Pump(io, stdin_data, cap, &sock_, &reply, -1, [&] { return reply_done() || sock_.get() < 0; }, deadline);
  const bool answered = reply_done();
  Ending ending;
  ending.error = io.error;
  ending.timed_out = io.timed_out;
  ending.output_exceeded = io.output_exceeded;
  ending.time_limit_ms = limits.time_limit_ms;
  // Not answered: killed at the deadline or the output cap, or the zygote died (the
  // kernel's OOM killer, which prefers the run, or a bug). Nothing of the group survives.
  if (!answered) {
    if (absl::Status st = cgroup_->KillAll(); !st.ok() && ending.error.empty())
      ending.error = absl::StrCat("could not kill every process of the run: ", st.message());
  }
  Drain(io, cap, nullptr, nullptr);
  r.stdout_text = std::move(io.stdout_text);
  r.stderr_text = std::move(io.stderr_text);
  const CgroupStats after = cgroup_->Stats();
  ending.stats.oom_killed = after.oom_kills > before.oom_kills;
  ending.stats.hit_memory_limit = after.limit_hits > before.limit_hits;
  if (after.cpu_usage_us >= 0 && before.cpu_usage_us >= 0) r.cpu_ms = (after.cpu_usage_us - before.cpu_usage_us) / 1000;
  if (peak_resets_ && after.peak_memory_bytes >= 0) r.max_rss_kb = after.peak_memory_bytes / 1024;
  if (!answered) Stop();
  r.wall_ms = NowMs() - start;

  if (answered) {
    nlohmann::json j = nlohmann::json::parse(reply.substr(4), nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      Stop();
      return absl::InternalError("the python zygote's reply is not a JSON object");
    }
    if (j.contains("error")) {
      Stop();  // a run it could not set up: the next one starts afresh
      return absl::UnavailableError(absl::StrCat("the python zygote could not set the run up: ",
                                                 j["error"].is_string() ? j["error"].get<std::string>() : ""));
    }
    if (j.contains("signal") && j["signal"].is_number_integer()) {
      r.signal = j["signal"].get<int>();
    } else if (j.contains("exit") && j["exit"].is_number_integer()) {
      r.exit_code = j["exit"].get<int>();
    }
    out.compile_error = j.value("compile_error", false);
    out.no_proc = j.value("no_proc", false);
  } else if (!ending.timed_out && !ending.output_exceeded && ending.error.empty()) {
    if (ending.stats.oom_killed) {
      r.signal = SIGKILL;
    } else {
      ending.error = "the python zygote ended during the run";
    }
  }
  Classify(ending, r);
  if (out.compile_error && r.status == RunStatus::kRuntimeError) r.status = RunStatus::kCompileError;
  return out;
}

}  // namespace grpo::sandbox::internal

// The sandbox's process plumbing; see process.h.
#include "core/sandbox/process.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace grpo::sandbox::internal {

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool MakePipe(Fd& read_end, Fd& write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  read_end.reset(p[0]);
  write_end.reset(p[1]);
  return true;
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

namespace {

// Writes a message to fd 2 and exits 126; only async-signal-safe calls.
[[noreturn]] void ChildDie(const char* what) {
  int e = errno;
  const char* prefix = "grpo-sandbox child: ";
  (void)!::write(2, prefix, std::strlen(prefix));
  (void)!::write(2, what, std::strlen(what));
  (void)!::write(2, ": ", 2);
  const char* msg = ::strerror(e);  // not strictly AS-safe, but reads a static table in glibc
  (void)!::write(2, msg, std::strlen(msg));
  (void)!::write(2, "\n", 1);
  ::_exit(126);
}

}  // namespace

[[noreturn]] void ChildExec(const ChildPlan& p) {
  // Signals: default dispositions and an empty mask (pool threads may block some; the
  // host may ignore SIGPIPE), so the program sees a normal process.
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::signal(sig, SIG_DFL);
  }
  // Fixed fds: first out of the way (>= 10), then down to 0..4; close everything else.
  int tmp[5];
  for (int i = 0; i < 5; ++i) {
    tmp[i] = ::fcntl(p.fds[i], F_DUPFD, 10);
    if (tmp[i] < 0) ChildDie("dup");
  }
  for (int i = 0; i < 5; ++i)
    if (::dup2(tmp[i], i) < 0) ChildDie("dup2");
  if (::syscall(SYS_close_range, 5, ~0u, 0) != 0) {
    for (int fd = 5; fd < 4096; ++fd) ::close(fd);
  }
  // Join the run's cgroups (as root, before anything else runs).
  char pid_text[24];
  {
    pid_t pid = ::getpid();
    char rev[24];
    int n = 0;
    do {
      rev[n++] = static_cast<char>('0' + pid % 10);
      pid /= 10;
    } while (pid > 0);
    for (int i = 0; i < n; ++i) pid_text[i] = rev[n - 1 - i];
    pid_text[n] = '\0';
  }
  for (const std::string& file : p.procs_files) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) ChildDie("open cgroup.procs");
    if (::write(fd, pid_text, std::strlen(pid_text)) < 0) ChildDie("join cgroup");
    ::close(fd);
  }
  for (const ChildPlan::Limit& l : p.rlimits)
    if (::setrlimit(l.resource, &l.value) != 0) ChildDie("setrlimit");
  // Unprivileged for good: no groups, real/effective/saved ids all the sandbox user's.
  // (A host process that is itself unprivileged keeps its groups: it cannot drop them.)
  if (p.drop_groups && ::setgroups(0, nullptr) != 0) ChildDie("setgroups");
  if (::setresgid(p.gid, p.gid, p.gid) != 0) ChildDie("setresgid");
  if (::setresuid(p.uid, p.uid, p.uid) != 0) ChildDie("setresuid");
  // Dies with the thread that forked it (credential changes clear this, so set it now).
  if (p.die_with_thread && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildDie("prctl");
  if (::getppid() != p.parent) ::_exit(126);
  ::execve(p.argv[0], p.argv.data(), p.envp.data());
  ChildDie("execve bwrap");
}

// Binds the host's /bin, /sbin, /lib* as they are: symlinks into /usr stay symlinks.
void AddSystemDirs(std::vector<std::string>& a) {
  a.insert(a.end(), {"--ro-bind", "/usr", "/usr"});
  for (const char* dir : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (::lstat(dir, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(dir, target, sizeof(target) - 1);
      if (n <= 0) continue;
      a.insert(a.end(), {"--symlink", std::string(target, n), dir});
    } else if (S_ISDIR(st.st_mode)) {
      a.insert(a.end(), {"--ro-bind", dir, dir});
    }
  }
  // The few /etc pieces python and g++ use (dynamic linker cache, alternatives symlinks).
  for (const char* file : {"/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"})
    a.insert(a.end(), {"--ro-bind-try", file, file});
}


std::vector<std::string> ProgramEnvironment() {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/box/work", "TMPDIR=/tmp", "LANG=C.UTF-8",
          "PYTHONDONTWRITEBYTECODE=1", "PYTHONHASHSEED=0"};
}

rlim_t CpuLimitSeconds(const Limits& limits) { return static_cast<rlim_t>((limits.time_limit_ms + 999) / 1000 + 1); }

int64_t RunProcessLimit(const Limits& limits, int64_t own, bool per_namespace) {
  return per_namespace ? limits.max_processes + own : limits.max_processes * 16 + 256;
}

namespace {

// Reads what is available on `fd` into `out`; false at EOF (then `fd` is reset). With a
// cap, what goes past it is dropped and flags `exceeded`.
bool ReadSome(Fd& fd, std::string& out, size_t cap, bool capped, bool& exceeded) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n > 0) {
      size_t room = capped && out.size() < cap ? cap - out.size() : (capped ? 0 : n);
      out.append(buf, std::min(room, static_cast<size_t>(n)));
      if (capped && static_cast<size_t>(n) > room) exceeded = true;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    fd.reset();  // EOF or error
    return false;
  }
}

}  // namespace

void Pump(Io& io, const std::string& stdin_data, size_t cap, Fd* side, std::string* side_text, int end_fd,
          const std::function<bool()>& done, int64_t deadline) {
  SetNonBlocking(io.stdin_w.get());
  SetNonBlocking(io.stdout_r.get());
  SetNonBlocking(io.stderr_r.get());
  if (side != nullptr) SetNonBlocking(side->get());
  if (stdin_data.empty()) io.stdin_w.reset();
  size_t stdin_off = 0;
  bool side_exceeded = false;
  while (!io.output_exceeded && !done()) {
    const int64_t now = NowMs();
    if (now >= deadline) {
      io.timed_out = true;
      break;
    }
    struct pollfd pfds[5];
    int n = 0, i_in = -1, i_out = -1, i_err = -1, i_side = -1, i_end = -1;
    if (io.stdin_w.get() >= 0) pfds[i_in = n++] = {io.stdin_w.get(), POLLOUT, 0};
    if (io.stdout_r.get() >= 0) pfds[i_out = n++] = {io.stdout_r.get(), POLLIN, 0};
    if (io.stderr_r.get() >= 0) pfds[i_err = n++] = {io.stderr_r.get(), POLLIN, 0};
    if (side != nullptr && side->get() >= 0) pfds[i_side = n++] = {side->get(), POLLIN, 0};
    if (end_fd >= 0) pfds[i_end = n++] = {end_fd, POLLIN, 0};
    const int ready = ::poll(pfds, n, static_cast<int>(std::min<int64_t>(deadline - now, 1000)));
    if (ready < 0 && errno != EINTR) {
      io.error = absl::StrCat("poll: ", std::strerror(errno));
      break;
    }
    if (ready <= 0) continue;
    if (i_in >= 0 && pfds[i_in].revents) {
      ssize_t w = ::write(io.stdin_w.get(), stdin_data.data() + stdin_off, stdin_data.size() - stdin_off);
      if (w > 0) stdin_off += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || stdin_off == stdin_data.size()) io.stdin_w.reset();
    }
    if (i_out >= 0 && pfds[i_out].revents) ReadSome(io.stdout_r, io.stdout_text, cap, true, io.output_exceeded);
    if (i_err >= 0 && pfds[i_err].revents) ReadSome(io.stderr_r, io.stderr_text, cap, true, io.output_exceeded);
    if (i_side >= 0 && pfds[i_side].revents) ReadSome(*side, *side_text, 0, false, side_exceeded);
    if (i_end >= 0 && pfds[i_end].revents) break;
  }
  io.stdin_w.reset();
}

void Drain(Io& io, size_t cap, Fd* side, std::string* side_text) {
  const int64_t deadline = NowMs() + kDrainTimeoutMs;
  bool side_exceeded = false;
  auto open = [&] { return io.stdout_r.get() >= 0 || io.stderr_r.get() >= 0 || (side && side->get() >= 0); };
  while (open() && NowMs() < deadline) {
    struct pollfd pfds[3];
    int n = 0, i_out = -1, i_err = -1, i_side = -1;
    if (io.stdout_r.get() >= 0) pfds[i_out = n++] = {io.stdout_r.get(), POLLIN, 0};
    if (io.stderr_r.get() >= 0) pfds[i_err = n++] = {io.stderr_r.get(), POLLIN, 0};
    if (side != nullptr && side->get() >= 0) pfds[i_side = n++] = {side->get(), POLLIN, 0};
    if (::poll(pfds, n, static_cast<int>(std::max<int64_t>(1, deadline - NowMs()))) <= 0) break;
    if (i_out >= 0 && pfds[i_out].revents) ReadSome(io.stdout_r, io.stdout_text, cap, true, io.output_exceeded);
    if (i_err >= 0 && pfds[i_err].revents) ReadSome(io.stderr_r, io.stderr_text, cap, true, io.output_exceeded);
    if (i_side >= 0 && pfds[i_side].revents) ReadSome(*side, *side_text, 0, false, side_exceeded);
  }
}

void Classify(const Ending& e, ExecResult& r) {
  if (!e.error.empty()) {
    r.status = RunStatus::kInternalError;
    r.error = e.error;
  } else if (!e.started && !e.timed_out && !e.output_exceeded) {
    r.status = RunStatus::kInternalError;
    r.error = e.not_started;
  } else if (e.output_exceeded) {
    r.status = RunStatus::kOutputLimit;
  } else if (e.timed_out) {
    r.status = RunStatus::kTimeLimit;
  } else if (r.signal == SIGSYS) {
    r.status = RunStatus::kDenied;
  } else if (e.stats.oom_killed || ((r.signal == SIGKILL || r.exit_code != 0) && e.stats.hit_memory_limit)) {
    r.status = RunStatus::kMemoryLimit;
  } else if (r.signal == SIGXCPU || r.cpu_ms > e.time_limit_ms) {
    r.status = RunStatus::kTimeLimit;
  } else if (r.signal != 0 || r.exit_code != 0) {
    r.status = RunStatus::kRuntimeError;
  } else {
    r.status = RunStatus::kOk;
  }
}

}  // namespace grpo::sandbox::internal

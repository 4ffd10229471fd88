// See worker_pool.h for the design.
#include "core/math/worker_pool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace grpo::math {

std::string FindWorkerPath(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* dir = std::getenv("GRPO_BIN_DIR"); dir != nullptr && *dir != '\0') {
    std::string p = absl::StrCat(dir, "/grpo-math-worker");
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    std::string exe(buf, n);
    auto slash = exe.rfind('/');
    if (slash != std::string::npos) return exe.substr(0, slash) + "/grpo-math-worker";
  }
  return "grpo-math-worker";
}

WorkerPool::WorkerPool(std::string worker_path, int max_workers, size_t memory_bytes)
    : path_(std::move(worker_path)),
      memory_bytes_(memory_bytes),
      free_slots_(max_workers < 1 ? 1 : max_workers) {}

WorkerPool::~WorkerPool() {
  absl::MutexLock lock(&mu_);
  for (Worker& w : idle_) Kill(w);
}

int WorkerPool::TEST_spawned() const {
  absl::MutexLock lock(&mu_);
  return spawned_;
}

void WorkerPool::Kill(Worker& w) {
  if (w.fd >= 0) close(w.fd);
  if (w.pid > 0) {
    kill(w.pid, SIGKILL);
    while (waitpid(w.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  w = Worker{};
}

absl::Status WorkerPool::Start(Worker& w) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::UnavailableError(absl::StrCat("socketpair: ", std::strerror(errno)));
  }
  // The child end becomes the worker's stdin and stdout (dup2 clears close-on-exec);
  // every other descriptor of ours is close-on-exec or not the child's business.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], 0);
  posix_spawn_file_actions_adddup2(&actions, sv[1], 1);
  std::string mem = std::to_string(memory_bytes_);
  std::vector<char*> argv = {const_cast<char*>(path_.c_str()), const_cast<char*>("--memory"),
                             mem.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, path_.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    return absl::UnavailableError(
        absl::StrCat("cannot start ", path_, ": ", std::strerror(rc)));
  }
  w.pid = pid;
  w.fd = sv[0];
  w.buffer.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> WorkerPool::Run(const std::string& request, absl::Time deadline) {
  Worker w;
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || free_slots_ > 0;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&available), deadline)) {
      return absl::DeadlineExceededError("timeout waiting for a symbolic worker");
    }
    if (!idle_.empty()) {
      w = std::move(idle_.back());
      idle_.pop_back();
    } else {
      --free_slots_;
    }
  }
  // From here on this thread owns `w` (or an empty slot); it returns it on every path.
  auto give_back = [this](Worker&& worker, bool keep) {
    absl::MutexLock lock(&mu_);
    if (keep) {
      idle_.push_back(std::move(worker));
    } else {
      ++free_slots_;
    }
  };
  auto fail = [&](absl::Status status) -> absl::StatusOr<std::string> {
    Kill(w);
    give_back(Worker{}, false);
    return status;
  };

  if (w.pid < 0) {
    absl::Status s = Start(w);
    {
      absl::MutexLock lock(&mu_);
      ++spawned_;
    }
    if (!s.ok()) return fail(s);
  }

  std::string line = request + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(w.fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) continue;
      return fail(absl::UnavailableError("worker died (write failed)"));
    }
    sent += n;
  }

  char buf[4096];
  for (;;) {
    auto nl = w.buffer.find('\n');
    if (nl != std::string::npos) {
      std::string reply = w.buffer.substr(0, nl);
      w.buffer.erase(0, nl + 1);
      give_back(std::move(w), true);
      return reply;
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return fail(absl::DeadlineExceededError("timeout in the symbolic stage"));
    }
    pollfd p{w.fd, POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    int rc = poll(&p, 1, ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;  // re-checks the deadline
    ssize_t n = read(w.fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int status = 0;
      std::string why = "worker died";
      if (waitpid(w.pid, &status, 0) == w.pid) {
        w.pid = -1;
        if (WIFSIGNALED(status)) why = absl::StrCat("worker killed by signal ", WTERMSIG(status));
        if (WIFEXITED(status)) why = absl::StrCat("worker exited with status ", WEXITSTATUS(status));
      }
      return fail(absl::UnavailableError(why));
    }
    w.buffer.append(buf, n);
    if (w.buffer.size() > (1 << 20)) return fail(absl::UnavailableError("worker reply too long"));
  }
}

}  // namespace grpo::math

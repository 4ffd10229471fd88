// A bounded pool of `grpo-math-worker` processes for the symbolic stage.
//
// GiNaC/CLN cannot be interrupted and may loop or allocate without bound on hostile
// input, and fork() without exec in a multithreaded server is unsafe. So each worker is
// a separate executable started with posix_spawn, talking a line protocol over a
// socketpair (send() with MSG_NOSIGNAL, so a dead worker never raises SIGPIPE in the
// caller). A request that overruns its deadline gets its worker SIGKILLed and reaped;
// the slot starts a fresh worker on its next use. A worker limits its own address space
// (RLIMIT_AS, passed on its command line) and CPU time.
//
// Protocol (one line each way, fields separated by tabs, no tabs or newlines inside):
//   request:  OP \t A \t B \n     OP: EQ (A == B), REL (A/B a positive constant),
//                                 EQN (A/B a non-zero constant); TEST_CRASH, TEST_HANG
//   reply:    1 \n | 0 \n | E \t message \n
//
// Thread-safe: Run may be called from any number of threads; at most max_workers
// requests are in flight, the others wait (within their deadline) for a free worker.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace grpo::math {

class WorkerPool {
 public:
  WorkerPool(std::string worker_path, int max_workers, size_t memory_bytes);
  ~WorkerPool();  // kills the workers

  // Sends one request line (without the newline) and returns the reply line.
  // DeadlineExceeded when no worker is free or the reply is late (that worker is
  // killed); Unavailable when the worker cannot start or dies.
  absl::StatusOr<std::string> Run(const std::string& request, absl::Time deadline);

  // Number of workers started so far (for tests of crash recovery).
  int TEST_spawned() const;
  const std::string& path() const { return path_; }

 private:
  struct Worker {
    pid_t pid = -1;
    int fd = -1;
    std::string buffer;  // bytes read past the last reply
  };
  absl::Status Start(Worker& w);
  static void Kill(Worker& w);

  const std::string path_;
  const size_t memory_bytes_;
  mutable absl::Mutex mu_;
  std::vector<Worker> idle_ ABSL_GUARDED_BY(mu_);
  int free_slots_ ABSL_GUARDED_BY(mu_);  // workers that may still be started or handed out
  int spawned_ ABSL_GUARDED_BY(mu_) = 0;
};

// Where the worker executable is: `configured` if not empty, else $GRPO_BIN_DIR, else
// the directory of /proc/self/exe.
std::string FindWorkerPath(const std::string& configured);

}  // namespace grpo::math

// A bounded pool of sandbox runs: N worker threads, a queue of at most `queue_bound`
// waiting requests. Submit blocks while the queue is full (backpressure for a reward
// server that receives faster than programs run); TrySubmit refuses instead.
//
// Thread safety: Submit/TrySubmit may be called from any thread. The destructor finishes
// every request already accepted, then joins the workers.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/sandbox/sandbox.h"

namespace grpo::sandbox {

class SandboxPool {
 public:
  SandboxPool(std::shared_ptr<const Sandbox> sandbox, int workers, size_t queue_bound);
  ~SandboxPool();
  SandboxPool(const SandboxPool&) = delete;
  SandboxPool& operator=(const SandboxPool&) = delete;

  // Blocks while the queue is full. During destruction: an internal_error result at once.
  std::future<RunResult> Submit(RunRequest request);
  // Never blocks: nullopt when the queue is full or the pool is shutting down.
  std::optional<std::future<RunResult>> TrySubmit(RunRequest request);

 private:
  struct Job {
    RunRequest request;
    std::promise<RunResult> promise;
  };
  void Worker();

  std::shared_ptr<const Sandbox> sandbox_;
  const size_t queue_bound_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Job> queue_;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace grpo::sandbox

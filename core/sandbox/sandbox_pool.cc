// Bounded worker pool for sandbox runs; see sandbox_pool.h.
#include "core/sandbox/sandbox_pool.h"

namespace grpo::sandbox {

SandboxPool::SandboxPool(std::shared_ptr<const Sandbox> sandbox, int workers, size_t queue_bound)
    : sandbox_(std::move(sandbox)), queue_bound_(queue_bound > 0 ? queue_bound : 1) {
  for (int i = 0; i < std::max(1, workers); ++i) workers_.emplace_back([this] { Worker(); });
}

SandboxPool::~SandboxPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  for (std::thread& t : workers_) t.join();
}

std::future<RunResult> SandboxPool::Submit(RunRequest request) {
  std::unique_lock<std::mutex> lock(mu_);
  not_full_.wait(lock, [this] { return queue_.size() < queue_bound_ || stopping_; });
  Job job{std::move(request), {}};
  std::future<RunResult> f = job.promise.get_future();
  if (stopping_) {  // the workers may be gone: answer now rather than never
    RunResult refused;
    refused.main.error = "sandbox pool is shutting down";
    job.promise.set_value(std::move(refused));
    return f;
  }
  queue_.push_back(std::move(job));
  lock.unlock();
  not_empty_.notify_one();
  return f;
}

std::optional<std::future<RunResult>> SandboxPool::TrySubmit(RunRequest request) {
  std::unique_lock<std::mutex> lock(mu_);
  if (queue_.size() >= queue_bound_ || stopping_) return std::nullopt;
  Job job{std::move(request), {}};
  std::future<RunResult> f = job.promise.get_future();
  queue_.push_back(std::move(job));
  lock.unlock();
  not_empty_.notify_one();
  return f;
}

void SandboxPool::Worker() {
  for (;;) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;  // stopping and drained
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    job.promise.set_value(sandbox_->Run(job.request));
  }
}

}  // namespace grpo::sandbox

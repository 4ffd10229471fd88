// See publisher.h.
#include "services/learner/publisher.h"

#include <utility>

namespace grpo {

WeightPublisher::WeightPublisher(Callbacks callbacks) : cb_(std::move(callbacks)) {
  thread_ = std::thread([this] { Loop(); });
}

WeightPublisher::~WeightPublisher() { Stop(); }

void WeightPublisher::Enqueue(Blob blob) {
  Blob dropped;
  {
    absl::MutexLock l(&mu_);
    if (stop_ || !error_.ok()) return;
    dropped = std::move(next_);
    next_ = std::move(blob);
    if (dropped) ++superseded_;
  }
  if (dropped && cb_.on_superseded) cb_.on_superseded(dropped->header().version);
}

absl::Status WeightPublisher::WaitIdle() {
  absl::MutexLock l(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !error_.ok() || (!next_ && !sending_); };
  mu_.Await(absl::Condition(&idle));
  if (!error_.ok()) return error_;
  if (next_ || sending_) return absl::CancelledError("publisher stopped with versions unsent");
  return absl::OkStatus();
}

void WeightPublisher::Stop() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t WeightPublisher::sent() const {
  absl::MutexLock l(&mu_);
  return sent_;
}

uint64_t WeightPublisher::superseded() const {
  absl::MutexLock l(&mu_);
  return superseded_;
}

void WeightPublisher::Loop() {
  for (;;) {
    Blob blob;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || next_ != nullptr; };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      blob = std::move(next_);
      sending_ = true;
    }
    const uint64_t version = blob->header().version;
    absl::Status s = cb_.send(blob);
    if (s.ok() && cb_.on_published) cb_.on_published(version);
    {
      absl::MutexLock l(&mu_);
      sending_ = false;
      if (s.ok()) {
        ++sent_;
        continue;
      }
      if (stop_) return;
      error_ = s;
    }
    if (cb_.on_failed) cb_.on_failed(s);
    return;
  }
}

}  // namespace grpo

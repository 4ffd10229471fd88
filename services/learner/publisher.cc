// See publisher.h.
#include "services/learner/publisher.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "core/rpc/weight_delta.h"

namespace grpo {

WeightPublisher::WeightPublisher(Callbacks callbacks) : WeightPublisher(std::move(callbacks), Options()) {}

WeightPublisher::WeightPublisher(Callbacks callbacks, Options options) : cb_(std::move(callbacks)), opt_(options) {
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

WeightPublisher::Stats WeightPublisher::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

WeightPublisher::Blob WeightPublisher::Encode(const Blob& blob) {
  if (opt_.full_every <= 0 || last_ == nullptr || since_full_ + 1 >= opt_.full_every ||
      last_->header().total_size != blob->header().total_size) {
    return blob;
  }
  if (skip_ > 0) {
    --skip_;
    return blob;
  }
  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> patch = rpc::MakeWeightPatch(last_->bytes(), blob->bytes());
  const double took = absl::ToDoubleSeconds(absl::Now() - t0);
  const bool small = patch.ok() && static_cast<double>(patch->size()) <=
                                       opt_.max_patch_fraction * static_cast<double>(blob->header().total_size);
  {
    absl::MutexLock l(&mu_);
    stats_.encode_seconds += took;
    if (patch.ok() && !small) ++stats_.patches_too_large;
  }
  if (!small) {
    // Most bytes change (fp32 weights, a high learning rate): stop paying for patches
    // for a while, longer each time.
    backoff_ = std::min<int64_t>(std::max<int64_t>(1, backoff_ * 2), opt_.full_every);
    skip_ = backoff_;
    return blob;
  }
  backoff_ = 0;
  return rpc::MakeDeltaBlob(*std::move(patch), *last_, *blob);
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
    Blob out = Encode(blob);
    absl::Status s = cb_.send(out);
    if (!s.ok() && out->header().delta) {
      {
        absl::MutexLock l(&mu_);
        ++stats_.patches_refused;
        if (stop_) return;
      }
      if (cb_.on_patch_refused) cb_.on_patch_refused(s);
      out = blob;  // the receiver could not take the patch: the full version
      s = cb_.send(out);
    }
    if (s.ok()) {
      last_ = blob;
      since_full_ = out->header().delta ? since_full_ + 1 : 0;
      if (cb_.on_published) cb_.on_published(out->header());
    }
    {
      absl::MutexLock l(&mu_);
      sending_ = false;
      if (s.ok()) {
        ++sent_;
        (out->header().delta ? stats_.versions_delta : stats_.versions_full) += 1;
        (out->header().delta ? stats_.bytes_delta : stats_.bytes_full) += out->header().total_size;
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

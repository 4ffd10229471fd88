#include "services/learner/admission.h"


#include <cmath>

#include "absl/strings/str_cat.h"

namespace grpo {

std::string ValidateScoredGroup(const v1::ScoredGroup& g, int64_t vocab_size, int64_t max_positions) {
  if (!g.error().empty()) return absl::StrCat("scoring failed: ", g.error());
  const v1::RolloutGroup& r = g.group();
  if (r.completions_size() < 2) return absl::StrCat("group has ", r.completions_size(), " completion(s); need at least 2");
  if (g.scores_size() != r.completions_size()) {
    return absl::StrCat(g.scores_size(), " scores for ", r.completions_size(), " completions");
  }
  if (r.prompt_token_ids_size() == 0) return "empty prompt";
  auto in_range = [&](int32_t t) { return t >= 0 && t < vocab_size; };
  for (int32_t t : r.prompt_token_ids()) {
    if (!in_range(t)) return absl::StrCat("prompt token id ", t, " outside the vocabulary [0, ", vocab_size, ")");
  }
  for (int i = 0; i < r.completions_size(); ++i) {
    const v1::Completion& c = r.completions(i);
    if (c.token_ids_size() != c.logprobs_size()) {
      return absl::StrCat("completion ", i, ": ", c.token_ids_size(), " tokens but ", c.logprobs_size(), " logprobs");
    }
    if (r.prompt_token_ids_size() + c.token_ids_size() > max_positions) {
      return absl::StrCat("completion ", i, ": prompt + completion is ", r.prompt_token_ids_size() + c.token_ids_size(),
                          " tokens, over the model's ", max_positions);
    }
    for (int32_t t : c.token_ids()) {
      if (!in_range(t)) return absl::StrCat("completion ", i, ": token id ", t, " outside the vocabulary");
    }
    for (float lp : c.logprobs()) {
      if (!std::isfinite(lp) || lp > 0) return absl::StrCat("completion ", i, ": logprob ", lp, " is not a log-probability");
    }
    if (!std::isfinite(g.scores(i).reward())) return absl::StrCat("completion ", i, ": reward is not finite");
  }
  if (!(r.temperature() >= 0) || !std::isfinite(r.temperature())) return "temperature is not a number >= 0";
  return "";
}

namespace {

bool AllRewardsEqual(const v1::ScoredGroup& g) {
  for (int i = 1; i < g.scores_size(); ++i) {
    if (g.scores(i).reward() != g.scores(0).reward()) return false;
  }
  return true;
}

}  // namespace

std::optional<AdmitResult> AdmissionBuffer::Admit(const v1::ScoredGroup& g, const std::function<bool()>& cancelled) {
  AdmitResult r;
  r.ack.set_lease_id(g.group().item().lease_id());
  const std::string bad = ValidateScoredGroup(g, limits_.vocab_size, limits_.max_positions);
  absl::MutexLock l(&mu_);
  const UnitKey key{g.group().item().prompt_id(), g.group().item().epoch()};
  // Duplicate or too stale: sets the ack and returns true. Checked again after the
  // wait for room, which releases the lock (another stream may have brought the same
  // unit, and new versions may have made this group stale).
  auto turned_away = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t lag = version_ - static_cast<int64_t>(g.group().policy_version());
    if (seen_.count(key)) {
      r.ack.set_outcome(v1::SubmitAck::DUPLICATE);
      r.ack.set_detail(absl::StrCat("prompt ", key.first, " epoch ", key.second, " was already accepted"));
      // Trained: this lease completes too. Still waiting in the buffer: not yet, or a
      // crash before it trains would leave the prompt done and never trained; the
      // buffered group's own lease completes once it trains.
      r.complete = untrained_.count(key) == 0;
      return true;
    } else if (lag > limits_.max_staleness) {
      r.ack.set_outcome(v1::SubmitAck::STALE);
      r.ack.set_detail(absl::StrCat("sampled with version ", g.group().policy_version(), ", ", lag,
                                    " behind; the bound is ", limits_.max_staleness));
      r.requeue = true;
    }
    return r.complete || r.requeue;
  };
  if (!bad.empty()) {
    r.ack.set_outcome(v1::SubmitAck::REJECTED);
    r.ack.set_detail(bad);
    // Not re-queued: a malformed group would most likely be malformed again, and
    // circulate for the whole run. The prompt is skipped for this epoch.
    r.complete = true;
  } else if (limits_.dynamic_sampling && AllRewardsEqual(g)) {
    r.ack.set_outcome(v1::SubmitAck::FILTERED);
    r.ack.set_detail("every completion has the same reward: no signal");
    r.complete = true;
  } else if (!turned_away()) {
    // Room shrinks with the group's age: a group L versions old that queues behind n
    // others is trained about n / prompts_per_step versions later (plus one for a step
    // in progress), so accepting it behind more than prompts_per_step *
    // (max_staleness - L) groups (at least one step's worth) would mostly see it
    // dropped at batch time. Holding the stream instead slows the actor rather than
    // wasting its samples.
    auto room = [this, &g]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      const int64_t lag = std::max<int64_t>(0, version_ - static_cast<int64_t>(g.group().policy_version()));
      const int64_t fresh = limits_.prompts_per_step * std::max<int64_t>(1, limits_.max_staleness - lag);
      return stopping_ || static_cast<int64_t>(buffer_.size()) < std::min(limits_.buffer_groups, fresh);
    };
    while (!room() && !(cancelled && cancelled())) mu_.AwaitWithTimeout(absl::Condition(&room), absl::Milliseconds(200));
    if (stopping_ || (cancelled && cancelled())) return std::nullopt;
    if (!turned_away()) {
      seen_.insert(key);
      untrained_.insert(key);
      buffer_.push_back(g);
      r.ack.set_outcome(v1::SubmitAck::ACCEPTED);
    }
  }
  r.ack.set_latest_version(version_);
  return r;
}

AdmissionBuffer::Draw AdmissionBuffer::DrawBatch(absl::Duration wait) {
  const size_t per_step = static_cast<size_t>(limits_.prompts_per_step);
  Draw d;
  absl::MutexLock l(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || buffer_.size() >= per_step; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
  // After the wait, since publishing overlaps the step: a version published meanwhile
  // may have aged what waited here past the bound. Groups arriving are checked against
  // the version of their arrival, and all again here, against the one the batch is
  // drawn at. Too few left: an empty batch, and the caller draws again.
  for (auto it = buffer_.begin(); it != buffer_.end();) {
    if (version_ - static_cast<int64_t>(it->group().policy_version()) > limits_.max_staleness) {
      d.stale_leases.push_back(it->group().item().lease_id());
      // Forget the unit, or its re-sampled group would be turned away as a duplicate.
      seen_.erase({it->group().item().prompt_id(), it->group().item().epoch()});
      untrained_.erase({it->group().item().prompt_id(), it->group().item().epoch()});
      it = buffer_.erase(it);
    } else {
      ++it;
    }
  }
  if (!stopping_ && buffer_.size() >= per_step) {
    for (size_t i = 0; i < per_step; ++i) {
      d.batch.push_back(std::move(buffer_.front()));
      buffer_.pop_front();
    }
  }
  d.version = version_;
  return d;
}

void AdmissionBuffer::SetVersion(int64_t v) {
  absl::MutexLock l(&mu_);
  version_ = v;
}

int64_t AdmissionBuffer::version() const {
  absl::MutexLock l(&mu_);
  return version_;
}

void AdmissionBuffer::Stop() {
  absl::MutexLock l(&mu_);
  stopping_ = true;
}

size_t AdmissionBuffer::size() const {
  absl::MutexLock l(&mu_);
  return buffer_.size();
}

std::set<UnitKey> AdmissionBuffer::Seen() const {
  absl::MutexLock l(&mu_);
  return seen_;
}

void AdmissionBuffer::MarkTrained(const std::vector<UnitKey>& units) {
  absl::MutexLock l(&mu_);
  for (const UnitKey& u : units) untrained_.erase(u);
}

void AdmissionBuffer::RestoreSeen(std::set<UnitKey> seen) {
  absl::MutexLock l(&mu_);
  seen_ = std::move(seen);
  untrained_.clear();
}

}  // namespace grpo

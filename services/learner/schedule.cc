#include "services/learner/schedule.h"

#include <algorithm>
#include <cmath>

namespace grpo {

double ScheduledLearningRate(const LearnerConfig& l, uint64_t step, int64_t total_steps) {
  const double base = l.lr;
  const auto warmup = static_cast<uint64_t>(l.warmup_steps);
  if (warmup > 0 && step <= warmup) return base * static_cast<double>(step) / static_cast<double>(warmup);
  if (l.lr_schedule != "cosine" || total_steps <= static_cast<int64_t>(warmup)) return base;
  const double progress = std::clamp(static_cast<double>(step - warmup) /
                                         static_cast<double>(total_steps - static_cast<int64_t>(warmup)),
                                     0.0, 1.0);
  const double floor = l.min_lr_ratio;
  return base * (floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * progress)));
}

}  // namespace grpo

// The learning-rate schedule shared by GRPO and supervised training.
#pragma once

#include <cstdint>

#include "core/common/config.h"

namespace grpo {

// learner.lr after learner.warmup_steps of linear warm-up, then constant or cosine
// (learner.lr_schedule) down to min_lr_ratio * lr at `total_steps` (constant when
// total_steps <= warm-up). `step` is 1-based.
double ScheduledLearningRate(const LearnerConfig& l, uint64_t step, int64_t total_steps);

}  // namespace grpo

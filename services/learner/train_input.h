// What the learner hands its trainer: options from the run's configuration, and
// scored groups from the wire format as the trainer's plain TrainGroups (the trainer
// in core/grpo builds against LibTorch alone).
#pragma once

#include <vector>

#include "core/common/config.h"
#include "core/grpo/trainer.h"
#include "grpo/v1/learner.pb.h"

namespace grpo {

TrainerOptions TrainerOptionsFromConfig(const RunConfig& cfg);

// A validated group (ValidateScoredGroup): one reward per completion.
TrainGroup ToTrainGroup(const v1::ScoredGroup& g);

std::vector<const TrainGroup*> GroupPtrs(const std::vector<TrainGroup>& groups);

}  // namespace grpo

// Learner checkpoints: everything a learner needs to continue a run exactly.
//
// Layout under the checkpoint root (default <run.dir>/checkpoints):
//   step-00000042/
//     model.safetensors      policy weights (Hugging Face names)
//     reference.safetensors  the KL reference, when the learner keeps one
//     optimizer.pt           AdamW state (LibTorch archive)
//     config.json            the policy's Hugging Face config (for `grpo export`)
//     tokenizer.json, tokenizer_config.json   copied from model.path when there is one
//     state.json             {"step", "version", "seen": [[prompt id, epoch], ...]}
//     manifest.json          {"files": {name: crc32}}: written last; a checkpoint
//                            without it, or whose files do not match it, is invalid
// A checkpoint is written into step-N.tmp-<pid> and renamed into place, so a crash
// leaves either the previous set or the new one, never half of one. The newest
// `keep` checkpoints are kept. The learner's update is deterministic given its batch,
// so no random generator state is saved.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>
#include <string>
#include <utility>

#include <torch/optim/optimizer.h>

#include "absl/status/statusor.h"
#include "core/model/transformer.h"

namespace grpo {

struct CheckpointState {
  uint64_t step = 0;
  int64_t version = 0;
  std::set<std::pair<std::string, uint32_t>> seen;  // (prompt id, epoch) trained
  // The leases of the steps since the previous checkpoint, with their units: a learner
  // killed before completing them completes them when it resumes.
  struct Lease {
    uint64_t id = 0;
    std::string prompt_id;
    uint32_t epoch = 0;
  };
  std::vector<Lease> recent;
};

// Module holders share their module: these refer to the learner's own models.
struct CheckpointInputs {
  model::Transformer policy{nullptr};
  model::Transformer reference{nullptr};  // may be empty
  torch::optim::Optimizer* optimizer = nullptr;
  std::string tokenizer_dir;  // model.path, or empty
};

// Writes step-<state.step> under `root` and prunes to the newest `keep`.
absl::Status WriteCheckpoint(const std::string& root, const CheckpointState& state, const CheckpointInputs& in,
                             int keep);

// The path of the newest valid checkpoint under `root` (manifest present and every
// file's CRC matching); invalid ones are skipped with a warning. nullopt when none.
std::optional<std::string> NewestValidCheckpoint(const std::string& root);

// Loads a checkpoint into the given policy, reference (if non-null) and optimizer.
// Everything is read and checked before anything is changed.
absl::StatusOr<CheckpointState> LoadCheckpoint(const std::string& dir, const CheckpointInputs& into);

}  // namespace grpo

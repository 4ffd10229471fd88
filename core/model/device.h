// Device names from configs and flags ("cpu", "cuda", "cuda:N") checked against what
// this LibTorch and machine have, so a CUDA setting on a CPU-only build fails at start
// with a sentence, not at the first tensor.
#pragma once

#include <string>

#include <c10/core/Device.h>

#include "absl/status/statusor.h"

namespace grpo::model {

// `what` names the setting in errors ("actor.device", "--device"). Errors:
// InvalidArgument for a malformed name, FailedPrecondition when this LibTorch has no
// CUDA, the machine no GPU, or fewer GPUs than the index asks for.
absl::StatusOr<c10::Device> ResolveDevice(const std::string& name, const std::string& what);

}  // namespace grpo::model

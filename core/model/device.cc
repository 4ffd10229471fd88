#include "core/model/device.h"

#include <torch/cuda.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace grpo::model {

absl::StatusOr<c10::Device> ResolveDevice(const std::string& name, const std::string& what) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  int index = -1;
  if (name != "cuda" && !(name.rfind("cuda:", 0) == 0 && absl::SimpleAtoi(name.substr(5), &index) && index >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " = \"", name, "\": must be cpu, cuda or cuda:N"));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " = ", name, ", but this LibTorch has no CUDA or the machine has no GPU; build against a CUDA LibTorch ",
        "(torch-only/ builds against any) or use cpu"));
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " = ", name, ", but only ", count, " GPU(s) are visible"));
  }
  return index < 0 ? c10::Device(c10::kCUDA) : c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace grpo::model

// Collectives on device (CUDA) tensors for data-parallel learners: NCCL, with its
// unique id exchanged through the group's c10d store. CPU tensors (control messages,
// statistics, and everything on CPU runs) go through the Gloo process group instead.
//
// NCCL is compiled in when CMake finds nccl.h, libnccl and libcudart (GRPO_HAVE_NCCL);
// it needs a LibTorch built with CUDA to have device tensors to work on.
#pragma once

#include <chrono>
#include <memory>

#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/status/statusor.h"

namespace grpo {

class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  // In place, over every rank; `t` is a contiguous float32, bfloat16 or float64 CUDA tensor.
  virtual void AllReduceSum(at::Tensor& t) = 0;
  virtual void Broadcast(at::Tensor& t, int root) = 0;
};

// Whether this build has NCCL.
bool HaveNccl();

// An NCCL communicator of `size` ranks on CUDA device `device`. Errors name what is
// missing (no NCCL in this build, no such device, an NCCL failure). A collective that
// has not finished after `timeout` aborts the communicator and throws.
absl::StatusOr<std::unique_ptr<DeviceCollectives>> MakeNcclCollectives(c10d::Store& store, int rank, int size,
                                                                       int device, std::chrono::milliseconds timeout);

}  // namespace grpo

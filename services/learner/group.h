// The data-parallel group of learner ranks: forming it over Gloo, small broadcasts,
// and handing rank 0's state (step, weights, optimizer) to every rank. Shared by the
// GRPO learner and `grpo sft`. All calls are collectives unless noted: every rank of
// the group makes the same calls in the same order, on one thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <c10/core/Device.h>
#include <torch/optim/optimizer.h>

#include "absl/status/statusor.h"

namespace grpo {

class GrpoTrainer;

// Splits "host:port"; false when it is not one (port 0 allowed only if allow_zero).
bool SplitHostPort(const std::string& address, std::string* host, int* port, bool allow_zero = false);

// Not a collective: the Gloo group over an already connected store. Loopback hosts use
// the loopback device; GLOO_SOCKET_IFNAME picks an interface.
c10::intrusive_ptr<c10d::ProcessGroup> MakeGlooGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                     const std::string& host, int rank, int world,
                                                     std::chrono::seconds timeout);

// Ranks meet at the fixed `address` (host:port): rank 0 serves the TCPStore there, the
// others connect (waiting up to `timeout`). Errors name the address.
absl::StatusOr<c10::intrusive_ptr<c10d::ProcessGroup>> FormGlooGroupAt(const std::string& address, int rank,
                                                                        int world, std::chrono::seconds timeout);

// Rank 0's values reach every rank.
std::array<int64_t, 3> BroadcastHeader(c10d::ProcessGroup& pg, std::array<int64_t, 3> h);
std::string BroadcastBytes(c10d::ProcessGroup& pg, const std::string& data, int64_t n);

struct Rank0State {
  int64_t step = 0;
  int64_t version = 0;
};
// Every rank leaves with rank 0's `state`, policy and reference weights (through the
// trainer) and, when rank 0 has taken optimizer steps (state.step > 0), its optimizer
// state, moved to `device`. Other ranks need no checkpoint files.
Rank0State ShareRank0State(c10d::ProcessGroup& pg, GrpoTrainer& trainer, torch::optim::Optimizer& optimizer,
                           Rank0State state, const c10::Device& device);

// AdamW's moments follow the parameters to their device (a loaded archive is on CPU).
void MoveOptimizerState(torch::optim::Optimizer& opt, const c10::Device& device);

}  // namespace grpo

#include "services/learner/group.h"

#include <cstring>
#include <sstream>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/grpo/trainer.h"

namespace grpo {

bool SplitHostPort(const std::string& a, std::string* host, int* port, bool allow_zero) {
  size_t colon = a.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(a.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return false;
  }
  if (*port == 0 && !allow_zero) return false;
  *host = a.substr(0, colon);
  return !host->empty();
}

namespace {
bool IsLoopback(const std::string& host) { return host == "localhost" || absl::StartsWith(host, "127."); }
}  // namespace

c10::intrusive_ptr<c10d::ProcessGroup> MakeGlooGroup(const c10::intrusive_ptr<c10d::Store>& store,
                                                     const std::string& host, int rank, int world,
                                                     std::chrono::seconds timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (IsLoopback(host)) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
}

absl::StatusOr<c10::intrusive_ptr<c10d::ProcessGroup>> FormGlooGroupAt(const std::string& address, int rank,
                                                                        int world, std::chrono::seconds timeout) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(address, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat("learner.dist_address ", address, " is not host:port"));
  }
  try {
    c10d::TCPStoreOptions so;
    so.numWorkers = world;
    so.waitWorkers = false;
    so.timeout = timeout;
    so.port = static_cast<uint16_t>(port);
    so.isServer = rank == 0;
    auto store = c10::make_intrusive<c10d::TCPStore>(host, so);
    return MakeGlooGroup(store, host, rank, world, timeout);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", rank, " could not join the group at ", address, ": ", e.what()));
  }
}

std::array<int64_t, 3> BroadcastHeader(c10d::ProcessGroup& pg, std::array<int64_t, 3> h) {
  std::vector<at::Tensor> t{torch::tensor({h[0], h[1], h[2]}, torch::kInt64)};
  pg.broadcast(t)->wait();
  auto a = t[0].accessor<int64_t, 1>();
  return {a[0], a[1], a[2]};
}

std::string BroadcastBytes(c10d::ProcessGroup& pg, const std::string& data, int64_t n) {
  std::vector<at::Tensor> t{torch::empty({n}, torch::kUInt8)};
  if (pg.getRank() == 0) std::memcpy(t[0].data_ptr(), data.data(), static_cast<size_t>(n));
  pg.broadcast(t)->wait();
  return std::string(static_cast<const char*>(t[0].data_ptr()), static_cast<size_t>(n));
}

void MoveOptimizerState(torch::optim::Optimizer& opt, const c10::Device& device) {
  for (auto& [key, state] : opt.state()) {
    if (auto* s = dynamic_cast<torch::optim::AdamWParamState*>(state.get())) {
      s->exp_avg(s->exp_avg().to(device));
      s->exp_avg_sq(s->exp_avg_sq().to(device));
      if (s->max_exp_avg_sq().defined()) s->max_exp_avg_sq(s->max_exp_avg_sq().to(device));
    }
  }
}

Rank0State ShareRank0State(c10d::ProcessGroup& pg, GrpoTrainer& trainer, torch::optim::Optimizer& optimizer,
                           Rank0State state, const c10::Device& device) {
  const bool root = pg.getRank() == 0;
  std::string opt_bytes;
  if (root && state.step > 0) {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    std::ostringstream os;
    archive.save_to(os);
    opt_bytes = os.str();
  }
  auto h = BroadcastHeader(pg, {state.step, state.version, static_cast<int64_t>(opt_bytes.size())});
  trainer.BroadcastParameters(0);
  if (h[2] > 0) {
    std::string bytes = BroadcastBytes(pg, opt_bytes, h[2]);
    if (!root) {
      std::istringstream is(bytes);
      torch::serialize::InputArchive archive;
      archive.load_from(is);
      optimizer.load(archive);
      MoveOptimizerState(optimizer, device);
    }
  }
  return {h[0], h[1]};
}

}  // namespace grpo

// grpo-bench-weights' link mode (issue #24): weight delivery measured where links, not
// cores, are the limit, as between hosts.
//
// The bench (as root) makes one network namespace per member: the coordinator's and one
// per actor, each with a veth link into a switch namespace holding a Linux bridge, both
// ends of every link shaped by a token bucket (tc tbf) to `rate` (1 Gbit/s: upload and
// download each). Traffic flows only between the namespaces it made; it removes them all
// when done (and each child process dies with the bench). Each member is its own process
// (this binary re-run with --link-role inside its namespace through `ip netns exec`):
// the coordinator (CoordinatorService, relay_fanout 1) and the actors (a WeightFetcher
// and a relay Weights server each, as grpo-actor runs them). The baseline is one plain
// TCP copy of the same bytes from the coordinator's namespace to one actor's, over two
// such links (its upload, the other's download), the least of three.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

namespace grpo::bench {

struct LinkOptions {
  std::string rate = "1gbit";  // tc's rate syntax
  size_t bytes = 0;            // blob size
  std::vector<int> actors{1, 8};
  int fanout = 1;
};

struct LinkRow {
  int actors = 0;
  double seconds = 0, first = 0;  // the least of three deliveries; the first delivery
  double from_coordinator = 0;    // bytes the coordinator sent / blob size
};

struct LinkResult {
  std::string skipped;  // why the mode did not run ("" when it did)
  double baseline = 0;  // one plain copy over a link, seconds
  std::vector<LinkRow> rows;
};

// A channel with its own connection (no shared subchannel pool), as separate processes
// have; the message size limit of rpc::MakeChannel, without TLS.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address);

// Runs the link mode (needs root and iproute2's `ip` and `tc`).
LinkResult MeasureLinks(const LinkOptions& options);

// A child role (argv has --link-role): runs it and returns the exit code; -1 when argv
// names no role.
int RunLinkRole(int argc, char** argv);

}  // namespace grpo::bench

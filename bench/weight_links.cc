// See weight_links.h.
#include "bench/weight_links.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/config.h"
#include "core/common/logging.h"
#include "core/rpc/rpc.h"
#include "core/rpc/weight_stream.h"
#include "prometheus/registry.h"
#include "services/coordinator/coordinator.h"

extern char** environ;

namespace grpo::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr int kCoordinatorPort = 7000, kRelayPort = 7001, kCopyPort = 7002;

std::string NodeAddress(int node) { return "10.77.0." + std::to_string(node + 1); }

std::string RandomBytes(size_t n, uint64_t seed) {
  std::string b(n, '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= b.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
  return b;
}

void Say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

[[noreturn]] void Die(const std::string& why) {
  Say("fail " + why);
  std::_Exit(1);
}

std::pair<std::string, int> SplitHostPort(const std::string& a) {
  const size_t colon = a.rfind(':');
  return {a.substr(0, colon), std::atoi(a.c_str() + colon + 1)};
}

// ---- Child roles (each inside its namespace; commands on stdin, answers on stdout)

int CoordinatorRole(const std::map<std::string, std::string>& flag) {
  auto cfg = LoadConfigWithOverrides(
      "", {"run.dir=", "coordinator.state_dir=", "pipeline.tasks=", "learner.eval_every=0", "pipeline.base_docs=0",
           "pipeline.eval_before_after=false", "pipeline.report=false", "data.num_tasks=16",
           "coordinator.keep_versions=2", "coordinator.relay_fanout=" + flag.at("--fanout")});
  if (!cfg.ok()) Die(std::string(cfg.status().message()));
  auto service = CoordinatorService::Create(*cfg, std::make_shared<prometheus::Registry>());
  if (!service.ok()) Die(std::string(service.status().message()));
  auto server = rpc::StartServer("0.0.0.0", kCoordinatorPort, (*service)->GrpcServices());
  if (!server.ok()) Die(std::string(server.status().message()));
  auto self = OwnChannel("127.0.0.1:" + std::to_string(kCoordinatorPort));
  Say("ready");
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    uint64_t version = 0, bytes = 0, seed = 0;
    in >> cmd >> version >> bytes >> seed;
    if (cmd != "publish") continue;
    auto blob = rpc::WeightBlob::FromBytes(RandomBytes(bytes, seed), version, version);
    grpc::ClientContext ctx;
    auto published = rpc::PublishWeightStream(self, &ctx, blob);
    if (!published.ok()) Die(std::string(published.status().message()));
    Say("published " + std::to_string(version) + " " + std::to_string(blob->header().crc32));
  }
  std::_Exit(0);  // stdin closed: the bench is done
}

int ActorRole(const std::map<std::string, std::string>& flag) {
  rpc::WeightFetcher fetcher(OwnChannel(flag.at("--coordinator")), &OwnChannel);
  rpc::WeightService relay([&](int64_t v, bool d) { return fetcher.Held(v, d); }, nullptr);
  auto [host, port] = SplitHostPort(flag.at("--listen"));
  auto server = rpc::StartServer(host, port, {&relay});
  if (!server.ok()) Die(std::string(server.status().message()));
  Say("ready");
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line != "fetch") continue;
    const rpc::WeightFetcher::Stats before = fetcher.stats();
    rpc::WeightFetcher::Options opt;
    opt.member_id = flag.at("--member");
    opt.relay_address = flag.at("--listen");
    auto blob = fetcher.Fetch(-1, opt, nullptr, nullptr);
    if (!blob.ok()) {
      Say("fail " + std::string(blob.status().message()));
      continue;
    }
    const rpc::WeightFetcher::Stats after = fetcher.stats();
    Say("done " + std::to_string((*blob)->version()) + " " + std::to_string((*blob)->header().crc32) + " " +
        std::to_string(after.bytes_from_coordinator - before.bytes_from_coordinator) + " " +
        std::to_string(after.bytes_from_peers - before.bytes_from_peers));
  }
  std::_Exit(0);
}

// The baseline's receiver: `count` connections one after another, each `bytes` read
// into one already-touched buffer, then a one-byte ack.
int ReceiveRole(const std::map<std::string, std::string>& flag) {
  const size_t bytes = std::stoull(flag.at("--bytes"));
  const int count = std::atoi(flag.at("--count").c_str());
  std::string buf(bytes, '\1');
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(kCopyPort);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener, 4) != 0) {
    Die(std::string("bind: ") + std::strerror(errno));
  }
  Say("ready");
  for (int i = 0; i < count; ++i) {
    int c = ::accept(listener, nullptr, nullptr);
    size_t off = 0;
    while (off < bytes) {
      ssize_t n = ::read(c, buf.data() + off, bytes - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    char ack = off == bytes ? 'k' : 'x';
    (void)::write(c, &ack, 1);
    ::close(c);
  }
  std::_Exit(0);
}

// The baseline's sender: on each "go", one connection, `bytes` written, the ack read;
// answers the seconds from connect to ack.
int SendRole(const std::map<std::string, std::string>& flag) {
  const size_t bytes = std::stoull(flag.at("--bytes"));
  const std::string blob = RandomBytes(bytes, 3);
  auto [host, port] = SplitHostPort(flag.at("--to"));
  Say("ready");
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line != "go") continue;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    auto t0 = Clock::now();
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Die(std::string("connect: ") + std::strerror(errno));
    for (size_t off = 0; off < blob.size();) {
      ssize_t n = ::write(s, blob.data() + off, blob.size() - off);
      if (n <= 0) Die("write failed");
      off += static_cast<size_t>(n);
    }
    char ack = 0;
    if (::read(s, &ack, 1) != 1 || ack != 'k') Die("no ack");
    const double t = Since(t0);
    ::close(s);
    Say("sent " + std::to_string(t));
  }
  std::_Exit(0);
}

// ---- The bench's side

struct Child {
  pid_t pid = -1;
  int in = -1, out = -1;  // the child's stdin (we write), stdout (we read)
  std::string buffered;
  std::string name;
};

std::string SelfExe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("/proc/self/exe");
}

std::optional<Child> Spawn(const std::string& ns, std::vector<std::string> args, const std::string& name) {
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) return std::nullopt;
  std::vector<std::string> argv = {"ip", "netns", "exec", ns, SelfExe()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& s : argv) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
  posix_spawn_file_actions_addclose(&fa, to_child[1]);
  posix_spawn_file_actions_addclose(&fa, from_child[0]);
  Child c;
  c.name = name;
  const int rc = posix_spawnp(&c.pid, "ip", &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(to_child[0]);
  ::close(from_child[1]);
  if (rc != 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    return std::nullopt;
  }
  c.in = to_child[1];
  c.out = from_child[0];
  return c;
}

bool Tell(Child& c, const std::string& line) {
  const std::string l = line + "\n";
  return ::write(c.in, l.data(), l.size()) == static_cast<ssize_t>(l.size());
}

// The child's next line, waiting at most `limit` seconds.
std::optional<std::string> Hear(Child& c, double limit = 120) {
  const auto t0 = Clock::now();
  for (;;) {
    const size_t nl = c.buffered.find('\n');
    if (nl != std::string::npos) {
      std::string line = c.buffered.substr(0, nl);
      c.buffered.erase(0, nl + 1);
      if (!line.empty() && line[0] == '[') continue;  // the child's log lines (spdlog writes to stdout)
      return line;
    }
    const double left = limit - Since(t0);
    if (left <= 0) return std::nullopt;
    pollfd p{c.out, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left * 1000) + 1) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(c.out, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    c.buffered.append(buf, static_cast<size_t>(n));
  }
}

void Finish(Child& c) {
  if (c.pid <= 0) return;
  ::close(c.in);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
      c.pid = -1;
      break;
    }
    ::usleep(50000);
  }
  if (c.pid > 0) {
    ::kill(c.pid, SIGKILL);
    ::waitpid(c.pid, nullptr, 0);
  }
  ::close(c.out);
  c.pid = -1;
}

bool Sh(const std::string& cmd, std::string* failed) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) == 0) return true;
  if (failed->empty()) *failed = cmd;
  return false;
}

// Namespaces <prefix>sw (the switch: a bridge) and <prefix>N for each node, each node's
// eth0 a veth into the switch, both ends shaped to `rate`.
struct Namespaces {
  std::string prefix;
  int nodes = 0;
  std::string Node(int k) const { return prefix + std::to_string(k); }
  std::string Switch() const { return prefix + "sw"; }
  std::string Make(const std::string& rate) {
    std::string failed;
    const std::string tbf = " root tbf rate " + rate + " burst 512kb latency 20ms";
    Sh("ip netns add " + Switch(), &failed);
    Sh("ip -n " + Switch() + " link add br0 type bridge", &failed);
    Sh("ip -n " + Switch() + " link set br0 up", &failed);
    for (int k = 0; k < nodes && failed.empty(); ++k) {
      const std::string n = Node(k), port = "p" + std::to_string(k);
      Sh("ip netns add " + n, &failed);
      Sh("ip -n " + n + " link set lo up", &failed);
      Sh("ip -n " + n + " link add eth0 type veth peer name " + port + " netns " + Switch(), &failed);
      Sh("ip -n " + n + " addr add " + NodeAddress(k) + "/24 dev eth0", &failed);
      Sh("ip -n " + n + " link set eth0 up", &failed);
      Sh("ip -n " + Switch() + " link set " + port + " master br0", &failed);
      Sh("ip -n " + Switch() + " link set " + port + " up", &failed);
      Sh("ip netns exec " + n + " tc qdisc add dev eth0" + tbf, &failed);             // upload
      Sh("ip netns exec " + Switch() + " tc qdisc add dev " + port + tbf, &failed);  // download
    }
    return failed;
  }
  void Remove() {
    std::string ignored;
    for (int k = 0; k < nodes; ++k) Sh("ip netns del " + Node(k), &ignored);
    Sh("ip netns del " + Switch(), &ignored);
  }
};

}  // namespace

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(rpc::kMaxMessageBytes);
  args.SetMaxSendMessageSize(rpc::kMaxMessageBytes);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per actor, as separate processes have
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

int RunLinkRole(int argc, char** argv) {
  std::map<std::string, std::string> flag;
  for (int i = 1; i + 1 < argc; i += 2) flag[argv[i]] = argv[i + 1];
  if (!flag.count("--link-role")) return -1;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
  spdlog::set_level(spdlog::level::warn);
  const std::string role = flag["--link-role"];
  if (role == "coordinator") return CoordinatorRole(flag);
  if (role == "actor") return ActorRole(flag);
  if (role == "recv") return ReceiveRole(flag);
  if (role == "send") return SendRole(flag);
  std::fprintf(stderr, "unknown --link-role %s\n", role.c_str());
  return 2;
}

LinkResult MeasureLinks(const LinkOptions& o) {
  LinkResult r;
  if (::geteuid() != 0) {
    r.skipped = "needs root (network namespaces)";
    return r;
  }
  if (std::system("ip -V >/dev/null 2>&1") != 0 || std::system("tc -V >/dev/null 2>&1") != 0) {
    r.skipped = "needs iproute2 (ip, tc)";
    return r;
  }
  int max_actors = 0;
  for (int n : o.actors) max_actors = std::max(max_actors, n);
  Namespaces ns;
  ns.prefix = "gwb" + std::to_string(::getpid()) + "-";
  ns.nodes = max_actors + 1;
  const std::string failed = ns.Make(o.rate);
  std::vector<Child> children;
  auto done = [&](std::string why) {
    for (Child& c : children) Finish(c);
    ns.Remove();
    r.skipped = std::move(why);
    return r;
  };
  if (!failed.empty()) return done("could not make the namespaces: `" + failed + "` failed");

  auto start = [&](int node, std::vector<std::string> args, const std::string& name) -> Child* {
    std::optional<Child> c = Spawn(ns.Node(node), std::move(args), name);
    if (!c) return nullptr;
    children.push_back(std::move(*c));
    Child* child = &children.back();
    std::optional<std::string> ready = Hear(*child, 60);
    if (!ready || *ready != "ready") {
      std::fprintf(stderr, "%s did not start: %s\n", name.c_str(), ready ? ready->c_str() : "(no answer)");
      return nullptr;
    }
    return child;
  };
  children.reserve(static_cast<size_t>(max_actors) + 3);  // pointers into it stay valid
  const std::string bytes = std::to_string(o.bytes);

  // The baseline: one plain copy from the coordinator's namespace to actor 1's.
  {
    Child* recv = start(1, {"--link-role", "recv", "--bytes", bytes, "--count", "3"}, "receiver");
    Child* send = recv ? start(0, {"--link-role", "send", "--bytes", bytes, "--to",
                                   NodeAddress(1) + ":" + std::to_string(kCopyPort)}, "sender")
                       : nullptr;
    if (send == nullptr) return done("the baseline's processes did not start");
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
      Tell(*send, "go");
      std::optional<std::string> sent = Hear(*send);
      if (!sent || sent->rfind("sent ", 0) != 0) return done("the baseline copy failed: " + sent.value_or("no answer"));
      best = std::min(best, std::atof(sent->c_str() + 5));
    }
    r.baseline = best;
    Finish(*send);
    Finish(*recv);
  }

  Child* coordinator = start(0, {"--link-role", "coordinator", "--fanout", std::to_string(o.fanout)}, "coordinator");
  if (coordinator == nullptr) return done("the coordinator did not start");
  std::vector<Child*> actors;
  for (int k = 1; k <= max_actors; ++k) {
    Child* a = start(k, {"--link-role", "actor", "--coordinator", NodeAddress(0) + ":" + std::to_string(kCoordinatorPort),
                         "--listen", NodeAddress(k) + ":" + std::to_string(kRelayPort), "--member",
                         "link-actor-" + std::to_string(k)},
                     "actor " + std::to_string(k));
    if (a == nullptr) return done("an actor did not start");
    actors.push_back(a);
  }
  uint64_t version = 0;
  for (int n : o.actors) {
    LinkRow row;
    row.actors = n;
    row.seconds = 1e9;
    for (int rep = 0; rep < 4; ++rep) {
      // A new version each time, as the learner publishes (random bytes: full fetches).
      ++version;
      Tell(*coordinator, "publish " + std::to_string(version) + " " + bytes + " " + std::to_string(version));
      std::optional<std::string> published = Hear(*coordinator);
      if (!published || published->rfind("published ", 0) != 0) {
        return done("publishing failed: " + published.value_or("no answer"));
      }
      const std::string crc = published->substr(published->rfind(' ') + 1);
      const auto t0 = Clock::now();
      for (int i = 0; i < n; ++i) Tell(*actors[static_cast<size_t>(i)], "fetch");
      uint64_t from_coordinator = 0;
      for (int i = 0; i < n; ++i) {
        std::optional<std::string> got = Hear(*actors[static_cast<size_t>(i)]);
        std::istringstream in(got.value_or(""));
        std::string word, got_crc;
        uint64_t got_version = 0, coord = 0, peers = 0;
        in >> word >> got_version >> got_crc >> coord >> peers;
        if (word != "done" || got_version != version || got_crc != crc) {
          return done("actor " + std::to_string(i + 1) + " did not get version " + std::to_string(version) + ": " +
                      got.value_or("no answer"));
        }
        from_coordinator += coord;
      }
      const double t = Since(t0);
      if (rep == 0) {
        row.first = t;
      } else if (t < row.seconds) {
        row.seconds = t;
        row.from_coordinator = static_cast<double>(from_coordinator) / static_cast<double>(o.bytes);
      }
    }
    r.rows.push_back(row);
  }
  LinkResult out = r;
  done("");
  out.skipped.clear();
  return out;
}

}  // namespace grpo::bench

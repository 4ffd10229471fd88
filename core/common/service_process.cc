#include "core/common/service_process.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"

namespace grpo {
namespace fs = std::filesystem;

std::string TailOfFile(const std::string& path, int lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  std::string l;
  while (std::getline(in, l)) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0; i < all.size(); ++i) {
    absl::StrAppend(&out, "    ", all[i], "\n");
  }
  return out;
}

absl::StatusOr<ServiceProcess> StartServiceProcess(const ServiceLaunch& launch,
                                                   const std::function<bool()>& cancelled) {
  fs::path dir(launch.run_dir);
  std::error_code ec;
  fs::create_directories(dir / "logs", ec);
  fs::path ready = dir / (launch.name + ".ready.json");
  fs::remove(ready, ec);
  ProcessSpec spec;
  spec.argv = {launch.binary, "--config", launch.config_path, "--ready-file", ready.string()};
  for (const auto& s : launch.sets) {
    spec.argv.push_back("--set");
    spec.argv.push_back(s);
  }
  spec.log_path = (dir / "logs" / (launch.name + ".log")).string();
  spec.env = launch.env;
  absl::StatusOr<ChildProcess> p = ChildProcess::Spawn(spec);
  if (!p.ok()) return absl::UnavailableError(absl::StrCat("cannot start ", launch.name, ": ", p.status().message()));
  ServiceProcess sp{launch.name, *p, spec.log_path};
  absl::Time deadline = absl::Now() + launch.ready_timeout;
  absl::Duration backoff = absl::Milliseconds(2);
  while (!fs::exists(ready)) {
    if (auto st = sp.proc.Poll()) {
      return absl::UnavailableError(absl::StrCat(launch.name, " ", DescribeWaitStatus(*st), " while starting; last lines of ",
                                                 sp.log_path, ":\n", TailOfFile(sp.log_path, 15)));
    }
    if (absl::Now() > deadline || (cancelled && cancelled())) {
      sp.proc.Stop(absl::Seconds(5));
      return absl::DeadlineExceededError(absl::StrCat(launch.name, " did not become ready within ",
                                                      absl::FormatDuration(launch.ready_timeout), "; see ", sp.log_path));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Milliseconds(50));
  }
  absl::StatusOr<std::string> text = ReadFile(ready.string());
  nlohmann::json j = nlohmann::json::parse(text.ok() ? *text : "", nullptr, false);
  if (j.is_discarded()) {
    sp.proc.Stop(absl::Seconds(5));
    return absl::DataLossError(absl::StrCat(launch.name, " wrote an unreadable ready file ", ready.string()));
  }
  sp.grpc_port = j.value("grpc_port", 0);
  sp.metrics_port = j.value("metrics_port", 0);
  return sp;
}

}  // namespace grpo

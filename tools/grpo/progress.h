// Following a run's metrics.jsonl as it grows, and the one-line progress of a step:
// `grpo run` shows its own run's steps, and each RL stage's of a staged run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace grpo {

// Reads lines appended to metrics.jsonl since the last call.
class MetricsTail {
 public:
  explicit MetricsTail(std::string path) : path_(std::move(path)) {}
  std::vector<nlohmann::json> Poll() {
    std::vector<nlohmann::json> out;
    std::ifstream in(path_);
    if (!in) return out;
    // A restarted learner rewrites the file without the steps it trains again: read the
    // new file from its start.
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(path_, ec);
    if (!ec && size < offset_) offset_ = 0;
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a partial last line: read it next time
      offset_ += line.size() + 1;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) out.push_back(std::move(j));
    }
    return out;
  }
  void SkipExisting() { Poll(); }

 private:
  std::string path_;
  size_t offset_ = 0;
};

inline std::string ProgressLine(const nlohmann::json& m, int64_t max_steps, bool tty) {
  int64_t step = m.value("step", 0);
  std::string bar;
  if (max_steps > 0) {
    int width = 24, filled = static_cast<int>(width * std::min<double>(1.0, static_cast<double>(step) / max_steps));
    bar = absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, ' '), "] ");
  }
  std::string steps = max_steps > 0 ? absl::StrCat(step, "/", max_steps) : absl::StrCat(step);
  return absl::StrFormat("%sstep %s  reward %.3f  accuracy %.3f  tokens/s %.0f  version %d", tty ? bar : "", steps,
                         m.value("reward_mean", 0.0), m.value("accuracy", 0.0), m.value("tokens_per_s", 0.0),
                         m.value("version", 0));
}

}  // namespace grpo

// Running the real `grpo` binary from tests: its path, scratch directories, and a call
// that captures exit status, stdout and stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/common/checksum.h"

namespace grpo::testing {

inline std::string GrpoBin() {
  const char* d = std::getenv("GRPO_BIN_DIR");
  return std::string(d ? d : "build/bin") + "/grpo";
}

// A new empty directory under the temp dir, unique to this process.
inline std::filesystem::path FreshTestDir(const std::string& prefix, const std::string& name) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / absl::StrCat(prefix, name, "-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

struct CliResult {
  int status = -1;  // exit status
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `grpo` with `args` (shell-quoted here), capturing stdout and stderr.
inline CliResult RunGrpo(const std::vector<std::string>& args, const std::filesystem::path& scratch) {
  std::string cmd = "'" + GrpoBin() + "'";
  for (const std::string& a : args) {
    std::string q;
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += " '" + q + "'";
  }
  const std::string err_path = (scratch / "stderr.txt").string();
  cmd += " 2>'" + err_path + "'";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  auto e = ReadFile(err_path);
  if (e.ok()) r.err = *e;
  return r;
}

inline std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

}  // namespace grpo::testing

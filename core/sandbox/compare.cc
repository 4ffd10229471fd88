// Output comparison, status names, result JSON and rewards; see sandbox.h.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/utf8.h"
#include "core/sandbox/sandbox.h"

namespace grpo::sandbox {
namespace {

std::vector<std::string_view> Tokens(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !absl::ascii_isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

bool ParseDouble(std::string_view token, double* value) {
  std::string s(token);
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && !s.empty();
}

std::string Truncate(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return text.substr(0, max) + "...";
}

}  // namespace

absl::StatusOr<Language> ParseLanguage(std::string_view name) {
  std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "python" || n == "python3" || n == "py") return Language::kPython;
  if (n == "cpp" || n == "c++" || n == "cxx" || n == "c++17") return Language::kCpp;
  return absl::InvalidArgumentError(absl::StrCat("unknown language '", std::string(name), "' (use python or cpp)"));
}

std::string_view LanguageName(Language language) { return language == Language::kPython ? "python" : "cpp"; }

std::string_view RunStatusName(RunStatus status) {
  switch (status) {
    case RunStatus::kOk: return "ok";
    case RunStatus::kWrongAnswer: return "wrong_answer";
    case RunStatus::kTimeLimit: return "time_limit";
    case RunStatus::kMemoryLimit: return "memory_limit";
    case RunStatus::kOutputLimit: return "output_limit";
    case RunStatus::kRuntimeError: return "runtime_error";
    case RunStatus::kCompileError: return "compile_error";
    case RunStatus::kDenied: return "denied";
    case RunStatus::kInternalError: return "internal_error";
  }
  return "internal_error";
}

absl::StatusOr<Comparison::Mode> ParseComparisonMode(std::string_view name) {
  if (name == "exact") return Comparison::Mode::kExact;
  if (name == "whitespace") return Comparison::Mode::kWhitespace;
  if (name == "float") return Comparison::Mode::kFloat;
  return absl::InvalidArgumentError(absl::StrCat("unknown comparison '", std::string(name), "' (exact, whitespace or float)"));
}

bool OutputsMatch(std::string_view expected, std::string_view actual, const Comparison& comparison) {
  if (comparison.mode == Comparison::Mode::kExact) return expected == actual;
  std::vector<std::string_view> want = Tokens(expected), got = Tokens(actual);
  if (want.size() != got.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == got[i]) continue;
    if (comparison.mode != Comparison::Mode::kFloat) return false;
    double a, b;
    if (!ParseDouble(want[i], &a) || !ParseDouble(got[i], &b)) return false;
    if (std::isnan(a) || std::isnan(b)) return false;
    double diff = std::fabs(a - b);
    if (!(diff <= comparison.abs_tol || diff <= comparison.rel_tol * std::fabs(a))) return false;
  }
  return true;
}

nlohmann::json RunResult::ToJson(size_t max_text) const {
  auto exec_json = [max_text](const ExecResult& e) {
    nlohmann::json j = {{"status", RunStatusName(e.status)},
                        {"exit_code", e.exit_code},
                        {"signal", e.signal},
                        {"stdout", Utf8Lossy(Truncate(e.stdout_text, max_text))},
                        {"stderr", Utf8Lossy(Truncate(e.stderr_text, max_text))},
                        {"wall_ms", e.wall_ms},
                        {"cpu_ms", e.cpu_ms},
                        {"max_rss_kb", e.max_rss_kb}};
    if (!e.error.empty()) j["error"] = Utf8Lossy(e.error);
    return j;
  };
  nlohmann::json j = exec_json(main);
  j["status"] = RunStatusName(status);
  nlohmann::json tests_json = nlohmann::json::array();
  for (size_t i = 0; i < tests.size(); ++i) {
    nlohmann::json t = exec_json(tests[i]);
    t["passed"] = i < passed.size() && passed[i];
    tests_json.push_back(std::move(t));
  }
  j["tests"] = std::move(tests_json);
  j["tests_passed"] = tests_passed;
  j["notes"] = notes;
  return j;
}

double Reward(const RunResult& result, RewardMode mode) {
  if (result.tests.empty() || result.passed.empty()) return 0.0;
  size_t total = result.passed.size();
  if (mode == RewardMode::kAllOrNothing) return result.tests_passed == static_cast<int>(total) ? 1.0 : 0.0;
  return static_cast<double>(result.tests_passed) / static_cast<double>(total);
}

}  // namespace grpo::sandbox

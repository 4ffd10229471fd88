// ExtractAnswer: the last <answer> block and/or the last \boxed{} / \fbox{}.
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "core/math/math_checker.h"

namespace grpo::math {
namespace {

// The content of the last \boxed{...} or \fbox{...} in `text` (braces nested), or
// nullopt when there is none or it is never closed. "\boxed 5" (no brace) gives "5".
std::optional<std::string> LastBoxed(std::string_view text) {
  size_t best = std::string_view::npos;
  size_t best_len = 0;
  for (std::string_view cmd : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    size_t pos = text.rfind(cmd);
    if (pos != std::string_view::npos && (best == std::string_view::npos || pos > best)) {
      best = pos;
      best_len = cmd.size();
    }
  }
  if (best == std::string_view::npos) return std::nullopt;
  size_t i = best + best_len;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size()) return std::nullopt;
  if (text[i] != '{') {
    // \boxed 5: up to the next space or '$'.
    size_t end = text.find_first_of(" $\n", i);
    return std::string(text.substr(i, end == std::string_view::npos ? end : end - i));
  }
  int depth = 0;
  for (size_t j = i; j < text.size(); ++j) {
    if (text[j] == '\\' && j + 1 < text.size()) {  // \{ and \} do not count
      ++j;
      continue;
    }
    if (text[j] == '{') ++depth;
    if (text[j] == '}' && --depth == 0) return std::string(text.substr(i + 1, j - i - 1));
  }
  return std::nullopt;
}

std::optional<std::string> LastAnswerTag(std::string_view text) {
  size_t close = text.rfind("</answer>");
  if (close == std::string_view::npos) return std::nullopt;
  size_t open = text.rfind("<answer>", close);
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view inner = text.substr(open + 8, close - open - 8);
  if (auto boxed = LastBoxed(inner)) return boxed;
  return std::string(inner);
}

}  // namespace

std::optional<std::string> ExtractAnswer(std::string_view completion, ExtractMode mode) {
  std::optional<std::string> out;
  if (mode != ExtractMode::kBoxed) out = LastAnswerTag(completion);
  if (!out && mode != ExtractMode::kAnswerTag) out = LastBoxed(completion);
  if (out) {
    std::string trimmed(absl::StripAsciiWhitespace(*out));
    return trimmed;
  }
  return std::nullopt;
}

}  // namespace grpo::math

// ExtractAnswer: the last <answer> block and/or the last \boxed{} / \fbox{}.
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "core/math/math_checker.h"

namespace grpo::math {
namespace {

// The content of the last \boxed{...} or \fbox{...} in `text` (braces nested), or
// nullopt when there is none or it is never closed. "\boxed 5" (no brace) gives "5".
std::optional<std::string> LastBoxedOnly(std::string_view text, size_t* start);

// Only separators between two boxes: spaces, ',', ';', '$', \( \) \[ \], \quad,
// "and", \text{and}. Then "\boxed{1} and \boxed{2}" is the answer "1, 2"; any other
// word ("\boxed{3} no, \boxed{4}") leaves the last box alone.
bool OnlySeparators(std::string_view between) {
  std::string rest(between);
  for (const char* drop : {"\\text{and}", "\\text{ and }", "\\quad", "\\qquad", "\\(", "\\)",
                           "\\[", "\\]", "\\,", "and", "$", ",", ";", " ", "\n", "."}) {
    for (size_t p; (p = rest.find(drop)) != std::string::npos;) rest.erase(p, std::strlen(drop));
  }
  return rest.empty();
}

std::optional<std::string> LastBoxed(std::string_view text) {
  size_t start = 0;
  auto last = LastBoxedOnly(text, &start);
  if (!last) return last;
  std::string joined = *last;
  // Earlier boxes joined to the last one by separators only.
  for (int n = 0; n < 64; ++n) {
    size_t prev_start = 0;
    std::string_view head = text.substr(0, start);
    auto prev = LastBoxedOnly(head, &prev_start);
    if (!prev) break;
    // The previous box ends at the last '}' of head before `start`.
    size_t prev_end = head.rfind('}');
    if (prev_end == std::string_view::npos || !OnlySeparators(head.substr(prev_end + 1))) break;
    joined = *prev + ", " + joined;
    start = prev_start;
  }
  return joined;
}

std::optional<std::string> LastBoxedOnly(std::string_view text, size_t* start) {
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
  *start = best;
  size_t i = best + best_len;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size()) return std::nullopt;
  if (text[i] != '{') {
    // \boxed 5: up to the next space or '$'.
    size_t end = text.find_first_of(" $\n", i);
    if (end == std::string_view::npos) end = text.size();
    return std::string(text.substr(i, end - i));
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
